"""PyTorch interop: the seed's model, its initialisation, and its training loop.

torch is an optional extra (``pip install '.[torch]'`` in the checkout); nothing here is
imported by ``import fastxor``, and every entry point says how to install it.
"""
import numpy as np

from . import config
from .data import INPUTS_MAX, X_BOOL
from .machine import install_hint
from .options import DEFAULTS as D
from .params import Params
from .validate import check_int, check_per_network


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised without torch
        raise ImportError(
            f"this feature needs PyTorch: {install_hint('torch')}, or its CPU build alone: "
            "pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu"
        ) from exc
    return torch


def xor_network_class(activation="sigmoid", output="sigmoid"):
    """The seed's ``XORNeuralNetwork`` module class, verbatim in structure;
    ``activation`` ("sigmoid", "tanh", "relu") is the hidden layer's;
    ``output="linear"``: the same network without the final sigmoid."""
    torch = _torch()
    nn = torch.nn
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]

    class XORNeuralNetwork(nn.Module):
        def __init__(self, input_dim, hidden_dim, output_dim):
            super().__init__()
            self.hidden_layer = nn.Linear(input_dim, hidden_dim)
            self.output_layer = nn.Linear(hidden_dim, output_dim)

        def logits(self, x):
            """The output unit's pre-activation (what BCEWithLogitsLoss takes)."""
            return self.output_layer(act(self.hidden_layer(x)))

        def forward(self, x):
            z = self.logits(x)
            return z if output == "linear" else torch.sigmoid(z)

    XORNeuralNetwork.activation = activation
    XORNeuralNetwork.output = output
    return XORNeuralNetwork


def _seed_list(seeds):
    if np.isscalar(seeds) or np.ndim(seeds) == 0:
        seeds = [seeds]
    seeds = [check_int("seeds", s, -(2**63), 2**64 - 1) for s in list(seeds)]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    return seeds


def torch_init(seeds, hidden=D["hidden"], init_scale=D["init_scale"], inputs=X_BOOL.shape[1]):
    """Bit-for-bit the parameters ``torch.manual_seed(s); XORNeuralNetwork(inputs, hidden, 1)``
    creates, for each seed s, as a float32 ``Params`` (network axis = seeds).
    ``init_scale`` != 1 (a number, or one per seed) multiplies them (in
    float64, rounded to float32)."""
    torch = _torch()
    hidden = check_int("hidden", hidden, config.HIDDEN_MIN, config.HIDDEN_MAX)
    inputs = check_int("inputs", inputs, 1, INPUTS_MAX)
    seeds = _seed_list(seeds)
    from .machine import require_memory
    from .state import n_params

    require_memory(len(seeds) * n_params(hidden, inputs) * 4 * 3, f"torch_init of {len(seeds)} seeds")
    scale = check_per_network("init_scale", init_scale, len(seeds), low=0.0)
    cls = xor_network_class()
    layers = []
    for s in seeds:
        torch.manual_seed(s)
        m = cls(inputs, hidden, 1)
        layers.append([t.detach().numpy().copy() for t in (
            m.hidden_layer.weight, m.hidden_layer.bias, m.output_layer.weight, m.output_layer.bias)])
    p = Params(*(np.stack(a) for a in zip(*layers)))
    if (scale == 1.0).all():
        return p
    return Params(*(a.astype(np.float64) * scale.reshape((-1,) + (1,) * (a.ndim - 1))
                    for a in p.arrays())).astype(np.float32)


def to_module(params, index=0, activation="sigmoid", output="sigmoid"):
    """An ``XORNeuralNetwork`` holding network ``index`` of ``params``."""
    torch = _torch()
    p = params[index]
    m = xor_network_class(activation, output)(p.inputs, p.hidden, 1).to(torch.float64 if p.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for t, a in zip(
            (m.hidden_layer.weight, m.hidden_layer.bias, m.output_layer.weight, m.output_layer.bias),
            p.arrays(),
        ):
            t.copy_(torch.from_numpy(np.ascontiguousarray(a[0])))
    return m


def make_optimizer(parameters, optimizer=D["optimizer"], lr=D["lr"], momentum=D["momentum"],
                   dampening=D["dampening"], nesterov=D["nesterov"], weight_decay=D["weight_decay"], betas=D["betas"],
                   eps=D["eps"], lr_output=D["lr_output"], model=None):
    """The torch optimizer fastxor's recipe of these arguments reproduces.
    ``lr_output`` (with ``model``, an ``XORNeuralNetwork``): two parameter
    groups, the hidden layer's at ``lr`` and the output layer's at ``lr_output``."""
    torch = _torch()
    if lr_output is not None:
        if model is None:
            raise ValueError("lr_output needs model= (the XORNeuralNetwork whose layers get the two rates)")
        parameters = [dict(params=list(model.hidden_layer.parameters())),
                      dict(params=list(model.output_layer.parameters()), lr=lr_output)]
    if optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, dampening=dampening,
                               nesterov=nesterov, weight_decay=weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    return cls(parameters, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


def train_torch(params, X, y, epochs, lr=0.1, record_every=0, index=0, *, loss="mse",
                activation="sigmoid", output="sigmoid", **optimizer_options):
    """Network ``index`` of ``params`` trained by PyTorch with a fastxor recipe.

    nn.Linear modules; ``nn.MSELoss``, ``nn.BCELoss`` or ``nn.BCEWithLogitsLoss``
    (on the logits); a sigmoid or linear output unit; ``optimizer_options``
    as ``make_optimizer`` (``lr_output``: two parameter groups); the seed's
    zero_grad/forward/loss/backward/step per epoch. Returns (final Params,
    loss history list)."""
    torch = _torch()
    tdt = torch.float64 if params.dtype == np.float64 else torch.float32
    model = to_module(params, index, activation, output)
    Xt = torch.tensor(np.asarray(X), dtype=tdt)
    yt = torch.tensor(np.asarray(y).reshape(-1, 1), dtype=tdt)
    criterion = {"mse": torch.nn.MSELoss, "bce": torch.nn.BCELoss,
                 "bce_logits": torch.nn.BCEWithLogitsLoss}[loss]()
    optimizer = make_optimizer(model.parameters(), lr=lr, model=model, **optimizer_options)
    history = []
    for epoch in range(epochs):
        optimizer.zero_grad()
        out = model.logits(Xt) if loss == "bce_logits" else model(Xt)
        value = criterion(out, yt)
        value.backward()
        optimizer.step()
        if record_every and epoch % record_every == 0:
            history.append(value.item())
    final = Params(*(t.detach().numpy().copy()[None] for t in (
        model.hidden_layer.weight, model.hidden_layer.bias,
        model.output_layer.weight, model.output_layer.bias)))
    return final, history


def train_seed_loop(params, X, y, epochs, lr, record_every=0, index=0):
    """The seed's own loop: nn.MSELoss and plain optim.SGD (see ``train_torch``)."""
    return train_torch(params, X, y, epochs, lr, record_every, index)
