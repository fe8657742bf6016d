"""The options of a training run, each stated once: name, default, type and
allowed values, and its command-line spelling.

Why a table: one option reaches ``fastxor.train``, ``resume``'s checks,
``sweep``, the Dask shards, the command line and the statistics header;
with its default in one place they cannot drift apart (Adam's betas and
eps were written in nine). The checks themselves live in ``validate``; the
limits they use, in ``config``.
"""
from dataclasses import dataclass

from . import config


@dataclass(frozen=True)
class Option:
    """One option of ``fastxor.train``.

    allowed : the values it takes, in words (the CLI's help shows them).
    recipe : part of the training recipe (``train`` and ``sweep`` share these).
    per_network : a number, or one value per network (a (N,) array).
    saved : its key in a result's ``config`` where that differs from ``name``.
    choices : the names it takes, for a choice.
    axis : ``sweep`` takes a list of values: a grid axis.
    """

    name: str
    default: object
    kind: type
    allowed: str
    recipe: bool = False
    per_network: bool = False
    saved: str = None
    choices: tuple = None
    axis: bool = False

    @property
    def flag(self):
        """The command-line spelling: ``--init-scale`` for ``init_scale``."""
        return "--" + self.name.replace("_", "-")

    @property
    def key(self):
        """The result's ``config`` key."""
        return self.saved or self.name


#: The recipe names a user may choose.
OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("mse", "bce", "bce_logits")
ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("sigmoid", "linear")

#: Networks per grid cell of a sweep when not given (API and CLI alike): a
#: success rate to within about +-1 % (95 % CI) per cell.
SWEEP_NETWORKS = 10_000

TRAIN = (
    Option("networks", 100_000, int, "networks (seeds) per run or grid cell, >= 1", saved="n_networks"),
    Option("epochs", 100_000, int, f"full-batch steps, in [0, {config.EPOCHS_MAX}]"),
    Option("lr", 0.1, float, "learning rate > 0 (the hidden layer's, when lr_output is given)", per_network=True,
           axis=True),
    Option("lr_output", None, float, "the output layer's learning rate > 0 (torch: a second parameter group)",
           recipe=True, per_network=True, axis=True),
    Option("hidden", 2, int, f"hidden width H in [{config.HIDDEN_MIN}, {config.HIDDEN_MAX}]", axis=True),
    Option("dtype", "float32", str, " or ".join(sorted(config.DTYPES)), choices=tuple(sorted(config.DTYPES))),
    Option("seed", 0, int, f"the init's random seed, in [0, {config.SEED_MAX}]"),
    Option("init", "philox", str, "philox (fastxor's) or torch (nn.Linear's, needs torch)", choices=("philox", "torch")),
    Option("init_scale", 1.0, float, "init range multiplier >= 0", per_network=True, axis=True),
    Option("record_every", 0, int, "record the loss every K epochs, 0: never"),
    Option("function", "xor", str, "a boolean function's name or truth table"),
    Option("optimizer", "sgd", str, "sgd, adam or adamw (torch.optim's)", recipe=True, choices=OPTIMIZERS, axis=True),
    Option("momentum", 0.0, float, "SGD momentum >= 0", recipe=True, per_network=True, axis=True),
    Option("dampening", 0.0, float, "SGD dampening in [0, 1]", recipe=True),
    Option("nesterov", False, bool, "Nesterov momentum (SGD)", recipe=True),
    Option("weight_decay", 0.0, float, "weight decay >= 0 (L2; AdamW: decoupled)", recipe=True, per_network=True,
           axis=True),
    Option("betas", (0.9, 0.999), float, "Adam's beta1,beta2, each in [0, 1)", recipe=True),
    Option("eps", 1e-8, float, "Adam's eps > 0", recipe=True),
    Option("loss", "mse", str, "mse, bce or bce_logits", recipe=True, choices=LOSSES, axis=True),
    Option("activation", "sigmoid", str, "hidden units: sigmoid, tanh or relu", recipe=True, choices=ACTIVATIONS,
           axis=True),
    Option("output", "sigmoid", str, "output unit: sigmoid, or linear (the loss on the raw output; mse only)",
           recipe=True, choices=OUTPUTS, axis=True),
    Option("target_loss", None, float, "report each network's first epoch with loss <= this", recipe=True),
)

BY_NAME = {o.name: o for o in TRAIN}
#: Every option's default, by name.
DEFAULTS = {o.name: o.default for o in TRAIN}
#: The training-recipe options (``train`` and ``sweep`` share them).
RECIPE = tuple(o.name for o in TRAIN if o.recipe)
#: The options that take one value per network.
PER_NETWORK = tuple(o.name for o in TRAIN if o.per_network)


def help_text(name):
    """The CLI's help for an option: what it allows, and its default."""
    o = BY_NAME[name]
    default = ",".join(map(str, o.default)) if isinstance(o.default, tuple) else o.default
    return o.allowed + ("" if o.default is None else f" (default {default})")
