"""Output files that never cost finished work.

Why a module: a run of hours must not be lost to a typo in ``--out``, a full
disk, or a second Ctrl-C while it is being written. So every output path is
checked before any work starts (``check_path``), and saving (``save_safely``)
holds SIGINT/SIGTERM while it writes, says that it is saving, and falls back
to a rescue file in the temporary directory when the chosen place fails.
"""
import errno
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path


def check_path(path, suffix, option, force=False, own=None):
    """Refuse, before any work, an output that could not be written.

    ``suffix``: the required ending (".npz"); ``option``: the name shown
    ("--out"); ``force``: overwriting an existing file is allowed; ``own``:
    a path that may be overwritten anyway (the run a ``--resume`` continues).
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file name ending in {suffix}")
    if p.suffix != suffix:
        raise ValueError(f"{option} {path}: the file name must end in {suffix}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: the directory {parent} is not writable")
    if p.exists():
        if own is not None and p.resolve() == Path(own).resolve():
            return p
        if not force:
            raise ValueError(f"{option} {path} exists; add --force to overwrite it")
        if not os.access(p, os.W_OK):
            raise ValueError(f"{option} {path} exists and is not writable")
    return p


class HeldSignals:
    """Within the block, SIGINT and SIGTERM are recorded, not acted on
    (``self.signum`` is the first one). Only the main thread can handle
    signals; elsewhere nothing is held."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.signum, self.old = None, {}
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._hold) for s in self.SIGNALS}
        return self

    def _hold(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    @property
    def hit(self):
        return self.signum is not None

    def __exit__(self, *exc):
        for s, handler in self.old.items():
            signal.signal(s, handler)


def _atomically(write, path, replace=True):
    """``write`` to a temporary file beside ``path`` (same suffix), renamed
    into place: a failed or cut write never leaves a partial file under the
    final name, nor destroys the file it was to replace. ``replace=False``:
    a file that exists at ``path`` by now is kept (``FileExistsError``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and never over an existing file
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if path.exists():
                    raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
                os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_safely(write, path, log=None, replace=True):
    """``write(path)`` atomically with signals held; on an OSError, to a
    rescue file instead. ``replace=False`` (no ``--force``): a file that
    appeared at ``path`` during the run (another job's) is kept and this one
    is saved beside it. Returns (the path written, a warning or None)."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    log(f"saving {path} ...")
    with HeldSignals():
        try:
            return _atomically(write, path, replace), None
        except FileExistsError:
            path = Path(path)
            other = path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")
            return (_atomically(write, other, False),
                    f"{path} appeared while this run trained and is kept (add --force to replace it); "
                    f"saved to {other}")
        except OSError as exc:
            rescue = Path(tempfile.gettempdir()) / f"fastxor-rescue-{os.getpid()}{Path(path).suffix}"
            why = exc.strerror or str(exc)
            try:
                _atomically(write, rescue)
            except OSError as exc2:
                raise OSError(f"could not save {path} ({why}) nor the rescue file {rescue} "
                              f"({exc2.strerror or exc2})") from None
            return rescue, f"could not save {path} ({why}); the results are in {rescue}"
