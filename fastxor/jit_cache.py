"""Where compiled kernels live: one cache directory, never the package.

Why: Numba writes its cache beside the source file of a ``cache=True``
function. For a module inside the installed package that is a read-only or
shared directory, and for a closure the entry is never found again (a new
file per process). So every Numba kernel of fastxor is generated or copied
as a module file into the cache directory (``$FASTXOR_CACHE_DIR``, default
``~/.cache/fastxor``) and imported from there: a warm process loads its
kernels and writes nothing.

A cache directory that cannot be written (read-only, full) degrades to
compiling in memory, said once. A broken entry (a truncated ``.nbc``, a
garbage ``.nbi``: a killed process, two machines sharing a home) is
discarded and recompiled, said once.
"""
import errno
import hashlib
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

_STATE = {"dir": None, "checked": False}
_LOADED = {}


def cache_root():
    """The configured cache directory (it may not exist yet)."""
    return Path(os.environ.get("FASTXOR_CACHE_DIR") or Path.home() / ".cache" / "fastxor")


def reset():
    """Read ``FASTXOR_CACHE_DIR`` again at the next load (a Dask worker set it)."""
    _STATE.update(dir=None, checked=False)


def cache_dir():
    """The writable cache directory, or None when kernels compile in memory."""
    if not _STATE["checked"]:
        _STATE["checked"] = True
        d = cache_root()
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / f".write-test-{os.getpid()}"
            probe.write_text("x")
            probe.unlink()
            _STATE["dir"] = d
        except OSError as e:
            _in_memory(f"the kernel cache {d} cannot be written ({e.strerror or e})")
    return _STATE["dir"]


def _in_memory(why):
    """From now on compile in memory; warn once."""
    if not _STATE.get("warned"):
        warnings.warn(f"fastxor: {why}; compiling kernels in memory (set FASTXOR_CACHE_DIR to a writable "
                      "directory to keep them)", RuntimeWarning, stacklevel=3)
    _STATE.update(dir=None, checked=True, warned=True)


def module_name(name, source):
    """``<name>_<hash of the source>``: an edited source is a new module."""
    return f"{name}_{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def load_module(name, source):
    """The module with ``source``, imported from ``<cache>/<name>_<hash>.py``
    (Numba caches its ``cache=True`` functions beside it), or executed in
    memory when the cache cannot be written. The source reads the global
    ``CACHE`` for its decorators' ``cache=`` flag."""
    key = (name, source)
    if key in _LOADED:
        return _LOADED[key]
    modname = module_name(name, source)
    d = cache_dir()
    path = None
    if d is not None:
        path = d / f"{modname}.py"
        try:
            fresh = path.read_bytes() != source.encode()
        except OSError:  # not there yet
            fresh = True
        if fresh and not write_file(path, source.encode()):
            path = None
    if path is not None:
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        module.CACHE = True
        sys.modules[modname] = module
        spec.loader.exec_module(module)
    else:
        module = types.ModuleType(modname)
        module.CACHE = False
        sys.modules[modname] = module
        exec(compile(source, f"<fastxor kernel {modname}>", "exec"), module.__dict__)
    module.FASTXOR_KEY = key
    _LOADED[key] = module
    return module


def write_file(path, data):
    """Write ``data`` (bytes) to ``path`` in the cache atomically (concurrent
    processes never see half a file). False, and compiling in memory from
    now on (warned once), when it cannot be written."""
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return True
    except OSError as e:
        tmp.unlink(missing_ok=True)
        _in_memory(f"the kernel cache {path.parent} cannot be written ({e.strerror or e})")
        return False


def discarded(files):
    """Say once per process that broken cache ``files`` were deleted and are compiled again."""
    if files and not _STATE.get("repair_warned"):  # once per process, however many modules were broken
        _STATE["repair_warned"] = True
        warnings.warn(f"fastxor: discarded broken kernel-cache files ({files[0].parent}); recompiling",
                      RuntimeWarning, stacklevel=3)


