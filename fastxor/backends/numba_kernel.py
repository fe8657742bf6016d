"""Backend ``numba``: the fused CPU kernel, forward, backward and update in one loop body.

Why generated source: for SIMD across networks, the loop over the networks of
a chunk must be the innermost loop and its body straight-line code. So the
body is emitted fully unrolled for each hidden width H — every weight, hidden
activation and gradient is a named scalar local that LLVM keeps in a vector
register (one network per lane). Parallelism: Python threads, each running
the GIL-free driver over a range of chunks of ``config.NUMBA_CHUNK``
networks (``_Threaded``: a ``prange`` driver tripled the compile time);
networks never interact, so results do not depend on the thread count or on
how networks are split into calls.

A variant's chunk functions compile as C callbacks (``chunk_function``) and
one driver per dtype (``driver_source``) calls them by address: the driver
never links a variant's code, so LLVM compiles each variant once (a driver
that linked it compiled it twice: 40 % of a new variant's wait). The body
chooses with ``sel`` (one LLVM select) where Python would write ``x if c
else y``, which makes basic blocks that Numba's SSA pass pays for per
variable. Together a new Adam variant's first result went from 13.5 s to
5.9 s (``make bench-startup``), with the same machine code. Since then the
chunk functions skip Numba's front end: ``numba_direct_ir`` writes their
LLVM IR from this source (the same bits; ``numba.cfunc`` compiles what it
does not translate), and the driver's too, which ctypes calls: a warm run
never starts Numba's typing, whose registries took 0.12-0.27 s of it.

Each variant has two forms that compute the same bits: the body unrolled
over the samples (fastest, up to ``config.NUMBA_UNROLL_SAMPLES``), and a
body that loops over the samples and the parameters (compiles in about a
second whatever the size). ``rents_the_looped_kernel`` gives a short run
the looped form while the unrolled one is not compiled.

Each generated module is loaded through ``jit_cache``: a module file in the
kernel cache directory, so Numba's on-disk cache works and later runs skip
compilation. The module name carries a hash of the sources it depends on: an
edit to fastxor never reuses a stale kernel. ``kernel_source(H, dtype)``
and ``driver_source(dtype)`` show the code.
"""
import contextlib
import hashlib
import logging
import re
import sys
import threading
from pathlib import Path

import numpy as np

from .. import config, jit_cache
from ..state import Recipe, param_names
from . import numba_compile_aside, numba_direct_ir, numba_fusion
from .numba_fast_typing import memoised_call_types

_HERE = Path(__file__).parent
_LOADED = {}


def _times_x(name, n, i, Xc):
    """``name * x[n, i]``, simplified when the input is a known 0 or 1.

    Exact for finite ``name``: w * 1 == w, and w * 0 == +-0 vanishes in a sum
    with another term. (LLVM may then fuse a different multiply into an add,
    so results equal the generic kernel's to rounding, not bit for bit.)
    """
    if Xc is None:
        return f"{name} * x{n}_{i}"
    return {0.0: None, 1.0: name}[Xc[n][i]]


def _sum(terms):
    terms = [t for t in terms if t is not None]
    return " + ".join(terms) if terms else "ZERO"


def _in_order(terms):
    """``terms`` summed from the first to the last: the order of the looped
    kernel's running sums (and the CUDA kernel's), so that an unrolled and a
    looped kernel compute the same bits (the reference sums pairwise from 8
    samples on: equal to rounding)."""
    return "(" + " + ".join(terms) + ")" if len(terms) > 1 else terms[0]


def _over_samples(expr, S):
    """``expr / S`` as the reference divides: a product with 1/S when that is exact."""
    return f"({expr}) * INV_S" if S & (S - 1) == 0 else f"({expr}) / FS"

#: Per-network coefficient rows (``Recipe.rate_names``) -> the kernel's local name.
_RATE_LOCALS = {"lr": "rate", "lr_output": "rate_o", "momentum": "mom", "gain": "gain", "weight_decay": "wd",
                "decay": "decay", "decay_output": "decay_o"}


def _emit_rates(recipe, at, row0, ind=""):
    """The per-network coefficients of the lane as locals (and Adam's step
    sizes: lr / bias_correction1 per layer)."""
    L = [ind + f"{_RATE_LOCALS[r]} = {at(row0 + q)}" for q, r in enumerate(recipe.rate_names)]
    if recipe.optimizer != "sgd":
        L.append(ind + "step = rate * C1")
        if recipe.lr_output:
            L.append(ind + "step_o = rate_o * C1")
    return L


def _is_output_layer(p):
    """Whether flat parameter ``p`` (a local name) is W2's or b2's."""
    return p.startswith("w2_") or p == "b2"


def _hidden(activation, z):
    return {"sigmoid": f"sig({z})", "tanh": f"th({z})", "relu": f"relu({z})"}[activation]


def _sample_terms(n, Xc, recipe, with_loss=True):
    """Sample n's forward pass, by kind: "forward" (h{n}_{j}, z{n}, o{n}),
    "d" (o - y), "t" (its loss term, ``with_loss``), "m" (its margin)."""
    H, D = recipe.hidden, recipe.inputs
    forward = []
    for j in range(H):
        affine = _sum([_times_x(f"w1_{j}_{i}", n, i, Xc) for i in range(D)])
        forward.append(f"h{n}_{j} = " + _hidden(recipe.activation, f"({affine}) + b1_{j}"))
    dot = " + ".join(f"w2_{j} * h{n}_{j}" for j in range(H))
    if recipe.loss == "bce_logits":
        forward += [f"z{n} = ({dot}) + b2", f"o{n} = sig(z{n})"]
    elif recipe.output == "linear":
        forward.append(f"o{n} = ({dot}) + b2")
    else:
        forward.append(f"o{n} = sig(({dot}) + b2)")
    if not with_loss:
        t = []
    elif recipe.loss == "mse":
        t = []  # d * d, inside the sum (_loss_term): a multiply-add per sample
    elif recipe.loss == "bce":  # torch: (y - 1) max(log1p(-o), -100) - y max(log(o), -100)
        t = [f"la{n} = lg1p(-o{n})", f"lb{n} = lg(o{n})",
             f"t{n} = (y{n} - ONE) * sel(la{n} < LOGMIN, LOGMIN, la{n})"
             f" - y{n} * sel(lb{n} < LOGMIN, LOGMIN, lb{n})"]
    else:  # (1 - y) z - log_sigmoid(z), log_sigmoid(z) = min(z, 0) - log1p(exp(-|z|))
        t = [f"ab{n} = sel(z{n} >= ZERO, z{n}, -z{n})",
             f"t{n} = (ONE - y{n}) * z{n} - (sel(z{n} < ZERO, z{n}, ZERO) - lg1p(ex(-ab{n})))"]
    return dict(forward=forward, d=[f"d{n} = o{n} - y{n}"], t=t, m=[f"m{n} = s{n} * (o{n} - HALF)"])


def _loss_term(n, recipe):
    """Sample n's loss term as the loss sums it: MSE's square is written into
    the sum, so that it is fused with the add (``numba_fusion``)."""
    return f"d{n} * d{n}" if recipe.loss == "mse" else f"t{n}"


def _emit_forward(H, ind, Xc, recipe, with_loss=True):
    """Lines computing h{n}_{j}, z{n}, o{n}, d{n} = o - y, the margin and
    (``with_loss``) the loss, for the S samples from the locals."""
    S = recipe.samples
    terms = [_sample_terms(n, Xc, recipe, with_loss) for n in range(S)]
    lines = [line for kind in ("forward", "d", "t") for ts in terms for line in ts[kind]]
    if with_loss:
        lines.append("loss = " + _over_samples(_in_order([_loss_term(n, recipe) for n in range(S)]), S))
    lines += [ts["m"][0] for ts in terms]
    # the running minimum under a new name per step: a name assigned twice costs Numba's SSA pass a sweep of the kernel
    running = ["m0"] + [f"mg{n}" for n in range(1, S - 1)] + ["margin"]
    lines += ["margin = m0"] if S == 1 else [
        f"{running[n]} = sel({running[n - 1]} < m{n}, {running[n - 1]}, m{n})" for n in range(1, S)]
    return [ind + s for s in lines]


