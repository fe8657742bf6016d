"""Results files: one ``.npz`` of named arrays plus a JSON ``meta`` entry.

Why a plain ``.npz``: every per-network array stays a NumPy array anyone can
open with ``numpy.load``, without fastxor; the configuration and the versions
that produced the run ride along as JSON, so a file says how it was made and
``fastxor.resume`` can continue it exactly. This module knows files, not
results: ``TrainResult.save`` / ``TrainResult.load`` say what goes in.
"""
import json
import os
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
    """(arrays, meta) of a file written by ``write``; arrays are loaded into memory."""
    with np.load(path, allow_pickle=False) as f:
        if "meta" not in f:
            raise ValueError(f"{path} is not a fastxor results file (no 'meta' entry)")
        meta = json.loads(str(f["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: results-file format {meta.get('format')} is not {FORMAT}")
        return {k: f[k] for k in f.files if k != "meta"}, meta
