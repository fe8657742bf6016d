"""Helpers shared by the test modules (tests import from here, never from each other)."""
import numpy as np

from fastxor import backends, config
from fastxor.data import TWO_INPUT, boolean_function, target_sides
from fastxor.params import Params, init_params
from fastxor.state import Data, KernelOutput, Recipe, State, history_rows

EPS32 = np.finfo(np.float32).eps

#: How many times its own rounding sensitivity (the reference's distance from
#: itself at a higher precision) a network may differ from the reference: the
#: kernels' vector exp/log/tanh and FMA contraction, and NumPy's per-CPU SIMD
#: paths, are other rounding perturbations of that size (seen: 9x with NumPy's
#: pre-AVX2 float32 tanh, 2.4x on AVX-512).
SENSITIVITY_K = 16
FIELDS = ("loss", "predictions", "solved", "solved_epoch", "diverged", "diverged_epoch")


def random_config(rng, hidden, boolean):
    """(X, y, n, epochs, lr, record_every, init_scale, seed): a fresh random training case."""
    if boolean:
        X, y = boolean_function(str(rng.choice(list(TWO_INPUT))))
    else:
        X, y = rng.uniform(-2, 2, (4, 2)), rng.uniform(0, 1, 4)
    n = int(rng.choice([1, 3, config.NUMBA_CHUNK - 1, config.NUMBA_CHUNK + 1, 150]))
    epochs = int(rng.choice([0, 1, 2, int(rng.integers(50, 1500))]))
    lr = np.exp(rng.uniform(np.log(0.02), np.log(4.0), n))
    record_every = int(rng.choice([0, 1, int(rng.integers(2, 50))]))
    scale = float(rng.uniform(0.3, 3.0))
    seed = int(rng.integers(0, 2**63))
    return X, y, n, epochs, lr, record_every, scale, seed


def with_diverging_network(p):
    """``p`` with network 0 built to overflow at its first update when its lr
    is half the float maximum."""
    big = np.finfo(p.dtype).max * 0.99
    W1, b1, W2, b2 = (a.copy() for a in p.arrays())
    W1[0], b1[0], W2[0, 0], b2[0] = 0.0, 0.0, (big, -big), 2.0
    return Params(W1, b1, W2, b2)


def make_recipe(hidden, dtype, momentum=None, weight_decay=None, inputs=2, samples=4, **options):
    """(Recipe, momentum, weight_decay): ``options`` as Recipe's fields; the
    per-network momentum / weight decay arrays (or None) set its flags."""
    def per_net(v):
        return None if v is None or not np.any(v) else np.asarray(v, dtype=np.float64)

    momentum, weight_decay = per_net(momentum), per_net(weight_decay)
    recipe = Recipe(hidden, np.dtype(dtype), inputs=inputs, samples=samples, momentum=momentum is not None,
                    weight_decay=weight_decay is not None, **options)
    return recipe, momentum, weight_decay


def run_backend(name, p, X, y, epochs, lr, record_every=0, *, momentum=None, weight_decay=None,
                recipe_options=None, state=None, **kw):
    """Backend ``name``'s contract on Params ``p`` (any float dtype, longdouble
    for the reference) with the recipe of ``recipe_options`` (Recipe's
    fields), per-network ``momentum``/``weight_decay``: a dict of params
    (Params), loss, predictions, solved/diverged/target epochs, loss_history
    (or None), and the trained ``state`` (pass it back as ``state`` to go on).
    ``recipe_options["lr_output"]``: None, or the output layer's rates (n,)."""
    dt = p.dtype
    n = p.n_networks
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    options = dict(recipe_options or {})
    lr_out = options.pop("lr_output", None)
    recipe, mom, wd = make_recipe(p.hidden, dt, np.broadcast_to(momentum, n) if momentum is not None else None,
                                  np.broadcast_to(weight_decay, n) if weight_decay is not None else None,
                                  inputs=X.shape[1], samples=len(y), lr_output=lr_out is not None, **options)
    if state is None:
        state = State.fresh(p.to_flat(), np.asarray(lr, dtype=np.float64).astype(dt), recipe=recipe,
                            momentum=mom, weight_decay=wd,
                            lr_output=None if lr_out is None else np.broadcast_to(lr_out, n).astype(dt))
    rows = history_rows(state.epoch + epochs, record_every) if record_every else None
    out = KernelOutput.empty(n, recipe, rows)
    backends.get(name).run(state, Data(X, y, target_sides(y)), epochs, record_every, recipe, out, **kw)
    return dict(params=Params.from_flat(state.params, p.hidden, p.inputs), loss=out.loss,
                predictions=out.predictions, solved_epoch=state.solved_epoch,
                diverged_epoch=state.diverged_epoch, target_epoch=state.target_epoch,
                loss_history=out.history, state=state)


