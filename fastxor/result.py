"""What a training run returns, and the statistics a researcher reads first."""
from dataclasses import dataclass, field

import numpy as np

from .arrays import to_host
from .params import Params
from .state import PARAM_FIELDS

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes, trials, z=Z95):
    """95 % Wilson score interval for a binomial proportion (robust at 0 and 1)."""
    if trials == 0:
        return (float("nan"), float("nan"))
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return (lo, hi)


def _cells(pred, side):
    """Each row's cell of side ``side`` in output space: (cells (C, 4) int64,
    inverse (M,) row -> cell, counts (C,)), cells in lexicographic order.

    Outputs lie in [0, 1], so the cell indices are small: a dense mixed-radix
    key and ``bincount`` group 10**7 rows in well under a second, where a
    sort-based ``unique`` takes several.
    """
    lo = min(np.round(float(pred.min()) / side), 0.0)
    hi = np.round(float(pred.max()) / side)
    base = int(hi) + 1
    if lo < 0 or base**4 > 2**24:  # unusual tol: sort-based
        c = np.round(pred.astype(np.float64) / side).astype(np.int64)
        cells, inverse, counts = np.unique(c, axis=0, return_inverse=True, return_counts=True)
        return cells, inverse.reshape(-1), counts
    key = np.empty(len(pred), dtype=np.int64)
    for a in range(0, len(pred), 65536):  # blocks: the float64 temporaries stay in cache
        c = pred[a:a + 65536].astype(np.float64)
        c /= side
        np.round(c, out=c)
        key[a:a + 65536] = ((c[:, 0] * base + c[:, 1]) * base + c[:, 2]) * base + c[:, 3]  # exact in float64
    dense = np.bincount(key, minlength=base**4)
    used = np.flatnonzero(dense)
    index = np.zeros(base**4, dtype=np.int64)
    index[used] = np.arange(len(used))
    cells = np.stack([used // base**(3 - i) % base for i in range(4)], axis=1)
    return cells, index[key], dense[used]


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _mean_interval(x, z=Z95):
    """95 % normal-approximation interval of the mean of ``x`` (None if < 2 values)."""
    if len(x) < 2:
        return None
    half = z * float(np.std(x, ddof=1)) / np.sqrt(len(x))
    m = float(np.mean(x))
    return (m - half, m + half)


def _describe_recipe(c):
    """The training recipe in a few words, or "" for the seed's (sgd, mse, sigmoid)."""
    opt = c.get("optimizer", "sgd")
    parts = [opt]

    def desc(key):
        v = c.get(key, 0.0)
        return f"{v:g}" if np.ndim(v) == 0 else f"{np.min(v):g}..{np.max(v):g}"

    if opt == "sgd":
        if np.any(c.get("momentum", 0.0)):
            parts.append(f"momentum={desc('momentum')}" + (" nesterov" if c.get("nesterov") else "")
                         + (f" dampening={c['dampening']:g}" if c.get("dampening") else ""))
    else:
        parts.append(f"betas=({c['betas'][0]:g}, {c['betas'][1]:g}) eps={c['eps']:g}")
    if np.any(c.get("weight_decay", 0.0)):
        parts.append(f"weight_decay={desc('weight_decay')}")
    parts += [c.get("loss", "mse"), f"{c.get('activation', 'sigmoid')} hidden"]
    if c.get("target_loss") is not None:
        parts.append(f"target_loss={c['target_loss']:g}")
    text = ", ".join(parts)
    return "" if text == "sgd, mse, sigmoid hidden" else text
_ARRAYS = ("loss", "predictions", "solved", "solved_epoch", "diverged", "diverged_epoch")
_OPTIONAL = ("loss_history", "target_epoch", "optimizer_state")


@dataclass
class TrainResult:
    """Trained networks, per-network outcomes, and the configuration.

    Attributes
    ----------
    params : Params, the final parameters.
    loss : (N,) loss of the final parameters.
    predictions : (N, 4) outputs of the final parameters.
    solved : (N,) bool, all 4 final predictions on their target's side of 0.5.
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

        Networks whose 4 outputs agree within ``tol`` (max-norm) share a
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
        labels = np.full(self.n_networks, -1, dtype=np.int64)
        pred = to_host(self.predictions)[stuck]
        if not pred.size:
            return labels, []
        loss = to_host(self.loss)[stuck]
        cells, inverse, counts = _cells(pred, tol / 2)
        order = np.argsort(-counts, kind="stable")  # greedy: big cells seed groups
        centres = np.empty((len(cells), 4))
        n_centres = 0
        cell_group = np.empty(len(cells), dtype=np.int64)
        for c in order:  # each cell joins the first group within tol, else starts one
            x = cells[c] * (tol / 2)
            near = np.flatnonzero(np.abs(centres[:n_centres] - x).max(axis=1) <= tol)
            if near.size:
                cell_group[c] = near[0]
            else:
                cell_group[c], centres[n_centres] = n_centres, x
                n_centres += 1
        group = cell_group[inverse]
        sizes = np.bincount(group)
        means = np.stack([np.bincount(group, weights=pred[:, i]) for i in range(4)], axis=1) / sizes[:, None]
        ranked = np.argsort(-sizes, kind="stable")
        rank = np.empty_like(ranked)
        rank[ranked] = np.arange(len(ranked))
        labels[stuck] = np.minimum(rank[group], max_groups)
        return labels, [
            dict(outputs=tuple(float(v) for v in means[g]), count=int(sizes[g]),
                 fraction=sizes[g] / self.n_networks, median_loss=float(np.median(loss[group == g])))
            for g in ranked[:max_groups]
        ]

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
        """The TrainResult saved at ``path`` (``result.versions`` says what made it)."""
        from .results_file import read

        arrays, meta = read(path)
        missing = [k for k in (*PARAM_FIELDS, *_ARRAYS) if k not in arrays]
        if missing or not isinstance(meta.get("config"), dict):
            raise ValueError(f"{path} is not a complete fastxor results file (missing: "
                             f"{', '.join(missing) or 'config'})")
        cfg = dict(meta["config"])
        cfg.update({k[len("config."):]: v for k, v in arrays.items() if k.startswith("config.")})
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
        return to_module(self.params, index % self.n_networks, self.config.get("activation", "sigmoid"))

    def stats(self):
        """Success rate with its 95 % Wilson interval, and quantiles, as a dict."""
        n = self.n_networks
        solved, solved_epoch, loss = (to_host(a) for a in (self.solved, self.solved_epoch, self.loss))
        k = int(solved.sum())
        lo, hi = wilson_interval(k, n)
        solved_at = solved_epoch[solved_epoch >= 0]
        finite_loss = loss[np.isfinite(loss)]
        target = None
        if self.target_epoch is not None:
            te = to_host(self.target_epoch)
            reached = te[te >= 0]
            target = dict(
                target_loss=self.config.get("target_loss"),
                reached=int(reached.size),
                reached_rate=reached.size / n,
                reached_ci95=wilson_interval(int(reached.size), n),
                epoch_mean=float(reached.mean()) if reached.size else None,
                epoch_mean_ci95=_mean_interval(reached),
                epoch_quantiles=dict(zip(QUANTILES, np.quantile(reached, QUANTILES))) if reached.size else None,
            )
        return dict(
            target=target,
            networks=n,
            solved=k,
            success_rate=k / n,
            success_ci95=(lo, hi),
            diverged=int(to_host(self.diverged).sum()),
            solved_epoch_quantiles=dict(zip(QUANTILES, np.quantile(solved_at, QUANTILES)))
            if solved_at.size else None,
            loss_quantiles=dict(zip(QUANTILES, np.quantile(finite_loss, QUANTILES)))
            if finite_loss.size else None,
        )

    def summary(self):
        """A short human-readable report of ``stats()``."""
        s = self.stats()
        c = self.config
        lines = [
            f"{s['networks']} networks, H={c.get('hidden')}, lr={c.get('lr_desc', c.get('lr'))}, "
            f"{c.get('epochs')} epochs, {c.get('dtype')}, backend={c.get('backend')}",
            f"solved: {s['solved']} ({100 * s['success_rate']:.2f} %, 95 % CI "
            f"{100 * s['success_ci95'][0]:.2f}-{100 * s['success_ci95'][1]:.2f} %)",
            f"diverged: {s['diverged']}",
        ]
        recipe = _describe_recipe(c)
        if recipe:
            lines.insert(1, f"recipe: {recipe}")
        q = " ".join(f"{int(100 * p)}%" for p in QUANTILES)
        if s["solved_epoch_quantiles"]:
            v = " ".join(f"{x:.0f}" for x in s["solved_epoch_quantiles"].values())
            lines.append(f"solved epoch quantiles ({q}): {v}")
        if s["loss_quantiles"]:
            v = " ".join(f"{x:.3g}" for x in s["loss_quantiles"].values())
            lines.append(f"final loss quantiles   ({q}): {v}")
        t = s["target"]
        if t is not None:
            lo, hi = t["reached_ci95"]
            lines.append(f"loss <= {t['target_loss']:g} reached: {t['reached']} ({100 * t['reached_rate']:.2f} %, "
                         f"95 % CI {100 * lo:.2f}-{100 * hi:.2f} %)")
            if t["epoch_quantiles"]:
                v = " ".join(f"{x:.0f}" for x in t["epoch_quantiles"].values())
                mlo, mhi = t["epoch_mean_ci95"]
                lines.append(f"target epoch: mean {t['epoch_mean']:.1f} (95 % CI {mlo:.1f}-{mhi:.1f}), "
                             f"quantiles ({q}): {v}")
        if c.get("interrupted"):
            lines.append(f"INTERRUPTED after {c['epochs']} of {c['epochs_requested']} epochs")
        groups = self.stuck_groups()
        if groups:
            lines.append("unsolved networks by where they ended (outputs for the 4 inputs):")
            for g in groups:
                outs = ", ".join(f"{v:.2f}" for v in g["outputs"])
                lines.append(f"  ({outs}): {g['count']} ({100 * g['fraction']:.2f} %), "
                             f"median loss {g['median_loss']:.3g}")
        return "\n".join(lines)

    def __repr__(self):
        return f"TrainResult(\n{self.summary()}\n)"
