"""What a training run returns, and the statistics a researcher reads first."""
from dataclasses import dataclass, field, replace

import numpy as np

from .arrays import to_host
from .params import Params
from .state import PARAM_FIELDS
from .stats import Stats, cell_coords, group_cells, header_of, unique_cells

_ARRAYS = ("loss", "predictions", "solved", "solved_epoch", "diverged", "diverged_epoch")
_OPTIONAL = ("loss_history", "target_epoch", "optimizer_state")
#: The config entries that resume, analyse and the statistics read without a default.
_CONFIG_NEEDED = ("n_networks", "epochs", "lr", "dtype", "X", "y")


@dataclass
class TrainResult:
    """Trained networks, per-network outcomes, and the configuration.

    Attributes
    ----------
    params : Params, the final parameters.
    loss : (N,) loss of the final parameters.
    predictions : (N, S) outputs of the final parameters, one per sample.
    solved : (N,) bool, all S final predictions on their target's side of 0.5.
    solved_epoch : (N,) first epoch whose forward pass solved it (``epochs``
        for the final parameters), -1 if none.
    diverged : (N,) bool, an update would have made a parameter NaN/inf;
        the network stopped at its last finite parameters.
    diverged_epoch : (N,) epoch of that update, -1 if none.
    loss_history : (N, R) loss at epochs 0, k, 2k, ... (k = record_every), or None.
    config : dict, the arguments that produced this result.
    target_epoch : (N,) first epoch whose loss was <= config["target_loss"],
        -1 if none; None without a target.
    optimizer_state : (B, N) the optimizer's buffers (SGD momentum, or Adam's
        two moments, each in ``Params.to_flat`` row order), or None: what
        ``resume`` needs to continue exactly.
    versions : dict, package versions, for a result loaded from a file.
    computed_statistics : the statistics of these outputs computed when the
        run ended, where they were (a GPU run's, on the GPU: ``statistics()``
        then reads no per-network array), or None. They describe the arrays
        as returned: after changing them, ``fastxor.Stats.of(result)``.
    """

    params: Params
    loss: np.ndarray
    predictions: np.ndarray
    solved: np.ndarray
    solved_epoch: np.ndarray
    diverged: np.ndarray
    diverged_epoch: np.ndarray
    loss_history: np.ndarray = None
    config: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    target_epoch: np.ndarray = None
    optimizer_state: np.ndarray = None
    computed_statistics: object = field(default=None, repr=False, compare=False)

    @property
    def n_networks(self):
        return self.params.n_networks

    @property
    def history_epochs(self):
        """The epochs of ``loss_history``'s columns."""
        k = self.config.get("record_every", 0)
        if not k or self.loss_history is None:
            return None
        return np.arange(self.loss_history.shape[1]) * k

    def stuck_groups(self, tol=0.05, max_groups=5):
        """The unsolved (not diverged) networks, grouped by where they ended.

        Networks whose S outputs agree within ``tol`` (max-norm) share a
        group: a local minimum or plateau of the loss, e.g. outputs
        (0.05, 0.66, 0.66, 0.67) for XOR. Returns up to ``max_groups`` dicts,
        largest first: ``outputs`` (mean), ``count``, ``fraction`` (of all
        networks), ``median_loss``.
        """
        return self._stuck_grouping(tol, max_groups)[1]

    def stuck_group_labels(self, tol=0.05, max_groups=5):
        """(N,) int: each network's index in ``stuck_groups(tol, max_groups)``,
        ``max_groups`` for an unsolved network of a smaller group, -1 for a
        solved or diverged one."""
        return self._stuck_grouping(tol, max_groups)[0]

    def _stuck_grouping(self, tol, max_groups):
        stuck = ~to_host(self.solved) & ~to_host(self.diverged)
        return group_stuck(to_host(self.predictions), to_host(self.loss), stuck, tol, max_groups)

    def save(self, path):
        """Save to a ``.npz`` results file; ``fastxor.load(path)`` reads it back."""
        from .machine import versions
        from .results_file import write

        arrays = {k: to_host(getattr(self, k)) for k in _ARRAYS}
        arrays.update(zip(PARAM_FIELDS, (to_host(a) for a in self.params.arrays())))
        for name in _OPTIONAL:
            if getattr(self, name) is not None:
                arrays[name] = to_host(getattr(self, name))
        cfg = {}
        for key, value in self.config.items():
            if isinstance(value, np.ndarray):
                arrays[f"config.{key}"] = value
            else:
                cfg[key] = value
        return write(path, arrays, dict(config=cfg, versions=versions()))

    @classmethod
    def load(cls, path):
        """The TrainResult saved at ``path`` (``result.versions`` says what made
        it); a run directory of shard files (``fastxor.distributed.train(out=)``)
        gives the whole run, its shards concatenated."""
        from pathlib import Path

        from .results_file import read

        if Path(path).is_dir():
            from .shards import load

            return load(path)

        arrays, meta = read(path)
        missing = [k for k in (*PARAM_FIELDS, *_ARRAYS) if k not in arrays]
        if missing or not isinstance(meta.get("config"), dict):
            raise ValueError(f"{path} is not a complete fastxor results file (missing: "
                             f"{', '.join(missing) or 'config'})")
        cfg = dict(meta["config"])
        cfg.update({k[len("config."):]: v for k, v in arrays.items() if k.startswith("config.")})
        missing = [k for k in _CONFIG_NEEDED if k not in cfg]
        if missing:
            raise ValueError(f"{path} is not a complete fastxor results file (its config lacks: {', '.join(missing)})")
        n = len(arrays[PARAM_FIELDS[0]])
        uneven = [k for k in (*PARAM_FIELDS, *_ARRAYS, *_OPTIONAL) if k in arrays and k != "optimizer_state"
                  and len(arrays[k]) != n]
        if uneven or cfg.get("n_networks", n) != n:
            raise ValueError(f"{path} is not a consistent fastxor results file ({', '.join(uneven) or 'n_networks'} "
                             f"not of its {n} networks)")
        return cls(
            params=Params(*(arrays[k] for k in PARAM_FIELDS)),
            **{k: arrays.get(k) for k in _OPTIONAL},
            config=cfg,
            versions=meta.get("versions", {}),
            **{k: arrays[k] for k in _ARRAYS},
        )

    def analyse(self, **options):
        """Each network's end point classified: ``fastxor.analyse(self, **options)``."""
        from .landscape import analyse

        return analyse(self, **options)

    def to_torch(self, index):
        """The seed's ``XORNeuralNetwork`` (an nn.Module) with network ``index``'s
        trained weights and the run's hidden activation; its outputs on X
        equal ``predictions[index]``."""
        from .torch_compat import to_module

        if not -self.n_networks <= index < self.n_networks:
            raise IndexError(f"index must be in [0, {self.n_networks}), got {index}")
        return to_module(self.params, index % self.n_networks, self.config.get("activation", "sigmoid"),
                         self.config.get("output", "sigmoid"))

    def statistics(self):
        """The run's statistics as a mergeable ``fastxor.Stats`` (what
        ``stats()`` and ``summary()`` report): ``computed_statistics`` with
        this run's configuration where the run left them, else computed from
        the arrays."""
        if self.computed_statistics is not None:
            return replace(self.computed_statistics, config=header_of(self.config))
        return Stats.of(self)

    def stats(self):
        """Success rate with its 95 % Wilson interval, and quantiles, as a dict
        (``Stats.as_dict``: solved-epoch quantiles exact, loss quantiles from
        bins of 0.1 % of a decade)."""
        return self.statistics().as_dict()

    def summary(self):
        """A short human-readable report of ``stats()`` and the stuck groups."""
        return self.statistics().summary()

    def __repr__(self):
        from .notebook import text_repr

        return text_repr("TrainResult", self.summary())

    def to_xarray(self):
        """An ``xarray.Dataset``: dims network, parameter, sample, input and
        epoch; per-network settings as coordinates (``labelled.result_dataset``)."""
        from .labelled import result_dataset

        return result_dataset(self)

    def _repr_html_(self):  # Jupyter
        from .notebook import html_repr

        return html_repr("TrainResult", self.summary())


