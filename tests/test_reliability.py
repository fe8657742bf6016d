"""No finished run is lost to a careless mistake: outputs checked before any
work, signals during training and saving, memory refused before allocating,
values checked after the cast, one-line errors, a broken kernel cache."""
import errno
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import fastxor
from fastxor import cli, training
from fastxor.outputs import HeldSignals, save_safely

from helpers import assert_same_result


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any training starts: errors must come first."""
    def refuse(*a, **k):
        raise AssertionError("training started before the error")
    monkeypatch.setattr(training, "_run", refuse)


def run_cli(argv, capsys):
    rc = cli.main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("out, words", [
    ("nodir/r.npz", "the directory nodir does not exist"),
    ("r.txt", "must end in .npz"),
    (".", "is a directory"),
])
def test_bad_out_is_refused_before_training(out, words, tmp_path, monkeypatch, capsys, no_training):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(["train", "--networks", "10", "--epochs", "10", "--out", out], capsys)
    assert rc == 2 and words in err and err.count("\n") == 1


def test_sweep_and_bench_outputs_are_checked_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from fastxor import sweep as sweep_module
    from fastxor.bench import harness

    monkeypatch.setattr(sweep_module, "train", None, raising=False)
    monkeypatch.setattr(harness, "run_suite", lambda *a, **k: pytest.fail("bench ran before the check"))
    rc, _, err = run_cli(["sweep", "--networks", "5", "--epochs", "5", "--out", "nodir/s.csv"], capsys)
    assert rc == 2 and "nodir does not exist" in err
    rc, _, err = run_cli(["bench", "--quick", "--json", "b.txt"], capsys)
    assert rc == 2 and "--json b.txt: the file name must end in .json" in err


def test_existing_out_needs_force_except_for_its_own_resume(tmp_path, capsys):
    out = tmp_path / "r.npz"
    base = ["train", "--networks", "20", "--epochs", "30", "--progress", "off", "--out", str(out)]
    assert run_cli(base, capsys)[0] == 0
    before = out.read_bytes()
    rc, _, err = run_cli(base, capsys)
    assert rc == 2 and "exists; add --force" in err and out.read_bytes() == before
    assert run_cli(base + ["--force"], capsys)[0] == 0
    assert run_cli(["train", "--resume", str(out), "--epochs", "10", "--progress", "off"], capsys)[0] == 0
    assert fastxor.load(out).config["epochs"] == 40


def test_zero_epochs_change_nothing_through_the_command(tmp_path, capsys):
    """``--epochs 0`` (segmented, as the command always trains) gives the
    initial or saved state's own outputs: a resume saves the file back equal,
    a fresh run equals the API's zero-epoch run, history included."""
    out = tmp_path / "r.npz"
    assert run_cli(["train", "--networks", "70", "--epochs", "30", "--record-every", "5", "--progress", "off",
                    "--out", str(out)], capsys)[0] == 0
    saved = fastxor.load(out)
    rc, text, _ = run_cli(["train", "--resume", str(out), "--epochs", "0", "--progress", "off"], capsys)
    assert rc == 0 and "30 epochs" in text
    again = fastxor.load(out)
    assert again.config["epochs"] == 30
    assert_same_result(again, saved)
    for interruptible in (False, True):
        r = fastxor.train(70, epochs=0, record_every=5, seed=4, interruptible=interruptible)
        assert r.config["epochs"] == 0 and r.loss_history.shape == (70, 0)
        np.testing.assert_array_equal(r.params.W1, fastxor.init_params(70, seed=4).W1)
        assert_same_result(r, fastxor.train(70, epochs=0, record_every=5, seed=4))


