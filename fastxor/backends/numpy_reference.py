"""Backend ``numpy``: the NumPy reference, the definition of truth for every fast backend.

It follows the seed's derivation step by step, vectorised over networks and
nothing else — no fusion, no approximations, NumPy's own ``exp``/``log``/
``tanh``. Shapes: N networks, S samples of D inputs, H hidden units. The optimizers
read like PyTorch's documentation of ``torch.optim.SGD`` and ``Adam``.

Semantics shared by all backends (and tested against PyTorch):

* epoch e: forward pass with the current parameters; the loss (``nn.MSELoss``,
  ``nn.BCELoss`` on the sigmoid output, or ``nn.BCEWithLogitsLoss`` on its
  pre-activation, mean over the S samples; a linear output unit: MSE on the
  pre-activation itself); backpropagation; one optimizer step (SGD with
  momentum, dampening, Nesterov and weight decay; Adam; AdamW), with the
  output layer's own learning rate where one is given (torch: a second
  parameter group).
  The loss recorded for epoch e is the one of that forward pass, before the
  update — what the seed prints.
* a network is *solved* by a forward pass whose S predictions all lie on their
  target's side of 0.5; ``solved_epoch`` is the first such epoch, where the
  parameters after the last update count as epoch ``epochs``. With a
  ``target_loss``, ``target_epoch`` is the first epoch whose loss is <= it.
* a network *diverges* when an update would make any parameter or optimizer
  buffer NaN or inf: that update is not applied, ``diverged_epoch`` records
  the epoch, and the network stays frozen at its last finite state while the
  others go on.
"""
import numpy as np

from ..data import solved_by, target_sides
from ..params import Params
from ..state import param_rows

NAME = "numpy"

#: torch's clamps in nn.BCELoss: each log at -100, the backward's denominator at 1e-12.
BCE_LOG_MIN = -100.0
BCE_EPSILON = 1e-12


def sigmoid(z):
    """The logistic function, exact to NumPy's ``exp`` (overflow gives 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def activate(name, z):
    """The hidden layer's activation: sigmoid, tanh or ReLU."""
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    return np.maximum(z, np.zeros((), z.dtype))


def activation_backward(name, d_h, z, h):
    """d loss / d z from d loss / d h, the input z and output h, as torch's
    backward computes it (ReLU: slope 1 where z > 0, else 0 — also at 0)."""
    one = np.ones((), h.dtype)
    if name == "sigmoid":
        return d_h * h * (one - h)
    if name == "tanh":
        return d_h * (one - h * h)
    return d_h * (z > 0).astype(h.dtype)


def forward(p, X, activation="sigmoid", output="sigmoid"):
    """(z1, h, z2, y_hat): hidden pre-activations and outputs (N,S,H), the
    output unit's pre-activation and its output (N,S): its sigmoid, or z2
    itself for a linear output. The hidden sums run over the inputs in
    order, then add the bias."""
    z1 = p.W1[:, None, :, 0] * X[None, :, 0, None]
    for i in range(1, X.shape[1]):
        z1 = z1 + p.W1[:, None, :, i] * X[None, :, i, None]
    z1 = z1 + p.b1[:, None, :]
    h = activate(activation, z1)
    z2 = (h * p.W2[:, :, :]).sum(axis=2) + p.b2
    return z1, h, z2, (z2 if output == "linear" else sigmoid(z2))


def loss_of(y_hat, y, loss="mse", z2=None):
    """The loss per network, mean over the S samples, as torch's criteria."""
    dt = y_hat.dtype
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if loss == "mse":
            terms = (y_hat - y) ** 2
        elif loss == "bce":  # torch: (y - 1) max(log1p(-o), -100) - y max(log(o), -100)
            lo = dt.type(BCE_LOG_MIN)
            terms = (y - 1) * np.maximum(np.log1p(-y_hat), lo) - y * np.maximum(np.log(y_hat), lo)
        else:  # bce_logits: (1 - y) z - log_sigmoid(z), log_sigmoid(z) = min(z, 0) - log1p(exp(-|z|))
            log_sigmoid = np.minimum(z2, 0) - np.log1p(np.exp(-np.abs(z2)))
            terms = (1 - y) * z2 - log_sigmoid
    return terms.mean(axis=1)


