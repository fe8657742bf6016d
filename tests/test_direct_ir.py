"""``numba_direct_ir`` against Numba's own compiler: the same bits, on fresh
random programs of the kernel language and on training runs of random recipes."""
import ctypes
import os

import numpy as np
import pytest

import fastxor
from fastxor import config, jit_cache
from fastxor.backends import numba_direct_ir, numba_fusion, numba_kernel

_HEADER = """
import numpy as np
from numba import carray, njit
from fastxor import config
from fastxor.backends.numba_fusion import fma
from fastxor.backends.numba_vmath import bitcasts, make_math, select as sel

F = np.{dt}
_math = make_math(F)
sig, th, lg, lg1p, ex = _math.sigmoid, _math.tanh, _math.log, _math.log1p, _math.exp_clamped
sqrt = np.sqrt
as_int, as_float, I = bitcasts(F)
{constants}


@njit(fastmath=config.NUMBA_FASTMATH, error_model='numpy')
def relu(z):
    return z if z > ZERO else ZERO


"""
_IN, _LANES = 6, 64


def _random_program(rng, dt, trip="n"):
    """A chunk-like function: a lane loop (over ``trip`` lanes) whose body is
    random straight-line code over the inputs (float ``F`` values, some
    promoted to float64 by a float literal, as Numba types them), every
    value stored back."""
    constants = {"ZERO": 0.0, "ONE": 1.0, **{f"C{i}": float(rng.normal(0, 2)) for i in range(4)}}
    const_src = "\n".join(f"{k} = F({v!r})" for k, v in constants.items())
    values = [(f"x{j}", "F") for j in range(_IN)]
    body = [f"        x{j} = a[{j * _LANES} + k]" for j in range(_IN)]
    names = list(constants)
    for i in range(40):
        pick = lambda kind=None: [v for v in values if kind is None or v[1] == kind][  # noqa: E731
            int(rng.integers(len([v for v in values if kind is None or v[1] == kind])))][0]
        choice = rng.integers(9)
        kind = "F"
        if choice == 0:
            expr = f"{pick()} {rng.choice(['+', '-', '*', '/'])} {pick()} {rng.choice(['+', '-', '*'])} {pick()}"
            kind = "double" if any(t == "double" for t in (v[1] for v in values if v[0] in expr.split())) else "F"
        elif choice == 1:  # sums of products: which one is fused is the source's choice (numba_fusion)
            expr = f"{pick('F')} * {rng.choice(names)} + {pick('F')} * {pick('F')} {rng.choice(['+', '-'])} {pick('F')}"
        elif choice == 2:
            expr, kind = f"{pick('F')} * {rng.normal():.3f} - {pick('F')}", "double"
        elif choice == 3:
            expr = f"F({pick()} / {rng.choice(['2.0', '3.0', '0.5'])})"
        elif choice == 4:
            expr = f"{rng.choice(['sig', 'th', 'lg', 'lg1p', 'ex', 'relu', 'sqrt'])}({pick('F')})"
        elif choice == 5:
            expr = f"sel({pick('F')} {rng.choice(['<', '>', '<=', '>=', '==', '!='])} {pick('F')}, {pick('F')}, -{pick('F')})"
        elif choice == 6:  # (bit casts read inputs: a computed NaN's sign and payload are the hardware's choice)
            expr = f"{pick('F')} if (as_int(x{rng.integers(_IN)}) < 0) & (~({pick('F')} > ZERO)) else {pick('F')}"
        elif choice == 7:
            expr = f"-({pick('F')} - {pick('F')}) * {pick('F')}"
        else:
            expr = f"as_float(I(as_int(x{rng.integers(_IN)}) + {int(rng.integers(-3, 4))}))"
        values.append((f"v{i}", kind))
        body.append(f"        v{i} = {expr}")
    outputs = values[_IN:]
    body += [f"        a[{(_IN + q) * _LANES} + k] = {v}" for q, (v, _) in enumerate(outputs)]
    source = (_HEADER.format(dt=dt, constants=const_src) + "def f(a_p, n):\n"
              f"    a = carray(a_p, ({(_IN + len(outputs)) * _LANES},))\n"
              f"    for k in range({trip}):\n" + "\n".join(body) + "\n")
    return source, len(outputs)


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_random_programs_compute_numba_s_bits(dt, rng, tmp_path, monkeypatch):
    """Random straight-line programs of the kernel language (sums of
    products, whose multiply-adds ``numba_fusion`` writes out, selects,
    conditionals, comparisons, the vmath functions, float64 promotion, bit
    casts), compiled by Numba's cfunc and by ``numba_direct_ir``: every
    output bit equal, on inputs that include zeros of both signs,
    infinities and NaN. (With LLVM's ``contract`` flag, which product of
    ``a * b + c * d`` was fused depended on the code around the sum: such
    programs differed in the last bit in about one in 200.)"""
    from numba import cfunc, types

    monkeypatch.setenv("FASTXOR_CACHE_DIR", str(tmp_path))
    jit_cache.reset()
    try:
        for _ in range(3):
            source, n_out = _random_program(rng, dt)
            module = jit_cache.load_module(f"fastxor_test_direct_{rng.integers(1 << 30)}", source)
            F = types.float32 if dt == "float32" else types.float64
            signature = types.void(types.CPointer(F), types.int64)
            fused = numba_fusion.fused_function(module, numba_direct_ir.function_def(module, "f"))
            numba_fn = cfunc(signature, fastmath=config.NUMBA_FASTMATH, error_model="numpy")(fused)
            direct = numba_direct_ir.compile_chunk(module, "f", signature)
            special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e-30, 1.0], dtype=dt)
            x = rng.normal(0, 3, (_IN, _LANES)).astype(dt)
            x.flat[rng.choice(x.size, 40, replace=False)] = rng.choice(special, 40)
            outs = [_run_program(address, x, n_out) for address in (numba_fn.address, direct.address)]
            assert np.isfinite(outs[0]).sum() > _LANES * n_out // 4  # the program computes numbers, mostly
            # every bit (zeros' signs too), except a NaN's sign and payload: which of two NaN operands
            # an instruction passes on depends on the operand order the code generator picks
            _assert_same_bits(outs[0], outs[1], source)
    finally:
        jit_cache.reset()