@pytest.mark.parametrize("verb, name", [("train", "r.npz"), ("sweep", "s.csv")])
def test_an_out_file_that_appears_during_the_run_is_kept(verb, name, tmp_path, monkeypatch, capsys):
    """Another job writes the same --out while this one trains: without
    --force its file is kept and this run is saved beside it, with a warning."""
    out = tmp_path / name
    real = training.train

    def other_job_meanwhile(*args, **kwargs):
        r = real(*args, **kwargs)
        if not out.exists():
            out.write_text("the other job's results")
        return r

    monkeypatch.setattr(training, "train", other_job_meanwhile)
    monkeypatch.setattr(cli, "train", other_job_meanwhile, raising=False)
    rc, text, err = run_cli([verb, "--networks", "8", "--epochs", "3", "--progress", "off", "--out", str(out)],
                            capsys)
    assert rc == 0 and out.read_text() == "the other job's results"
    beside = tmp_path / f"{out.stem}-{os.getpid()}{out.suffix}"
    assert f"saved: {beside}" in text and "appeared while this run trained" in err
    if verb == "train":
        assert fastxor.load(beside).n_networks == 8
    else:
        assert len(sys.modules["fastxor.sweep"].read_csv(beside)) == 1


def test_resume_refuses_to_pass_the_epoch_limit():
    from fastxor import config

    r = fastxor.train(3, epochs=2)
    r.config["epochs"] = config.EPOCHS_MAX - 5  # a run near the limit of the kernels' 32-bit epoch counter
    with pytest.raises(ValueError, match=r"epochs must be in \[0, 5\], got 10"):
        fastxor.resume(r, 10)


def test_resume_refuses_options_that_conflict_with_the_saved_run(tmp_path, capsys):
    out = tmp_path / "r.npz"
    assert run_cli(["train", "--networks", "20", "--epochs", "30", "--lr", "0.5", "--hidden", "3",
                    "--progress", "off", "--out", str(out)], capsys)[0] == 0
    rc, _, err = run_cli(["train", "--resume", str(out), "--epochs", "10", "--hidden", "2", "--lr", "0.1",
                          "--dtype", "float64", "--networks", "7", "--function", "and"], capsys)
    assert rc == 2
    for words in ("--hidden 2 (saved: 3)", "--lr 0.1 (saved: 0.5)", "--dtype float64 (saved: float32)",
                  "--networks 7 (saved: 20)", "--function and"):
        assert words in err, words
    # the saved run's own values are no conflict
    rc, _, _ = run_cli(["train", "--resume", str(out), "--epochs", "10", "--hidden", "3", "--lr", "0.5",
                        "--function", "xor", "--progress", "off"], capsys)
    assert rc == 0


def test_failed_save_keeps_the_results_in_a_rescue_file(tmp_path, monkeypatch, capsys):
    """A full disk (ENOSPC from the writer): the run is saved elsewhere, and
    the message says where; no temporary file is left behind."""
    real = np.savez_compressed
    target = tmp_path / "r.npz"

    def full_disk(path, **arrays):
        if str(path).startswith(str(tmp_path)):
            real(path, **{k: v for k, v in list(arrays.items())[:1]})  # a partial file, then the error
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, **arrays)

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    rc, out, err = run_cli(["train", "--networks", "20", "--epochs", "30", "--progress", "off",
                            "--out", str(target)], capsys)
    assert rc == 0 and "No space left on device" in err and "saving" in err
    rescue = out.split("saved: ")[1].split()[0]
    assert os.path.dirname(rescue) != str(tmp_path)
    assert fastxor.load(rescue).config["epochs"] == 30
    os.unlink(rescue)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file