def output_gradient(y_hat, y, loss, output="sigmoid"):
    """d loss / d z2 per sample (N,S): the criterion's backward, then the
    output sigmoid's (for ``bce_logits`` torch differentiates z2 directly;
    a linear output has slope 1)."""
    dt = y_hat.dtype
    n_samples = y.shape[-1]
    one = dt.type(1)
    if output == "linear":  # MSE on z2 itself: 2 (z2 - y) / S
        return 2 * (y_hat - y) / n_samples
    if loss == "mse":  # 2 (o - y) / S, through the sigmoid
        return 2 * (y_hat - y) / n_samples * y_hat * (one - y_hat)
    if loss == "bce":  # (o - y) / max(o (1 - o), 1e-12) / S, through the sigmoid
        d_o = dt.type(1 / n_samples) * (y_hat - y) / np.maximum((one - y_hat) * y_hat, dt.type(BCE_EPSILON))
        return d_o * (one - y_hat) * y_hat
    return (y_hat - y) * dt.type(1 / n_samples)


def gradients(p, X, y, z1, h, z2, y_hat, loss="mse", activation="sigmoid", output="sigmoid"):
    """d loss / d parameters by backpropagation, as a Params of gradients."""
    d_z2 = output_gradient(y_hat, y, loss, output)
    g_W2 = (d_z2[:, :, None] * h).sum(axis=1)[:, None, :]
    g_b2 = d_z2.sum(axis=1, keepdims=True)
    # back to the hidden layer: d loss / d h = d_z2 W2, then the activation's slope
    d_z1 = activation_backward(activation, d_z2[:, :, None] * p.W2[:, :, :], z1, h)
    g_W1 = np.stack([(d_z1 * X[None, :, i, None]).sum(axis=1) for i in range(X.shape[1])], axis=2)
    g_b1 = d_z1.sum(axis=1)
    return Params(g_W1, g_b1, g_W2, g_b2)


def sgd_step(p, grad, buf, first, lr, momentum, gain, weight_decay, nesterov):
    """``torch.optim.SGD.step`` on flat (P, N) arrays; returns (p, buf).
    ``gain`` = 1 - dampening (None: no dampening)."""
    if weight_decay is not None:
        grad = grad + weight_decay * p
    if buf is not None:  # some network has momentum
        buf = grad.copy() if first else momentum * buf + (grad if gain is None else gain * grad)
        grad = grad + momentum * buf if nesterov else buf
    return p - lr * grad, buf