def _output_gradient(n, recipe):
    """d loss / d z2 of sample n: the criterion's backward, then the output unit's."""
    loss, S = recipe.loss, recipe.samples
    if loss == "mse":  # 2 (o - y) / S, then the sigmoid's o (1 - o) (a linear output's slope is 1)
        two_d = f"d{n} * TWO_OVER_S" if S & (S - 1) == 0 else f"(d{n} * TWO) / FS"
        if recipe.output == "linear":
            return f"g{n} = {two_d}"
        return f"g{n} = ({two_d}) * o{n} * (ONE - o{n})"
    if loss == "bce":  # 1/S (o - y) / max(o (1 - o), 1e-12), then o (1 - o), as torch
        return (f"q{n} = (ONE - o{n}) * o{n}\n"
                f"g{n} = ((INV_S * d{n}) / sel(q{n} < BCE_EPS, BCE_EPS, q{n})) * (ONE - o{n}) * o{n}")
    return f"g{n} = d{n} * INV_S"  # BCEWithLogits: (sigmoid(z) - y) / S


def _hidden_gradient(n, j, activation):
    back = f"(g{n} * w2_{j})"
    if activation == "sigmoid":
        return f"e{n}_{j} = {back} * h{n}_{j} * (ONE - h{n}_{j})"
    if activation == "tanh":
        return f"e{n}_{j} = {back} * (ONE - h{n}_{j} * h{n}_{j})"
    return f"e{n}_{j} = sel(h{n}_{j} > ZERO, {back}, ZERO)"  # ReLU: slope 0 at z <= 0


def _emit_step(p, recipe, output=None):
    """The optimizer step of parameter ``p`` (gradient ``g{p}``): lines, the
    new value's name, and the new buffers' (name, buffer local) pairs.
    ``output``: whether ``p`` is the output layer's (None: from its name)."""
    L, bufs = [], []
    g = f"g{p}"
    output = _is_output_layer(p) if output is None else output
    out = "_o" if recipe.lr_output and output else ""  # the output layer's own rate
    if recipe.weight_decay and recipe.optimizer != "adamw":  # L2: added to the gradient
        L.append(f"gd_{p} = {g} + wd * {p}")
        g = f"gd_{p}"
    if recipe.optimizer == "sgd":
        step = g
        if recipe.momentum:  # buf = grad on the first step, momentum buf + (1 - dampening) grad after
            if recipe.dampening:
                L.append(f"nb_{p} = {g} if first else mom * b_{p} + gain * {g}")  # unswitched: first is per epoch
            else:  # the buffer starts at 0, so the first step's momentum * 0 + grad is grad, exactly
                L.append(f"nb_{p} = mom * b_{p} + {g}")
            bufs.append((f"nb_{p}", f"b_{p}"))
            step = f"({g} + mom * nb_{p})" if recipe.nesterov else f"nb_{p}"
        L.append(f"n_{p} = {p} - rate{out} * {step}")
    else:
        base = f"({p} * decay{out})" if recipe.weight_decay and recipe.optimizer == "adamw" else p
        L += [
            f"nm_{p} = {f'm_{p}' if recipe.lerp_low else g} + LERP_C * ({g} - m_{p})",  # torch's lerp_
            f"nv_{p} = v_{p} * BETA2 + (W2 * {g}) * {g}",
            f"n_{p} = {base} - (step{out} * nm_{p}) / (sqrt(nv_{p}) / C2 + EPS)",  # addcdiv_
        ]
        bufs += [(f"nm_{p}", f"m_{p}"), (f"nv_{p}", f"v_{p}")]
    return L, f"n_{p}", bufs


def _buffer_locals(recipe, names):
    """Buffer row -> local name, in ``State.buffers`` order."""
    if recipe.optimizer == "sgd":
        return [f"b_{p}" for p in names] if recipe.momentum else []
    return [f"m_{p}" for p in names] + [f"v_{p}" for p in names]


def _emit_backward_update(H, ind, Xc, at, recipe, rows):
    """Backpropagation (the seed's steps 1-5) and the guarded optimizer step;
    ``at(row)`` is the chunk-state element of row ``row``."""
    S, D = recipe.samples, recipe.inputs
    L = []
    for n in range(S):
        L += _output_gradient(n, recipe).split("\n")
    for j in range(H):
        L.append(f"gw2_{j} = " + " + ".join(f"g{n} * h{n}_{j}" for n in range(S)))
    L.append("gb2 = " + _in_order([f"g{n}" for n in range(S)]))
    for n in range(S):
        for j in range(H):
            L.append(_hidden_gradient(n, j, recipe.activation))
    for j in range(H):
        for i in range(D):
            L.append(f"gw1_{j}_{i} = " + _sum([_times_x(f"e{n}_{j}", n, i, Xc) for n in range(S)]))
        L.append(f"gb1_{j} = " + " + ".join(f"e{n}_{j}" for n in range(S)))
    return [ind + s for s in L] + _emit_update(ind, at, recipe, rows)


def _emit_update(ind, at, recipe, rows):
    """The guarded optimizer step of every parameter ``p`` from its gradient
    ``g{p}``, and the stores of the new state."""
    names = param_names(recipe.hidden, recipe.inputs)
    L = []
    buffers = _buffer_locals(recipe, names)
    L += [f"{b} = {at(rows['buffers'] + q)}" for q, b in enumerate(buffers)]
    news = []
    for p in names:
        lines, new, bufs = _emit_step(p, recipe)
        L += lines
        news.append(new)
        news += [b for b, _ in bufs]
    # An update that makes any parameter or buffer NaN/inf is not applied, and
    # a diverged network stays frozen. x - x is 0 for finite x and NaN
    # otherwise; a balanced sum keeps the check's dependency chain short.
    # SGD's buffer needs no check of its own: p - lr * (a NaN/inf buffer) is
    # NaN/inf (lr > 0, momentum >= 0); Adam's can overflow while its step is 0.
    checked = news if recipe.optimizer != "sgd" else [f"n_{p}" for p in names]
    L.append("bad = " + _tree_sum([f"({v} - {v})" for v in checked]))
    L.append(f"d_old = {at(rows['diverged'])}")
    L.append("ok = (bad == ZERO) & (as_int(d_old) < 0)")
    L += [f"{at(q)} = sel(ok, n_{p}, {p})" for q, p in enumerate(names)]
    L += [f"{at(rows['buffers'] + q)} = sel(ok, n{b}, {b})" for q, b in enumerate(buffers)]
    return [ind + s for s in L]


#: The kernel's per-network event arguments, in chunk-row order after the loss.
EVENTS = ("solved", "diverged", "target")


def chunk_rows(recipe, looped=None):
    """Row offsets of the chunk state: parameters, buffers, coefficient rows,
    loss, solved, diverged, target epoch (and a kernel that loops over samples
    its sums); and the row count."""
    P = recipe.n_params
    rows = {"buffers": P, "rates": P + recipe.n_buffers}
    r = rows["rates"] + len(recipe.rate_names)
    for name in ("loss", "solved", "diverged", "target"):
        rows[name] = r
        r += 1
    if _looped(recipe, looped):  # per-lane sums over the sample loop: gradient (P rows), loss, smallest margin;
        rows["grad"], rows["lacc"], rows["marg"] = r, r + P, r + P + 1  # the update's new values (parameters,
        rows["new"], rows["bad"] = r + P + 2, r + 2 * P + 2 + recipe.n_buffers  # buffers) and NaN/inf checks
        r += 2 * P + 3 + recipe.n_buffers
    return rows, r


def _emit_constants(recipe):
    """Run-time scalars of the recipe as locals (from the float64 array ``consts``)."""
    L = ["    TARGET = F(consts[3])"]
    if recipe.optimizer != "sgd":
        L += [
            "    BETA1, BETA2 = consts[0], F(consts[1])",
            "    EPS, W2 = F(consts[2]), F(1.0 - consts[1])",
            "    W1 = F(1.0 - BETA1)  # torch: exp_avg.lerp_(grad, 1 - beta1)",
            # torch's lerp: m + w (g - m) if w < 0.5, else g - (1 - w) (g - m); the form is the recipe's
            "    LERP_C = W1" if recipe.lerp_low else "    LERP_C = -(ONE - W1)",
        ]
    return L


