"""The two initialisations of ``train(init=...)``, set up in one place.

Why a module of its own: the Philox init lives in ``params`` and the
PyTorch one in ``torch_compat`` (which builds on ``params``); choosing
between them here keeps ``params`` free of an import of ``torch_compat``.
"""
from .params import InitSpec
from .torch_compat import torch_init


def initial_parameters(init, n, hidden, seed, start, scales, dtype, inputs, lazy=False):
    """The flat (P, N) initial parameters of ``train(init=...)``, as ``(flat, None)``;
    with ``lazy`` and the Philox init, ``(None, spec)``: a GPU makes them in registers.

    ``init``: "philox" (``init_params``'s networks start.. of ``seed``) or
    "torch" (``torch_init`` of seeds seed+start, seed+start+1, ...); ``scales``:
    (N,) float64 init_scale per network. The one place both inits are set up,
    for ``train``, ``sweep`` and the command line.
    """
    if init == "philox":
        spec = InitSpec(n, hidden, seed, start, scales, dtype, inputs)
        return (None, spec) if lazy else (spec.make_flat(), None)
    return torch_init(range(seed + start, seed + start + n), hidden, scales, inputs).astype(dtype).to_flat(), None
