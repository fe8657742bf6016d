"""Argument checks that name the argument and its allowed range.

Why: a user training a million networks should learn at once, and in words,
that an argument is wrong — not from a crash or a silent clamp deep inside a
kernel.
"""
import math
import numbers

import numpy as np

from . import config
from .options import DEFAULTS


def check_int(name, value, low, high=None):
    """An integer in [low, high] (bools refused), else TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f", {high}"
        raise ValueError(f"{name} must be in [{low}{upper}], got {value}")
    return value


def check_real(name, value, low=None, low_open=False, high=None):
    """A finite real number >= low (> low when ``low_open``), <= high."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value > high
    if bad:
        lo = "(" if low_open else "["
        rng = f"{lo}{low if low is not None else '-inf'}, " + (f"{high}]" if high is not None else "inf)")
        raise ValueError(f"{name} must be a finite number in {rng}, got {value!r}")
    return value


def check_dtype(dtype):
    """'float32' or 'float64' (or the NumPy types), returned as a NumPy type.
    None is refused (NumPy would read it as float64, silently)."""
    try:
        name = None if dtype is None else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in config.DTYPES:
        raise ValueError(f"dtype must be one of {sorted(config.DTYPES)}, got {dtype!r}")
    return config.DTYPES[name]


def check_per_network(name, value, n, low=None, low_open=False):
    """A scalar or an (n,) array of finite reals, returned as float64 (n,)."""
    if np.isscalar(value) or np.ndim(value) == 0:
        v = check_real(name, value.item() if hasattr(value, "item") else value, low, low_open)
        return np.full(n, v, dtype=np.float64)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a number or a real array of shape ({n},), got an array of {arr.dtype}"
                        + (" (booleans are not learning rates or scales)" if arr.dtype.kind == "b" else ""))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or a real array of shape ({n},), got shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if low is not None:
        bad |= arr <= low if low_open else arr < low
    if bad.any():
        lo = "(" if low_open else "["
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] must be a finite number in {lo}{low}, inf), got {arr[i]!r}")
    return arr


def check_in_dtype(name, values, dtype, nonzero=False):
    """``values`` (float64) still finite (and non-zero) once cast to the
    training ``dtype``: 1e39 is inf and 1e-50 is 0 in float32."""
    with np.errstate(over="ignore"):  # the overflow is what is being checked
        cast = np.asarray(values).astype(dtype)
    bad = ~np.isfinite(cast) | ((cast == 0) & (np.asarray(values) != 0) if nonzero else False)
    if np.any(bad):
        i = int(np.argmax(np.ravel(bad)))
        v = float(np.ravel(values)[i])
        what = "overflows to inf" if not np.isfinite(np.ravel(cast)[i]) else "rounds to 0"
        where = f"{name}[{i}]" if np.ndim(values) else name
        info = np.finfo(dtype)
        raise ValueError(f"{where}={v!r} {what} in {np.dtype(dtype).name}; "
                         f"{np.dtype(dtype).name} allows magnitudes in [{info.tiny:.3g}, {info.max:.3g}]")
    return cast


def check_choice(name, value, allowed):
    """One of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def check_recipe(n, dtype, **options):
    """The training-recipe options of ``fastxor.train`` (``options.RECIPE``,
    each defaulting to the table's) checked as torch.optim checks them, plus
    what torch would silently ignore (an option of another optimizer, a
    linear output with a loss that needs a probability), and the
    coefficients still finite (eps non-zero) in the training ``dtype``.

    Returns (options for ``state.Recipe``, coefficients): coefficients maps
    momentum, weight_decay and lr_output to None (all zero, or no separate
    output rate) or a number or an (N,) array (a number is expanded by
    ``training``, after the memory guard)."""
    from .options import OUTPUTS, RECIPE
    from .state import ACTIVATIONS, LOSSES, OPTIMIZERS

    unknown = set(options) - set(RECIPE)
    if unknown:
        raise TypeError(f"unknown recipe option(s) {sorted(unknown)}; the recipe options are {list(RECIPE)}")
    o = dict(DEFAULTS, **options)
    optimizer = check_choice("optimizer", o["optimizer"], OPTIMIZERS)
    loss = check_choice("loss", o["loss"], LOSSES)
    activation = check_choice("activation", o["activation"], ACTIVATIONS)
    output = check_choice("output", o["output"], OUTPUTS)

    def per_network(name, value, low_open=False):  # a number stays a number: nothing (N,) before the memory guard
        if np.ndim(value) == 0:
            return check_real(name, value.item() if hasattr(value, "item") else value, low=0.0, low_open=low_open)
        return check_per_network(name, value, n, low=0.0, low_open=low_open)

    mom = per_network("momentum", o["momentum"])
    wd = per_network("weight_decay", o["weight_decay"])
    lr_output = None if o["lr_output"] is None else per_network("lr_output", o["lr_output"], low_open=True)
    dampening = check_real("dampening", o["dampening"], low=0.0, high=1.0)
    nesterov, betas = o["nesterov"], o["betas"]
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
    if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), each in [0, 1), got {betas!r}")
    b1 = check_real("betas[0]", betas[0], low=0.0)
    b2 = check_real("betas[1]", betas[1], low=0.0)
    for i, b in enumerate((b1, b2)):
        if b >= 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {b!r}")
    eps = check_real("eps", o["eps"], low=0.0, low_open=True)
    target_loss = o["target_loss"]
    if target_loss is not None:
        target_loss = check_real("target_loss", target_loss, low=0.0)
    if output == "linear" and loss != "mse":
        raise ValueError(f"output='linear' trains with loss='mse', not {loss!r}: BCE needs a probability "
                         "(loss='bce_logits' already takes the raw output: keep output='sigmoid' for it)")
    if optimizer == "sgd":
        if (b1, b2) != tuple(DEFAULTS["betas"]) or eps != DEFAULTS["eps"]:
            raise ValueError("betas and eps apply to optimizer='adam' or 'adamw', not 'sgd'")
        if nesterov and (not np.all(np.asarray(mom) > 0) or dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 (for every network) and dampening=0, as in torch.optim.SGD")
    else:
        if np.any(mom) or dampening or nesterov:
            raise ValueError(f"momentum, dampening and nesterov apply to optimizer='sgd'; {optimizer!r} "
                             "takes betas=(beta1, beta2)")
    for name, value in (("momentum", mom), ("weight_decay", wd), ("eps", eps), ("lr_output", lr_output)):
        if value is not None:  # as lr: 1e39 is inf, 1e-50 is 0 in float32
            check_in_dtype(name, value, dtype, nonzero=name in ("eps", "lr_output"))
    recipe = dict(optimizer=optimizer, loss=loss, activation=activation, output=output, momentum=bool(np.any(mom)),
                  nesterov=bool(nesterov), dampening=dampening, weight_decay=bool(np.any(wd)),
                  lr_output=lr_output is not None, betas=(b1, b2), eps=eps, target_loss=target_loss)
    coefficients = dict(momentum=mom if np.any(mom) else None, weight_decay=wd if np.any(wd) else None,
                        lr_output=lr_output)
    return recipe, coefficients
