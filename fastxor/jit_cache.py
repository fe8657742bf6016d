"""Numba's on-disk cache, repaired when an entry is broken.

Why: a truncated ``.nbc`` or a garbage ``.nbi`` (a full disk, a killed
process, two machines sharing a home directory) makes every later call fail
with a pickle error until the file is deleted by hand. ``call_repairing``
discards the broken entries of that module, recompiles, says so once, and
goes on.
"""
import warnings
from pathlib import Path


def call_repairing(get_function, forget, *args):
    """``get_function()(*args)``; when that fails and the function has cache
    files on disk, delete them, ``forget()`` the loaded function, warn, and
    call a freshly compiled one. A genuine error raises again on the retry."""
    fn = get_function()
    try:
        return fn(*args)
    except Exception:
        cache = getattr(fn, "_cache", None)
        removed = _discard(cache)
        if not removed:
            raise
    warnings.warn(f"fastxor: discarded {len(removed)} broken kernel-cache files ({removed[0].parent}); "
                  "recompiling", RuntimeWarning, stacklevel=2)
    forget()
    return get_function()(*args)


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