def assert_same_result(a, b):
    """Two TrainResults hold identical arrays."""
    for x, y in zip(a.params.arrays(), b.params.arrays()):
        np.testing.assert_array_equal(x, y)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    if a.loss_history is None:
        assert b.loss_history is None
    else:
        np.testing.assert_array_equal(a.loss_history, b.loss_history)


def rounding_sensitivity(p, X, y, epochs, lr, k, r32, **kw):
    """How far float32 rounding alone moves this trajectory: the float32
    reference ``r32`` against the float64 one, per history entry and per
    parameter. Small on most of a run; large where a network leaves a
    plateau, where the escape epoch shifts with rounding (seen: 1e-5 in the
    loss history near epoch 7 700), so fixed tolerances get it added."""
    r64 = run_backend("numpy", p.astype(np.float64), X, y, epochs, np.asarray(lr, np.float64), k, **kw)
    h = np.abs(r64["loss_history"] - r32["loss_history"])
    return h, [np.abs(a - b) for a, b in zip(r64["params"].arrays(), r32["params"].arrays())]


def random_recipe(rng, n):
    """(recipe options, momentum (n,) or None, weight decay (n,) or None, lr (n,)):
    a fresh random recipe, per-network coefficients mixing zeros and values."""
    optimizer = str(rng.choice(["sgd", "sgd", "adam", "adamw"]))
    opts = dict(optimizer=optimizer, loss=str(rng.choice(["mse", "bce", "bce_logits"])),
                activation=str(rng.choice(["sigmoid", "tanh", "relu"])))
    mom = None
    if optimizer == "sgd":
        lr = np.exp(rng.uniform(np.log(0.05), np.log(1.0), n))
        if rng.random() < 0.7:
            opts["nesterov"] = bool(rng.random() < 0.4)
            mom = rng.uniform(0.1, 0.95, n)
            if not opts["nesterov"]:
                mom[rng.random(n) < 0.3] = 0.0  # networks without momentum keep no buffer
                opts["dampening"] = float(rng.choice([0.0, rng.uniform(0, 0.5)]))
    else:
        lr = np.exp(rng.uniform(np.log(1e-3), np.log(0.05), n))
        beta1 = rng.uniform(0.7, 0.95) if rng.random() < 0.8 else rng.uniform(0.2, 0.5)  # torch's two lerp forms
        opts["betas"] = (float(beta1), float(rng.uniform(0.99, 0.9999)))
        opts["eps"] = float(10 ** rng.uniform(-9, -5))
    wd = rng.uniform(0, 1e-2, n) * (rng.random(n) < 0.7) if rng.random() < 0.5 else None
    if rng.random() < 0.5:
        opts["target_loss"] = float(rng.uniform(0.01, 0.2))
    if rng.random() < 0.4:  # the output layer's own rates (torch: a second parameter group)
        opts["lr_output"] = lr * np.exp(rng.uniform(-1.5, 0.5, n))
    if opts["loss"] == "mse" and rng.random() < 0.4:
        calm_linear_output(opts, lr)
    return opts, mom, wd, lr


