"""What a user would otherwise run: the same training written the usual way
in PyTorch, torch.func, JAX and NumPy, plus fastxor's own backends.

Each implementation is ``Impl(name, needs, setup)``: ``setup(params, X, y,
lr, options)`` does the one-time work (tensors, jit tracing is triggered by
the first call) and returns ``run(epochs) -> final Params``; ``options`` are
a training recipe's (``RECIPES``: fastxor.train's names), which the peers
marked ``recipes=True`` implement the way their users would (torch.optim and
nn criteria; JAX with the optimizer written out as torch documents it).
The benchmark times ``run`` and checks its result against fastxor's before
the time counts.
"""
from dataclasses import dataclass

import numpy as np

from ..machine import install_hint
from ..options import DEFAULTS, RECIPE
from ..params import Params


@dataclass(frozen=True)
class Impl:
    name: str
    needs: str  # the module it imports; "" for none
    extra: str  # how to install it
    setup: object
    max_networks: int = 2**62  # the seed's loop is one network at a time
    device: str = "cpu"
    recipes: bool = False  # trains any RECIPES entry, not only the seed's

    def available(self):
        if not self.needs:
            return True
        try:
            __import__(self.needs)
        except ImportError:
            return False
        if self.device == "gpu":
            from ..backends import problem

            return problem("cupy") is None
        return True


#: The recipes ``fastxor bench --recipe NAME`` measures: fastxor.train's options.
RECIPES = {
    "seed": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "tanh": dict(lr=0.1, activation="tanh"),
    "relu": dict(lr=0.1, activation="relu"),
    "bce": dict(lr=0.1, loss="bce"),
    "bce_logits": dict(lr=0.1, loss="bce_logits"),
    "adam": dict(lr=0.01, optimizer="adam"),
    "adamw": dict(lr=0.01, optimizer="adamw", weight_decay=0.01),
}
TORCH_OPTIMIZER = ("optimizer", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps")


# --- fastxor's own backends -----------------------------------------------------------


def _fastxor(backend):
    def setup(p, X, y, lr, options):
        from ..training import train

        return lambda epochs: train(init=p, epochs=epochs, lr=lr, X=X, y=y, dtype=p.dtype,
                                    backend=backend, **options).params
    return setup


# --- NumPy, vectorised over networks, as a user writes it -------------------------------


def _numpy_setup(p, X, y, lr, options):
    W1, b1, W2, b2 = (a.astype(np.float32).copy() for a in p.arrays())
    X = X.astype(np.float32)
    y = y.astype(np.float32)
    lr = np.float32(lr)

    def sig(z):
        return 1 / (1 + np.exp(-z))

    def run(epochs):
        w1, c1, w2, c2 = W1.copy(), b1.copy(), W2[:, 0, :].copy(), b2[:, 0].copy()
        for _ in range(epochs):
            h = sig(np.einsum("si,nji->nsj", X, w1) + c1[:, None, :])  # (N, 4, H)
            o = sig(np.einsum("nsj,nj->ns", h, w2) + c2[:, None])  # (N, 4)
            dz2 = (o - y) * (2 / 4) * o * (1 - o)
            dz1 = dz2[:, :, None] * w2[:, None, :] * h * (1 - h)
            w2 -= lr * np.einsum("ns,nsj->nj", dz2, h)
            c2 -= lr * dz2.sum(1)
            w1 -= lr * np.einsum("nsj,si->nji", dz1, X)
            c1 -= lr * dz1.sum(1)
        return Params(w1, c1, w2[:, None, :], c2[:, None])
    return run


# --- PyTorch ----------------------------------------------------------------------------


def _seed_loop_setup(p, X, y, lr, options):
    """The seed script's loop (nn.Linear modules, a criterion, torch.optim), one network at a time."""
    from ..torch_compat import train_torch

    def run(epochs):
        outs = [train_torch(p, X, y, epochs, lr, index=i, **options)[0] for i in range(p.n_networks)]
        return Params(*(np.concatenate(a) for a in zip(*(o.arrays() for o in outs))))
    return run


def _torch_batched_setup(p, X, y, lr, options, device="cpu"):
    """Parameters with a network axis, einsum, autograd and torch.optim: the
    loss is the sum over networks of each network's mean loss, so every
    network gets exactly its own gradient, and torch's optimizers act
    elementwise, so one optimizer over the stacked tensors is one per network.
    ``device="cuda"``: the same on a GPU (bench/gpu_bench.py)."""
    import torch

    from ..torch_compat import make_optimizer

    Xt = torch.tensor(X, dtype=torch.float32, device=device)
    yt = torch.tensor(y, dtype=torch.float32, device=device)
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[options.get("activation", "sigmoid")]
    loss_name = options.get("loss", "mse")
    F = torch.nn.functional

    def run(epochs):
        W1, b1, W2, b2 = (torch.tensor(a, dtype=torch.float32, device=device, requires_grad=True)
                          for a in p.arrays())
        opt = make_optimizer([W1, b1, W2, b2], lr=lr, **{k: v for k, v in options.items() if k in TORCH_OPTIMIZER})
        for _ in range(epochs):
            opt.zero_grad()
            h = act(torch.einsum("si,nji->nsj", Xt, W1) + b1[:, None, :])
            z = (torch.einsum("nsj,noj->nso", h, W2) + b2[:, None, :])[..., 0]
            target = yt.expand_as(z)
            if loss_name == "mse":
                loss = ((torch.sigmoid(z) - yt) ** 2).mean(dim=1).sum()
            elif loss_name == "bce":
                loss = F.binary_cross_entropy(torch.sigmoid(z), target, reduction="none").mean(dim=1).sum()
            else:
                loss = F.binary_cross_entropy_with_logits(z, target, reduction="none").mean(dim=1).sum()
            loss.backward()
            opt.step()
        return Params(*(t.detach().cpu().numpy() for t in (W1, b1, W2, b2)))
    return run


def _torch_vmap_setup(p, X, y, lr, options):
    """torch.func model ensembling: vmap(grad(loss)) over stacked nn.Linear
    parameters, SGD written out (torch.func has no optimizer)."""
    import torch
    from torch.func import functional_call, grad, vmap

    from ..torch_compat import xor_network_class

    base = xor_network_class()(2, p.hidden, 1).to("meta")
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32).reshape(4, 1)
    names = ("hidden_layer.weight", "hidden_layer.bias", "output_layer.weight", "output_layer.bias")

    def loss(params):
        return torch.nn.functional.mse_loss(functional_call(base, params, (Xt,)), yt)

    step = vmap(grad(loss))

    def run(epochs):
        params = {k: torch.tensor(a, dtype=torch.float32) for k, a in zip(names, p.arrays())}
        with torch.no_grad():
            for _ in range(epochs):
                g = step(params)
                params = {k: params[k] - lr * g[k] for k in names}
        return Params(*(params[k].numpy() for k in names))
    return run