def _emit_epoch_scalars(recipe):
    """Per-epoch scalars: the first step (SGD momentum), Adam's bias corrections
    (float64 from the step count, as torch computes them with Python floats)."""
    if recipe.optimizer == "sgd":
        return ["        first = epoch0 + epoch == 0"] if recipe.momentum and recipe.dampening else []
    return [
        "        t = float(epoch0 + epoch + 1)",
        "        C1 = F(1.0 / (1.0 - BETA1 ** t))  # step_size = lr / bias_correction1",
        "        C2 = F((1.0 - consts[1] ** t) ** 0.5)  # bias_correction2 ** 0.5",
    ]


def _emit_epoch_head(recipe):
    """The epoch loop's head: the global epoch (its bits, for the event rows), whether it records, the scalars."""
    return [
        "    for epoch in range(epochs):",
        "        ep = as_float(I(epoch0 + epoch))  # the global epoch's bits, stored in the float state",
        "        record = record_every > 0 and (epoch0 + epoch) % record_every == 0",
        *_emit_epoch_scalars(recipe),
    ]


def _emit_history(rows, C):
    """The end of an epoch that records: each lane's loss into its history column."""
    return [
        "        if record:",
        "            r = (epoch0 + epoch) // record_every",
        "            for k in range(m):",
        f"                history[lo + k, r] = a[{rows['loss'] * C} + k]",
        "",
        "",
    ]


def _emit_events(at, rows, recipe, with_loss=True):
    """After an update (``ok``, ``d_old``), for the epoch's forward pass: the
    first solve (``margin``), divergence, the loss and the target epoch."""
    lines = [
        f"s_old = {at(rows['solved'])}",
        f"{at(rows['solved'])} = sel((as_int(s_old) < 0) & (margin > ZERO), ep, s_old)",
        f"{at(rows['diverged'])} = sel((as_int(d_old) < 0) & (~ok), ep, d_old)",
    ]
    if with_loss:
        lines.append(f"{at(rows['loss'])} = loss")
    if recipe.target_loss is not None:
        lines += [f"e_old = {at(rows['target'])}",
                  f"{at(rows['target'])} = sel((as_int(e_old) < 0) & (loss <= TARGET), ep, e_old)"]
    return lines


#: The chunk functions' parameters, by name and kind: a pointer to the
#: dtype's values (``float``), to float64 (``consts``) or int64 (``events``)
#: values, or an integer (counts, and the shapes of the arrays pointed to).
#: Why pointers: the functions compile as C callbacks (``numba.cfunc``), which
#: the driver calls by address, so the driver is compiled once per dtype and
#: never links (and LLVM never compiles again) a variant's kernel: that
#: second compile was 40 % of a new variant's. ``chunk_signatures`` types them.
_POINTERS = (("a_p", "float"), ("consts_p", "consts"), ("X_p", "float"), ("y_p", "float"), ("sides_p", "float"))
_CHUNK_PARAMS = (*_POINTERS, ("epoch0", "int"), ("epochs", "int"), ("record_every", "int"), ("lo", "int"),
                 ("m", "int"), ("history_p", "float"), ("history_rows", "int"), ("history_cols", "int"))
_FINISH_PARAMS = (*_POINTERS, ("end", "int"), ("lo", "int"), ("m", "int"), ("n_total", "int"), ("loss_p", "float"),
                  ("pred_p", "float"), ("solved_p", "events"), ("diverged_p", "events"), ("target_p", "events"))
CHUNK_ARGS = ", ".join(name for name, _ in _CHUNK_PARAMS)
FINISH_ARGS = ", ".join(name for name, _ in _FINISH_PARAMS)


def chunk_signatures(dtype):
    """The numba signatures of (train_chunk, train_quiet and their _partial forms, finish_chunk)."""
    from numba import types

    F = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    kinds = dict(float=types.CPointer(F), consts=types.CPointer(types.float64), events=types.CPointer(types.int64),
                 int=types.int64)
    return tuple(types.void(*(kinds[kind] for _, kind in params)) for params in (_CHUNK_PARAMS, _FINISH_PARAMS))


def _emit_views(recipe, n_a):
    """The chunk state, constants and data as arrays over the pointer arguments."""
    S, D = recipe.samples, recipe.inputs
    return [
        f"    a = carray(a_p, ({n_a},))",
        f"    consts = carray(consts_p, ({len(recipe.constants())},))",
        f"    X = carray(X_p, ({S}, {D}))",
        f"    y = carray(y_p, ({S},))",
        f"    sides = carray(sides_p, ({S},))",
    ]


def _chunk_head(name, doc, recipe, n_a):
    """A training chunk function's head: its definition, ``doc``, its arrays,
    and the lane count's bound."""
    return [
        f"def {name}({CHUNK_ARGS}):",
        f'    """{doc}"""',
        *_emit_views(recipe, n_a),
        "    history = carray(history_p, (history_rows, history_cols))",
        f"    m = min(m, {config.NUMBA_CHUNK})  # tells LLVM the lane loops' bound",
    ]


def _finish_head(recipe, n_a):
    """``finish_chunk``'s head: the final forward pass of each lane follows."""
    return [
        f"def finish_chunk({FINISH_ARGS}):",
        '    """Forward pass of the final parameters (epoch ``end``): loss, predictions,',
        '    solved and target epochs."""',
        *_emit_views(recipe, n_a),
        "    loss_out = carray(loss_p, (n_total,))",
        f"    pred_out = carray(pred_p, (n_total, {recipe.samples}))",
        "    solved_io = carray(solved_p, (n_total,))",
        "    diverged_io = carray(diverged_p, (n_total,))",
        "    target_io = carray(target_p, (n_total,))",
    ]


def _emit_finish_events(at, rows, recipe, ind):
    """``finish_chunk``'s events at epoch ``end`` from ``margin`` and ``loss``."""
    return [ind + line for line in (
        f"s_old = as_int({at(rows['solved'])})",
        "solved_io[lo + k] = end if (s_old < 0) and (margin > ZERO) else s_old",
        f"diverged_io[lo + k] = as_int({at(rows['diverged'])})",
        f"e_old = as_int({at(rows['target'])})",
        f"target_io[lo + k] = end if {recipe.target_loss is not None} and (e_old < 0) and (loss <= TARGET) else e_old",
    )] + ["", ""]


def _emit_epochs(name, lanes, groups, groups_no_loss, rows, C, n_rows, recipe, doc):
    """A chunk kernel: the epoch loop around a SIMD loop over ``lanes`` lanes
    whose body is the groups' statements interleaved, and the history.
    ``lanes``: a constant (a full chunk) or "m" (see ``_lane_loop``).
    ``groups_no_loss``: a body without the loss for epochs that need none
    (the BCE losses' logs cost more than the rest of the epoch's arithmetic).
    ``groups`` None: a quiet kernel, for runs that record no loss: only the
    body without it (half the code to compile; the same statements)."""
    def lane_loop(ind, gs):
        return _lane_loop(ind, lanes, [line for stmt in zip(*gs) for line in stmt])

    src = [
        *_chunk_head(name, doc, recipe, n_rows * C),
        *_emit_data(recipe),
        *_emit_constants(recipe),
        *_emit_epoch_head(recipe),
    ]
    if groups is None:
        return src + lane_loop("        ", groups_no_loss) + ["", ""]
    if groups_no_loss is None:
        src += lane_loop("        ", groups)
    else:
        src += ["        if record:", *lane_loop("            ", groups),
                "        else:", *lane_loop("            ", groups_no_loss)]
    return src + _emit_history(rows, C)


