"""Outputs of fixed training runs, recorded before the backend redesign
(commit 7967bed) in ``tests/data/golden.npz``: every refactoring must give
them back. ``python tests/golden.py`` rewrites the file (only when a change
of results is intended, and said so in the commit)."""
from pathlib import Path

import numpy as np

import fastxor
from helpers import FIELDS
from fastxor.machine import proc_field

PATH = Path(__file__).parent / "data" / "golden.npz"

# (backend, dtype, hidden, n, epochs, lr, init_scale, record_every, X/y, resume pieces)
CASES = [
    ("numba", "float32", 2, 150, 3000, 0.1, 1.0, 100, "xor", ()),
    ("numba", "float32", 2, 150, 2000, "per-network", 1.0, 0, "xor", ()),
    ("numba", "float32", 3, 70, 1500, 0.5, "per-network", 7, "0111", (300, 411)),
    ("numba", "float64", 1, 65, 300, 2.0, 1.5, 1, "xor", ()),
    ("numba", "float64", 5, 130, 1200, "per-network", 1.0, 50, "real", (100,)),
    ("numba", "float32", 8, 64, 800, 1.0, 2.0, 0, "real", ()),
    ("numpy", "float32", 2, 40, 300, "per-network", 1.0, 10, "xor", (37,)),
    ("numpy", "float64", 3, 40, 250, 0.7, "per-network", 0, "real", ()),
    ("numpy", "float64", 1, 9, 120, 1.0, 1.0, 1, "1001", ()),
]


def case_inputs(i):
    """The keyword arguments of ``fastxor.train`` for case ``i`` (deterministic)."""
    backend, dtype, hidden, n, epochs, lr, scale, k, fn, _ = CASES[i]
    rng = np.random.default_rng(1000 + i)
    if fn == "real":
        X, y = rng.uniform(-2, 2, (4, 2)), rng.uniform(0, 1, 4)
    else:
        X, y = fastxor.boolean_function(fn)
    lr = np.exp(rng.uniform(np.log(0.05), np.log(3.0), n)) if lr == "per-network" else lr
    scale = rng.uniform(0.3, 3.0, n) if scale == "per-network" else scale
    return dict(n_networks=n, epochs=epochs, lr=lr, hidden=hidden, seed=int(rng.integers(2**63)),
                init_scale=scale, X=X, y=y, dtype=dtype, backend=backend, record_every=k)


def run_case(i):
    """Case ``i`` trained as recorded: one call, then ``resume`` by each piece."""
    kw = case_inputs(i)
    r = fastxor.train(**kw)
    for more in CASES[i][-1]:
        r = fastxor.resume(r, more, backend=kw["backend"])
    return r


def machine_signature():
    """CPU vendor, family, model and vector extensions: bit-identical results
    are expected only on the machine kind that recorded them."""
    flags = set((proc_field("/proc/cpuinfo", "flags") or "").split())
    return " ".join([proc_field("/proc/cpuinfo", k) or "?" for k in ("vendor_id", "cpu family", "model")]
                    + sorted(f for f in flags if f.startswith(("avx", "fma"))))


def arrays_of(r):
    out = {f: np.asarray(getattr(r, f)) for f in FIELDS}
    out.update(zip(("W1", "b1", "W2", "b2"), r.params.arrays()))
    if r.loss_history is not None:
        out["loss_history"] = r.loss_history
    return out


if __name__ == "__main__":
    data = {"machine": np.array(machine_signature())}
    for i in range(len(CASES)):
        for k, v in arrays_of(run_case(i)).items():
            data[f"{i}.{k}"] = v
    np.savez_compressed(PATH, **data)
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
