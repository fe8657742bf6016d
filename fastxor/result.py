"""What a training run returns, and the statistics a researcher reads first."""
from dataclasses import dataclass, field

import numpy as np

from .params import Params

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes, trials, z=Z95):
    """95 % Wilson score interval for a binomial proportion (robust at 0 and 1)."""
    if trials == 0:
        return (float("nan"), float("nan"))
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return (max(0.0, centre - half), min(1.0, centre + half))


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


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

    def stats(self):
        """Success rate with its 95 % Wilson interval, and quantiles, as a dict."""
        n = self.n_networks
        k = int(self.solved.sum())
        lo, hi = wilson_interval(k, n)
        solved_at = self.solved_epoch[self.solved_epoch >= 0]
        finite_loss = self.loss[np.isfinite(self.loss)]
        return dict(
            networks=n,
            solved=k,
            success_rate=k / n,
            success_ci95=(lo, hi),
            diverged=int(self.diverged.sum()),
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
        q = " ".join(f"{int(100 * p)}%" for p in QUANTILES)
        if s["solved_epoch_quantiles"]:
            v = " ".join(f"{x:.0f}" for x in s["solved_epoch_quantiles"].values())
            lines.append(f"solved epoch quantiles ({q}): {v}")
        if s["loss_quantiles"]:
            v = " ".join(f"{x:.3g}" for x in s["loss_quantiles"].values())
            lines.append(f"final loss quantiles   ({q}): {v}")
        return "\n".join(lines)

    def __repr__(self):
        return f"TrainResult(\n{self.summary()}\n)"