def _lane_loop(ind, lanes, body):
    """``body`` (lines using the lane index ``k``) in a SIMD loop over
    ``lanes`` lanes: a constant (LLVM vectorises it whole, with no scalar
    remainder loop), or "m", as whole blocks of ``config.NUMBA_SIMD_BLOCK``
    lanes (the padded lanes hold zeros): either way every lane runs the SIMD
    body, none a scalar copy. Why: LLVM's scalar remainder loop rounds some
    recipes differently (ReLU networks of width 10-16 differed in the last
    bits), so a network's result depended on its lane; and it was a second
    copy of the body to compile (H = 32: 5.4 s -> 3.3 s)."""
    if lanes != "m":
        return [ind + f"for k in range({lanes}):", *[ind + "    " + line for line in body]]
    B = config.NUMBA_SIMD_BLOCK
    return [ind + f"for blk in range((m + {B - 1}) // {B}):", ind + f"    for kk in range({B}):",
            ind + f"        k = blk * {B} + kk", *[ind + "        " + line for line in body]]


def _emit_data(recipe):
    """The inputs, targets and target sides as scalar locals x{n}_{i}, y{n}, s{n}."""
    S = recipe.samples
    return (
        [f"    x{n}_{i} = X[{n}, {i}]" for n in range(S) for i in range(recipe.inputs)]
        + [f"    y{n} = y[{n}]" for n in range(S)]
        + [f"    s{n} = sides[{n}]" for n in range(S)]
    )


def _emit_load(recipe, ind, at):
    return [ind + f"{p} = {at(q)}" for q, p in enumerate(param_names(recipe.hidden, recipe.inputs))]


