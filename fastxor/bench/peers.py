"""What a user would otherwise run: the same training written the usual way
in PyTorch, torch.func, JAX and NumPy, plus fastxor's own backends.

Each implementation is ``Impl(name, needs, setup)``: ``setup(params, X, y,
lr)`` does the one-time work (tensors, jit tracing is triggered by the first
call) and returns ``run(epochs) -> final Params``. The benchmark times ``run``
and checks its result against fastxor's before the time counts.
"""
from dataclasses import dataclass

import numpy as np

from ..params import Params


@dataclass(frozen=True)
class Impl:
    name: str
    needs: str  # the module it imports; "" for none
    extra: str  # how to install it
    setup: object
    max_networks: int = 2**62  # the seed's loop is one network at a time
    device: str = "cpu"

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


# --- fastxor's own backends -----------------------------------------------------------


def _fastxor(backend):
    def setup(p, X, y, lr):
        from ..training import train

        return lambda epochs: train(init=p, epochs=epochs, lr=lr, X=X, y=y, dtype=p.dtype,
                                    backend=backend).params
    return setup


# --- NumPy, vectorised over networks, as a user writes it -------------------------------


def _numpy_setup(p, X, y, lr):
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


def _seed_loop_setup(p, X, y, lr):
    from ..torch_compat import train_seed_loop

    def run(epochs):
        outs = [train_seed_loop(p, X, y, epochs, lr, index=i)[0] for i in range(p.n_networks)]
        return Params(*(np.concatenate(a) for a in zip(*(o.arrays() for o in outs))))
    return run


def _torch_batched_setup(p, X, y, lr):
    """Parameters with a network axis, einsum, autograd and optim.SGD: the
    loss is the sum over networks of each network's mean loss, so every
    network gets exactly its own gradient."""
    import torch

    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)

    def run(epochs):
        W1, b1, W2, b2 = (torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in p.arrays())
        opt = torch.optim.SGD([W1, b1, W2, b2], lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            h = torch.sigmoid(torch.einsum("si,nji->nsj", Xt, W1) + b1[:, None, :])
            o = torch.sigmoid(torch.einsum("nsj,noj->nso", h, W2) + b2[:, None, :])[..., 0]
            loss = ((o - yt) ** 2).mean(dim=1).sum()
            loss.backward()
            opt.step()
        return Params(*(t.detach().numpy() for t in (W1, b1, W2, b2)))
    return run


def _torch_vmap_setup(p, X, y, lr):
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


def _jax_setup(p, X, y, lr):
    """vmap of one network's train step inside lax.fori_loop, under jit."""
    import jax
    import jax.numpy as jnp

    Xj, yj = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)

    def loss(q):
        W1, b1, W2, b2 = q
        h = jax.nn.sigmoid(Xj @ W1.T + b1)
        o = jax.nn.sigmoid(h @ W2.T + b2)[:, 0]
        return jnp.mean((o - yj) ** 2)

    def step(q):
        g = jax.grad(loss)(q)
        return tuple(a - lr * b for a, b in zip(q, g))

    @jax.jit
    def train(q, epochs):
        return jax.lax.fori_loop(0, epochs, lambda _, s: jax.vmap(step)(s), q)

    q0 = tuple(jnp.asarray(a, jnp.float32) for a in p.arrays())

    def run(epochs):
        out = train(q0, epochs)
        return Params(*(np.asarray(jax.block_until_ready(a)) for a in out))
    return run


IMPLS = (
    Impl("fastxor numba", "numba", "pip install numba", _fastxor("numba")),
    Impl("fastxor cupy", "cupy", "pip install 'fastxor[gpu]'", _fastxor("cupy"), device="gpu"),
    Impl("fastxor numpy", "", "", _fastxor("numpy")),
    Impl("seed loop (torch)", "torch", "pip install 'fastxor[torch]'", _seed_loop_setup, max_networks=1),
    Impl("torch batched", "torch", "pip install 'fastxor[torch]'", _torch_batched_setup),
    Impl("torch.func vmap", "torch", "pip install 'fastxor[torch]'", _torch_vmap_setup),
    Impl("jax vmap+fori_loop", "jax", "pip install 'fastxor[bench]'", _jax_setup),
    Impl("numpy vectorised", "", "", _numpy_setup),
)


def by_name(name):
    for impl in IMPLS:
        if impl.name == name:
            return impl
    raise ValueError(f"unknown implementation {name!r}; one of {[i.name for i in IMPLS]}")