# --- JAX --------------------------------------------------------------------------------


def _jax_setup(p, X, y, lr, options):
    """vmap of one network's train step inside lax.fori_loop, under jit; the
    optimizer written out as torch.optim documents it (SGD with momentum,
    dampening, Nesterov and weight decay; Adam; AdamW), its state carried."""
    import jax
    import jax.numpy as jnp

    Xj, yj = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    o = dict(RECIPE_DEFAULTS, **options)
    act = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}[o["activation"]]
    mom, damp, wd, (beta1, beta2), eps = o["momentum"], o["dampening"], o["weight_decay"], o["betas"], o["eps"]

    def loss(q):
        W1, b1, W2, b2 = q
        # float32 products: on a GPU, JAX's default precision is TF32 (~1e-3)
        dot = lambda a, b: jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST)  # noqa: E731
        z = (dot(act(dot(Xj, W1.T) + b1), W2.T) + b2)[:, 0]
        if o["loss"] == "mse":
            return jnp.mean((jax.nn.sigmoid(z) - yj) ** 2)
        if o["loss"] == "bce":  # torch's nn.BCELoss: each log clamped at -100
            out = jax.nn.sigmoid(z)
            return -jnp.mean(yj * jnp.maximum(jnp.log(out), -100.0) + (1 - yj) * jnp.maximum(jnp.log1p(-out), -100.0))
        return jnp.mean((1 - yj) * z - jax.nn.log_sigmoid(z))

    def update(w, g, a, b, t):
        """One parameter tensor's step; (new w, new buffers a, b)."""
        if o["optimizer"] == "sgd":
            g = g + wd * w
            if mom:
                a = jnp.where(t == 1, g, mom * a + (1 - damp) * g)
                g = g + mom * a if o["nesterov"] else a
            return w - lr * g, a, b
        if o["optimizer"] == "adamw":
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        a = a + (1 - beta1) * (g - a)
        b = beta2 * b + (1 - beta2) * g * g
        step = lr / (1 - beta1**t)
        return w - step * a / (jnp.sqrt(b) / jnp.sqrt(1 - beta2**t) + eps), a, b

    def step(state, t):
        q, m, v = state
        g = jax.grad(loss)(q)
        out = [update(*args, t) for args in zip(q, g, m, v)]
        return tuple(tuple(x[i] for x in out) for i in range(3))

    @jax.jit
    def train(q, epochs):
        zeros = tuple(jnp.zeros_like(a) for a in q)
        body = lambda e, s: jax.vmap(step, in_axes=(0, None))(s, (e + 1).astype(jnp.float32))  # noqa: E731
        return jax.lax.fori_loop(0, epochs, body, (q, zeros, zeros))[0]

    q0 = tuple(jnp.asarray(a, jnp.float32) for a in p.arrays())

    def run(epochs):
        out = train(q0, epochs)
        return Params(*(np.asarray(jax.block_until_ready(a)) for a in out))
    return run


RECIPE_DEFAULTS = {k: DEFAULTS[k] for k in RECIPE if k != "target_loss"}


IMPLS = (
    Impl("fastxor numba", "numba", "pip install numba", _fastxor("numba"), recipes=True),
    Impl("fastxor cupy", "cupy", install_hint("gpu"), _fastxor("cupy"), device="gpu", recipes=True),
    Impl("fastxor numpy", "", "", _fastxor("numpy"), recipes=True),
    Impl("seed loop (torch)", "torch", install_hint("torch"), _seed_loop_setup, max_networks=1,
         recipes=True),
    Impl("torch batched", "torch", install_hint("torch"), _torch_batched_setup, recipes=True),
    Impl("torch.func vmap", "torch", install_hint("torch"), _torch_vmap_setup),
    Impl("jax vmap+fori_loop", "jax", install_hint("bench"), _jax_setup, recipes=True),
    Impl("numpy vectorised", "", "", _numpy_setup),
)


def by_name(name):
    for impl in IMPLS:
        if impl.name == name:
            return impl
    raise ValueError(f"unknown implementation {name!r}; one of {[i.name for i in IMPLS]}")
