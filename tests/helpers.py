"""Helpers shared by the test modules (tests import from here, never from each other)."""
import numpy as np

from fastxor import backends, config
from fastxor.data import FUNCTIONS, boolean_function, target_sides
from fastxor.params import Params
from fastxor.state import Data, KernelOutput, Recipe, State, history_rows

EPS32 = np.finfo(np.float32).eps
FIELDS = ("loss", "predictions", "solved", "solved_epoch", "diverged", "diverged_epoch")


def random_config(rng, hidden, boolean):
    """(X, y, n, epochs, lr, record_every, init_scale, seed): a fresh random training case."""
    if boolean:
        X, y = boolean_function(str(rng.choice(list(FUNCTIONS))))
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


def make_recipe(hidden, dtype, momentum=None, weight_decay=None, **options):
    """(Recipe, momentum, weight_decay): ``options`` as Recipe's fields; the
    per-network momentum / weight decay arrays (or None) set its flags."""
    def per_net(v):
        return None if v is None or not np.any(v) else np.asarray(v, dtype=np.float64)

    momentum, weight_decay = per_net(momentum), per_net(weight_decay)
    recipe = Recipe(hidden, np.dtype(dtype), momentum=momentum is not None,
                    weight_decay=weight_decay is not None, **options)
    return recipe, momentum, weight_decay


def run_backend(name, p, X, y, epochs, lr, record_every=0, *, momentum=None, weight_decay=None,
                recipe_options=None, state=None, **kw):
    """Backend ``name``'s contract on Params ``p`` (any float dtype, longdouble
    for the reference) with the recipe of ``recipe_options`` (Recipe's
    fields), per-network ``momentum``/``weight_decay``: a dict of params
    (Params), loss, predictions, solved/diverged/target epochs, loss_history
    (or None), and the trained ``state`` (pass it back as ``state`` to go on)."""
    dt = p.dtype
    n = p.n_networks
    recipe, mom, wd = make_recipe(p.hidden, dt, np.broadcast_to(momentum, n) if momentum is not None else None,
                                  np.broadcast_to(weight_decay, n) if weight_decay is not None else None,
                                  **(recipe_options or {}))
    if state is None:
        state = State.fresh(p.to_flat(), np.asarray(lr, dtype=np.float64).astype(dt), recipe=recipe,
                            momentum=mom, weight_decay=wd)
    rows = history_rows(state.epoch + epochs, record_every) if record_every else None
    out = KernelOutput.empty(n, dt, rows)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    backends.get(name).run(state, Data(X, y, target_sides(y)), epochs, record_every, recipe, out, **kw)
    return dict(params=Params.from_flat(state.params, p.hidden), loss=out.loss,
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