def group_stuck(predictions, loss, stuck, tol=0.05, max_groups=5, unit=1.0):
    """(labels (N,), groups): the networks where ``stuck`` grouped by their S
    outputs (``predictions`` (N, S), times ``unit``: 8-bit outputs have
    255), agreeing within ``tol`` (max-norm); labels as
    ``TrainResult.stuck_group_labels``, groups as ``stuck_groups`` (fractions
    of all N networks)."""
    n = len(predictions)
    labels = np.full(n, -1, dtype=np.int64)
    pred = np.asarray(predictions)[stuck]
    if not pred.size:
        return labels, []
    loss = np.asarray(loss)[stuck]
    side = tol / 2
    cells, index, counts = unique_cells(cell_coords(pred, side, unit), side)
    group = group_cells(cells, counts, side, tol)[index]
    del index
    sizes = np.bincount(group)
    means = np.stack([np.bincount(group, weights=pred[:, i]) for i in range(pred.shape[1])], axis=1)
    means /= sizes[:, None] * unit
    ranked = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(ranked)
    rank[ranked] = np.arange(len(ranked))
    labels[stuck] = np.minimum(rank[group], max_groups)
    return labels, [
        dict(outputs=tuple(float(v) for v in means[g]), count=int(sizes[g]),
             fraction=sizes[g] / n, median_loss=float(np.median(loss[group == g])))
        for g in ranked[:max_groups]
    ]
