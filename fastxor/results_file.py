"""Results files: one ``.npz`` of named arrays plus a JSON ``meta`` entry.

Why a plain ``.npz``: every per-network array stays a NumPy array anyone can
open with ``numpy.load``, without fastxor; the configuration and the versions
that produced the run ride along as JSON, so a file says how it was made and
``fastxor.resume`` can continue it exactly. This module knows files, not
results: ``TrainResult.save`` / ``TrainResult.load`` say what goes in.
"""
import json
import os
import zipfile
from pathlib import Path

import numpy as np

FORMAT = 1


def write(path, arrays, meta):
    """Write ``arrays`` and ``meta`` (JSON-able) to ``path`` (``.npz``),
    atomically: an interrupted save never leaves a half-written file under
    the final name."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(path)!r}")
    arrays = dict(arrays, meta=np.array(json.dumps(dict(meta, format=FORMAT))))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read(path):
    """(arrays, meta) of a file written by ``write``; arrays are loaded into
    memory. Anything else (missing, truncated, not an .npz, not fastxor's)
    is a ValueError that names the file and says what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("it holds a single array, not a results archive")
            if "meta" not in f:
                raise ValueError("it has no 'meta' entry")
            meta = json.loads(str(f["meta"]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"results-file format {meta.get('format') if isinstance(meta, dict) else '?'}"
                                 f" is not {FORMAT}")
            return {k: f[k] for k in f.files if k != "meta"}, meta
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a results file") from None
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        why = str(exc) if isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError) else (
            f"{type(exc).__name__}: {exc}")
        if "pickled" in why:
            why = "it is not an .npz archive"
        raise ValueError(f"{path} is not a readable fastxor results file ({why})") from None