def adam_step(p, grad, m, v, step, lr, weight_decay, decay, beta1, beta2, eps):
    """``torch.optim.Adam.step`` (``decay`` None) or ``AdamW`` (``decay`` =
    1 - lr * weight_decay) on flat (P, N) arrays; returns (p, m, v)."""
    F = p.dtype.type
    if decay is not None:
        p = p * decay
    elif weight_decay is not None:
        grad = grad + weight_decay * p
    w = F(1 - beta1)  # m.lerp_(grad, 1 - beta1), as torch's CPU lerp
    m = m + w * (grad - m) if w < 0.5 else grad - (grad - m) * (F(1) - w)
    v = v * F(beta2) + F(1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1**step  # Python floats, as torch
    bias_correction2 = 1 - beta2**step
    step_size = lr * F(1 / bias_correction1)
    denom = np.sqrt(v) / F(bias_correction2**0.5) + F(eps)
    return p - (step_size * m) / denom, m, v  # addcdiv: value * t1 / t2, left to right


def problem():
    return None  # NumPy is always there


def memory_bytes(n, recipe, rows):
    """``run_bytes`` plus the reference's per-epoch temporaries: Params views,
    gradients, optimizer temporaries, new parameters and forward activations,
    a few (N, P) and (N, S, H) float arrays at a time."""
    from ..state import run_bytes

    item = np.dtype(recipe.dtype).itemsize
    return run_bytes(n, recipe, rows) + n * item * (10 * recipe.n_params + 8 * recipe.samples * recipe.hidden)


def run(state, data, epochs, record_every, recipe, out, final=True, work=None):
    """The backend contract (see ``fastxor.backends``): ``state`` trained in place."""
    flat = state.materialise()
    dt = flat.dtype
    X, y = np.asarray(data.X, dtype=dt), np.asarray(data.y, dtype=dt)
    train_epochs(state, X, y, recipe, epochs, record_every, out.history)
    if not final:
        return out
    p = Params.from_flat(flat, recipe.hidden, recipe.inputs)
    _, _, z2, y_hat = forward(p, X, recipe.activation, recipe.output)
    out.loss[...] = loss_of(y_hat, y, recipe.loss, z2)
    out.predictions[...] = y_hat
    _first(state.solved_epoch, solved_by(y_hat, data.sides), state.epoch)
    if recipe.target_loss is not None:
        _first(state.target_epoch, out.loss <= dt.type(recipe.target_loss), state.epoch)
    return out


def _first(events, happened, epoch):
    """Record ``epoch`` where an event happens for the first time."""
    events[(events < 0) & happened] = epoch


def train_epochs(state, X, y, recipe, epochs, record_every, history):
    """Epochs state.epoch .. + epochs - 1 of every network, in place.

    All arithmetic in the state's dtype (float32, float64 or longdouble).
    Fills the first-event epochs and the columns e // k of ``history`` (N, R)
    for epochs e with e % k == 0 (k = ``record_every`` > 0).
    """
    flat = state.params
    dt = flat.dtype
    F = dt.type
    n, h = flat.shape[1], recipe.hidden
    rows = dict(zip(recipe.rate_names, state.rate_rows(recipe)))
    if recipe.lr_output:  # per parameter row: the hidden layer's rate, then the output layer's (W2, b2)
        out_rows = np.arange(recipe.n_params)[:, None] >= param_rows(h, recipe.inputs)["W2"][0].start
        for name in ("lr", "decay"):
            if name in rows:
                rows[name] = np.where(out_rows, rows.pop(name + "_output"), rows[name])
    lr = rows["lr"]
    sides = target_sides(y)
    target = None if recipe.target_loss is None else F(recipe.target_loss)
    P = recipe.n_params
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for epoch in range(state.epoch, state.epoch + epochs):
            p = Params.from_flat(flat, h, recipe.inputs)
            z1, hid, z2, y_hat = forward(p, X, recipe.activation, recipe.output)
            loss = loss_of(y_hat, y, recipe.loss, z2)
            if record_every and epoch % record_every == 0:
                history[:, epoch // record_every] = loss
            _first(state.solved_epoch, solved_by(y_hat, sides), epoch)
            if target is not None:
                _first(state.target_epoch, loss <= target, epoch)
            grad = gradients(p, X, y, z1, hid, z2, y_hat, recipe.loss, recipe.activation, recipe.output).to_flat()
            buffers = state.buffers
            if recipe.optimizer == "sgd":
                new, buf = sgd_step(flat, grad, buffers, epoch == 0, lr, rows.get("momentum"),
                                    rows.get("gain"), rows.get("weight_decay"), recipe.nesterov)
                new_buffers = buf
            else:
                new, m, v = adam_step(flat, grad, buffers[:P], buffers[P:], epoch + 1, lr,
                                      rows.get("weight_decay"), rows.get("decay"),
                                      *recipe.betas, recipe.eps)
                new_buffers = np.concatenate([m, v])
            ok = np.isfinite(new).all(axis=0) & (state.diverged_epoch < 0)
            if new_buffers is not None:
                ok &= np.isfinite(new_buffers).all(axis=0)
                buffers[:, ok] = new_buffers[:, ok]
            _first(state.diverged_epoch, ~ok & (state.diverged_epoch < 0), epoch)
            flat[:, ok] = new[:, ok]
    state.epoch += epochs
