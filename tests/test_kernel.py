"""The fused Numba kernel against the NumPy reference, on fresh random configurations."""
import os
import re

import numba
import numpy as np
import pytest

import fastxor
from fastxor import config
from fastxor.backends import numba_compile_aside, numba_kernel
from fastxor.backends import numpy_reference as reference
from fastxor.data import boolean_function
from fastxor.params import init_params

from helpers import EPS32, make_recipe, random_config, random_data, random_recipe, run_backend, with_diverging_network

def run_both(p, X, y, epochs, lr, record_every, **kw):
    k = run_backend("numba", p, X, y, epochs, lr, record_every, **kw)
    r = run_backend("numpy", p, X, y, epochs, lr, record_every)
    return k, r


@pytest.mark.parametrize("hidden", [1, 2, 3, 6])
@pytest.mark.parametrize("boolean", [True, False], ids=["bool-X", "real-X"])
def test_float64_matches_reference_tightly(hidden, boolean, rng):
    for _ in range(3):
        X, y, n, epochs, lr, rec, scale, seed = random_config(rng, hidden, boolean)
        p = init_params(n, hidden, seed, init_scale=scale, dtype="float64")
        k, r = run_both(p, X, y, epochs, lr, rec)
        # Same float64 operations up to FMA contraction and a <= 2.4 ulp exp.
        # Most networks agree to ~1e-14; at high learning rates a few are
        # chaotic and amplify any rounding difference. The extended-precision
        # (long double) reference measures each network's sensitivity.
        r80 = run_backend("numpy", p.astype(np.longdouble), X, y, epochs, lr, rec)
        kf, rf = k["params"].to_flat(), r["params"].to_flat()
        sens = np.abs(r80["params"].to_flat() - rf).max(axis=0).astype(np.float64)
        bound = 4 * sens + 1e-12 * (1 + np.abs(rf).max(axis=0))
        # From lr ~ 2 some networks are chaotic: a rounding difference grows
        # to the attractor's size, and one run's sensitivity does not bound
        # another's (seen: 28x). Per-network bounds are for lr <= 1 only.
        tight = lr <= 1
        assert (np.abs(kf - rf).max(axis=0)[tight] <= bound[tight]).all()
        assert np.isfinite(kf).all() == np.isfinite(rf).all()
        calm = sens < 1e-12
        # The tight checks below must cover every lr <= 1 network (measured:
        # 6445 of 6445 such networks were calm; chaos starts near lr ~ 2).
        assert calm[lr <= 1].all()
        np.testing.assert_allclose(k["loss"][calm], r["loss"][calm], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(k["solved_epoch"][calm], r["solved_epoch"][calm])
        np.testing.assert_array_equal(k["diverged_epoch"], r["diverged_epoch"])
        if rec:
            assert k["loss_history"].shape == r["loss_history"].shape == (n, -(-epochs // rec))
            np.testing.assert_allclose(k["loss_history"][calm], r["loss_history"][calm], rtol=1e-9, atol=1e-12)
        else:
            assert k["loss_history"] is None and r["loss_history"] is None


@pytest.mark.parametrize("hidden", [1, 2, 3])
@pytest.mark.parametrize("boolean", [True, False], ids=["bool-X", "real-X"])
def test_float32_matches_reference_within_rounding(hidden, boolean, rng):
    """float32 tolerance, justified: kernel and reference are both float32
    implementations of the same arithmetic, differing only in rounding (a
    <= 2.4 ulp exp instead of NumPy's, fused multiply-adds). How far rounding
    moves a trajectory depends on the configuration, and the float32
    reference's own distance from the float64 trajectory measures exactly
    that. Measured: the kernel stays within 2.5x of it (loss history within
    6x of a 1e-7 floor), so we allow 4x plus a few ulp. Past ~1e-3 the
    network is chaotic (lr >~ 2) and only its finiteness is compared."""
    for _ in range(3):
        X, y, n, epochs, lr, rec, scale, seed = random_config(rng, hidden, boolean)
        p = init_params(n, hidden, seed, init_scale=scale, dtype="float32")
        k, r = run_both(p, X, y, epochs, lr, rec)
        r64 = run_backend("numpy", p.astype(np.float64), X, y, epochs, lr, rec)
        kf, rf, r64f = (o["params"].to_flat() for o in (k, r, r64))
        sens = np.abs(r64f - rf).max(axis=0)  # per network
        bound = 4 * sens + 64 * EPS32 * (1 + np.abs(rf).max(axis=0))
        tight = lr <= 1  # as in float64: chaotic networks have no per-network bound
        assert (np.abs(kf - rf).max(axis=0)[tight] <= bound[tight]).all()
        assert np.isfinite(kf).all() == np.isfinite(rf).all()
        if rec:
            hs = np.abs(r64["loss_history"] - r["loss_history"]).max(axis=1, keepdims=True, initial=0)
            assert (np.abs(k["loss_history"] - r["loss_history"]) <= 8 * hs + 16 * EPS32)[tight].all()
        # The final loss is a function of the final parameters (bounded above):
        # check the kernel computed it for its own parameters, in float64.
        *_, yk = reference.forward(k["params"].astype(np.float64), X)
        np.testing.assert_allclose(k["loss"], reference.loss_of(yk, y), rtol=2e-5, atol=1e-9)
        # Solved epochs, where rounding moves the trajectory by < 1e-3 (lr <= 1;
        # measured: max 1.1e-4 over 8825 networks): one whose margin crosses
        # 0.5 in the same epoch in both may flip by an epoch or so; the
        # float64 and float32 references do the same.
        assert (sens[tight] < 1e-3).all()
        diff = np.abs(k["solved_epoch"] - r["solved_epoch"])[tight]
        assert np.count_nonzero(diff) <= 0.02 * diff.size and diff.max(initial=0) <= max(2, epochs // 100)


def test_boolean_specialisation_agrees_with_generic_kernel(rng):
    """Baking 0/1 inputs in changes no value: w * 1 is w, a term w * 0 adds
    a zero, and the multiply-adds are the source's (``numba_fusion``), the
    same in both kernels. (With LLVM's ``contract`` flag the two fused
    different products and agreed to rounding only.) Values equal, zeros'
    signs aside, at lr up to 3, where runs are chaotic."""
    X, y = boolean_function(str(rng.choice(["xor", "parity3", "majority3", "and"])))
    dtype = str(rng.choice(["float32", "float64"]))
    p = init_params(100, int(rng.integers(1, 7)), int(rng.integers(0, 2**32)), dtype=dtype, inputs=X.shape[1])
    lr = rng.uniform(0.05, 3, 100)
    a = run_backend("numba", p, X, y, 700, lr, 9, specialise=True)
    b = run_backend("numba", p, X, y, 700, lr, 9, specialise=False)
    np.testing.assert_array_equal(a["params"].to_flat(), b["params"].to_flat())
    for name in ("loss_history", "loss", "predictions", "solved_epoch", "diverged_epoch"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("case", range(3))
def test_the_looped_kernel_computes_the_unrolled_kernel_s_bits(case, rng):
    """The kernel that loops over the samples and the one that unrolls them
    (``rents_the_looped_kernel`` picks either for a run) on a random recipe,
    data set (1-4 inputs, boolean or real-valued, up to 16 samples), dtype
    and run size: every output equal, value for value (a running sum starts
    at +0, an unrolled one at its first term: zeros' signs may differ). Fails
    when the two sum the samples in different orders (checked with the
    unrolled kernel's former pairwise sums) or fuse different multiply-adds."""
    X, y = random_data(rng)
    n = int(rng.choice([int(rng.integers(1, config.NUMBA_CHUNK)), int(rng.integers(config.NUMBA_CHUNK, 150))]))
    opts, mom, wd, lr = random_recipe(rng, n)
    dtype = str(rng.choice(["float32", "float64"]))
    p = init_params(n, int(rng.integers(1, 6)), int(rng.integers(0, 2**32)), dtype=dtype, inputs=X.shape[1])
    epochs, record_every = int(rng.integers(20, 200)), int(rng.choice([0, 9]))
    print(n, dtype, p.hidden, X.shape, opts)
    a, b = (run_backend("numba", p, X, y, epochs, lr, record_every, momentum=mom, weight_decay=wd,
                        recipe_options=opts, looped=looped) for looped in (False, True))
    np.testing.assert_array_equal(a["params"].to_flat(), b["params"].to_flat())
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch", "target_epoch", "loss_history"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_short_run_of_a_new_variant_rents_the_looped_kernel(tmp_path, monkeypatch):
    """``rents_the_looped_kernel``: a run of at most NUMBA_LOOPED_MAX_WORK
    network-epochs per thread of a variant whose unrolled kernel is not
    compiled trains with the looped kernel, compiling only that; a longer run,
    or a short one after runs that rented the looped kernel up to the limit,
    compiles the unrolled kernel, which a short run then uses too; a variant
    of more than NUMBA_UNROLL_SAMPLES samples always loops."""
    from fastxor import jit_cache

    monkeypatch.setenv("FASTXOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(config, "NUMBA_LOOPED_MAX_WORK", 1000)
    limit = 1000 * numba.get_num_threads()
    monkeypatch.setattr(numba_kernel, "_RENTED", {})
    jit_cache.reset()
    numba_kernel._LOADED.clear()
    try:
        opts = dict(hidden=3, optimizer="adam", lr=0.01, activation="tanh", backend="numba")
        key = (3, "float32", numba_kernel.boolean_inputs(boolean_function("xor")[0]),
               make_recipe(3, np.dtype(np.float32), None, None, optimizer="adam", activation="tanh")[0])
        assert numba_kernel.rents_the_looped_kernel(key, 10, 0, limit)
        assert not numba_kernel.rents_the_looped_kernel(key, 10, 0, limit + 1)
        numba_kernel._LOADED.clear()
        fastxor.train(10, epochs=limit // 20, **opts)
        fastxor.train(10, epochs=limit // 20, **opts)
        assert {k[-1] for k in numba_kernel._LOADED} == {True}  # only the looped kernel was loaded
        fastxor.train(10, epochs=1, **opts)  # past the limit with the runs before it: the unrolled kernel
        assert False in {k[-1] for k in numba_kernel._LOADED}
        assert not numba_kernel.rents_the_looped_kernel(key, 10, 0, 10)
        parity5 = make_recipe(2, np.dtype(np.float32), None, None, inputs=5, samples=32)[0]
        assert numba_kernel.rents_the_looped_kernel((2, "float32", None, parity5), 10, 0, 10**12)
    finally:
        jit_cache.reset()
        numba_kernel._LOADED.clear()


def test_results_do_not_depend_on_threads_or_batching(rng):
    seed = int(rng.integers(0, 2**32))
    kw = dict(epochs=500, lr=0.9, seed=seed, backend="numba", record_every=50)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fastxor.train(300, **kw)
    finally:
        numba.set_num_threads(before)
    many = fastxor.train(300, **kw)
    prefix = fastxor.train(10, **kw)
    tail = fastxor.train(37, start=201, **kw)
    for a, b in zip(one.params.arrays(), many.params.arrays()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.loss_history, many.loss_history)
    for a, b in zip(prefix.params.arrays(), many.params[:10].arrays()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(tail.params.arrays(), many.params[201:238].arrays()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tail.solved_epoch, many.solved_epoch[201:238])


@pytest.mark.parametrize("function", ["xor", "parity5"], ids=["unrolled", "looped-samples"])
def test_a_network_s_result_does_not_depend_on_its_lane(function, rng):
    """A network trains to the same bits in whichever lane it lands: every
    lane runs the SIMD body (a last, partial chunk is padded, a run smaller
    than a chunk runs whole blocks of 16 lanes; such lanes once ran LLVM's
    scalar remainder loop, which rounds ReLU networks of these widths
    differently: the unrolled case failed 5 times in 5 then). Networks
    64..110 are the last 47 lanes of a 2-chunk run, lanes 17..63 of a
    1-chunk run, and a run of 47 (one partial chunk); for the kernel that
    unrolls the samples and for the one that loops over them."""
    seed = int(rng.integers(0, 2**32))
    kw = dict(epochs=300, lr=float(rng.uniform(0.2, 0.6)), seed=seed, backend="numba", activation="relu",
              loss=str(rng.choice(["mse", "bce_logits"])), hidden=int(rng.integers(10, 17)), function=function)
    whole = fastxor.train(111, **kw)
    for part, first in ((fastxor.train(64, start=47, **kw), 17), (fastxor.train(47, start=64, **kw), 0)):
        for a, b in zip(part.params[first:].arrays(), whole.params[64:].arrays()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(part.loss[first:], whole.loss[64:])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diverging_network_is_flagged_and_the_others_go_on(backend, dtype, rng):
    """Network 0 is built to overflow at its first update: hidden units with
    zero weights give activations of exactly 0.5, so output weights near the
    float maximum with opposite signs cancel exactly; the output gradient is
    ordinary and lr * gradient pushes one of them past the maximum."""
    init = with_diverging_network(init_params(5, 2, int(rng.integers(0, 2**32)), dtype=dtype))
    lr = np.array([np.finfo(dtype).max * 0.5, 0.3, 0.3, 0.3, 0.3])
    r = fastxor.train(init=init, epochs=200, lr=lr, dtype=dtype, backend=backend, record_every=10)
    assert r.diverged.tolist() == [True, False, False, False, False]
    assert r.diverged_epoch[0] == 0
    for a, a0 in zip(r.params[0].arrays(), init[0].arrays()):
        np.testing.assert_array_equal(a, a0)  # frozen at its last finite parameters
    healthy = fastxor.train(init=init[1:], epochs=200, lr=0.3, dtype=dtype, backend=backend)
    for a, b in zip(r.params[1:].arrays(), healthy.params.arrays()):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(r.loss).all()


def test_kernel_source_is_generated_per_width():
    src = numba_kernel.kernel_source(3, "float32")
    assert "w1_2_1" in src and "w1_3_0" not in src
    assert "x0_0 = X[0, 0]" in src  # generic kernel reads X at run time
    xor = numba_kernel.kernel_source(3, "float32", numba_kernel.boolean_inputs(boolean_function("xor")[0]))
    assert "* x" not in xor and "sig((w1_0_0 + w1_0_1) + b1_0)" in xor


@pytest.mark.parametrize("hidden, dtype, options, function", [
    (2, "float32", {}, "xor"), (5, "float32", {}, "xor"), (3, "float64", {}, "xor"),
    (2, "float32", dict(optimizer="adam"), "xor"),
    # the variant test_recipes' float32 recipe test compiles: shared through the kernel cache
    (2, "float32", dict(loss="bce", activation="tanh", momentum=0.9, target_loss=0.05), "xor"),
    (3, "float32", {}, "parity3"), (4, "float32", {}, "parity4"),  # D = 3, 4: unrolled samples
    (3, "float32", {}, "parity5"), (2, "float32", {}, "parity8"),  # 32 and 256 samples: the loop over samples
    (2, "float32", dict(loss="bce_logits"), "xor"),  # a run recording no loss: the quiet kernel
])
def test_training_loop_compiles_to_simd(hidden, dtype, options, function):
    """A kernel that LLVM leaves scalar is still correct, only ~10x slower, so
    no numeric test notices; the old 2-D chunk layout silently lost SIMD for
    H >= 3. Checked in the machine code Numba cached for the kernel the run
    used (no second compilation): the sigmoid's divide runs on vectors, for three widths, both dtypes and two recipes."""
    import re
    import shutil

    from fastxor import jit_cache

    if shutil.which("objdump") is None or jit_cache.cache_dir() is None:
        pytest.skip("needs objdump and a writable kernel cache")
    fastxor.train(2 * config.NUMBA_CHUNK, epochs=2, hidden=hidden, dtype=dtype, backend="numba", function=function,
                  **options)
    opts = dict(options)
    X, y = boolean_function(function)
    recipe = make_recipe(hidden, dtype, momentum=[opts.pop("momentum")] if "momentum" in opts else None,
                         inputs=X.shape[1], samples=len(y), **opts)[0]
    modules = [m for k, m in numba_kernel._LOADED.items() if k[:2] == (hidden, dtype)
               and k[3] == recipe.kernel_key]
    assert modules
    lanes = []
    for module in modules:
        for blob in _object_codes(module.__name__, "train_*"):
            asm = _disassembly([blob])
            suffix = "ps" if dtype == "float32" else "pd"
            width = {"xmm": 16, "ymm": 32, "zmm": 64}
            lanes += [width[r] // np.dtype(dtype).itemsize
                      for r in re.findall(rf"\bv?div{suffix}\s[^\n]*%([xyz]mm)\d+\s*$", asm, re.M)]
    # a packed divide fills at least a 128-bit register (4 float32 or 2 float64
    # lanes on a CPU without AVX; 8-16 with AVX2/AVX-512); a scalar loop has none
    assert lanes and min(lanes) * np.dtype(dtype).itemsize >= 16, f"no vector divide in the training loop: {lanes}"

def test_compiles_run_with_room_for_numba_s_recursion():
    """Numba's SSA pass recurses once per basic block: H = 32 with Adam died
    with a RecursionError at Python's default limit (it compiles in ~80 s
    with the limit raised: too slow for this suite). The limit is raised while
    a kernel may compile, for concurrent runs too, and restored after."""
    import sys
    import threading

    before = sys.getrecursionlimit()
    seen = []
    inside = threading.Event()
    release = threading.Event()

    def other():
        with numba_kernel.deep_recursion():
            inside.set()
            release.wait(10)
            seen.append(sys.getrecursionlimit())

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with numba_kernel.deep_recursion():
        seen.append(sys.getrecursionlimit())
    seen.append(sys.getrecursionlimit())  # the other run still compiling: not restored yet
    release.set()
    t.join()
    assert seen == [numba_kernel.RECURSION_LIMIT] * 3 and sys.getrecursionlimit() == before
    fastxor.train(3, epochs=1, backend="numba")  # a run leaves the limit as it found it
    assert sys.getrecursionlimit() == before


def test_variants_share_one_driver_that_never_links_them(rng):
    """The driver over chunks is one compiled function per dtype, and a
    variant's chunk functions are C callbacks it calls by address: two
    variants run through the same driver, whose code holds none of theirs
    (no floating-point arithmetic at all: it only copies), and each variant
    has its own cached chunk functions."""
    from fastxor import jit_cache

    hidden = int(rng.integers(1, 4))
    fastxor.train(70, epochs=3, hidden=hidden, backend="numba", seed=int(rng.integers(1000)))
    fastxor.train(70, epochs=3, hidden=hidden, backend="numba", momentum=0.9, seed=int(rng.integers(1000)))
    import shutil

    if shutil.which("objdump") is None or jit_cache.cache_dir() is None:
        pytest.skip("needs objdump and a writable kernel cache")
    driver = numba_kernel.get_driver("float32")
    assert driver is numba_kernel.get_driver("float32")
    chunks = {m.__name__: m for k, m in numba_kernel._LOADED.items() if k[0] == hidden and k[1] == "float32"}
    compiled = [m for m in chunks.values() if "train_chunk" in m.__dict__.get("_compiled", {})]
    assert len(compiled) >= 2
    arithmetic = re.compile(r"\b(v?(mul|div|add)[sp]s|vfn?madd\w*)\s", re.M)
    driver_code = _disassembly(_object_codes(driver.module_name, "train_scalar"))
    assert "call" in driver_code and not arithmetic.search(driver_code)
    for m in compiled:  # the check can fail: a variant's own code has the arithmetic
        assert arithmetic.search(_disassembly(_object_codes(m.__name__, "train_chunk")))


def test_the_final_pass_compiles_without_the_vectorisers(rng):
    """The final pass runs once per network and run, so it compiles without
    LLVM's vectorisers (in a third of the time): its machine code holds
    scalar arithmetic only, the training kernel's packed arithmetic (so the
    check can fail). Its results are held to the reference by every other test."""
    import shutil

    from fastxor import jit_cache

    if shutil.which("objdump") is None or jit_cache.cache_dir() is None or not config.NUMBA_DIRECT_IR:
        pytest.skip("needs objdump, a writable kernel cache and fastxor's own compiler")
    options = dict(hidden=int(rng.integers(1, 6)), optimizer=str(rng.choice(["sgd", "adam"])),
                   activation=str(rng.choice(["sigmoid", "tanh", "relu"])))
    fastxor.train(70, epochs=3, lr=0.05, backend="numba", seed=int(rng.integers(1000)), record_every=1, **options)
    recipe = make_recipe(options["hidden"], "float32", optimizer=options["optimizer"],
                         activation=options["activation"])[0]
    module = next(m for k, m in numba_kernel._LOADED.items() if k[3] == recipe.kernel_key)
    assert {"train_chunk", "finish_chunk_scalar"} <= set(module._compiled)
    packed, scalar = (re.compile(rf"\b(v(f\w*|add|sub|mul|div)|add|sub|mul|div){kind}[sd]\s", re.M)  # AVX or SSE
                      for kind in "ps")
    finish = _disassembly(_object_codes(module.__name__, "finish_chunk_scalar"))
    assert scalar.search(finish) and not packed.search(finish)
    assert packed.search(_disassembly(_object_codes(module.__name__, "train_chunk")))


def _object_codes(modname, function):
    """The machine code (ELF objects) cached for ``function`` (a glob) of the
    module named ``modname``: Numba's entries (``.nbc``) or those
    ``numba_direct_ir`` compiled (``.fxo``)."""
    from fastxor import jit_cache
    from fastxor.backends import numba_direct_ir

    d = jit_cache.cache_dir()
    blobs = [numba_direct_ir.object_code(f) for f in d.glob(f"{modname}.{function}.*.fxo")]
    for nbc in (d / "__pycache__").glob(f"{modname}.{function}-*.nbc"):
        blob = nbc.read_bytes()
        assert b"\x7fELF" in blob, f"no object code in {nbc.name}"
        blobs.append(blob[blob.index(b"\x7fELF"):])
    return blobs


def _disassembly(blobs):
    """objdump's disassembly of machine code (ELF objects)."""
    import subprocess
    import tempfile

    out = ""
    for blob in blobs:
        with tempfile.NamedTemporaryFile(suffix=".o") as obj:
            obj.write(blob)
            obj.flush()
            out += subprocess.run(["objdump", "-d", obj.name], capture_output=True, text=True, check=True).stdout
    assert out, "no cache entry"
    return out


def test_a_run_that_records_no_loss_compiles_the_quiet_kernel(rng, monkeypatch):
    """A BCE recipe without a target needs the loss only on the epochs it
    records: a run that records none compiles ``train_quiet`` (the body
    without the loss alone: about 40 % less to compile for a new variant)
    and trains exactly what the full kernel trains, bit for bit. (The
    unrolled kernel: the looped one has no quiet form.)"""
    monkeypatch.setattr(config, "NUMBA_LOOPED_MAX_WORK", 0)
    n = int(rng.integers(2, 3 * config.NUMBA_CHUNK))  # one lane group below a chunk, several above
    kw = dict(epochs=300, hidden=int(rng.integers(1, 6)), loss=str(rng.choice(["bce", "bce_logits"])),
              lr=rng.uniform(0.2, 3.0, n), seed=int(rng.integers(2**32)), backend="numba",
              activation=str(rng.choice(["sigmoid", "tanh"])))
    print(n, kw)
    quiet = fastxor.train(n, **kw)
    recipe = make_recipe(kw["hidden"], "float32", loss=kw["loss"], activation=kw["activation"])[0]
    module = next(m for k, m in numba_kernel._LOADED.items() if k[3] == recipe.kernel_key)
    assert {"train_quiet", "train_quiet_partial"} & set(module._compiled)
    recorded = fastxor.train(n, record_every=7, **kw)
    assert {"train_chunk", "train_chunk_partial"} & set(module._compiled)
    for a, b in zip(quiet.params.arrays(), recorded.params.arrays()):
        np.testing.assert_array_equal(a, b)
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch"):
        np.testing.assert_array_equal(getattr(quiet, name), getattr(recorded, name), err_msg=name)
    assert quiet.loss_history is None and np.isfinite(recorded.loss_history).all()


def test_sel_is_a_conditional_expression():
    """``sel(c, x, y)``, the kernels' branch-free choice, gives what
    ``x if c else y`` gives, NaN comparisons (false) included, for floats and
    for a mix of integer widths."""
    from numba import njit

    from fastxor.backends.numba_vmath import select

    @njit
    def both(c, x, y):
        return select(c, x, y), x if c else y

    for x, y in ((1.5, -2.0), (np.float32(3.0), np.float32(np.nan)), (np.nan, 0.0)):
        for c in (x < y, x > y, x == x, False):
            a, b = both(c, x, y)
            assert (a == b) or (np.isnan(a) and np.isnan(b))

    @njit
    def widths(c, x, y):
        return select(c, x, y)

    assert widths(True, np.int32(-3), np.int64(2**40)) == -3
    assert widths(np.int64(0), np.int32(-3), np.int64(2**40)) == 2**40


def test_memoised_typing_compiles_the_same_code_and_is_undone():
    """Numba's typing memoised (``numba_fast_typing``) gives the same LLVM IR
    as Numba alone for a fresh random unrolled body; its patch is gone after
    the block (also when the block raises), it nests, and a call that does
    not type still raises each time."""
    from numba import njit
    from numba.core.types.functions import BaseFunction

    from fastxor.backends import numba_fast_typing

    original = BaseFunction.__dict__["get_call_type"]
    rng = np.random.default_rng(int(os.environ.get("FASTXOR_TEST_SEED", "0")) + 11)
    ops = ["+", "-", "*"]
    body = ["    v0 = x", "    v1 = y"]
    for i in range(2, 60):  # each statement combines two earlier values: many repeated (op, types) calls
        a, b = rng.integers(0, i, size=2)
        c = f"np.float32({rng.normal():.6f})" if rng.random() < 0.7 else str(rng.integers(1, 9))  # float64 after
        body.append(f"    v{i} = v{a} {rng.choice(ops)} v{b} {rng.choice(ops)} {c}")
    source = "def f(x, y):\n" + "\n".join(body) + "\n    return v59\n"

    def compiled(memoised):
        namespace = {"np": np}
        exec(source, namespace)
        fn = njit("float32(float32, float32)", fastmath=config.NUMBA_FASTMATH)
        if memoised:
            with numba_fast_typing.memoised_call_types():
                with numba_fast_typing.memoised_call_types():  # nested: one patch, undone once
                    assert BaseFunction.__dict__["get_call_type"] is not original
                    fn = fn(namespace["f"])
                assert BaseFunction.__dict__["get_call_type"] is not original
        else:
            fn = fn(namespace["f"])
        assert BaseFunction.__dict__["get_call_type"] is original
        # names differ per compile: mangled ones are blanked, and so are the lengths of
        # the strings holding them (a unique id's digits: seen 136 against 137 bytes)
        ir = re.sub(r"_ZN[\w$.]+", "NAME", next(iter(fn.inspect_llvm().values())))
        ir = re.sub(r"\[\d+ x i8\] c\"([^\"]*NAME)", r'[N x i8] c"\1', ir)
        return re.sub(r"(?m)^(source_filename|; ModuleID).*$", "", ir)

    plain = compiled(False)
    memoised = compiled(True)
    assert len(numba_fast_typing._MEMO) > 0
    assert "fmul" in plain and plain == memoised

    def wrong(x):
        return x + "text"

    for _ in range(2):
        with pytest.raises(numba.core.errors.TypingError):
            with numba_fast_typing.memoised_call_types():
                njit(wrong)(np.float32(1.0))
        assert BaseFunction.__dict__["get_call_type"] is original


def _fresh_variant(rng):
    """Training options of a variant no cache holds (a random recipe and width)."""
    return dict(hidden=int(rng.integers(2, 6)), optimizer=str(rng.choice(["sgd", "adam"])), lr=0.05,
                activation=str(rng.choice(["sigmoid", "tanh"])), loss=str(rng.choice(["mse", "bce"])))


@pytest.mark.parametrize("child", ["compiles", "fails", "hangs", "not worth it"])
def test_a_new_variant_compiles_its_final_pass_in_a_second_process(child, rng, tmp_path, monkeypatch):
    """With FASTXOR_COMPILE_ASIDE on (``numba_compile_aside``), a new variant's ``finish_chunk`` is
    compiled by a second process into the cache and loaded from there; where
    that process fails, or is still busy after ``WAIT_S``, it is stopped and
    this one compiles it; for a training kernel shorter than
    ``NUMBA_COMPILE_ASIDE_MIN_LINES`` none starts. Either way the results
    equal a run compiled in one process, bit for bit."""
    from fastxor import jit_cache

    options = _fresh_variant(rng)
    n, epochs = int(rng.integers(65, 200)), int(rng.integers(20, 80))
    monkeypatch.setenv("FASTXOR_COMPILE_ASIDE", "0")
    want = fastxor.train(n, epochs=epochs, seed=3, backend="numba", **options)
    monkeypatch.setenv("FASTXOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FASTXOR_COMPILE_ASIDE", "1")
    monkeypatch.setattr(numba_compile_aside, "usable_cores", lambda: 2)
    monkeypatch.setattr(config, "NUMBA_COMPILE_ASIDE_MIN_LINES", 10**9 if child == "not worth it" else 0)
    if child == "fails":
        monkeypatch.setattr(numba_compile_aside, "_CHILD", "import sys; sys.exit(3)")
    if child == "hangs":
        monkeypatch.setattr(numba_compile_aside, "_CHILD", "import time; time.sleep(600)")
        monkeypatch.setattr(numba_compile_aside, "WAIT_S", 1.0)
    children, start = [], numba_compile_aside.start
    monkeypatch.setattr(numba_compile_aside, "start", lambda *a: children.append(start(*a)) or children[-1])
    monkeypatch.setattr(numba_kernel, "_LOADED", {})
    jit_cache.reset()
    monkeypatch.setattr(jit_cache, "_LOADED", {})
    try:
        got = fastxor.train(n, epochs=epochs, seed=3, backend="numba", **options)
        module = next(iter(numba_kernel._LOADED.values()))
        assert module.__file__.startswith(str(tmp_path))
        finish = module._compiled["finish_chunk_scalar"]
        if child == "not worth it":
            assert children == [] and not finish.from_cache
        else:
            assert len(children) == 1 and children[0].poll() is not None  # started, and ended or stopped
            assert finish.from_cache == (child == "compiles")  # loaded what the other process compiled
    finally:
        jit_cache.reset()
    for a, b in zip(want.params.arrays(), got.params.arrays()):
        np.testing.assert_array_equal(a, b)
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch"):
        np.testing.assert_array_equal(getattr(want, name), getattr(got, name), err_msg=name)


def test_the_second_compile_process_is_stopped_when_this_one_stops(monkeypatch):
    """An error or Ctrl-C while this process compiles stops the second
    process at once: nothing is waited for, nothing keeps running."""
    import subprocess
    import sys

    started = []

    def sleeper(module, name):
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return started[-1]

    def interrupted(module, name):
        raise KeyboardInterrupt

    monkeypatch.setattr(numba_compile_aside, "start", sleeper)
    monkeypatch.setattr(numba_kernel, "_is_compiled", lambda module, name: False)
    monkeypatch.setattr(numba_kernel, "chunk_function", interrupted)
    monkeypatch.setattr(config, "NUMBA_COMPILE_ASIDE_MIN_LINES", 0)
    recipe = make_recipe(2, np.float32)[0]
    with pytest.raises(KeyboardInterrupt):
        numba_kernel._driver(numba_kernel.get_kernel(2, "float32", None, recipe, False), 10, recipe, 0, False)
    assert started and started[0].poll() is not None


def test_an_interrupted_call_keeps_its_arrays_until_its_threads_finish():
    """The threaded driver passes arrays by address. When Ctrl-C ends its
    caller while threads still train, the work the threads run must still
    hold the arrays they write: nothing is freed under them (it was: a
    segfault at exit in about 1 of 10 interrupted runs of ``fastxor
    analyse``). Here the driver is a stand-in that waits while the caller is
    interrupted; the arrays stay alive until it returns, and are freed after."""
    import gc
    import signal
    import threading
    import time
    import weakref

    if numba.get_num_threads() < 2:
        pytest.skip("needs two threads")
    release, calls = threading.Event(), []

    def driver(*args):  # stands for the C driver: training takes a while
        calls.append(args[-2:])
        release.wait(10)

    class Chunk:
        address = 0

    C = config.NUMBA_CHUNK
    threaded = numba_kernel._Threaded(driver, Chunk(), Chunk(), (C, 4, 2, 1, 3))
    n, f32 = 8 * C, np.float32

    def interrupted_call():
        arrays = [np.zeros((9, n), f32), np.zeros((0, n), f32), np.zeros((1, n), f32), np.zeros(3),
                  np.zeros((4, 2), f32), np.zeros(4, f32), np.zeros(4, f32), 0, 10, 0, True, np.zeros(n, f32),
                  np.zeros((n, 4), f32), *(np.full(n, -1) for _ in range(3)), np.zeros((1, 1), f32)]
        refs = [weakref.ref(a) for a in arrays if isinstance(a, np.ndarray)]

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        try:
            with pytest.raises(KeyboardInterrupt):
                threaded(*arrays)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return refs

    refs = interrupted_call()
    gc.collect()
    assert calls and all(r() is not None for r in refs)  # the threads still "write" them
    release.set()
    deadline = time.monotonic() + 10
    while any(r() is not None for r in refs) and time.monotonic() < deadline:
        time.sleep(0.01)
        gc.collect()
    assert all(r() is None for r in refs)  # and nothing else kept them


@pytest.mark.parametrize("bad, match", [
    (dict(solved=np.full(128, -1, dtype=np.int32)), "the solved array must be a C-contiguous int64 array: got int32"),
    (dict(X=np.zeros((2, 4), np.float32).T), "the X array must be a C-contiguous float32 array: got float32, not"),
    (dict(consts=np.zeros(3, np.float32)), "the consts array must be a C-contiguous float64 array"),
])
def test_the_driver_refuses_arrays_it_cannot_address(bad, match):
    """The driver reads and writes arrays by address: one of another dtype or
    layout is refused with a line naming it, before any thread starts."""
    class Chunk:
        address = 0

    n, f32 = 128, np.float32
    args = dict(P=np.zeros((9, n), f32), B=np.zeros((0, n), f32), rates=np.zeros((1, n), f32), consts=np.zeros(3),
                X=np.zeros((4, 2), f32), y=np.zeros(4, f32), sides=np.zeros(4, f32), epoch0=0, epochs=1,
                record_every=0, final=True, loss=np.zeros(n, f32), pred=np.zeros((n, 4), f32),
                solved=np.full(n, -1), diverged=np.full(n, -1), target=np.full(n, -1), history=np.zeros((1, 1), f32))
    threaded = numba_kernel._Threaded(lambda *a: pytest.fail("called"), Chunk(), Chunk(), (config.NUMBA_CHUNK, 4, 2, 1, 3))
    with pytest.raises(ValueError, match=re.escape(match)):
        threaded(**{**args, **bad})
