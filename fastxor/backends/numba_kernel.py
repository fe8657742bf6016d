"""Backend ``numba``: the fused CPU kernel, forward, backward and update in one loop body.

Why generated source: for SIMD across networks, the loop over the networks of
a chunk must be the innermost loop and its body straight-line code. So the
body is emitted fully unrolled for each hidden width H — every weight, hidden
activation and gradient is a named scalar local that LLVM keeps in a vector
register (one network per lane). Parallelism: ``prange`` over chunks of
``config.NUMBA_CHUNK`` networks; networks never interact, so results do not
depend on the thread count or on how networks are split into calls.

Each generated kernel is written as a module file to the cache directory
(``$FASTXOR_CACHE_DIR``, default ``~/.cache/fastxor``) and imported from
there, so Numba's on-disk cache works and later runs skip compilation. The
file name carries a hash of the sources it depends on: an edit to fastxor
never reuses a stale kernel. ``kernel_source(H, dtype)`` shows the code.
"""
import hashlib
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from .. import config
from ..state import param_names

_HERE = Path(__file__).parent
_LOADED = {}


def _times_x(name, n, i, Xc):
    """``name * x[n, i]``, simplified when the input is a known 0 or 1.

    Exact for finite ``name``: w * 1 == w, and w * 0 == +-0 vanishes in a sum
    with another term. (LLVM may then fuse a different multiply into an add,
    so results equal the generic kernel's to rounding, not bit for bit.)
    """
    if Xc is None:
        return f"{name} * x{n}{i}"
    return {0.0: None, 1.0: name}[Xc[n][i]]


def _sum(terms):
    terms = [t for t in terms if t is not None]
    return " + ".join(terms) if terms else "ZERO"


def _emit_forward(H, ind, Xc):
    """Lines computing h{n}_{j} and o{n} for the 4 samples from the locals."""
    lines = []
    for n in range(4):
        for j in range(H):
            affine = _sum([_times_x(f"w1_{j}_{i}", n, i, Xc) for i in range(2)])
            lines.append(f"h{n}_{j} = sig(({affine}) + b1_{j})")
        dot = " + ".join(f"w2_{j} * h{n}_{j}" for j in range(H))
        lines.append(f"o{n} = sig(({dot}) + b2)")
    lines += [f"d{n} = o{n} - y{n}" for n in range(4)]
    lines.append("loss = (((d0 * d0 + d1 * d1) + d2 * d2) + d3 * d3) * QUARTER")
    lines += [f"m{n} = s{n} * (o{n} - HALF)" for n in range(4)]
    lines.append("margin = m0 if m0 < m1 else m1")
    lines += [f"margin = margin if margin < m{n} else m{n}" for n in (2, 3)]
    return [ind + s for s in lines]


def _emit_backward_update(H, ind, Xc, at):
    """Backpropagation (the seed's steps 1-5) and the guarded SGD update;
    ``at(row)`` is the chunk-state element of parameter row ``row``."""
    L = []
    # (1)+(2): d loss / d z2 = 2/4 (o - y) * o (1 - o)
    L += [f"g{n} = (d{n} * HALF) * o{n} * (ONE - o{n})" for n in range(4)]
    # (3): output layer gradients
    for j in range(H):
        L.append(f"gw2_{j} = " + " + ".join(f"g{n} * h{n}_{j}" for n in range(4)))
    L.append("gb2 = g0 + g1 + g2 + g3")
    # (4): back through the hidden sigmoids
    for n in range(4):
        for j in range(H):
            L.append(f"e{n}_{j} = (g{n} * w2_{j}) * h{n}_{j} * (ONE - h{n}_{j})")
    # (5): hidden layer gradients
    for j in range(H):
        for i in range(2):
            L.append(f"gw1_{j}_{i} = " + _sum([_times_x(f"e{n}_{j}", n, i, Xc) for n in range(4)]))
        L.append(f"gb1_{j} = " + " + ".join(f"e{n}_{j}" for n in range(4)))
    # SGD step; an update that makes any parameter NaN/inf is not applied.
    names = param_names(H)
    L += [f"n_{p} = {p} - rate * g{p}" for p in names]
    # x - x is 0 for finite x and NaN otherwise; a balanced sum keeps the
    # check's dependency chain short (log2 of the parameter count).
    L.append("bad = " + _tree_sum([f"(n_{p} - n_{p})" for p in names]))
    L.append("ok = bad == ZERO")
    L += [f"{at(q)} = n_{p} if ok else {p}" for q, p in enumerate(names)]
    return [ind + s for s in L]