def test_signals_during_a_save_are_held_until_it_is_written(tmp_path, default_signal_handlers):
    """A second Ctrl-C (or a SIGTERM) while saving must not cost the file."""
    r = fastxor.train(10, epochs=5)

    def slow_write(path):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        return r.save(path)

    where, warning = save_safely(slow_write, tmp_path / "r.npz", log=lambda s: None)
    assert warning is None and fastxor.load(where).config["epochs"] == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with HeldSignals() as held:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    assert held.signum == signal.SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_command_saves_and_resumes_exactly(sig, tmp_path):
    """A batch scheduler's SIGTERM (or Ctrl-C) to a real ``fastxor train``: it
    stops at the end of a segment, saves, exits 130; resuming gives the
    same networks as one uninterrupted run."""
    out = tmp_path / "r.npz"
    argv = ["--networks", "3000", "--seed", "5", "--record-every", "50"]
    proc = subprocess.Popen([sys.executable, "-m", "fastxor", "train", "--epochs", "2000000", "--progress", "on",
                             "--out", str(out), *argv], stderr=subprocess.PIPE, text=True)
    seen = ""
    while "epoch" not in seen:  # the progress bar: training is under way
        seen += proc.stderr.read(1)
        assert proc.poll() is None, seen
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    r = fastxor.load(out)
    assert r.config["interrupted"] and 0 < r.config["epochs"] < 2_000_000
    more = 1000
    whole = fastxor.train(3000, epochs=r.config["epochs"] + more, seed=5, record_every=50)
    assert_same_result(fastxor.resume(r, more), whole)
    assert not [p for p in tmp_path.iterdir() if p.name != "r.npz"]  # no temporary file left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_a_sweep_keeps_every_finished_cell(sig, tmp_path):
    """SIGTERM or Ctrl-C to a real ``fastxor sweep --out``: it stops at the end
    of a segment, writes the CSV of every cell trained so far (the running
    launch's at the epoch it reached), says so, and exits 130."""
    out = tmp_path / "s.csv"
    proc = subprocess.Popen([sys.executable, "-m", "fastxor", "sweep", "--networks", "2000", "--lr", "0.1,0.5",
                             "--hidden", "2,3", "--epochs", "2000000", "--progress", "on", "--out", str(out)],
                            stderr=subprocess.PIPE, text=True)
    seen = ""
    while "epoch" not in seen:  # the progress bar: the first launch is training
        seen += proc.stderr.read(1)
        assert proc.poll() is None, seen
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: 2 of 4 cells" in err
    rows = sys.modules["fastxor.sweep"].read_csv(out)
    assert rows["hidden"].tolist() == [2, 2] and rows["lr"].tolist() == [0.1, 0.5]
    assert (0 < rows["epochs"]).all() and (rows["epochs"] < 2_000_000).all()
    assert not [p for p in tmp_path.iterdir() if p.name != "s.csv"]  # no temporary file left


def _peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
    except MemoryError as exc:
        message = str(exc)
    else:
        message = None
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return message, peak


@pytest.mark.parametrize("call", [
    lambda: fastxor.train(400_000_000, epochs=1),
    lambda: fastxor.train(10**12, epochs=1),
    lambda: fastxor.init_params(10**12),
    lambda: fastxor.sweep(lr=[0.1, 0.2, 0.5], networks=300_000_000, epochs=100),
    lambda: fastxor.train(1_000_000_000, epochs=10, init="torch"),
], ids=["train-4e8", "train-1e12", "init_params-1e12", "sweep-9e8", "train-torch-1e9"])
def test_memory_is_refused_before_it_is_allocated(call, monkeypatch):
    monkeypatch.setattr("fastxor.machine.available_memory", lambda: 4 * 2**30)
    message, peak = _peak_mib(call)
    assert message and "GiB" in message and "fewer networks" in message
    assert peak < 64, f"{peak:.0f} MiB allocated before refusing"


def test_resume_and_torch_init_check_memory_too(monkeypatch):
    r = fastxor.train(1000, epochs=10, record_every=1)
    monkeypatch.setattr("fastxor.machine.available_memory", lambda: 2**20)
    with pytest.raises(MemoryError, match="record_every=1"):
        fastxor.resume(r, 1000)
    with pytest.raises(MemoryError, match="torch_init of 100000 seeds"):
        fastxor.torch_init(range(100_000))