def _tree_sum(terms):
    """``terms`` summed as a balanced tree of ``+`` (same value for the 0/NaN
    test it is used for; shorter latency than a left-to-right chain)."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({_tree_sum(terms[:half])} + {_tree_sum(terms[half:])})"


def lane_groups(hidden, recipe=None, looped=None):
    """Networks trained side by side in one iteration of the SIMD loop.

    Why: one network-epoch is a long dependency chain (two sigmoid layers,
    backprop, update) of ~420 vector operations, more than the CPU's
    reorder window; two independent networks per iteration give the
    out-of-order core work to overlap. Measured (float32, 2-core Zen 4):
    H=2 2.8e8 -> 3.2e8 NE/s. From H=5 the gain is gone and from H=12 the
    doubled register pressure stops LLVM from vectorising, so wide layers
    use one group — as do Adam's kernels, whose two moments per parameter
    already fill the registers. (SGD with momentum keeps two: measured
    0.75x the seed's kernel with two groups, 0.68x with one.) From 8 samples
    the samples' independent forward passes already give the core that
    work: one group trains as fast and compiles in 0.5-2 s less
    (``config.NUMBA_INTERLEAVE_MAX_SAMPLES``).
    """
    if recipe is not None and (recipe.optimizer != "sgd" or recipe.samples > config.NUMBA_INTERLEAVE_MAX_SAMPLES
                               or _looped(recipe, looped)):
        return 1
    return 2 if hidden <= config.NUMBA_INTERLEAVE_MAX_HIDDEN else 1


def _looped(recipe, looped):
    """``looped`` if given, else whether the variant must loop (``loops_over_samples``)."""
    return loops_over_samples(recipe) if looped is None else looped


def loops_over_samples(recipe):
    """Whether the kernel loops over the samples instead of unrolling them:
    an unrolled body grows with S x H x D, and its compile time with it (3-bit
    parity 6 s, 6-bit parity 62 s, 7-bit parity 307 s at H = 4; looped, 8-bit
    parity at H = 8 compiles in 13 s)."""
    return recipe.samples > config.NUMBA_UNROLL_SAMPLES


#: Identifiers the lane groups share, besides the data locals (``_DATA``);
#: every other local of the loop body gets a per-group suffix.
_SHARED = {"a", "k", "ep", "sel", "sig", "th", "relu", "lg", "lg1p", "ex", "sqrt", "as_int", "ZERO", "HALF",
           "ONE", "TWO", "INV_S", "TWO_OVER_S", "FS", "LOGMIN", "BCE_EPS", "TARGET", "first", "C1", "C2", "BETA2",
           "W2", "EPS", "LERP_C", "if", "else"}
_DATA = re.compile(r"x\d+_\d+|[ys]\d+")


def _for_group(line, g):
    """``line`` of the loop body rewritten for lane group ``g``: its locals renamed."""
    return re.sub(
        r"\b[A-Za-z_]\w*\b",
        lambda t: t.group(0) if t.group(0) in _SHARED or _DATA.fullmatch(t.group(0)) else f"{t.group(0)}_{g}",
        line,
    )


def boolean_inputs(X):
    """X as a tuple of tuples when every input is exactly 0 or 1, else None."""
    X = np.asarray(X, dtype=np.float64)
    if np.isin(X, (0.0, 1.0)).all():
        return tuple(tuple(float(v) for v in row) for row in X)
    return None


def _seed_recipe(hidden, dtype):
    return Recipe(hidden, np.dtype(dtype))


def _emit_looped_update(rows, C, lanes, recipe):
    """The looped kernel's optimizer step: a loop over the parameter rows (the
    hidden layer's, then the output layer's, which may have a rate of its
    own) around a lane loop whose body is one parameter's step, the new
    values going to rows of their own and each lane's NaN/inf check summed
    in a row; then each lane's verdict ``ok`` and events, and the new values
    kept where ok. The same arithmetic per parameter as ``_emit_update`` (the
    check is a sum of zeros or NaN in any order), so the same bits, in a body
    that does not grow with the parameters (4-bit parity at H = 32 with Adam:
    193 steps, 8 000 lines of source unrolled)."""
    P, NB, S = recipe.n_params, recipe.n_buffers, recipe.samples
    G, B, NEW, BAD = rows["grad"], rows["buffers"], rows["new"], rows["bad"]
    at = lambda q: f"a[{q * C} + k]"  # noqa: E731
    row = lambda off: f"a[(q + {off}) * {C} + k]"  # noqa: E731  (parameter q's row in the block at off)
    buffers = _buffer_locals(recipe, ["pq"])  # b_pq, or m_pq and v_pq: State.buffers' blocks of P rows
    hidden_rows = (recipe.inputs + 1) * recipe.hidden
    L = [f"        a[{BAD * C}:{(BAD + 1) * C}] = ZERO  # each lane's NaN/inf check"]
    for first, last, output in ((0, hidden_rows, False), (hidden_rows, P, True)):
        lines, new, bufs = _emit_step("pq", recipe, output)
        checked = [new] + [b for b, _ in bufs] if recipe.optimizer != "sgd" else [new]
        L += [f"        for q in range({first}, {last}):", *_lane_loop("            ", lanes, [
            *_emit_rates(recipe, at, rows["rates"]),
            f"pq = {row(0)}",
            f"gpq = {row(G)}",
            *[f"{b} = {row(B + i * P)}" for i, b in enumerate(buffers)],
            *lines,
            f"{row(NEW)} = {new}",
            *[f"{row(NEW + P + i * P)} = {nb}" for i, (nb, _) in enumerate(bufs)],
            f"{at(BAD)} = {at(BAD)} + " + _tree_sum([f"({v} - {v})" for v in checked]),
        ])]
    L += _lane_loop("        ", lanes, [
        "loss = " + _over_samples(at(rows["lacc"]), S),
        f"margin = {at(rows['marg'])}",
        f"d_old = {at(rows['diverged'])}",
        f"ok = ({at(BAD)} == ZERO) & (as_int(d_old) < 0)",
        f"{at(BAD)} = sel(ok, ONE, ZERO)",
        *_emit_events(at, rows, recipe),
    ])
    L += [f"        for q in range({P + NB}):",
          *_lane_loop("            ", lanes, [f"{row(0)} = sel({at(BAD)} == ONE, {row(NEW)}, {row(0)})"])]
    return L


def _emit_one_sample(recipe, ind):
    """One sample's forward pass and backpropagation (locals x0_{i}, y0, s0):
    h0_{j}, o0, its loss term t0, margin m0, the gradient terms g0, e0_{j}."""
    terms = _sample_terms(0, None, recipe)
    lines = [line for kind in ("forward", "d", "t", "m") for line in terms[kind]]
    lines += _output_gradient(0, recipe).split("\n")
    lines += [_hidden_gradient(0, j, recipe.activation) for j in range(recipe.hidden)]
    return [ind + line for line in lines]


def _emit_looped(rows, C, n_rows, recipe):
    """The chunk kernel for many samples: per epoch, a loop over the samples
    around the SIMD loop over lanes, accumulating each lane's gradient, loss
    and margin in rows of the chunk state (in the one array: with separate
    arrays LLVM needs run-time alias checks, and from about P = 60 it gave up
    vectorising: 12x slower); then the update, lane by lane (SIMD). Sums over
    samples run in order 0..S-1, as in the unrolled kernel: the two compute
    the same bits (``numba_fusion`` fixes their multiply-adds)."""
    H, D, S, P = recipe.hidden, recipe.inputs, recipe.samples, recipe.n_params
    names = param_names(H, D)
    row = {p: q for q, p in enumerate(names)}
    at = lambda q: f"a[{q * C} + k]"  # noqa: E731
    i3 = " " * 12
    G, lacc, marg = rows["grad"], at(rows["lacc"]), at(rows["marg"])
    grad = [f"{at(G + row[f'w2_{j}'])} += g0 * h0_{j}" for j in range(H)]
    grad += [f"{at(G + row['b2'])} += g0"]
    grad += [f"{at(G + row[f'w1_{j}_{i}'])} += e0_{j} * x0_{i}" for j in range(H) for i in range(D)]
    grad += [f"{at(G + row[f'b1_{j}'])} += e0_{j}" for j in range(H)]
    def train(name, lanes, doc):
        return [
            *_chunk_head(name, doc, recipe, n_rows * C),
            *_emit_constants(recipe),
            *_emit_epoch_head(recipe),
            f"        a[{G * C}:{(G + P + 1) * C}] = ZERO  # gradients and loss sums",
            f"        a[{rows['marg'] * C}:{(rows['marg'] + 1) * C}] = INF",
            f"        for smp in range({S}):",
            *[f"            x0_{i} = X[smp, {i}]" for i in range(D)],
            "            y0 = y[smp]",
            "            s0 = sides[smp]",
            *_lane_loop("            ", lanes, [
                *_emit_load(recipe, "", at),
                *_emit_one_sample(recipe, ""),
                *grad,
                f"{lacc} += {_loss_term(0, recipe)}",
                f"{marg} = sel({marg} < m0, {marg}, m0)",
            ]),
            *_emit_looped_update(rows, C, lanes, recipe),
            *_emit_history(rows, C),
        ]

    src = [
        *train("train_chunk", C, f"Train a full chunk ({C} lanes), looping over the {S} samples."),
        *train("train_chunk_partial", "m", f"Train the m < {C} networks of a run smaller than a chunk, looping\n"
               f"    over the {S} samples, in blocks of NUMBA_SIMD_BLOCK lanes."),
        *_finish_head(recipe, n_rows * C),
        "    TARGET = F(consts[3])",
        "    for k in range(m):",
        *_emit_load(recipe, "        ", at),
        "        lacc = ZERO",
        "        margin = INF",
        f"        for smp in range({S}):",
        *[f"            x0_{i} = X[smp, {i}]" for i in range(D)],
        "            y0 = y[smp]",
        "            s0 = sides[smp]",
        *_emit_one_sample(recipe, i3),
        "            pred_out[lo + k, smp] = o0",
        "            lacc += " + _loss_term(0, recipe),
        "            margin = sel(margin < m0, margin, m0)",
        "        loss = " + _over_samples("lacc", S),
        "        loss_out[lo + k] = loss",
        *_emit_finish_events(at, rows, recipe, "        "),
    ]
    return src


def kernel_source(hidden, dtype, Xc=None, recipe=None, looped=None):
    """The Python source of the fused kernel for one hidden width, dtype and
    training recipe (``state.Recipe``; None: the seed's).

    ``Xc``: inputs baked in as constants (see ``boolean_inputs``), or None
    for a kernel that reads any X at run time.

    A chunk's whole state is one flat array ``a``: row q (elements q*C ..
    q*C + C-1, one per lane) holds parameter q, then come the optimizer
    buffers, the per-network coefficients (learning rate, ...), the loss,
    and the solved, diverged and target epochs (integers stored as their
    bit patterns, see ``vmath.bitcasts``); ``chunk_rows`` lays them out.
    Constant row offsets in one array let LLVM prove that the lanes of a
    SIMD iteration never overlap; with a 2-D array's run-time strides it
    could not, nor with a second array for the epochs once the layer is
    wide (too many run-time alias checks), and it then leaves the loop
    scalar, ~10x slower.
    """
    recipe = recipe or _seed_recipe(hidden, dtype)
    H = hidden
    dt = np.dtype(dtype).name
    C = config.NUMBA_CHUNK
    looped = _looped(recipe, looped)
    G = lane_groups(H, recipe, looped)
    W = C // G  # lanes per group: iteration k trains lanes k, k+W, ...
    S = recipe.samples
    rows, n_rows = chunk_rows(recipe, looped)
    RT = rows["rates"]
    i2 = " " * 8

    def lane(row, g):
        return f"a[{row * C + g * W} + k]"

    def body(g, with_loss=True):
        """Lines training the network in lane k of group g; locals renamed per group."""
        at = lambda row: lane(row, g)  # noqa: E731
        lines = [
            *_emit_rates(recipe, at, RT),
            *_emit_load(recipe, "", at),
            *_emit_forward(H, "", Xc, recipe, with_loss),
            *_emit_backward_update(H, "", Xc, at, recipe, rows),
            *_emit_events(at, rows, recipe, with_loss),
        ]
        # the body without the loss gets names of its own: a name assigned in both costs an SSA sweep
        return [_for_group(line, g if with_loss else f"{g}q") for line in lines]

    src = [
        f'"""Generated by fastxor.backends.numba_kernel for D={recipe.inputs}, H={H}, S={S}, {dt}, X={Xc},',
        f'{recipe.optimizer}, {recipe.loss}, {recipe.activation}, recipe={recipe.kernel_key}. Do not edit."""',
        "import numpy as np",
        "from numba import carray, njit",
        "from fastxor import config",
        "from fastxor.backends.numba_fusion import fma",
        "from fastxor.backends.numba_vmath import bitcasts, make_math, select as sel",
        "",
        f"F = np.{dt}",
        "_math = make_math(F)",
        "sig, th, lg, lg1p, ex = _math.sigmoid, _math.tanh, _math.log, _math.log1p, _math.exp_clamped",
        "sqrt = np.sqrt",
        "as_int, as_float, I = bitcasts(F)",
        "ZERO, HALF, ONE, TWO = F(0.0), F(0.5), F(1.0), F(2.0)",
        f"FS, INV_S, TWO_OVER_S = F({S}), F(1.0 / {S}), F(2.0 / {S})  # S = {S} samples",
        "LOGMIN, BCE_EPS, INF = F(-100.0), F(1e-12), F(np.inf)  # torch's clamps in nn.BCELoss",
        "",
        "",
        "@njit(fastmath=config.NUMBA_FASTMATH, error_model='numpy')",
        "def relu(z):",
        "    return z if z > ZERO else ZERO",
        "",
        "",
    ]
    if looped:
        return "\n".join(src + _emit_looped(rows, C, n_rows, recipe)) + "\n"
    groups = [body(g) for g in range(G)]  # the unrolled bodies, built only for the kernel that uses them
    lazy_loss = _has_quiet(recipe, looped)
    no_loss = [body(g, False) for g in range(G)] if lazy_loss else None
    for quiet in (False, True) if lazy_loss else (False,):
        name, trains = ("train_quiet", "Train, recording no loss,") if quiet else ("train_chunk", "Train")
        full = (f"{trains} a full chunk: {G} groups of {W} lanes, the groups'\n    statements interleaved." if G > 1
                else f"{trains} a full chunk of {C} lanes, one network each.")
        src += _emit_epochs(name, str(W), None if quiet else groups, no_loss, rows, C, n_rows, recipe, full)
        src += _emit_epochs(name + "_partial", "m",
                            None if quiet else groups[:1], no_loss and no_loss[:1], rows, C, n_rows, recipe,
                            f"{trains} the m < C networks of a run smaller than a chunk, one\n"
                            "    group, in blocks of NUMBA_SIMD_BLOCK lanes: not a whole chunk.")
    src += _finish_head(recipe, n_rows * C)
    src += _emit_data(recipe)
    src += ["    TARGET = F(consts[3])", "    for k in range(m):"]
    src += _emit_load(recipe, i2, lambda q: lane(q, 0))
    src += _emit_forward(H, i2, Xc, recipe)
    src += [i2 + "loss_out[lo + k] = loss"]
    src += [i2 + f"pred_out[lo + k, {n}] = o{n}" for n in range(S)]
    src += _emit_finish_events(lambda q: lane(q, 0), rows, recipe, i2)
    return "\n".join(src) + "\n"