def _emit_epochs(name, lanes, groups, loss_row, doc):
    """A chunk kernel: the epoch loop around a SIMD loop over ``lanes`` lanes
    whose body is the groups' statements interleaved, and the history."""
    src = [
        "@njit(fastmath=config.NUMBA_FASTMATH, error_model='numpy', cache=True)",
        f"def {name}(a, X, y, sides, epoch0, epochs, record_every, lo, m, history):",
        f'    """{doc}"""',
        *_emit_data(),
        "    for epoch in range(epochs):",
        "        ep = as_float(I(epoch0 + epoch))  # the global epoch's bits, stored in the float state",
        f"        for k in range({lanes}):",
        *[" " * 12 + line for stmt in zip(*groups) for line in stmt],
        "        if record_every > 0 and (epoch0 + epoch) % record_every == 0:",
        "            r = (epoch0 + epoch) // record_every",
        "            for k in range(m):",
        f"                history[lo + k, r] = a[{loss_row} + k]",
        "",
        "",
    ]
    return src


def _emit_chunk_call(G, C):
    call = "(a, X, y, sides, epoch0, epochs, record_every, lo, m, history)"
    if G == 1:
        return ["        train_chunk" + call]
    return [
        f"        if m == {C}:",
        "            train_chunk" + call,
        "        else:",
        "            train_partial" + call,
    ]


def _emit_data():
    """The inputs, targets and target sides as scalar locals x{n}{i}, y{n}, s{n}."""
    return (
        [f"    x{n}{i} = X[{n}, {i}]" for n in range(4) for i in range(2)]
        + [f"    y{n} = y[{n}]" for n in range(4)]
        + [f"    s{n} = sides[{n}]" for n in range(4)]
    )


def _emit_load(H, ind, at):
    return [ind + f"{p} = {at(q)}" for q, p in enumerate(param_names(H))]


