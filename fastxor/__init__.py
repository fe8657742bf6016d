"""fastxor: train millions of the classic 2-H-1 sigmoid XOR networks at once.

Each network follows exactly the seed's PyTorch training (nn.Linear, sigmoid,
nn.MSELoss, full-batch optim.SGD); a fused kernel keeps every network's
parameters in registers for the whole run.
"""
from .data import FUNCTIONS, boolean_function
from .params import Params, init_params
from .result import TrainResult, wilson_interval
from .torch_compat import torch_init
from .results_file import load
from .training import available_backends, resume, train

__version__ = "0.1.0"

__all__ = [
    "FUNCTIONS", "Params", "TrainResult", "available_backends", "boolean_function",
    "init_params", "load", "resume", "torch_init", "train", "wilson_interval", "__version__",
]
