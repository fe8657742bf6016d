"""Bit-identity check between two versions of fastxor: every output array of
24 Numba runs (the recipes, widths, dtypes, data kinds and run sizes whose
kernels a compile-time or kernel change touches), saved, then compared
array for array.

Why: a change meant to leave results alone (a faster compile, a refactor of
the generated code) must give back every bit on the machine it runs on; the
tests compare with tolerances across CPU kinds, this compares exactly.

Run, with a separate kernel cache for each version:

    PYTHONPATH=<old checkout> FASTXOR_CACHE_DIR=/tmp/old-cache python bench/bitcheck.py save old.npz
    FASTXOR_CACHE_DIR=/tmp/new-cache python bench/bitcheck.py save new.npz
    python bench/bitcheck.py compare old.npz new.npz

(run from outside the checkout, or the checkout's own fastxor is imported
first). ``compare`` prints the differing arrays and exits 1 if any differ.
"""
import sys

import numpy as np

_REAL_X = np.array([[0.3, 0.1], [1.5, -0.2], [0.0, 0.7], [0.9, 0.9]])

CASES = {
    "seed": dict(n_networks=200, epochs=300, record_every=7),
    "small": dict(n_networks=5, epochs=300),
    "adam_bce_tanh5": dict(n_networks=150, epochs=400, hidden=5, optimizer="adam", lr=0.01, loss="bce",
                           activation="tanh", record_every=50),
    "nesterov_wd": dict(n_networks=130, epochs=300, hidden=3, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "dampening": dict(n_networks=70, epochs=200, hidden=2, momentum=0.9, dampening=0.3),
    "adamw_logits_relu": dict(n_networks=100, epochs=300, hidden=4, optimizer="adamw", lr=0.01, weight_decay=0.01,
                              loss="bce_logits", activation="relu"),
    "linear_target": dict(n_networks=100, epochs=300, hidden=3, output="linear", target_loss=0.05, lr_output=0.05),
    "f64": dict(n_networks=100, epochs=300, hidden=3, dtype="float64", lr=2.0),
    "parity3": dict(n_networks=100, epochs=200, hidden=3, function="parity3"),
    "parity5_looped": dict(n_networks=80, epochs=100, hidden=3, function="parity5", record_every=9),
    "real": dict(n_networks=64, epochs=200, hidden=2, X=_REAL_X, y=np.array([0.0, 1.0, 1.0, 0.0])),
    "diverge": dict(n_networks=100, epochs=200, hidden=2, lr=500.0),
    "bce_quiet": dict(n_networks=200, epochs=300, hidden=3, loss="bce", lr=0.5),
    "bce_quiet_small": dict(n_networks=5, epochs=300, hidden=3, loss="bce", lr=0.5),
    "adam5_quiet": dict(n_networks=150, epochs=400, hidden=5, optimizer="adam", lr=0.01, loss="bce",
                        activation="tanh"),
    "logits2_quiet": dict(n_networks=150, epochs=300, hidden=2, loss="bce_logits", lr=1.0),
    "logits2_quiet_small": dict(n_networks=3, epochs=300, hidden=2, loss="bce_logits", lr=1.0, dtype="float64"),
    "h8_nesterov": dict(n_networks=77, epochs=300, hidden=8, momentum=0.9, nesterov=True, record_every=13),
    "h6_f64_adam": dict(n_networks=100, epochs=250, hidden=6, optimizer="adam", lr=0.02, dtype="float64"),
    "h12_logits_sigmoid": dict(n_networks=130, epochs=200, hidden=12, loss="bce_logits", lr=0.3),
    "h3_adamw_target": dict(n_networks=70, epochs=300, hidden=3, optimizer="adamw", lr=0.01, weight_decay=0.01,
                            target_loss=0.1),
    "h9_parity3_bce": dict(n_networks=90, epochs=200, hidden=9, function="parity3", loss="bce", lr=0.5),
    "h5_linear_diverge": dict(n_networks=80, epochs=200, hidden=5, lr=300.0, output="linear"),
    "h7_adam_small": dict(n_networks=9, epochs=300, hidden=7, optimizer="adam", lr=0.01),
}
FIELDS = ("loss", "predictions", "solved_epoch", "diverged_epoch", "target_epoch")


def save(path):
    import fastxor

    out = {}
    for name, options in CASES.items():
        r = fastxor.train(backend="numba", **options)
        for field in FIELDS:
            if getattr(r, field) is not None:  # target_epoch: None without a target
                out[f"{name}.{field}"] = np.asarray(getattr(r, field))
        for i, a in enumerate(r.params.arrays()):
            out[f"{name}.p{i}"] = a
        if r.loss_history is not None:
            out[f"{name}.history"] = r.loss_history
    np.savez(path, **out)
    print(f"{len(out)} arrays of {len(CASES)} runs saved to {path} (fastxor from {fastxor.__file__})")


def compare(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    if set(a.files) != set(b.files):
        print("different arrays:", sorted(set(a.files) ^ set(b.files)))
        return 1
    differing = [k for k in a.files if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
                 or a[k].tobytes() != b[k].tobytes()]  # the bits: -0.0 and NaN payloads too
    print(f"{len(a.files)} arrays compared; differing: {differing or 'none'}")
    return 1 if differing else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        save(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