def _tree_sum(terms):
    """``terms`` summed as a balanced tree of ``+`` (same value for the 0/NaN
    test it is used for; shorter latency than a left-to-right chain)."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({_tree_sum(terms[:half])} + {_tree_sum(terms[half:])})"


def lane_groups(hidden):
    """Networks trained side by side in one iteration of the SIMD loop.

    Why: one network-epoch is a long dependency chain (two sigmoid layers,
    backprop, update) of ~420 vector operations, more than the CPU's
    reorder window; two independent networks per iteration give the
    out-of-order core work to overlap. Measured (float32, 2-core Zen 4):
    H=2 2.8e8 -> 3.2e8 NE/s. From H=5 the gain is gone and from H=12 the
    doubled register pressure stops LLVM from vectorising, so wide layers
    use one group.
    """
    return 2 if hidden <= config.NUMBA_INTERLEAVE_MAX_HIDDEN else 1


#: Identifiers the lane groups share; every other local of the loop body
#: gets a per-group suffix.
_SHARED = {"a", "k", "ep", "sig", "as_int", "ZERO", "HALF", "ONE", "QUARTER", "if", "else"}
_SHARED |= {f"x{n}{i}" for n in range(4) for i in range(2)}
_SHARED |= {f"y{n}" for n in range(4)} | {f"s{n}" for n in range(4)}


def _for_group(line, g):
    """``line`` of the loop body rewritten for lane group ``g``: its locals renamed."""
    return re.sub(
        r"\b[A-Za-z_]\w*\b",
        lambda t: t.group(0) if t.group(0) in _SHARED else f"{t.group(0)}_{g}",
        line,
    )


def boolean_inputs(X):
    """X as a tuple of tuples when every input is exactly 0 or 1, else None."""
    X = np.asarray(X, dtype=np.float64)
    if np.isin(X, (0.0, 1.0)).all():
        return tuple(tuple(float(v) for v in row) for row in X)
    return None


def kernel_source(hidden, dtype, Xc=None):
    """The Python source of the fused kernel for one hidden width and dtype.

    ``Xc``: inputs baked in as constants (see ``boolean_inputs``), or None
    for a kernel that reads any X at run time.

    A chunk's whole state is one flat array ``a``: row q (elements q*C ..
    q*C + C-1, one per lane) holds parameter q, then come the rows of
    learning rates, losses, and the solved and diverged epochs (integers
    stored as their bit patterns, see ``vmath.bitcasts``). Constant row
    offsets in one array let LLVM prove that the lanes of a SIMD iteration
    never overlap; with a 2-D array's run-time strides it could not, nor
    with a second array for the epochs once the layer is wide (too many
    run-time alias checks), and it then leaves the loop scalar, ~10x slower.
    """
    H = hidden
    dt = np.dtype(dtype).name
    C = config.NUMBA_CHUNK
    G = lane_groups(H)
    W = C // G  # lanes per group: iteration k trains lanes k, k+W, ...
    P = 4 * H + 1
    RATE, LOSS = P * C, (P + 1) * C
    i2 = " " * 8

    def lane(row, g):
        return f"a[{row * C + g * W} + k]"

    def body(g):
        """Lines training the network in lane k of group g; locals renamed per group."""
        at = lambda row: lane(row, g)  # noqa: E731
        solved, diverged = at(P + 2), at(P + 3)
        lines = [
            f"rate = {at(P)}",
            *_emit_load(H, "", at),
            *_emit_forward(H, "", Xc),
            *_emit_backward_update(H, "", Xc, at),
            f"{at(P + 1)} = loss",
            f"s_old = {solved}",
            f"{solved} = ep if (as_int(s_old) < 0) & (margin > ZERO) else s_old",
            f"d_old = {diverged}",
            f"{diverged} = ep if (as_int(d_old) < 0) & (~ok) else d_old",
        ]
        return [_for_group(line, g) for line in lines]

    groups = [body(g) for g in range(G)]
    src = [
        f'"""Generated by fastxor.backends.numba_kernel for H={H}, {dt}, X={Xc}. Do not edit."""',
        "import numpy as np",
        "from numba import njit, prange",
        "from fastxor import config",
        "from fastxor.backends.numba_vmath import bitcasts, make_sigmoid",
        "",
        f"F = np.{dt}",
        "sig = make_sigmoid(F)",
        "as_int, as_float, I = bitcasts(F)",
        "ZERO, HALF, ONE, QUARTER = F(0.0), F(0.5), F(1.0), F(0.25)",
        "",
        "",
    ]
    if G == 1:
        src += _emit_epochs("train_chunk", "m", groups, LOSS,
                            f"Train the m networks of a chunk ({C} lanes, one per network).")
    else:
        src += _emit_epochs("train_chunk", str(W), groups, LOSS,
                            f"Train a full chunk: {G} groups of {W} lanes, the groups'\n"
                            "    statements interleaved.")
        src += _emit_epochs("train_partial", "m", groups[:1], LOSS,
                            "Train the m < C networks of a last chunk, one group: a\n"
                            "    single network costs one lane, not one per group.")
    src += [
        "@njit(fastmath=config.NUMBA_FASTMATH, error_model='numpy', cache=True)",
        "def finish_chunk(a, X, y, sides, end, lo, m, loss_out, pred_out, solved_io,",
        "                 diverged_io):",
        '    """Forward pass of the final parameters (epoch ``end``): loss, predictions, solved."""',
    ]
    src += _emit_data()
    src += ["    for k in range(m):"]
    src += _emit_load(H, i2, lambda q: lane(q, 0))
    src += _emit_forward(H, i2, Xc)
    src += [i2 + "loss_out[lo + k] = loss"]
    src += [i2 + f"pred_out[lo + k, {n}] = o{n}" for n in range(4)]
    src += [
        i2 + f"s_old = as_int({lane(P + 2, 0)})",
        i2 + "solved_io[lo + k] = end if (s_old < 0) and (margin > ZERO) else s_old",
        i2 + f"diverged_io[lo + k] = as_int({lane(P + 3, 0)})",
        "",
        "",
        "@njit(parallel=True, cache=True)",
        "def train(P, lr, X, y, sides, epoch0, epochs, record_every, final, loss_out, pred_out,",
        "          solved_io, diverged_io, history):",
        '    """All networks: chunks of networks in parallel, each trained alone;"',
        '    P, solved_io, diverged_io are the run state, updated in place; ``final``:"',
        '    also the loss and predictions of the final parameters."""',
        "    n_total = P.shape[1]",
        f"    n_chunks = (n_total + {C - 1}) // {C}",
        "    for c in prange(n_chunks):",
        f"        lo = c * {C}",
        f"        m = min({C}, n_total - lo)",
        f"        a = np.zeros({(P + 4) * C}, dtype=F)  # unused lanes: zero parameters, rate 0",
        f"        a[{(P + 2) * C}:] = as_float(I(-1))  # unused lanes: solved/diverged epoch -1",
        "        for k in range(m):",
        f"            a[{RATE} + k] = lr[lo + k]",
        f"            a[{(P + 2) * C} + k] = as_float(I(solved_io[lo + k]))",
        f"            a[{(P + 3) * C} + k] = as_float(I(diverged_io[lo + k]))",
        f"        for q in range({P}):  # row by row: contiguous runs in both arrays",
        "            for k in range(m):",
        f"                a[q * {C} + k] = P[q, lo + k]",
        *_emit_chunk_call(G, C),
        "        if final:",
        "            finish_chunk(a, X, y, sides, epoch0 + epochs, lo, m, loss_out, pred_out, solved_io,",
        "                         diverged_io)",
        "        else:  # an intermediate segment: the state only",
        "            for k in range(m):",
        f"                solved_io[lo + k] = as_int(a[{(P + 2) * C} + k])",
        f"                diverged_io[lo + k] = as_int(a[{(P + 3) * C} + k])",
        f"        for q in range({P}):",
        "            for k in range(m):",
        f"                P[q, lo + k] = a[q * {C} + k]",
    ]
    return "\n".join(src) + "\n"


