"""The progress bar where researchers run fastxor: a terminal (one line
redrawn), a log file (a line now and then), a Jupyter notebook (one output
line updated in place, through IPython's display handles); ``progress=True``
on every trainer, and bad values refused before any work."""
import io
import sys
import types

import numpy as np
import pytest

import fastxor
from fastxor.progress import ProgressBar, in_notebook


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _kernel_stream():
    """A stand-in for ipykernel's OutStream: what the notebook check looks at
    is the class's module, as for the real one."""
    cls = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    return cls()


@pytest.fixture
def fake_ipython(monkeypatch):
    """IPython.display with display handles that record what they show."""
    shown = []

    class Pretty:
        def __init__(self, text):
            self.text = text

    class Handle:
        def update(self, obj):
            shown.append(("update", obj.text))

    def display(obj, display_id=False):
        assert display_id is True  # an updatable output, not a new one per call
        shown.append(("display", obj.text))
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.Pretty, ipython.display.display = Pretty, display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)
    return shown


def test_a_notebook_gets_one_line_updated_in_place(fake_ipython):
    stream = _kernel_stream()
    assert in_notebook(stream) and not in_notebook(io.StringIO()) and not in_notebook(sys.__stderr__)
    bar = ProgressBar(1000, stream=stream, delay=0.0, notebook_every=0.0, label="hidden=2")
    for done in (100, 500, 1000):
        bar(done, 1000)
    assert [kind for kind, _ in fake_ipython] == ["display", "update", "update"]
    assert fake_ipython[-1][1].startswith("hidden=2: [##############################] epoch 1000/1000 ")
    assert stream.getvalue() == ""  # nothing printed as stream lines


def test_the_shard_bar_updates_one_notebook_line_too(fake_ipython):
    """fastxor.distributed's bar over shards (one line per finished shard)
    goes through the same writer: one display, then updates."""
    from fastxor.progress import ShardProgress

    stream = _kernel_stream()
    bar = ShardProgress(3, ne_per_shard=1e6, stream=stream)
    for _ in range(3):
        bar()
    assert [kind for kind, _ in fake_ipython] == ["display", "update", "update"]
    assert "shards 3/3" in fake_ipython[-1][1] and stream.getvalue() == ""


def test_a_terminal_redraws_one_line_and_a_log_gets_lines():
    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        bar = ProgressBar(10, stream=stream, delay=0.0, log_every=0.0)
        for done in (1, 2, 3):
            bar(done, 3)
    assert tty.getvalue().count("\r") == 3 and tty.getvalue().count("\n") == 1
    assert log.getvalue().count("\n") == 3 and "\r" not in log.getvalue()
    assert "epoch 3/3" in log.getvalue()


def test_progress_true_draws_a_bar_on_every_trainer(fake_ipython, monkeypatch, rng):
    """train, resume, sweep and a map with progress=True: a bar on stderr (a
    notebook's here), numbers identical to a run without one."""
    from fastxor import progress

    stream = _kernel_stream()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress.ProgressBar.__init__, "__defaults__",
                        (None, 0.0, 10.0, 0, "", 0.0))  # draw from the first segment on
    seed = int(rng.integers(0, 2**32))
    kw = dict(epochs=60, seed=seed, backend="numpy", lr=0.5)
    plain = fastxor.train(30, **kw)
    shown = fastxor.train(30, progress=True, **kw)
    np.testing.assert_array_equal(plain.params.to_flat(), shown.params.to_flat())
    assert fake_ipython and fake_ipython[-1][1].split("epoch ")[1].startswith("60/60")
    fake_ipython.clear()
    fastxor.resume(shown, 40, progress=True)
    assert fake_ipython[-1][1].split("epoch ")[1].startswith("100/100")
    fake_ipython.clear()
    fastxor.sweep(lr=[0.5, 1.0], hidden=[2, 3], networks=10, epochs=20, backend="numpy", progress=True)
    labels = {text.split(":")[0] for kind, text in fake_ipython if kind == "display"}
    assert labels == {"hidden=2 sgd/mse/sigmoid", "hidden=3 sgd/mse/sigmoid"}  # one bar per launch
    fake_ipython.clear()
    fastxor.lr_map((0.1, 1.0), (0.1, 1.0), resolution=4, epochs=20, backend="numpy", progress=True)
    assert fake_ipython[-1][1].startswith("lr map: [####") and "epoch 20/20" in fake_ipython[-1][1]
    assert stream.getvalue() == ""


@pytest.mark.parametrize("call", [
    lambda: fastxor.train(4, epochs=1, progress="yes"),
    lambda: fastxor.sweep(lr=[0.1], networks=2, epochs=1, progress=1.5),
    lambda: fastxor.lr_map((0.1, 1), (0.1, 1), resolution=2, epochs=1, progress="bar"),
])
def test_a_bad_progress_value_is_one_clear_error(call):
    with pytest.raises(TypeError, match=r"progress must be None, True/False or a callable f\("):
        call()
