"""Results files: a TrainResult saved as one ``.npz`` and loaded back whole.

Why a plain ``.npz``: every per-network array stays a NumPy array anyone can
open with ``numpy.load``, without fastxor; the configuration and the versions
that produced the run ride along as JSON, so a file says how it was made and
``fastxor.resume`` can continue it exactly.
"""
import json
import os
import platform
from pathlib import Path

import numpy as np

from .params import Params
from .result import TrainResult

FORMAT = 1
_ARRAYS = ("loss", "predictions", "solved", "solved_epoch", "diverged", "diverged_epoch")


def versions(modules=("numba", "cupy", "torch")):
    """Versions of what produced a run: fastxor, Python, NumPy, and those of
    ``modules`` that are installed."""
    from . import __version__

    out = {"fastxor": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in modules:
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: simply not recorded
            pass
    return out


def save(result, path):
    """Write ``result`` to ``path`` (``.npz``), atomically: an interrupted save
    never leaves a half-written file under the final name."""
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult, got {type(result).__name__}")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(path)!r}")
    arrays = {k: getattr(result, k) for k in _ARRAYS}
    arrays.update(zip(("W1", "b1", "W2", "b2"), result.params.arrays()))
    if result.loss_history is not None:
        arrays["loss_history"] = result.loss_history
    cfg = {}
    for key, value in result.config.items():
        if isinstance(value, np.ndarray):
            arrays[f"config.{key}"] = value
        else:
            cfg[key] = value
    meta = dict(format=FORMAT, config=cfg, versions=versions())
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load(path):
    """The TrainResult saved at ``path`` (``result.versions`` says what made it)."""
    with np.load(path, allow_pickle=False) as f:
        if "meta" not in f:
            raise ValueError(f"{path} is not a fastxor results file (no 'meta' entry)")
        meta = json.loads(str(f["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: results-file format {meta.get('format')} is not {FORMAT}")
        cfg = dict(meta["config"])
        for key in f.files:
            if key.startswith("config."):
                cfg[key[len("config."):]] = f[key]
        result = TrainResult(
            params=Params(*(f[k] for k in ("W1", "b1", "W2", "b2"))),
            loss_history=f["loss_history"] if "loss_history" in f else None,
            config=cfg,
            **{k: f[k] for k in _ARRAYS},
        )
    result.versions = meta.get("versions", {})
    return result
