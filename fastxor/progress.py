"""A dependency-free progress bar for long training runs (stderr)."""
import sys
import time


class ProgressBar:
    """``bar(done, total)`` draws epochs done, network-epochs/s and ETA.

    Silent for runs that finish within ``delay`` seconds, so short commands
    print nothing extra. On a terminal the bar redraws in place; otherwise
    (a log file) it writes a line at most every ``log_every`` seconds.
    """

    def __init__(self, n_networks, stream=None, delay=1.0, log_every=10.0, epoch0=0):
        self.n = n_networks
        self.stream = stream or sys.stderr
        self.delay, self.log_every, self.epoch0 = delay, log_every, epoch0
        self.t0 = time.perf_counter()
        self.last = None
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.drawn = False

    def __call__(self, done, total):
        now = time.perf_counter()
        elapsed = now - self.t0
        if elapsed < self.delay and done < total:
            return
        if not self.tty and self.last is not None and now - self.last < self.log_every and done < total:
            return
        if not self.drawn and done >= total and elapsed < self.delay:
            return
        self.last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("inf")
        width = 30
        filled = int(width * done / total) if total else width
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] epoch {self.epoch0 + done}/{self.epoch0 + total} "
            f"{rate * self.n:.3g} network-epochs/s, {elapsed:.0f} s, ETA {_fmt(eta)}"
        )
        end = "\n" if done >= total or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
        self.drawn = True


def _fmt(seconds):
    if seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ShardProgress:
    """``bar()`` after each finished shard: shards done/total, network-epochs/s
    (of this call's shards) and ETA, on stderr; ``already`` shards were
    finished before (a resumed run)."""

    def __init__(self, total, already=0, ne_per_shard=0.0, stream=None, log_every=10.0):
        self.total, self.done, self.already, self.ne = total, already, already, ne_per_shard
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.log_every = log_every

    def __call__(self):
        self.done += 1
        now = time.perf_counter()
        if not self.tty and now - self.last < self.log_every and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.t0
        ran = self.done - self.already
        eta = elapsed / ran * (self.total - self.done) if ran else float("inf")
        filled = int(30 * self.done / self.total)
        line = (f"[{'#' * filled}{'.' * (30 - filled)}] shards {self.done}/{self.total} "
                f"{ran * self.ne / elapsed if elapsed > 0 else 0:.3g} network-epochs/s, {elapsed:.0f} s, "
                f"ETA {_fmt(eta)}")
        end = "\n" if self.done >= self.total or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