def layout(recipe, looped=None):
    """What the driver needs of a variant's chunk state: (networks per chunk,
    rows, first coefficient row, coefficient rows, first event row)."""
    rows, n_rows = chunk_rows(recipe, looped)
    return (config.NUMBA_CHUNK, n_rows, rows["rates"], len(recipe.rate_names), rows["solved"])


def driver_source(dtype):
    """The Python source of the driver over chunks for ``dtype``: one for
    every variant (it calls the variant's chunk functions by address), in
    the kernel language ``numba_direct_ir`` compiles, so that a warm run
    calls it through ctypes and never starts Numba's typing (its registries
    took 0.12-0.27 s of every run).

    The last chunk of a run is padded to a full one (zero lanes cost a few
    microseconds per epoch), so a run compiles one chunk kernel, not two; a
    run smaller than a chunk uses ``train_chunk_partial`` (or ``train_quiet_partial``).
    """
    dt = np.dtype(dtype).name
    src = [
        f'"""Generated by fastxor.backends.numba_kernel: the {dt} driver over chunks. Do not edit."""',
        "import numpy as np",
        "from fastxor.backends.numba_fusion import fma",
        "from fastxor.backends.numba_vmath import bitcasts",
        "",
        f"F = np.{dt}",
        "as_int, as_float, I = bitcasts(F)",
        "",
        "",
        f"def train({', '.join(DRIVER_PARAMS)}):",
        '    """Chunks c0..c1-1 (C networks each), each trained alone by ``chunk``',
        "    in the chunk state ``a`` (n_rows rows of C lanes; and ``finish``: the",
        "    loss and predictions at the end, when ``final``); threads run disjoint",
        "    ranges, each with its own ``a``. P (n_params x n_total parameters), B",
        "    (n_buffers x n_total optimizer buffers) and the solved, diverged and target",
        '    epochs are the run state, updated in place; rates: per-network coefficient rows."""',
        "    a = carray(a_p, (n_rows * C,))",
        "    P = carray(P_p, (n_params, n_total))",
        "    B = carray(B_p, (n_buffers, n_total))",
        "    rates = carray(rates_p, (n_rates, n_total))",
        *[f"    {io} = carray({io}_p, (n_total,))" for io in EVENTS],
        "    for c in range(c0, c1):",
        "        lo = c * C",
        "        m = n_total - lo if n_total - lo < C else C",
        "        for i in range(EV * C):  # unused lanes: zero parameters, rate 0",
        "            a[i] = F(0.0)",
        "        for i in range(EV * C, n_rows * C):  # unused lanes: event epochs -1",
        "            a[i] = as_float(I(-1))",
        "        for q in range(n_rates):",
        "            for k in range(m):",
        "                a[(RT + q) * C + k] = rates[q, lo + k]",
        *[line for q, io in enumerate(EVENTS) for line in (
            "        for k in range(m):",
            f"            a[(EV + {q}) * C + k] = as_float(I({io}[lo + k]))")],
        "        for q in range(n_params):  # row by row: contiguous runs in both arrays",
        "            for k in range(m):",
        "                a[q * C + k] = P[q, lo + k]",
        "        for q in range(n_buffers):",
        "            for k in range(m):",
        "                a[(n_params + q) * C + k] = B[q, lo + k]",
        "        chunk(a_p, consts_p, X_p, y_p, sides_p, epoch0, epochs, record_every, lo, m, history_p, h_rows, h_cols)",
        "        if final:",
        "            finish(a_p, consts_p, X_p, y_p, sides_p, epoch0 + epochs, lo, m, n_total,",
        "                   loss_p, pred_p, solved_p, diverged_p, target_p)",
        "        else:  # an intermediate segment: the state only",
        *[line for q, io in enumerate(EVENTS) for line in (
            "            for k in range(m):",
            f"                {io}[lo + k] = as_int(a[(EV + {q}) * C + k])")],
        "        for q in range(n_params):",
        "            for k in range(m):",
        "                P[q, lo + k] = a[q * C + k]",
        "        for q in range(n_buffers):",
        "            for k in range(m):",
        "                B[q, lo + k] = a[(n_params + q) * C + k]",
    ]
    return "\n".join(src) + "\n"