@pytest.mark.parametrize("kwargs, words", [
    (dict(lr=1e-50), "lr=1e-50 rounds to 0 in float32"),
    (dict(lr=1e39), "lr=1e+39 overflows to inf in float32"),
    (dict(lr=np.array([0.1, 1e-60, 0.1])), "lr[1]=1e-60 rounds to 0 in float32"),
    (dict(init_scale=1e39), "init_scale=1e+39 overflows to inf in float32"),
    (dict(momentum=1e39), "momentum=1e+39 overflows to inf in float32"),
    (dict(weight_decay=np.array([0.0, 1e39, 0.0])), "weight_decay[1]=1e+39 overflows to inf in float32"),
    (dict(optimizer="adam", eps=1e-50), "eps=1e-50 rounds to 0 in float32"),
    (dict(lr=1e-50, dtype="float64"), None),  # representable in float64: fine
    (dict(dtype=None), "dtype must be one of"),
    (dict(lr=np.array(["a", "b", "c"])), "got an array of <U1"),
    (dict(lr=np.array([True, False, True])), "booleans are not learning rates"),
])
def test_values_are_checked_after_the_cast(kwargs, words):
    if words is None:
        assert fastxor.train(3, epochs=2, **kwargs).config["lr"] == kwargs["lr"]
        return
    with pytest.raises((ValueError, TypeError)) as info:
        fastxor.train(3, epochs=2, **kwargs)
    assert words in str(info.value)


def test_unreadable_files_are_one_line_errors(tmp_path, capsys):
    good = fastxor.train(10, epochs=5).save(tmp_path / "good.npz")
    (tmp_path / "text.npz").write_text("hello\n")
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:200])
    np.savez(tmp_path / "other.npz", loss=np.zeros(3))
    import json

    np.savez(tmp_path / "nokeys.npz", meta=np.array(json.dumps(dict(format=1, config={}))))
    for name, words in (("text.npz", "not an .npz archive"), ("truncated.npz", "not a readable fastxor results file"),
                        ("other.npz", "no 'meta' entry"), ("nokeys.npz", "missing: W1"),
                        ("absent.npz", "no such file")):
        for argv in (["train", "--resume", str(tmp_path / name), "--epochs", "1"], ["plot", str(tmp_path / name)]):
            rc, _, err = run_cli(argv, capsys)
            assert rc == 2 and words in err and err.count("\n") == 1, (name, err)
    with pytest.raises(ValueError):  # --debug: the traceback, for a bug report
        cli.main(["--debug", "train", "--resume", str(tmp_path / "text.npz"), "--epochs", "1"])


def test_plot_of_an_all_diverged_run_and_onto_a_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from helpers import with_diverging_network

    p = with_diverging_network(fastxor.init_params(1, 2, 0))
    r = fastxor.train(init=p, epochs=3, lr=np.finfo(np.float32).max * 0.5)
    assert r.diverged.all()
    path = r.save(tmp_path / "d.npz")
    assert run_cli(["plot", str(path), "--out", str(tmp_path / "plots")], capsys)[0] == 0
    (tmp_path / "afile").write_text("")
    rc, _, err = run_cli(["plot", str(path), "--out", str(tmp_path / "afile")], capsys)
    assert rc == 2 and "is a file" in err


@pytest.mark.parametrize("argv, words", [
    (["sweep", "--lr", "abc"], "expected comma-separated numbers, got 'abc'"),
    (["sweep", "--lr", "0.1,,0.5"], "an empty item"),
    (["sweep", "--hidden", "2.5"], "expected comma-separated integers"),
])
def test_list_options_say_what_they_expect(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_a_failed_csv_save_keeps_the_old_file_and_rescues_the_new(tmp_path, monkeypatch, capsys):
    """A disk that fills while ``sweep --out s.csv --force`` writes: the old
    CSV is left whole (no partial file under its name) and the new table is
    in the rescue file."""
    sweep_module = sys.modules["fastxor.sweep"]  # the module (``fastxor.sweep`` is the function)
    csv = tmp_path / "s.csv"
    argv = ["sweep", "--networks", "5", "--epochs", "5", "--lr", "0.1,0.2", "--progress", "off", "--out", str(csv)]
    assert run_cli(argv, capsys)[0] == 0
    old = csv.read_bytes()
    write = sweep_module.write_csv

    def full_disk(table, path):
        if Path(path).parent == tmp_path:  # beside the target: half a file, then the disk is full
            Path(path).write_text("hidden,lr\n2,0.")
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(table, path)

    monkeypatch.setattr(sweep_module, "write_csv", full_disk)
    rc, out, err = run_cli(argv + ["--lr", "0.3,0.4", "--force"], capsys)
    assert rc == 0 and "No space left on device" in err
    assert csv.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]
    rescue = Path(out.strip().splitlines()[-1].split("saved: ")[1])
    assert sweep_module.read_csv(rescue)["lr"].tolist() == [0.3, 0.4]
    rescue.unlink()


