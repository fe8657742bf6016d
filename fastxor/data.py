"""The training data: what one network description trains on.

A network has D inputs and is trained on S samples: ``X`` of shape (S, D)
and targets ``y`` of shape (S,). Every size of a run (the parameters, the
predictions, the kernels) follows from them. XOR is the default; a boolean
function of D inputs can be named (``"parity3"``, ``"majority5"``, ``"mux6"``,
the 16 two-input names) or given as a truth table of 2^D digits, and
``train`` also accepts any real X and y.

Boolean inputs are in binary counting order: row k of X is k in binary, the
first input the most significant bit (for D = 2 the seed's order (0,0),
(0,1), (1,0), (1,1)).
"""
import numpy as np

#: The largest network description: D inputs, S samples (8-bit parity).
INPUTS_MAX = 8
SAMPLES_MAX = 256


def boolean_inputs(d):
    """(2^d, d) float64: row k is k in binary, first input most significant."""
    k = np.arange(2**d)
    return ((k[:, None] >> np.arange(d - 1, -1, -1)[None, :]) & 1).astype(np.float64)


#: The seed's inputs, in its order: (0,0), (0,1), (1,0), (1,1).
X_BOOL = boolean_inputs(2)

#: The 16 boolean functions of two inputs, as outputs for X_BOOL's rows.
TWO_INPUT = {
    "false": "0000", "and": "0001", "a_and_not_b": "0010", "a": "0011",
    "not_a_and_b": "0100", "b": "0101", "xor": "0110", "or": "0111",
    "nor": "1000", "xnor": "1001", "not_b": "1010", "a_or_not_b": "1011",
    "not_a": "1100", "not_a_or_b": "1101", "nand": "1110", "true": "1111",
}  # fmt: skip


def _table(d, rule):
    """The truth table of ``rule(row)`` over the 2^d boolean rows."""
    return "".join("1" if rule(row) else "0" for row in boolean_inputs(d).astype(int))


def _mux(row):
    """The 6-input multiplexer: inputs 0-1 address (input 0 the high bit) one of the data inputs 2-5."""
    return row[2 + 2 * row[0] + row[1]] == 1


#: Every named boolean function, as its truth table (length 2^D).
FUNCTIONS = {
    **TWO_INPUT,
    **{f"parity{d}": _table(d, lambda r: r.sum() % 2 == 1) for d in range(2, INPUTS_MAX + 1)},
    **{f"majority{d}": _table(d, lambda r, d=d: 2 * r.sum() > d) for d in (3, 5, 7)},
    "mux6": _table(6, _mux),
}


def boolean_function(spec):
    """(X, y) for a function name (``"xor"``, ``"parity3"``) or a truth table
    of 2^D digits for D = 1..8 (``"0110"``: X in binary counting order)."""
    if not isinstance(spec, str):
        raise TypeError(f"function must be a name or a truth table string, got {spec!r}")
    table = FUNCTIONS.get(spec.lower(), spec)
    d = len(table).bit_length() - 1
    if len(table) != 2**d or not 1 <= d <= INPUTS_MAX or set(table) - {"0", "1"}:
        raise ValueError(
            f"function must be a name ({', '.join(TWO_INPUT)}, parity2..parity{INPUTS_MAX}, majority3, majority5, "
            f"majority7, mux6) or a truth table of 2^D 0/1 digits, D in [1, {INPUTS_MAX}], in binary counting "
            f"order (e.g. '0110' for inputs 00,01,10,11), got {spec!r}"
        )
    return boolean_inputs(d), np.array([float(c) for c in table])