def _source_hash():
    """The sources a generated kernel depends on beyond its own text (Numba's
    cache does not see a change in a module the kernel calls)."""
    h = hashlib.sha256()
    for path in (_HERE / "numba_kernel.py", _HERE / "numba_vmath.py", _HERE / "numba_direct_ir.py",
                 _HERE / "numba_widen.py", _HERE / "numba_fusion.py", _HERE.parent / "config.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:8]


def _module_name(hidden, dt, Xc, recipe, looped):
    xtag = ("x" + hashlib.sha256(repr(Xc).encode()).hexdigest()[:10]) if Xc else "xany"
    rtag = "seed" if recipe.is_seed else hashlib.sha256(repr(recipe.kernel_key).encode()).hexdigest()[:10]
    form = "_loop" if looped else ""
    return f"fastxor_cpu_{_source_hash()}_d{recipe.inputs}_h{hidden}_s{recipe.samples}_{dt}_{xtag}_{rtag}{form}"


def get_kernel(hidden, dtype, Xc=None, recipe=None, looped=None):
    """The compiled kernel module for (hidden, dtype, inputs, recipe, and
    whether it loops over the samples): generated and loaded through
    ``jit_cache`` (cached on disk). A variant never compiled before is
    announced on the ``fastxor`` logger."""
    recipe = recipe or _seed_recipe(hidden, dtype)
    dt = np.dtype(dtype).name
    looped = _looped(recipe, looped)
    key = _loaded_key((hidden, dt, Xc, recipe), looped)
    if key not in _LOADED:
        name = _module_name(hidden, dt, Xc, recipe, looped)
        src = kernel_source(hidden, dt, Xc, recipe, looped)
        if jit_cache.is_new(name, src):
            logging.getLogger("fastxor").info(
                "compiling the CPU kernel for H=%d %s %s/%s/%s (first use of this variant: seconds, then "
                "cached in %s)", hidden, dt, recipe.optimizer, recipe.loss, recipe.activation,
                jit_cache.cache_dir() or "memory")
        _LOADED[key] = jit_cache.load_module(name, src)
    return _LOADED[key]


def _entry(name):
    """(vectorised, the name of its compiled code) for chunk function ``name``:
    all but the final pass, which runs once per network and run and compiles
    in a third of the time without vectors (``numba_direct_ir._scalar_library``;
    Numba's ``cfunc``, used with ``FASTXOR_DIRECT_IR=0``, always vectorises)."""
    vectorise = name != "finish_chunk"
    return vectorise, numba_direct_ir.entry_name(name, vectorise)


def chunk_function(module, name):
    """The module's chunk function ``name`` (train_chunk, train_quiet, their _partial forms,
    finish_chunk) compiled as a C callback on first use (``_entry``), cached
    on disk beside the module."""
    vectorise, key = _entry(name)
    compiled = module.__dict__.setdefault("_compiled", {})
    if key not in compiled:
        from numba import cfunc

        chunk, finish = chunk_signatures(module.F)
        signature = finish if name == "finish_chunk" else chunk
        if config.NUMBA_DIRECT_IR:
            try:
                compiled[key] = numba_direct_ir.compile_chunk(module, name, signature, vectorise)
                return compiled[key]
            except numba_direct_ir.Unsupported as e:
                logging.getLogger("fastxor").debug("%s.%s compiles through Numba: %s", module.__name__, name, e)
        with memoised_call_types():  # compiles, unless cached: typing in half the time
            fused = numba_fusion.fused_function(module, numba_direct_ir.function_def(module, name))
            compiled[key] = cfunc(signature, cache=module.CACHE, fastmath=config.NUMBA_FASTMATH,
                                  error_model="numpy")(fused)
    return compiled[key]


_DRIVERS = {}


#: The driver's parameters: ``chunk`` and ``finish`` are C functions' addresses,
#: names ending in ``_p`` arrays' (``_pointee``), the others integers.
DRIVER_PARAMS = ("chunk", "finish", "C", "n_rows", "RT", "n_rates", "EV", "a_p", "P_p", "n_params", "B_p", "n_buffers",
                 "rates_p", "consts_p", "X_p", "y_p", "sides_p", "epoch0", "epochs",
                 "record_every", "final", "loss_p", "pred_p", "solved_p", "diverged_p", "target_p", "history_p",
                 "h_rows", "h_cols", "n_total", "c0", "c1")


def _pointee(name, dtype):
    """The element type of the driver's array argument ``name`` (``..._p``) in a
    run of ``dtype``: int64 event epochs, the recipe's float64 constants (as
    ``chunk_signatures``), else ``dtype``."""
    return np.dtype(np.int64 if name[:-2] in EVENTS else np.float64 if name == "consts_p" else dtype)


def get_driver(dtype):
    """The driver over chunks for ``dtype`` (``driver_source``): its module
    loaded through ``jit_cache``, compiled by ``numba_direct_ir`` (or loaded
    from the cache), called through ctypes (which releases the GIL)."""
    import ctypes

    import numba
    from numba.core import types

    dt = np.dtype(dtype).name
    if dt not in _DRIVERS:
        module = jit_cache.load_module(f"fastxor_cpu_driver_{_source_hash()}_{dt}", driver_source(dt))

        def kind(name):
            if name in ("chunk", "finish"):
                return types.voidptr, ctypes.c_void_p
            if name.endswith("_p"):
                return types.CPointer(numba.from_dtype(_pointee(name, dt))), ctypes.c_void_p
            return types.int64, ctypes.c_int64

        signature = types.void(*[kind(p)[0] for p in DRIVER_PARAMS])
        compiled = numba_direct_ir.compile_chunk(module, "train", signature, vectorise=False)  # no arithmetic
        fn = ctypes.CFUNCTYPE(None, *[kind(p)[1] for p in DRIVER_PARAMS])(compiled.address)
        fn.compiled, fn.module_name = compiled, module.__name__  # its code kept alive; the cache entry's name
        _DRIVERS[dt] = fn
    return _DRIVERS[dt]


def _forget(key):
    """Drop a variant's module and the drivers: the next run loads them afresh."""
    for module in (_LOADED.pop(key, None), *_DRIVERS.values()):
        if module is not None:
            jit_cache.forget(module)
    _DRIVERS.clear()


#: Python frames Numba's SSA pass may need: it recurses once per basic block,
#: and every ``x if c else y`` of the loop body makes blocks (H = 32 with Adam:
#: about 500 of them, beyond Python's default limit of 1000 frames).
RECURSION_LIMIT = 50_000
_deep = {"users": 0, "restore": None, "lock": threading.Lock()}


@contextlib.contextmanager
def deep_recursion():
    """Python's recursion limit raised to ``RECURSION_LIMIT`` while a kernel
    may compile, and restored when the last concurrent user leaves."""
    with _deep["lock"]:
        if _deep["users"] == 0:
            _deep["restore"] = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_deep["restore"], RECURSION_LIMIT))
        _deep["users"] += 1
    try:
        yield
    finally:
        with _deep["lock"]:
            _deep["users"] -= 1
            if _deep["users"] == 0:
                sys.setrecursionlimit(_deep["restore"])


def _driver(module, n, recipe, record_every, looped):
    """The driver over a run of ``n`` networks with the module's chunk
    functions: below one chunk the ``_partial`` form (one lane group, padded
    to a SIMD block only); the quiet kernel (``train_quiet``) where the
    kernel has one and the run records no loss (only it is compiled then).
    A new variant's final pass compiles in a second process meanwhile
    (``numba_compile_aside``)."""
    name = _training_function(recipe, looped, n, record_every)
    aside = None
    if not (_is_compiled(module, name) or _is_compiled(module, "finish_chunk")) and \
            _source_lines(module, name) >= config.NUMBA_COMPILE_ASIDE_MIN_LINES:
        aside = numba_compile_aside.start(module, "finish_chunk")
    try:
        chunk = chunk_function(module, name)
    except BaseException:  # an error or Ctrl-C: the second process is stopped, not waited for
        numba_compile_aside.stop(aside)
        raise
    numba_compile_aside.wait(aside)
    return _Threaded(get_driver(module.F), chunk, chunk_function(module, "finish_chunk"), layout(recipe, looped))


def _has_quiet(recipe, looped):
    """Whether the kernel has ``train_quiet``, the body without the loss: an
    unrolled kernel whose loss is needed only on the epochs a run records."""
    return not looped and recipe.loss != "mse" and recipe.target_loss is None


def _training_function(recipe, looped, n, record_every):
    """The chunk function a run of ``n`` networks trains with: below one chunk
    the ``_partial`` form; the quiet kernel where there is one and the run
    records no loss."""
    name = "train_quiet" if record_every == 0 and _has_quiet(recipe, looped) else "train_chunk"
    return name + "_partial" if n < config.NUMBA_CHUNK else name


_MODULE_NAMES = {}


def _compiled_on_disk_or_here(variant, looped, name):
    """``_is_compiled`` for chunk function ``name`` of the ``variant``'s
    (H, dtype, Xc, recipe) kernel, without loading its module (its source is
    generated once per process, for the name of its module)."""
    hidden, dt, Xc, recipe = variant
    key = _loaded_key(variant, looped)
    if key in _LOADED:
        return _is_compiled(_LOADED[key], name)
    if key not in _MODULE_NAMES:
        source = kernel_source(hidden, dt, Xc, recipe, looped)
        _MODULE_NAMES[key] = jit_cache.module_name(_module_name(hidden, dt, Xc, recipe, looped), source)
    return jit_cache.has_entry(_MODULE_NAMES[key], _entry(name)[1])


@contextlib.contextmanager
def unrolled_only():
    """Every run in this block trains with the unrolled kernel (the same bits
    as the looped one): for a short run that times or compiles the kernel
    long runs use (benchmarks, a Dask run's warm-up and calibration), which
    would otherwise rent the looped one."""
    saved, config.NUMBA_LOOPED_MAX_WORK = config.NUMBA_LOOPED_MAX_WORK, -1  # below any run's work, 0 epochs too
    try:
        yield
    finally:
        config.NUMBA_LOOPED_MAX_WORK = saved


#: Network-epochs each variant has trained with its looped kernel in this process (``rents_the_looped_kernel``).
_RENTED = {}


def _variant(key):
    """(H, dtype, Xc, recipe) as a dict key: the recipe by its kernel key."""
    return key[:3] + (key[3].kernel_key,)


def _loaded_key(key, looped):
    """The ``_LOADED`` key of the (H, dtype, Xc, recipe) kernel, looped or unrolled."""
    return _variant(key) + (looped,)


def rents_the_looped_kernel(key, n, record_every, work):
    """Whether a run trains with the kernel that loops over the samples
    rather than the one that unrolls them, which is up to 1.3x faster but
    compiles slower (4-bit parity at H = 32 with Adam: 9.4 s against 0.9 s).
    They compute the same bits, so the choice is a cost, rent or buy: the
    looped kernel where the variant must loop (``loops_over_samples``); and
    while the variant's unrolled kernel is not compiled, as long as this run
    (``work``: its network-epochs still to do) and the runs this process has
    already rented it for stay within ``config.NUMBA_LOOPED_MAX_WORK``
    network-epochs per thread (a sweep's many short runs buy it too); the
    unrolled one otherwise. ``key``: (H, dtype, Xc, recipe)."""
    import numba

    recipe = key[3]
    if loops_over_samples(recipe):
        return True
    if _RENTED.get(_variant(key), 0) + work > config.NUMBA_LOOPED_MAX_WORK * numba.get_num_threads():
        return False
    return not _compiled_on_disk_or_here(key, False, _training_function(recipe, False, n, record_every))