@pytest.mark.parametrize("extra, words", [
    (["--optimizer", "adam,sgd", "--betas", "0.8,0.9"], "betas and eps apply to optimizer='adam' or 'adamw'"),
    (["--momentum", "0.5", "--weight-decay", "1e39"], "weight_decay=1e+39 overflows to inf in float32"),
])
def test_sweep_checks_every_launch_before_the_first_trains(extra, words, monkeypatch, capsys):
    """A grid whose second launch is invalid fails before the first one
    trains: one line, no training at all."""
    launched = []
    monkeypatch.setattr(training.backends.get("numba"), "run", lambda *a, **k: launched.append(a))
    rc, _, err = run_cli(["sweep", "--networks", "5", "--epochs", "5", "--progress", "off", *extra], capsys)
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not launched


def test_messages_name_the_option_the_user_gave(tmp_path, capsys):
    """A usage error is one line; a directory given to --resume, or a file to
    analyse --plot, is reported under that option; a short probe needs no
    probe_points of its own."""
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--epochs", "x"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert "argument --epochs: invalid int value: 'x' (see fastxor train --help)" in err
    _run_directory(tmp_path / "run", 8, 4, epochs=2, seed=1)
    rc, _, err = run_cli(["train", "--resume", str(tmp_path / "run"), "--epochs", "1"], capsys)
    assert rc == 2 and f"--resume {tmp_path / 'run'} is a directory" in err and "give one with --out" in err
    r = fastxor.train(20, epochs=30, seed=1)
    path = r.save(tmp_path / "r.npz")
    (tmp_path / "p.png").write_text("")
    rc, _, err = run_cli(["analyse", str(path), "--plot", str(tmp_path / "p.png")], capsys)
    assert rc == 2 and "--plot " in err and "is a file" in err
    land = fastxor.analyse(r, probe_epochs=5)
    assert land.probe_epochs.tolist() == [0, 1, 2, 3, 4, 5]


def test_truncated_sweep_csv_names_the_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    csv = tmp_path / "s.csv"
    assert run_cli(["sweep", "--networks", "5", "--epochs", "5", "--lr", "0.1,0.2", "--progress", "off",
                    "--out", str(csv)], capsys)[0] == 0
    text = csv.read_text()
    csv.write_text(text[: text.rindex(",") - 3])
    rc, _, err = run_cli(["plot", str(csv), "--out", str(tmp_path / "p")], capsys)
    assert rc == 2 and "line 3" in err


def _snapshot(directory):
    return {f: (f.stat().st_mtime_ns, f.stat().st_size) for f in Path(directory).rglob("*") if f.is_file()}


_CACHED_RUN = "import fastxor; print(fastxor.train(70, epochs=20, hidden=1, seed=3).loss.sum())"