def check_data(X, y):
    """Validated (X (S, D), y (S,)) as float64; XOR where both are None.

    X without y is refused (except the seed's (4, 2) inputs, whose default
    targets are XOR's); y without X takes the boolean inputs of D = log2 S.
    """
    if X is None and y is None:
        return boolean_function("xor")
    if X is None:
        y = np.asarray(y)
        s = y.shape[0] if y.ndim else 0
        d = max(s, 1).bit_length() - 1
        if y.ndim not in (1, 2) or s != 2**d or not 1 <= d <= INPUTS_MAX:
            raise ValueError(f"y without X must hold 2^D targets, D in [1, {INPUTS_MAX}], for the boolean inputs "
                             f"in binary counting order; got shape {y.shape}: give X too")
        X = boolean_inputs(d)
    X = np.asarray(X)
    if y is None:
        if X.shape != (4, 2):
            raise ValueError(f"y is required with X of shape {X.shape} (only the seed's (4, 2) inputs default "
                             "to XOR's targets)")
        y = boolean_function("xor")[1]
    y = np.asarray(y)
    if X.dtype.kind not in "fiub" or X.ndim != 2:
        raise ValueError(f"X must be a real array of shape (S, D), got {X.dtype} of shape {X.shape}")
    s, d = X.shape
    if not 1 <= d <= INPUTS_MAX:
        raise ValueError(f"X must have D in [1, {INPUTS_MAX}] inputs (columns), got {d}")
    if not 1 <= s <= SAMPLES_MAX:
        raise ValueError(f"X must have S in [1, {SAMPLES_MAX}] samples (rows), got {s}")
    if y.dtype.kind not in "fiub" or y.shape not in ((s,), (s, 1)):
        raise ValueError(f"y must be a real array of shape ({s},) or ({s}, 1), one target per row of X, "
                         f"got shape {y.shape}")
    X = X.astype(np.float64)
    y = y.astype(np.float64).reshape(s)
    if not np.isfinite(X).all():
        raise ValueError("X must be finite (no NaN or inf)")
    if not np.isfinite(y).all():
        raise ValueError("y must be finite (no NaN or inf)")
    return X, y


def check_targets(y, loss):
    """The binary cross-entropies take targets in [0, 1] (torch's BCELoss refuses others)."""
    if loss in ("bce", "bce_logits") and not ((y >= 0) & (y <= 1)).all():
        raise ValueError(f"y must be in [0, 1] for loss={loss!r}, got values from {y.min():g} to {y.max():g}")


def target_sides(y):
    """+1 where the target is above 0.5, -1 below, 0 at exactly 0.5.

    A sample is classified correctly when side * (prediction - 0.5) > 0, so a
    target of exactly 0.5 has no side and can never count as solved.
    """
    return np.sign(np.asarray(y, dtype=np.float64) - 0.5)


def solved_by(predictions, sides):
    """(N,) True where all S predictions lie strictly on their target's side
    of 0.5 (``sides`` from ``target_sides``). The one definition of *solved*:
    the kernels compute the same test as min over samples of side * (o - 0.5) > 0."""
    from .arrays import array_module

    xp = array_module(predictions)
    sides = xp.asarray(sides)
    out = xp.empty(len(predictions), dtype=bool)
    step = max(1, SOLVED_BLOCK // max(1, predictions.shape[1]))
    for lo in range(0, len(predictions), step):  # in blocks: the (N, S) temporaries stay small
        block = predictions[lo:lo + step]
        out[lo:lo + len(block)] = (sides * (block - 0.5) > 0).all(axis=1)
    return out


#: Predictions (network x sample values) per block of ``solved_by``: its
#: float64 temporaries are a block's (about 12 MiB), not the run's (at 64
#: samples they were 5x the run's predictions).
SOLVED_BLOCK = 1 << 20


def function_of(X, y):
    """The name (or truth table) of the boolean function (X, y) is, or None
    when X is not the boolean inputs in their order or y is not 0/1."""
    X = np.asarray(X)
    if (X.ndim != 2 or not 1 <= X.shape[1] <= INPUTS_MAX or not np.array_equal(X, boolean_inputs(X.shape[1]))
            or not np.isin(y, (0.0, 1.0)).all()):
        return None
    table = "".join(str(int(v)) for v in y)
    return next((name for name, t in FUNCTIONS.items() if t == table), table)
