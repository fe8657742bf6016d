"""The gradient and exact Hessian of the training loss, for many networks at once.

Why forward mode over backpropagation: the gradient is the reference's
backpropagation (``backends.numpy_reference.gradients``: every loss and
activation of the training recipes, torch's BCE clamp included), and its
derivative along each of the P = (D + 2)H + 1 parameter directions is one
tangent pass through the same steps -- exact (no finite differences),
vectorised over networks and directions, no Python loop per network. The
Hessian of network n is then ``H[n, :, k]`` = d gradient / d parameter k.
Float64 throughout, whatever the training dtype. Parameters in the flat
order of ``Params.to_flat``: W1 row-major, b1, W2, b2.
"""
import numpy as np

from .backends.numpy_reference import BCE_EPSILON, forward, gradients, loss_of, output_gradient
from .params import Params
from .state import param_rows

#: Networks per batch at most; and at most TANGENT_BYTES per (P, batch, S, H)
#: tangent array (8-bit parity at H = 8 needs 1.3 MB of one per network).
BATCH = 32_768
TANGENT_BYTES = 64 * 2**20


def _activation_slopes(activation, z, h):
    """(phi'(z), phi''(z)) of the hidden activation, from its input and output."""
    if activation == "sigmoid":
        d1 = h * (1 - h)
        return d1, d1 * (1 - 2 * h)
    if activation == "tanh":
        d1 = 1 - h * h
        return d1, -2 * h * d1
    return (z > 0).astype(np.float64), np.zeros_like(z)


def _output_gradient_slope(o, y, loss, n_samples, output="sigmoid"):
    """d (d loss / d z2) / d o per sample: the derivative of
    ``numpy_reference.output_gradient`` as a function of the output o."""
    if output == "linear":  # 2 (o - y) / S
        return np.full_like(o, 2 / n_samples)
    q = o * (1 - o)
    if loss == "mse":  # 2 (o - y) / S * o (1 - o)
        return 2 / n_samples * (q + (o - y) * (1 - 2 * o))
    if loss == "bce":  # (o - y) / S * q / max(q, eps): (o - y) / S unless clamped
        clamped = q < BCE_EPSILON
        return np.where(clamped, (q + (o - y) * (1 - 2 * o)) / (n_samples * BCE_EPSILON), 1 / n_samples)
    return np.full_like(o, 1 / n_samples)  # bce_logits: (sigmoid(z) - y) / S


def gradient_and_hessian(flat, hidden, X, y, loss="mse", activation="sigmoid", output="sigmoid"):
    """(gradient (N, P), Hessian (N, P, P), loss (N,)) of the mean loss over
    the S samples at flat (P, N) parameters, in float64."""
    flat = np.asarray(flat, dtype=np.float64)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    P, n = flat.shape
    grad = np.empty((n, P))
    hess = np.empty((n, P, P))
    value = np.empty(n)
    batch = max(1, min(BATCH, TANGENT_BYTES // (P * X.shape[0] * hidden * 8)))
    for lo in range(0, n, batch):
        sl = slice(lo, min(n, lo + batch))
        grad[sl], hess[sl], value[sl] = _batch(flat[:, sl], hidden, X, y, loss, activation, output)
    return grad, hess, value


def _batch(flat, H, X, y, loss, activation, output):
    S, D = X.shape
    p = Params.from_flat(flat, H, D)
    z1, h, z2, o = forward(p, X, activation, output)  # (N,S,H), (N,S,H), (N,S), (N,S)
    g = gradients(p, X, y, z1, h, z2, o, loss, activation, output).to_flat().T  # (N, P)
    value = loss_of(o, y, loss, z2)
    rows = {name: sl for name, (sl, _) in param_rows(H, D).items()}
    P = flat.shape[0]
    V = np.eye(P)  # direction k: the unit vector of parameter k
    vW1 = V[:, rows["W1"]].reshape(P, H, D)
    vb1, vW2, vb2 = V[:, rows["b1"]], V[:, rows["W2"]], V[:, rows["b2"]][:, 0]
    W2 = p.W2[:, 0, :]  # (N, H)
    # tangents, shape (P directions, N, S[, H])
    dz1 = (sum(vW1[:, None, :, i] * X[:, i, None] for i in range(D)) + vb1[:, None, :])[:, None]
    s1, s2 = _activation_slopes(activation, z1, h)
    dh = s1 * dz1  # (P, N, S, H)
    dz2 = (vW2[:, None, None, :] * h).sum(-1) + (W2[None, :, None, :] * dh).sum(-1) + vb2[:, None, None]
    do = dz2 if output == "linear" else o * (1 - o) * dz2  # (P, N, S)
    d2 = output_gradient(o, y, loss, output)  # d loss / d z2 per sample, (N, S)
    dd2 = _output_gradient_slope(o, y, loss, S, output) * do  # (P, N, S)
    back = d2[..., None] * W2[:, None, :]  # (N, S, H)
    dback = dd2[..., None] * W2[None, :, None, :] + d2[None, ..., None] * vW2[:, None, None, :]
    if activation == "relu":
        dd1 = dback * s1
    else:  # d1 = back phi'(z1): its tangent back' phi' + back phi'' z1'
        dd1 = dback * s1 + back * s2 * dz1
    hess = np.empty((flat.shape[1], P, P))
    gW2 = (dd2[..., None] * h + d2[None, ..., None] * dh).sum(2)  # (P, N, H)
    gb2 = dd2.sum(2)  # (P, N)
    gW1 = np.stack([(dd1 * X[None, None, :, i, None]).sum(2) for i in range(D)], axis=-1)  # (P, N, H, D)
    gb1 = dd1.sum(2)  # (P, N, H)
    hess[:, rows["W1"], :] = gW1.reshape(P, -1, D * H).transpose(1, 2, 0)
    hess[:, rows["b1"], :] = gb1.transpose(1, 2, 0)
    hess[:, rows["W2"], :] = gW2.transpose(1, 2, 0)
    hess[:, rows["b2"], :] = gb2.T[:, None, :]
    return g, hess, value