def test_kernels_are_cached_outside_the_package_and_a_warm_run_writes_nothing(tmp_path):
    """Every compiled artefact lands in FASTXOR_CACHE_DIR; a second process
    finds them all (writes no file, compiles nothing); then truncated .nbc and
    .fxo and garbage .nbi files: the next run warns once, recompiles, and trains."""
    import fastxor

    package = Path(fastxor.__file__).parent
    before = _snapshot(package)
    env = dict(os.environ, FASTXOR_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", _CACHED_RUN], env=env, capture_output=True, text=True,
                           check=True)
    files = _snapshot(tmp_path)
    assert {f.suffix for f in files} >= {".py", ".nbi", ".nbc", ".fxo"}
    assert _snapshot(package) == before  # nothing written into the package
    warm = subprocess.run([sys.executable, "-c", _CACHED_RUN], env=env, capture_output=True, text=True,
                          check=True)
    assert warm.stdout == first.stdout and warm.stderr == ""
    assert _snapshot(tmp_path) == files
    for f in files:
        if f.suffix in (".nbc", ".nbi", ".fxo"):
            f.write_bytes(b"garbage" if f.suffix == ".nbi" else f.read_bytes()[:50])
    again = subprocess.run([sys.executable, "-c", _CACHED_RUN], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and again.stderr.count("discarded") == 1
    assert all(f.stat().st_size > 50 for f in tmp_path.glob("*.fxo"))  # written again


@pytest.mark.parametrize("how", ["not a directory", "ENOSPC", "EFBIG", "ENOSPC on a compiled entry"])
def test_a_cache_that_cannot_be_written_compiles_in_memory(how, tmp_path):
    """A cache path that is a file, a disk that fills or a file-size limit
    (``ulimit -f``) met while Numba saves, or while fastxor saves a function
    ``numba_direct_ir`` compiled: one warning, the same results, nothing
    left half-written."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = blocker / "cache" if how == "not a directory" else tmp_path / "cache"
    code = _CACHED_RUN
    if how == "ENOSPC on a compiled entry":
        code = ("import errno, pathlib\n"
                "write = pathlib.Path.write_bytes\n"
                "def full(self, data):\n"
                "    if '.fxo.' in self.name: raise OSError(errno.ENOSPC, 'cannot write')\n"
                "    return write(self, data)\n"
                "pathlib.Path.write_bytes = full\n" + code)
    elif how != "not a directory":
        code = ("import errno, numba.core.caching as c\n"
                f"def full(*a): raise OSError(errno.{how}, 'cannot write')\n"
                "c.Cache._save_overload = full\n" + code)
    env = dict(os.environ, FASTXOR_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("compiling kernels in memory") == 1, out.stderr
    assert "Traceback" not in out.stderr
    want = subprocess.run([sys.executable, "-c", _CACHED_RUN], capture_output=True, text=True, check=True)
    assert out.stdout == want.stdout
    assert not list(tmp_path.rglob("*.fxo*"))  # no compiled entry, and no half-written one
    if how != "ENOSPC on a compiled entry":  # (there the math functions were saved before the disk "filled")
        assert not list(tmp_path.rglob("*.nbc"))


def test_a_genuine_error_leaves_the_kernel_cache_alone():
    """Only an error raised inside Numba's cache repairs it: a kernel called
    wrongly raises as it is, and no cache file is deleted."""
    from fastxor import jit_cache, philox

    fastxor.init_params(philox.NUMPY_MAX + 1, seed=1)  # the Philox kernel compiled and cached (small N: NumPy)
    module = philox._kernel()
    d = jit_cache.cache_dir()
    if d is None:
        pytest.skip("the kernel cache cannot be written here")
    files = sorted((d / "__pycache__").glob(f"{module.__name__}.*"))
    assert files
    with pytest.raises(Exception) as info:
        jit_cache.call_repairing(lambda: module.fill, lambda: None, "not", "a", "kernel's", "arguments",
                                 None, None, 0, 1)
    assert "caching" not in str(info.value)
    assert sorted((d / "__pycache__").glob(f"{module.__name__}.*")) == files


def _run_directory(out, n, shard, **options):
    """A run directory made as a cluster makes it (no cluster needed)."""
    from fastxor import shards

    shards.write_run_file(out, n, shard, options)
    for i, (lo, m) in enumerate(shards.plan(n, shard)):
        shards.run_shard(options, lo, m, shards.shard_path(out, i))


@pytest.mark.parametrize("intruder", ["another run", "wrong size", "truncated"])
def test_a_shard_from_elsewhere_is_never_merged(intruder, tmp_path, capsys):
    """A shard file copied in from another run (lr 5 in a run of lr 0.1), one
    of the wrong size, or a truncated one: load, merge and the resuming rerun
    refuse it, naming the file and what to do."""
    from fastxor import shards

    run_dir, other = tmp_path / "run", tmp_path / "other"
    _run_directory(run_dir, 96, 32, epochs=20, lr=0.1, seed=1)
    if intruder == "another run":
        _run_directory(other, 96, 32, epochs=20, lr=5.0, seed=1)
        shards.shard_path(other, 1).replace(shards.shard_path(run_dir, 1))
        words = "its lr is 5.0, the run's 0.1"
    elif intruder == "wrong size":
        fastxor.train(10, epochs=20, lr=0.1, seed=1, start=32).save(shards.shard_path(run_dir, 1))
        words = "its n_networks is 10, the run's 32"
    else:
        path = shards.shard_path(run_dir, 1)
        path.write_bytes(path.read_bytes()[:300])
        words = "not a"
    bad = str(shards.shard_path(run_dir, 1))
    with pytest.raises(ValueError, match="rerun the same command") as info:
        fastxor.load(run_dir)
    assert bad in str(info.value) and words in str(info.value)
    rc, _, err = run_cli(["merge", str(run_dir)], capsys)
    assert rc == 2 and bad in err and words in err and len(err.strip().splitlines()) == 1


def test_foreign_or_inconsistent_files_are_one_line_errors(tmp_path, capsys):
    """A results file without the config keys resume and analyse read, one
    whose arrays disagree in length, and a run.json written by something
    else: one line each, no traceback."""
    import json

    from fastxor import results_file

    r = fastxor.train(6, epochs=3, seed=2)
    arrays = {k: getattr(r, k) for k in ("loss", "predictions", "solved", "solved_epoch", "diverged",
                                         "diverged_epoch")}
    arrays.update(zip(("W1", "b1", "W2", "b2"), r.params.arrays()))
    config = {k: v for k, v in r.config.items() if not isinstance(v, np.ndarray)}
    results_file.write(tmp_path / "noconfig.npz", arrays, dict(config={"epochs": 3}))
    results_file.write(tmp_path / "uneven.npz", dict(arrays, loss=arrays["loss"][:4]), dict(config=config))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps({"n_networks": 8, "shard_networks": 4, "options": 3}))
    for argv, words in ((["analyse", str(tmp_path / "noconfig.npz")], "its config lacks: n_networks, lr, dtype"),
                        (["train", "--resume", str(tmp_path / "noconfig.npz"), "--epochs", "1"], "config lacks"),
                        (["analyse", str(tmp_path / "uneven.npz")], "loss not of its 6 networks"),
                        (["merge", str(tmp_path / "run")], "is not a readable fastxor run file")):
        rc, _, err = run_cli(argv, capsys)
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_an_unexpected_error_is_one_line_and_the_traceback_is_behind_debug(monkeypatch, capsys):
    def bug(*args, **kwargs):
        raise KeyError("something unforeseen")

    monkeypatch.setattr(training, "train", bug)
    rc, _, err = run_cli(["train", "--networks", "3", "--epochs", "1", "--progress", "off"], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        cli.main(["--debug", "train", "--networks", "3", "--epochs", "1", "--progress", "off"])


def test_ctrl_c_ends_analyse_promptly_without_a_traceback(tmp_path):
    """Ctrl-C (twice) during a long probe of ``fastxor analyse``: it stops
    within a segment, says so in one line, exits 130."""
    path = fastxor.train(2000, epochs=50, seed=3).save(tmp_path / "r.npz")
    proc = subprocess.Popen([sys.executable, "-m", "fastxor", "analyse", str(path), "--probe-epochs", "100000000"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # the Hessians are done and the probe is training
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # never left running when the check fails
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