def _source_hash():
    h = hashlib.sha256()
    for path in (_HERE / "numba_kernel.py", _HERE / "numba_vmath.py", _HERE.parent / "config.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _cache_dir():
    base = os.environ.get("FASTXOR_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "fastxor"
    )
    d = Path(base) / f"cpu-{_source_hash()}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError:
        d = Path(tempfile.gettempdir()) / f"fastxor-{os.getuid()}" / f"cpu-{_source_hash()}"
        d.mkdir(parents=True, exist_ok=True)
    return d


def get_kernel(hidden, dtype, Xc=None):
    """The compiled kernel for (hidden, dtype, inputs): generated, imported, cached."""
    dt = np.dtype(dtype).name
    key = (hidden, dt, Xc)
    if key not in _LOADED:
        xtag = "x" + "".join(str(int(v)) for row in Xc for v in row) if Xc else "xany"
        name = f"fastxor_cpu_h{hidden}_{dt}_{xtag}"
        path = _cache_dir() / f"{name}.py"
        src = kernel_source(hidden, dt, Xc)
        if not path.exists() or path.read_text() != src:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(src)
            os.replace(tmp, path)  # atomic: concurrent processes never see half a file
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _LOADED[key] = module.train
    return _LOADED[key]


#: Vector operations in one float32 sigmoid of ``fastxor.vmath``: 2 clamps,
#: 1 FMA + 1 subtract (k), 2 FMA (r), 1 multiply + 5 FMA (polynomial),
#: 1 FMA + 1 add, 2 integer ops + 1 multiply (2^k), 1 negate, 1 add, 1 divide.
SIGMOID_OPS = 20
def ops_per_network_epoch(hidden=2):
    """Arithmetic vector operations of the fused kernel per network-epoch:
    counted in the generated loop body (each ``+ - * /``, comparison and
    select is one, each sigmoid ``SIGMOID_OPS``), divided by the networks
    one iteration trains."""
    import ast

    tree = ast.parse(kernel_source(hidden, "float32", ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))))
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
    return ops // lane_groups(hidden)  # the loop body trains that many networks


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


def run(state, data, epochs, record_every, recipe, out, final=True, specialise=True):
    """The backend contract (see ``fastxor.backends``): ``state`` trained in place.

    ``specialise``: use the kernel with 0/1 inputs baked in when X allows it
    (fewer operations, equal to rounding); False forces the generic one.
    """
    from ..jit_cache import call_repairing

    flat = state.materialise()
    dt = flat.dtype
    key = (recipe.hidden, dt.name, boolean_inputs(data.X) if specialise else None)
    history = out.history if record_every else np.empty((1, 1), dtype=dt)
    call_repairing(
        lambda: get_kernel(*key), lambda: _LOADED.pop(key, None),
        flat, np.ascontiguousarray(state.lr, dtype=dt), np.ascontiguousarray(data.X, dtype=dt),
        np.ascontiguousarray(data.y, dtype=dt), np.ascontiguousarray(data.sides, dtype=dt),
        state.epoch, epochs, record_every, final, out.loss, out.predictions, state.solved_epoch,
        state.diverged_epoch, history,
    )
    state.epoch += epochs
    return out
