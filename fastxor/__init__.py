"""fastxor: train millions of the classic 2-H-1 sigmoid XOR networks (or any D-H-1 network on a small data set) at once.

Each network follows exactly the seed's PyTorch training (nn.Linear, sigmoid,
nn.MSELoss, full-batch optim.SGD); a fused kernel keeps every network's
parameters in registers for the whole run. See docs/architecture.md.
"""
from importlib import metadata as _metadata

from .data import FUNCTIONS, boolean_function
from .landscape import Landscape, analyse
from .maps import Map, basin_map, lr_map
from .params import Params, init_params
from .result import TrainResult
from .stats import Stats, wilson_interval
from .sweep import sweep
from .torch_compat import torch_init
from .training import available_backends, resume, train

try:
    __version__ = _metadata.version("fastxor")  # the one version: pyproject.toml
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

load = TrainResult.load

__all__ = [
    "FUNCTIONS", "Landscape", "Map", "Params", "Stats", "TrainResult", "analyse", "available_backends", "basin_map",
    "boolean_function", "init_params", "lr_map",
    "load", "resume", "sweep", "torch_init", "train", "wilson_interval", "__version__",
]