def calm_linear_output(opts, lr):
    """A linear output unit in ``opts``, its rates cut to a quarter, in place:
    without the sigmoid's slope (at most 1/4) the same rates take steps up
    to 4x longer, and most networks of a random recipe would turn chaotic."""
    opts["output"] = "linear"
    lr *= 0.25
    if "lr_output" in opts:
        opts["lr_output"] = opts["lr_output"] * 0.25


def random_data(rng):
    """(X, y): a random one of the named boolean functions of 2-4 inputs or
    a truth table, or a few real-valued points (targets in [0, 1])."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return boolean_function(str(rng.choice(["parity2", "parity3", "parity4", "majority3"])))
    if kind == 1:
        d = int(rng.integers(1, 5))
        return boolean_function("".join(str(b) for b in rng.integers(0, 2, 2**d)))
    s, d = int(rng.integers(1, 13)), int(rng.integers(1, 5))
    return rng.normal(0, 1.5, (s, d)), rng.uniform(0, 1, s)


def assert_random_recipes_match_reference(backend, rng, data=None, rounds=2):
    """``backend`` against the reference: float64, 70 networks (for numba a
    full and a partial SIMD chunk), ``rounds`` fresh random recipes (each a
    new kernel to compile: 2 per test and run keep the suite within its time,
    and every run draws new ones).

    The same float64 operations up to FMA contraction and few-ulp vector
    exp/log/tanh. Each network's parameters lie within SENSITIVITY_K x its rounding
    sensitivity (the larger of two perturbations' effects on the reference:
    long double, and the initial parameters moved by one ulp) plus 1e-9 relative
    (all but 5 %; every one within SENSITIVITY_K ** 2 x), wherever that
    sensitivity is below 1e-6 (Adam normalises its steps, so rounding
    differences grow faster than under SGD: seen 1e-11 in 300 epochs);
    networks long double moves by < 1e-12 agree with identical event epochs
    and loss histories, and their optimizer buffers lie within SENSITIVITY_K ** 2
    x the buffers' own sensitivity."""
    for _ in range(rounds):
        hidden = int(rng.integers(1, 4))
        X, y = data(rng) if data else boolean_function(str(rng.choice(["xor", "nand", "or"])))
        opts, mom, wd, lr = random_recipe(rng, 70)
        p = init_params(70, hidden, int(rng.integers(0, 2**32)), dtype="float64", inputs=X.shape[1])
        rec = int(rng.choice([0, 1, 7]))
        kw = dict(recipe_options=opts, momentum=mom, weight_decay=wd)
        k = run_backend(backend, p, X, y, 300, lr, rec, **kw)
        r = run_backend("numpy", p, X, y, 300, lr, rec, **kw)
        r80 = run_backend("numpy", p.astype(np.longdouble), X, y, 300, lr, rec, **kw)
        ulp = run_backend("numpy", Params(*[np.nextafter(a, np.inf) for a in p.arrays()]), X, y, 300, lr, rec, **kw)
        kf, rf = k["params"].to_flat(), r["params"].to_flat()
        # one perturbation samples a network's sensitivity, and can miss it: at seed 2773362561
        # (Nesterov, lr 0.6, 34 samples) long double moved a network by 2.7e-9, one ulp by 5.3e-7,
        # and the kernel (as fastxor with LLVM's vectoriser) by 3.7e-6
        sens = np.maximum(np.abs(r80["params"].to_flat() - rf).max(axis=0).astype(float),
                          np.abs(ulp["params"].to_flat() - rf).max(axis=0))
        bounded, calm = sens < 1e-6, sens < 1e-12
        assert bounded.mean() >= 0.8 and calm.mean() >= 0.3, (opts, bounded.mean(), calm.mean())
        err, tol = np.abs(kf - rf).max(axis=0)[bounded], 1e-9 * (1 + np.abs(rf).max(axis=0))[bounded]
        # one perturbation's effect samples a network's sensitivity; another's may be
        # larger where Adam's normalised steps amplify it (seen: 43x, sens 2e-7, at
        # seed 4051760547): every network within K^2, all but 5 % within K
        assert (err <= SENSITIVITY_K ** 2 * sens[bounded] + tol).all(), opts
        assert (err <= SENSITIVITY_K * sens[bounded] + tol).mean() >= 0.95, opts
        if r["state"].buffers is not None:
            # the optimizer's buffers (gradient-sized) of calm networks, held to the same
            # K^2 x their own sensitivity: Adam's normalised step amplifies a gradient
            # component's rounding as it crosses zero (seen: 54x, seed 2665734822)
            kb, rb = k["state"].buffers[:, calm], r["state"].buffers[:, calm]
            bsens = np.abs(r80["state"].buffers[:, calm] - rb).max(axis=0).astype(float)
            assert (np.abs(kb - rb) <= SENSITIVITY_K ** 2 * bsens + 1e-9 * np.abs(rb) + 1e-12).all(), opts
        else:
            assert k["state"].buffers is None
        np.testing.assert_allclose(k["loss"][calm], r["loss"][calm], rtol=1e-9, atol=1e-12)
        for key in ("solved_epoch", "diverged_epoch", "target_epoch"):
            np.testing.assert_array_equal(k[key][calm], r[key][calm], err_msg=key)
        if rec:
            np.testing.assert_allclose(k["loss_history"][calm], r["loss_history"][calm], rtol=1e-9, atol=1e-12)