def _run_program(address, x, n_out):
    """The outputs of a compiled ``_random_program`` on inputs ``x`` (its float array, inputs then outputs)."""
    a = np.zeros(((_IN + n_out) * _LANES), dtype=x.dtype)
    a[:_IN * _LANES] = x.ravel()
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(address)(a.ctypes.data, _LANES)
    return a


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_lane_loops_widened_by_fastxor_compute_the_vectoriser_s_bits(dt, rng, tmp_path, monkeypatch):
    """Random programs of the kernel language (branches of conditional
    expressions included) over a constant number of lanes, their lane loop
    vectorised by ``numba_widen`` and by LLVM's loop vectoriser: every
    output bit equal. A loop over a run-time number of lanes is not widened
    (``Unsupported``) and compiles through the vectoriser, the same bits."""
    from numba import types

    from fastxor.backends import numba_widen

    widened, widen = [], numba_widen.widen
    monkeypatch.setattr(numba_widen, "widen", lambda *a: widened.append(widen(*a)) or widened[-1])
    monkeypatch.setenv("FASTXOR_CACHE_DIR", str(tmp_path))
    jit_cache.reset()
    F = types.float32 if dt == "float32" else types.float64
    signature = types.void(types.CPointer(F), types.int64)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e-30, 1.0], dtype=dt)
    try:
        for trip in (_LANES, _LANES, "n"):
            source, n_out = _random_program(rng, dt, trip)
            module = jit_cache.load_module(f"fastxor_test_widen_{rng.integers(1 << 30)}", source)
            x = rng.normal(0, 3, (_IN, _LANES)).astype(dt)
            x.flat[rng.choice(x.size, 40, replace=False)] = rng.choice(special, 40)
            outs = []
            for widen_it in (True, False):
                monkeypatch.setattr(config, "NUMBA_WIDEN", widen_it)
                before = len(widened)
                outs.append(_run_program(numba_direct_ir.compile_chunk(module, "f", signature).address, x, n_out))
                assert len(widened) - before == (widen_it and trip != "n")  # widened where it can be
            _assert_same_bits(outs[0], outs[1], source)
    finally:
        jit_cache.reset()
    assert numba_direct_ir.vector_lanes(dt.replace("float32", "float").replace("float64", "double")) >= 2


