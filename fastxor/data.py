"""The training data: 4 two-input samples and their targets.

XOR is the default; any of the 16 boolean functions of two inputs can be named
or given as a truth table, and ``train`` also accepts arbitrary X and y.
"""
import numpy as np

#: The seed's inputs, in its order: (0,0), (0,1), (1,0), (1,1).
X_BOOL = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)

#: The 16 boolean functions of two inputs, as outputs for X_BOOL's rows.
FUNCTIONS = {
    "false": "0000", "and": "0001", "a_and_not_b": "0010", "a": "0011",
    "not_a_and_b": "0100", "b": "0101", "xor": "0110", "or": "0111",
    "nor": "1000", "xnor": "1001", "not_b": "1010", "a_or_not_b": "1011",
    "not_a": "1100", "not_a_or_b": "1101", "nand": "1110", "true": "1111",
}  # fmt: skip


def boolean_function(spec):
    """(X, y) for a function name (``"xor"``) or a truth table (``"0110"``)."""
    if not isinstance(spec, str):
        raise TypeError(f"function must be a name or a 4-digit truth table, got {spec!r}")
    table = FUNCTIONS.get(spec.lower(), spec)
    if len(table) != 4 or set(table) - {"0", "1"}:
        raise ValueError(
            f"function must be one of {sorted(FUNCTIONS)} or a truth table of four 0/1 digits "
            f"for inputs 00,01,10,11 (e.g. '0110'), got {spec!r}"
        )
    return X_BOOL.copy(), np.array([float(c) for c in table])


def check_data(X, y):
    """Validated (X (4,2), y (4,)) as float64; XOR where both are None."""
    if X is None and y is None:
        return boolean_function("xor")
    X = X_BOOL.copy() if X is None else X
    y = boolean_function("xor")[1] if y is None else y
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype.kind not in "fiub" or X.shape != (4, 2):
        raise ValueError(f"X must be a real array of shape (4, 2), got shape {X.shape}")
    if y.dtype.kind not in "fiub" or y.shape not in ((4,), (4, 1)):
        raise ValueError(f"y must be a real array of shape (4,) or (4, 1), got shape {y.shape}")
    X = X.astype(np.float64)
    y = y.astype(np.float64).reshape(4)
    if not np.isfinite(X).all():
        raise ValueError("X must be finite (no NaN or inf)")
    if not np.isfinite(y).all():
        raise ValueError("y must be finite (no NaN or inf)")
    return X, y


def target_sides(y):
    """+1 where the target is above 0.5, -1 below, 0 at exactly 0.5.

    A sample is classified correctly when side * (prediction - 0.5) > 0, so a
    target of exactly 0.5 has no side and can never count as solved.
    """
    return np.sign(np.asarray(y, dtype=np.float64) - 0.5)


def solved_by(predictions, sides):
    """(N,) True where all 4 predictions lie strictly on their target's side
    of 0.5 (``sides`` from ``target_sides``). The one definition of *solved*:
    the kernels compute the same test as min over samples of side * (o - 0.5) > 0."""
    from .arrays import array_module

    xp = array_module(predictions)
    return (xp.asarray(sides) * (predictions - 0.5) > 0).all(axis=1)


def function_of(X, y):
    """The name (or truth table) of the boolean function (X, y) is, or None
    when X is not the boolean inputs in their order or y is not 0/1."""
    if not np.array_equal(X, X_BOOL) or not np.isin(y, (0.0, 1.0)).all():
        return None
    table = "".join(str(int(v)) for v in y)
    return next((name for name, t in FUNCTIONS.items() if t == table), table)
