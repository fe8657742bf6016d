"""A dependency-free progress bar for long training runs: on a terminal, in a
Jupyter notebook, or in a log file."""
import sys
import time


def in_notebook(stream):
    """Whether ``stream`` is a Jupyter kernel's output (ipykernel's OutStream):
    there a bar is one output line updated in place, through IPython's
    display handles (a notebook is not a terminal, so it would otherwise get
    a new line per update)."""
    return type(stream).__module__.split(".")[0] == "ipykernel"


class _Line:
    """Where a bar's line goes: a terminal (redrawn in place with a carriage
    return), a Jupyter notebook (one output updated through an IPython
    display handle), or a log (a line each time). ``live``: the first two,
    which may redraw often."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.notebook = not self.tty and in_notebook(stream)
        self.handle = None

    @property
    def live(self):
        return self.tty or self.notebook

    def draw(self, line, last):
        if self.notebook:
            from IPython.display import Pretty, display

            if self.handle is None:
                self.handle = display(Pretty(line), display_id=True)
            else:
                self.handle.update(Pretty(line))
            return
        end = "\n" if last or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


class ProgressBar:
    """``bar(done, total)`` draws epochs done, network-epochs/s and ETA.

    Silent for runs that finish within ``delay`` seconds, so short commands
    print nothing extra. On a terminal the bar redraws in place; in a Jupyter
    notebook it is one output line updated in place (at most every
    ``notebook_every`` seconds); otherwise (a log file) it writes a line at
    most every ``log_every`` seconds. ``label`` prefixes the line.
    """

    def __init__(self, n_networks, stream=None, delay=1.0, log_every=10.0, epoch0=0, label="",
                 notebook_every=0.2):
        self.n = n_networks
        self.stream = stream or sys.stderr
        self.delay, self.log_every, self.epoch0 = delay, log_every, epoch0
        self.label = f"{label}: " if label else ""
        self.t0 = time.perf_counter()
        self.last = None
        self.out = _Line(self.stream)
        self.notebook_every = notebook_every
        self.drawn = False

    def __call__(self, done, total):
        now = time.perf_counter()
        elapsed = now - self.t0
        if elapsed < self.delay and done < total:
            return
        every = self.notebook_every if self.out.notebook else self.log_every
        if not self.out.tty and self.last is not None and now - self.last < every and done < total:
            return
        if not self.drawn and done >= total and elapsed < self.delay:
            return
        self.last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("inf")
        line = (
            f"{self.label}{_bar(done, total)} epoch {self.epoch0 + done:.0f}/{self.epoch0 + total:.0f} "
            f"{rate * self.n:.3g} network-epochs/s, {elapsed:.0f} s, ETA {_fmt(eta)}"
        )
        self.drawn = True
        self.out.draw(line, done >= total)


def check(progress, signature="f(done, total)"):
    """``progress`` unchanged if it is None, a bool or a callable; else one
    clear TypeError before any work starts."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return progress
    raise TypeError(f"progress must be None, True/False or a callable {signature}, got {progress!r}")


def resolve(progress, n_networks, epoch0=0):
    """A ``progress=`` argument as the trainers take it: None or False (no
    report), True (a ``ProgressBar`` on stderr: a terminal, a notebook or a
    log), or a callable ``f(done, total)``, used as given."""
    if check(progress) is None or progress is False:
        return None
    return ProgressBar(n_networks, epoch0=epoch0) if progress is True else progress


def _bar(done, total, width=30):
    """``[####......]``: the bar filled ``done / total`` (full when total is 0)."""
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}]"


def _fmt(seconds):
    if seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ShardProgress:
    """``bar()`` after each finished shard: shards done/total, network-epochs/s
    (of this call's shards) and ETA, on stderr (a terminal, a notebook or a
    log, as ``ProgressBar``); ``already`` shards were finished before (a
    resumed run)."""

    def __init__(self, total, already=0, ne_per_shard=0.0, stream=None, log_every=10.0):
        self.total, self.done, self.already, self.ne = total, already, already, ne_per_shard
        self.out = _Line(stream or sys.stderr)
        self.t0 = self.last = time.perf_counter()
        self.log_every = log_every

    def __call__(self):
        self.done += 1
        now = time.perf_counter()
        if not self.out.live and now - self.last < self.log_every and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.t0
        ran = self.done - self.already
        eta = elapsed / ran * (self.total - self.done) if ran else float("inf")
        line = (f"{_bar(self.done, self.total)} shards {self.done}/{self.total} "
                f"{ran * self.ne / elapsed if elapsed > 0 else 0:.3g} network-epochs/s, {elapsed:.0f} s, "
                f"ETA {_fmt(eta)}")
        self.out.draw(line, self.done >= self.total)