def _source_lines(module, name):
    """Lines of chunk function ``name`` in the module's generated source (its compile time grows with them)."""
    fn = numba_direct_ir.function_def(module, name)
    return fn.end_lineno - fn.lineno + 1


def _is_compiled(module, name):
    """Whether chunk function ``name`` (as ``chunk_function`` compiles it) is
    compiled in this process or has a cache entry on disk (it may still be
    for another CPU: then it compiles)."""
    key = _entry(name)[1]
    return key in module.__dict__.get("_compiled", {}) or (module.CACHE and jit_cache.has_entry(module.__name__, key))


class _Threaded:
    """The driver called on disjoint chunk ranges from ``numba.get_num_threads()``
    Python threads (ctypes releases the GIL), with a variant's chunk
    functions and layout.

    Why not ``prange``: a ``parallel=True`` driver made LLVM optimise the
    chunk kernel several times over (the parfor's gufunc, then the driver,
    each linking it): first use of the momentum variant took 43 s to compile,
    35 s of them in LLVM; with this driver, 15 s. Chunks never interact, so
    the results are those of any thread count."""

    _pools = {}

    def __init__(self, driver, chunk, finish, layout):
        self.driver, self.chunk, self.finish, self.layout = driver, chunk.address, finish.address, layout

    def __call__(self, P, B, rates, consts, X, y, sides, epoch0, epochs, record_every, final,
                 loss, pred, solved, diverged, target, history):
        import numba

        C, n_rows, RT, n_rates, EV = self.layout
        n = P.shape[1]
        arrays = dict(P_p=P, B_p=B, rates_p=rates, consts_p=consts, X_p=X, y_p=y, sides_p=sides, loss_p=loss,
                      pred_p=pred, solved_p=solved, diverged_p=diverged, target_p=target, history_p=history)
        for name, arr in arrays.items():  # read and written by address
            dt = _pointee(name, P.dtype)
            if arr.dtype != dt or not arr.flags.c_contiguous:
                raise ValueError(f"the {name[:-2]} array must be a C-contiguous {dt.name} array: got "
                                 f"{arr.dtype}, {'' if arr.flags.c_contiguous else 'not '}contiguous")
        if rates.shape != (n_rates, n):
            raise ValueError(f"the rates must be a ({n_rates}, {n}) array")
        lead = (self.chunk, self.finish, C, n_rows, RT, n_rates, EV)
        values = (P, P.shape[0], B, B.shape[0], rates, consts, X, y, sides, epoch0, epochs, record_every, int(final),
                  loss, pred, solved, diverged, target, history, history.shape[0], history.shape[1], n)
        n_chunks = -(-n // C)

        def run(c0, c1):
            """Chunks c0..c1-1, in their own chunk state. The arrays are passed by
            address, so this closure holds them: a Ctrl-C that ends the caller
            while a thread still trains must not free what it writes."""
            a = np.empty(n_rows * C, dtype=P.dtype)
            args = [v.ctypes.data if isinstance(v, np.ndarray) else v for v in values]
            self.driver(*lead, a.ctypes.data, *args, c0, c1)

        threads = min(numba.get_num_threads(), n_chunks)
        if threads <= 1:
            return run(0, n_chunks)
        pool = self._pools.get(threads)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = self._pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="fastxor")
        pieces = min(n_chunks, 4 * threads)  # a few ranges per thread: uneven chunks even out
        bounds = [n_chunks * i // pieces for i in range(pieces + 1)]
        futures = [pool.submit(run, c0, c1) for c0, c1 in zip(bounds[:-1], bounds[1:])]
        for f in futures:
            f.result()


#: Vector operations in one float32 sigmoid of ``fastxor.vmath``: 2 clamps,
#: 1 FMA + 1 subtract (k), 2 FMA (r), 1 multiply + 5 FMA (polynomial),
#: 1 FMA + 1 add, 2 integer ops + 1 multiply (2^k), 1 negate, 1 add, 1 divide.
SIGMOID_OPS = 20
def ops_per_network_epoch(hidden=2, function="xor"):
    """Arithmetic vector operations of the fused kernel per network-epoch on a
    boolean function's data (the seed's recipe): counted in the generated
    loop body (each ``+ - * /``, comparison and select is one, each sigmoid
    ``SIGMOID_OPS``), divided by the networks one iteration trains."""
    import ast

    from ..data import boolean_function

    X, y = boolean_function(function)
    recipe = Recipe(hidden, np.dtype(np.float32), inputs=X.shape[1], samples=len(y))
    tree = ast.parse(kernel_source(hidden, "float32", boolean_inputs(X), recipe))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train_chunk")
    loop = next(n for n in ast.walk(fn) if isinstance(n, ast.For) and ast.unparse(n.target) == "k")
    index_math = {id(n) for sub in ast.walk(loop) if isinstance(sub, ast.Subscript)
                  for n in ast.walk(sub.slice)}  # addresses, not arithmetic
    ops = 0
    for node in ast.walk(loop):
        if id(node) in index_math:
            continue
        if isinstance(node, (ast.BinOp, ast.Compare, ast.IfExp, ast.UnaryOp)):
            ops += 1
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "sig":
            ops += SIGMOID_OPS
    return ops // lane_groups(hidden, recipe)  # the loop body trains that many networks


NAME = "numba"


def problem():
    try:
        import numba  # noqa: F401
    except ImportError:
        return "Numba is not installed: pip install numba (a core dependency of fastxor)"
    return None


def memory_bytes(n, recipe, rows):
    """``run_bytes``: the kernel trains in place, its chunk buffers are tiny."""
    from ..state import run_bytes

    return run_bytes(n, recipe, rows)


def run(state, data, epochs, record_every, recipe, out, final=True, work=None, specialise=True, looped=None):
    """The backend contract (see ``fastxor.backends``): ``state`` trained in place.

    ``specialise``: use the kernel with 0/1 inputs baked in when X allows it
    (fewer operations, the same values); False forces the generic one.
    ``looped``: the kernel that loops over the samples (True) or unrolls
    them (False; impossible above ``config.NUMBA_UNROLL_SAMPLES``); the same
    bits either way. None: ``rents_the_looped_kernel`` chooses.
    """
    flat = state.materialise()
    dt = flat.dtype
    n = flat.shape[1]
    if flat.shape[0] != recipe.n_params or np.shape(data.X) != (recipe.samples, recipe.inputs):  # no bounds checks
        raise ValueError(f"the state ({flat.shape[0]} parameter rows) and data (X of shape {np.shape(data.X)}) "
                         f"do not fit the recipe's D={recipe.inputs}, H={recipe.hidden}, S={recipe.samples}")
    key = (recipe.hidden, dt.name, boolean_inputs(data.X) if specialise else None, recipe)
    if looped is None:
        looped = rents_the_looped_kernel(key, n, record_every, n * epochs if work is None else work)
        if looped:
            _RENTED[_variant(key)] = _RENTED.get(_variant(key), 0) + n * epochs
    elif not looped and loops_over_samples(recipe):
        raise ValueError(f"looped=False: a kernel unrolls at most {config.NUMBA_UNROLL_SAMPLES} samples, "
                         f"not {recipe.samples}")
    history = out.history if record_every else np.empty((1, 1), dtype=dt)
    buffers = state.buffers if state.buffers is not None else np.empty((0, n), dtype=dt)
    with deep_recursion():  # the first call compiles the kernel
        jit_cache.call_repairing(
            lambda: _driver(get_kernel(*key, looped), n, recipe, record_every, looped),
            lambda: _forget(_loaded_key(key, looped)),
            flat, buffers, state.rate_rows(recipe), recipe.constants(), np.ascontiguousarray(data.X, dtype=dt),
            np.ascontiguousarray(data.y, dtype=dt), np.ascontiguousarray(data.sides, dtype=dt),
            state.epoch, epochs, record_every, final, out.loss, out.predictions, state.solved_epoch,
            state.diverged_epoch, state.target_epoch, history,
        )
    state.epoch += epochs
    return out