def forget(module):
    """Drop a loaded module, so the next ``load_module`` imports it afresh."""
    _LOADED.pop(getattr(module, "FASTXOR_KEY", None), None)


def load_file(path):
    """The module ``load_module`` wrote to ``path``, loaded by its file (how
    another process finds a kernel this one generated)."""
    path = Path(path)
    return load_module(path.stem.rsplit("_", 1)[0], path.read_text())  # the file is <name>_<hash>.py


def compiled_file(modname, function, machine):
    """The cache file of ``function`` of the module named ``modname`` compiled
    by fastxor itself (``backends.numba_direct_ir``) for ``machine`` (a hash
    of the CPU and compiler versions); None when the cache cannot be written."""
    d = cache_dir()
    return None if d is None else d / f"{modname}.{function}.{machine}.fxo"


def has_entry(modname, function="*"):
    """Whether the cache on disk holds compiled code of ``function`` (any:
    "*") of the module named ``modname`` (it may be for another CPU): in
    Numba's index or compiled by fastxor itself."""
    d = cache_dir()
    return d is not None and (any((d / "__pycache__").glob(f"{modname}.{function}-*.nbi"))
                              or any(d.glob(f"{modname}.{function}.*.fxo")))


def is_new(name, source):
    """True when ``load_module(name, source)`` would have to compile: not
    loaded in this process and no cached compiled entry on disk."""
    return (name, source) not in _LOADED and not has_entry(module_name(name, source))


def call_repairing(get_function, forget_function, *args):
    """``get_function()(*args)``. When getting or calling the function fails
    inside Numba's cache, repair and try again: broken entries on disk are
    deleted, one module's at a time (warned once); a cache that cannot be
    written (full disk, read-only, a file-size limit) switches to compiling
    in memory (warned once). Any other error is raised at once, the cache
    untouched."""
    for _ in range(_REPAIRS):
        fn = None
        try:
            fn = get_function()  # may load a cached C callback
            return fn(*args)
        except OSError as e:
            if e.errno not in _UNWRITABLE or not _raised_in_numba_cache(e):
                raise
            _in_memory(f"the kernel cache cannot be written ({e.strerror or e})")
        except Exception as e:
            if not _raised_in_numba_cache(e):  # a genuine error: the cache is not touched
                raise
            removed = _discard(_entry_of(e) or getattr(fn, "_cache", None))
            if not removed:
                raise
            discarded(removed)
        forget_function()
    return get_function()(*args)


#: Broken modules ``call_repairing`` repairs in one call (a run loads two: its variant's and the driver).
_REPAIRS = 4


#: errno values of a cache write that cannot succeed: compile in memory instead.
_UNWRITABLE = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM, errno.EFBIG)


def _raised_in_numba_cache(error):
    """Whether ``error`` came out of Numba's cache (loading or saving an
    entry), not out of the kernel or fastxor's own code."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.replace("\\", "/").endswith("numba/core/caching.py"):
            return True
        tb = tb.tb_next
    return False


def _entry_of(error):
    """The Numba cache object (it knows its files) whose load or save raised ``error``."""
    found, tb = None, error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.replace("\\", "/").endswith("numba/core/caching.py"):
            owner = frame.f_locals.get("self")
            if hasattr(owner, "_cache_path") and hasattr(owner, "_cache_file"):
                found = owner
        tb = tb.tb_next
    return found


def _discard(cache):
    """Delete the cache files of the module ``cache`` belongs to (all its functions)."""
    try:
        directory = Path(cache._cache_path)
        module = cache._cache_file._index_name.split(".")[0]
    except AttributeError:  # not a cached Numba function
        return []
    removed = []
    for f in directory.glob(f"{module}.*.nb[ci]"):
        try:
            f.unlink()
            removed.append(f)
        except OSError:
            pass
    return removed
