"""Backend ``numpy``: the NumPy reference, the definition of truth for every fast backend.

It follows the seed's derivation step by step, vectorised over networks and
nothing else — no fusion, no approximations, ``1 / (1 + exp(-z))`` from NumPy.
Shapes: N networks, S = 4 samples, H hidden units.

Semantics shared by all backends (and tested against PyTorch running the
seed's own code):

* epoch e: forward pass with the current parameters, loss = mean over the 4
  samples of (y_hat - y)^2 (``nn.MSELoss``), backpropagation, plain SGD step
  p <- p - lr * dloss/dp (``optim.SGD``). The loss recorded for epoch e is the
  one of that forward pass, before the update — what the seed prints.
* a network is *solved* by a forward pass whose 4 predictions all lie on their
  target's side of 0.5; ``solved_epoch`` is the first such epoch, where the
  parameters after the last update count as epoch ``epochs``.
* a network *diverges* when an update would make any parameter NaN or inf:
  that update is not applied, ``diverged_epoch`` records the epoch, and the
  network stays frozen at its last finite parameters while the others go on.
"""
import numpy as np

from ..data import solved_by, target_sides
from ..params import Params

NAME = "numpy"


def sigmoid(z):
    """The logistic function, exact to NumPy's ``exp`` (overflow gives 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def forward(p, X):
    """Hidden activations h (N,S,H) and predictions y_hat (N,S) of ``p`` on X."""
    # Hidden layer: z1 = x W1^T + b1 for every sample, then the sigmoid.
    z1 = (
        p.W1[:, None, :, 0] * X[None, :, 0, None]
        + p.W1[:, None, :, 1] * X[None, :, 1, None]
        + p.b1[:, None, :]
    )
    h = sigmoid(z1)
    # Output layer: z2 = h W2^T + b2, then the sigmoid.
    z2 = (h * p.W2[:, :, :]).sum(axis=2) + p.b2
    return h, sigmoid(z2)


def loss_of(y_hat, y):
    """nn.MSELoss(): mean over the 4 samples of the squared error, per network."""
    return ((y_hat - y) ** 2).mean(axis=1)


def gradients(p, X, y, h, y_hat):
    """d loss / d parameters by backpropagation, as a Params of gradients."""
    n_samples = X.shape[0]
    # (1) d loss / d y_hat = 2 (y_hat - y) / S   (the mean of MSELoss gives the 1/S)
    d_yhat = 2.0 * (y_hat - y) / n_samples
    # (2) through the output sigmoid: d loss / d z2 = d_yhat * y_hat (1 - y_hat)
    d_z2 = d_yhat * y_hat * (1.0 - y_hat)
    # (3) output weights and bias: dW2 = sum_s d_z2 h,  db2 = sum_s d_z2
    g_W2 = (d_z2[:, :, None] * h).sum(axis=1)[:, None, :]
    g_b2 = d_z2.sum(axis=1, keepdims=True)
    # (4) back to the hidden layer: d loss / d h = d_z2 W2,  d z1 = d h * h (1 - h)
    d_h = d_z2[:, :, None] * p.W2[:, :, :]
    d_z1 = d_h * h * (1.0 - h)
    # (5) hidden weights and biases: dW1 = sum_s d_z1 x,  db1 = sum_s d_z1
    g_W1 = np.stack([(d_z1 * X[None, :, i, None]).sum(axis=1) for i in range(2)], axis=2)
    g_b1 = d_z1.sum(axis=1)
    return Params(g_W1, g_b1, g_W2, g_b2)


def problem():
    return None  # NumPy is always there


def memory_bytes(n, recipe, rows):
    """``run_bytes`` plus the reference's per-epoch temporaries: Params views,
    gradients, new parameters and forward activations, a few (N, P) and
    (N, 4, H) float arrays at a time."""
    from ..state import run_bytes

    item = np.dtype(recipe.dtype).itemsize
    return run_bytes(n, recipe, rows) + n * item * (6 * recipe.n_params + 6 * 4 * recipe.hidden)


def run(state, data, epochs, record_every, recipe, out, final=True):
    """The backend contract (see ``fastxor.backends``): ``state`` trained in place."""
    flat = state.materialise()
    p = Params.from_flat(flat, recipe.hidden)
    p = train_epochs(p, data.X, data.y, state.lr, state.epoch, epochs, record_every,
                     state.solved_epoch, state.diverged_epoch, out.history)
    flat[...] = p.to_flat()
    if not final:
        state.epoch += epochs
        return out
    _, y_hat = forward(p, np.asarray(data.X, dtype=flat.dtype))
    out.loss[...] = loss_of(y_hat, np.asarray(data.y, dtype=flat.dtype))
    out.predictions[...] = y_hat
    final = state.epoch + epochs
    state.solved_epoch[(state.solved_epoch < 0) & solved_by(y_hat, data.sides)] = final
    state.epoch = final
    return out


def train_epochs(p, X, y, lr, epoch0, epochs, record_every, solved_epoch, diverged_epoch, history):
    """Epochs epoch0 .. epoch0 + epochs - 1 of full-batch SGD on every network of ``p``.

    All arithmetic in ``p``'s dtype (float32, float64 or longdouble). Fills
    ``solved_epoch``/``diverged_epoch`` (first events, -1 = none yet) and the
    columns e // k of ``history`` (N, R) for epochs e with e % k == 0 (k =
    ``record_every`` > 0). Returns the final Params.
    """
    dt = p.dtype
    X = np.asarray(X, dtype=dt)
    y = np.asarray(y, dtype=dt)
    lr = np.asarray(lr, dtype=dt)
    sides = target_sides(y)
    n = p.n_networks
    with np.errstate(invalid="ignore", over="ignore"):
        for epoch in range(epoch0, epoch0 + epochs):
            h, y_hat = forward(p, X)
            if record_every and epoch % record_every == 0:
                history[:, epoch // record_every] = loss_of(y_hat, y)
            first = (solved_epoch < 0) & solved_by(y_hat, sides)
            solved_epoch[first] = epoch
            g = gradients(p, X, y, h, y_hat)
            new = [a - lr.reshape((n,) + (1,) * (a.ndim - 1)) * ga for a, ga in zip(p.arrays(), g.arrays())]
            finite = np.ones(n, dtype=bool)
            for a in new:
                finite &= np.isfinite(a.reshape(n, -1)).all(axis=1)
            diverged_epoch[(diverged_epoch < 0) & ~finite] = epoch
            keep = [np.where(finite.reshape((n,) + (1,) * (a.ndim - 1)), a, old) for a, old in zip(new, p.arrays())]
            p = Params(*keep)
    return p