def assert_float32_recipe_within_rounding(backend, rng):
    """``backend``, float32 momentum + tanh + BCE: within ``SENSITIVITY_K`` times
    the float32 reference's own distance from float64."""
    X, y = boolean_function("xor")
    p = init_params(100, 2, int(rng.integers(0, 2**32)), dtype="float32")
    lr = rng.uniform(0.05, 0.5, 100)
    kw = dict(recipe_options=dict(loss="bce", activation="tanh", target_loss=0.05), momentum=0.9)
    k = run_backend(backend, p, X, y, 1000, lr, 10, **kw)
    r = run_backend("numpy", p, X, y, 1000, lr, 10, **kw)
    r64 = run_backend("numpy", p.astype(np.float64), X, y, 1000, lr, 10, **kw)
    sens = np.abs(r64["params"].to_flat() - r["params"].to_flat()).max(axis=0)
    err = np.abs(k["params"].to_flat() - r["params"].to_flat()).max(axis=0)
    assert (err <= SENSITIVITY_K * sens + 1e-5 * (1 + np.abs(r["params"].to_flat()).max(axis=0))).all()
    assert (k["target_epoch"] >= 0).sum() > 10  # the target is exercised
    assert np.mean(k["target_epoch"] != r["target_epoch"]) <= 0.05


def assert_diverging_network_freezes(backend):
    """An update that overflows is not applied, the epoch is flagged, and the
    network (parameters and momentum buffer) stays frozen while the others
    train, across segments."""
    X, y = boolean_function("xor")
    p = with_diverging_network(init_params(5, 2, 3, dtype="float64"))
    lr = np.array([np.finfo(np.float64).max / 2, 0.5, 0.5, 0.5, 0.5])
    a = run_backend(backend, p, X, y, 3, lr, momentum=0.9)
    assert a["diverged_epoch"][0] == 0 and (a["diverged_epoch"][1:] == -1).all()
    np.testing.assert_array_equal(a["params"].to_flat()[:, 0], p.to_flat()[:, 0])
    assert np.isfinite(a["state"].buffers).all()
    frozen = a["state"].buffers[:, 0].copy()
    b = run_backend(backend, p, X, y, 5, lr, momentum=0.9, state=a["state"])
    np.testing.assert_array_equal(b["params"].to_flat()[:, 0], p.to_flat()[:, 0])
    np.testing.assert_array_equal(b["state"].buffers[:, 0], frozen)
    assert b["diverged_epoch"][0] == 0 and (b["diverged_epoch"][1:] == -1).all()