def _assert_same_bits(x, y, what):
    """Every bit equal (zeros' signs too), NaN where NaN, whatever its payload."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind != "f":
        np.testing.assert_array_equal(x, y, err_msg=what)
        return
    nan = np.isnan(x)
    np.testing.assert_array_equal(nan, np.isnan(y), err_msg=what)
    bits = f"u{x.dtype.itemsize}"
    np.testing.assert_array_equal(x[~nan].view(bits), y[~nan].view(bits), err_msg=what)


def _random_recipe(rng):
    """Training options drawn over every axis the chunk functions vary by."""
    optimizer = str(rng.choice(["sgd", "momentum", "nesterov", "dampening", "adam", "adamw"]))
    kw = dict(hidden=int(rng.integers(1, 7)), dtype=str(rng.choice(["float32", "float64"])),
              loss=str(rng.choice(["mse", "bce", "bce_logits"])),
              activation=str(rng.choice(["sigmoid", "tanh", "relu"])),
              function=str(rng.choice(["xor", "xor", "parity3", "parity5"])), seed=int(rng.integers(2**32)))
    if optimizer in ("adam", "adamw"):
        kw.update(optimizer=optimizer, lr=float(rng.uniform(0.005, 0.05)))
    else:
        kw.update(lr=float(rng.uniform(0.1, 2.0)))
        if optimizer != "sgd":
            kw.update(momentum=0.9, nesterov=optimizer == "nesterov", dampening=0.3 if optimizer == "dampening" else 0.0)
    if rng.random() < 0.4:
        kw.update(weight_decay=float(rng.uniform(1e-4, 1e-2)))
    if rng.random() < 0.3:
        kw.update(target_loss=0.05)
    if rng.random() < 0.3 and kw["loss"] == "mse":
        kw.update(output="linear")
    if rng.random() < 0.3:
        kw.update(lr_output=kw["lr"] / 2)
    return kw


@pytest.mark.parametrize("case", range(4))
def test_training_equals_numba_s_compile_bit_for_bit(case, rng, monkeypatch):
    """A random recipe trained with chunk functions from ``numba_direct_ir``
    (their lane loops widened by ``numba_widen``), from Numba's ``cfunc``
    (LLVM's vectoriser), and from ``numba_direct_ir`` as scalar code (no
    vectoriser at all): parameters, losses, predictions, the loss history
    and every event epoch equal bit for bit, for a full chunk and a partial
    one, recording and quiet. The scalar code agrees because the source
    decides every multiply-add (``numba_fusion``): with LLVM's ``contract``
    flag it differed in 4 of 30 random recipes (the vector code fused a
    multiply-add the scalar code left apart)."""
    from fastxor.backends.numba_direct_ir import CompiledChunk

    kw = _random_recipe(rng)
    n = int(rng.choice([int(rng.integers(1, config.NUMBA_CHUNK)), int(rng.integers(config.NUMBA_CHUNK + 1, 200))]))
    kw.update(epochs=int(rng.integers(50, 150)), record_every=int(rng.choice([0, 7])))
    print(n, kw)

    def trained(direct):
        monkeypatch.setattr(config, "NUMBA_DIRECT_IR", direct)
        for module in list(numba_kernel._LOADED.values()):
            module.__dict__.pop("_compiled", None)
        result = fastxor.train(n, backend="numba", **kw)
        kinds = {type(f) for m in numba_kernel._LOADED.values() for f in m.__dict__.get("_compiled", {}).values()}
        assert (CompiledChunk in kinds) == direct  # the compiler asked for compiled the kernels
        return result

    a = trained(True)
    assert any(f.widened for m in numba_kernel._LOADED.values() for name, f in m.__dict__.get("_compiled", {}).items()
               if name.startswith("train_"))  # this run's training kernel vectorised by fastxor, not by LLVM
    b = trained(False)
    monkeypatch.setattr(numba_kernel, "_entry", lambda name: (False, numba_direct_ir.entry_name(name, False)))
    c = trained(True)  # every chunk function scalar
    for other in (b, c):
        for x, y in zip(a.params.arrays(), other.params.arrays()):
            _assert_same_bits(x, y, "parameters")
        for name in ("loss", "predictions", "solved_epoch", "diverged_epoch", "target_epoch", "loss_history"):
            _assert_same_bits(getattr(a, name), getattr(other, name), name)


def test_source_outside_the_language_compiles_through_numba(rng, monkeypatch):
    """A construct the translator does not write (here: ``while``) raises
    ``Unsupported``; the kernel then compiles through Numba and trains the same."""
    source = _HEADER.format(dt="float32", constants="ZERO = F(0.0)") + (
        "def f(a_p, n):\n    a = carray(a_p, (4,))\n    while n > 0:\n        n -= 1\n")
    from numba import types

    module = jit_cache.load_module(f"fastxor_test_direct_{rng.integers(1 << 30)}", source)
    with pytest.raises(numba_direct_ir.Unsupported, match="while"):
        numba_direct_ir.translate(module, "f", types.void(types.CPointer(types.float32), types.int64), {"nsz"})

    kw = dict(hidden=int(rng.integers(1, 4)), epochs=40, seed=int(rng.integers(1000)), backend="numba")
    want = fastxor.train(70, **kw)

    def unsupported(*args):
        raise numba_direct_ir.Unsupported("as if")

    monkeypatch.setattr(numba_direct_ir, "translate", unsupported)
    monkeypatch.setattr(numba_direct_ir, "cache_file", lambda module, fname: None)
    for module in list(numba_kernel._LOADED.values()):
        module.__dict__.pop("_compiled", None)
    got = fastxor.train(70, **kw)
    assert not any(isinstance(f, numba_direct_ir.CompiledChunk) for m in numba_kernel._LOADED.values()
                   for f in m.__dict__.get("_compiled", {}).values())
    np.testing.assert_array_equal(want.loss, got.loss)
    for x, y in zip(want.params.arrays(), got.params.arrays()):
        np.testing.assert_array_equal(x, y)


def test_a_second_process_loads_the_compiled_function(tmp_path):
    """A function compiled once is loaded from its cache entry by the next
    process (nothing compiles, nothing is written) and gives the same results;
    that process never loads Numba's typing registries (``numba.np.arraymath``
    is among them): the chunk functions and the driver are all machine code."""
    import subprocess
    import sys

    code = ("import sys, fastxor; from fastxor.backends import numba_kernel as k; "
            "r = fastxor.train(70, epochs=30, hidden=3, optimizer='adam', lr=0.02, seed=5); "
            "print(r.loss.sum(), sorted((n, f.from_cache) for m in k._LOADED.values() "
            "for n, f in m._compiled.items()), 'registries', 'numba.np.arraymath' in sys.modules)")
    env = dict(os.environ, FASTXOR_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    entries = {f: f.stat().st_mtime_ns for f in tmp_path.glob("*.fxo")}
    # the variant's two functions, the driver, and the math function the kernel links (the sigmoid)
    assert sorted(f.name.split(".")[1] for f in entries) == ["finish_chunk_scalar", "sigmoid_float32", "train_chunk",
                                                           "train_scalar"]
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split()[0] == second.stdout.split()[0]
    assert "False)" in first.stdout and "False)" not in second.stdout, (first.stdout, second.stdout)
    assert first.stdout.endswith("registries True\n") and second.stdout.endswith("registries False\n"), second.stdout
    assert {f: f.stat().st_mtime_ns for f in tmp_path.glob("*.fxo")} == entries
    # a never-seen variant compiles its own functions, linking the cached math functions without Numba's typing
    third = subprocess.run([sys.executable, "-c", code.replace("hidden=3", "hidden=4")], env=env,
                           capture_output=True, text=True, check=True)
    assert "True)" not in third.stdout and third.stdout.endswith("registries False\n"), third.stdout
