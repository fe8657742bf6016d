"""Where and why networks get stuck: every network's end point classified as
solved, saddle, plateau (a region at infinity), local minimum, or undecided.

Why these measurements: the literature disagrees in its words -- Rumelhart,
Hinton & Williams (1986) call the XOR network's stuck points local minima
and note that "further trials merely increase the magnitude of the
weights"; Hamey (1998) and Sprinkhuizen-Kuyper & Boers (1998, 1999) prove
that the 2-2-1 network has no local minimum with positive error at finite
weights, only saddle points and regions at infinity, while for 2-3-1 they
exhibit local minima. Telling these apart needs, per network, the gradient,
the Hessian's spectrum (``curvature``: exact, float64) and whether the
weights keep growing, which a short continuation of training shows (the
kernels make that cheap, so ``analyse`` works on any result).
"""
import dataclasses
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import config, options
from .arrays import to_host
from .curvature import gradient_and_hessian
from .machine import require_memory
from .state import n_params
from .validate import check_int

KINDS = ("solved", "saddle", "plateau", "local-minimum", "undecided")
#: ``config`` entries that may hold one value per network.
PER_NETWORK = options.PER_NETWORK


@dataclass
class Landscape:
    """Per network (N,): ``kind`` (one of KINDS), ``why`` (what decided an
    undecided one, else ""), ``grad_norm``, ``hessian`` (N, P, P) and
    ``hessian_eigenvalues`` (N, P, ascending) of the training loss at the
    final parameters, ``loss``; for unsolved networks (NaN for the others)
    the weight norm during the probe, ``norms`` (N, K) at ``probe_epochs``
    (K,) epochs after the end of training, ``growth``: the norm's relative
    increase over the probe, and ``descent``: the loss's relative decrease. ``groups``: the
    result's stuck-group label per network (``TrainResult.stuck_group_labels``)
    and ``group_info`` their descriptions; ``thresholds``: the criteria used."""

    kind: np.ndarray
    why: np.ndarray
    grad_norm: np.ndarray
    hessian: np.ndarray
    hessian_eigenvalues: np.ndarray
    loss: np.ndarray
    norms: np.ndarray
    probe_epochs: np.ndarray
    growth: np.ndarray
    descent: np.ndarray
    groups: np.ndarray
    group_info: list
    thresholds: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def n_networks(self):
        return len(self.kind)

    def counts(self, mask=None):
        """kind -> number of networks (within ``mask`` if given)."""
        k = self.kind if mask is None else self.kind[mask]
        return {name: int((k == name).sum()) for name in KINDS}

    def __repr__(self):  # the dataclass's would print every Hessian
        from .notebook import text_repr

        return text_repr("Landscape", self.summary())

    def _repr_html_(self):  # Jupyter
        from .notebook import html_repr

        return html_repr("Landscape", self.summary())

    def summary(self):
        """Counts per kind, overall and within each stuck group, with the criteria."""
        t = self.thresholds
        c = self.counts()
        lines = [f"{self.n_networks} networks, H={self.config.get('hidden')}, {self.config.get('epochs')} epochs, "
                 f"probe {int(self.probe_epochs[-1])} more epochs",
                 "kinds: " + ", ".join(f"{k} {v}" for k, v in c.items() if v),
                 f"criteria (relative changes over the probe): still descending if the loss falls > "
                 f"{t['loss_tol']:g}; plateau if the weight norm grows > {t['growth_tol']:g}; else a critical "
                 f"point if the gradient norm <= {t['grad_tol']:g}, by the Hessian's eigenvalues beyond "
                 f"+-{t['eig_tol']:g}"]
        for g, info in enumerate(self.group_info):
            mask = self.groups == g
            outs = ", ".join(f"{v:.2f}" for v in info["outputs"])
            kinds = ", ".join(f"{k} {v}" for k, v in self.counts(mask).items() if v)
            lines.append(f"  ({outs}): {info['count']} networks: {kinds}")
        other = self.groups == len(self.group_info)
        if other.any():
            kinds = ", ".join(f"{k} {v}" for k, v in self.counts(other).items() if v)
            lines.append(f"  smaller groups: {int(other.sum())} networks: {kinds}")
        undecided = self.kind == "undecided"
        if undecided.any():
            reasons, n = np.unique(self.why[undecided], return_counts=True)
            lines.append("undecided: " + "; ".join(f"{r} ({k})" for r, k in zip(reasons, n)))
        return "\n".join(lines)

    def plot(self, out_dir, sample=20, seed=0):
        """Eigenvalue spectra per stuck group, and the weight norm against the
        probe's epochs for a sample of each group; returns the paths."""
        from .plots import landscape_figures

        return landscape_figures(self, out_dir, sample=sample, seed=seed)


def analyse(result, *, probe_epochs=None, probe_points=None, grad_tol=1e-5, eig_tol=1e-6, growth_tol=1e-3,
            loss_tol=1e-2, backend="auto", tol=0.05, max_groups=5):
    """The landscape at every network's end point (see the module docstring).

    result : a TrainResult (or a results-file path).
    probe_epochs, probe_points : training continues a copy of every unsolved
        network, with its own recipe and optimizer state, for
        ``probe_epochs`` more epochs (default: a tenth of the run, between
        1 000 and 10 000), its weight norm taken at ``probe_points`` evenly
        spaced epochs (default 11, at most one per probe epoch and the
        start). Solved networks need no probe (their norms are NaN).
    grad_tol : at finite weights, a gradient norm at or below it is zero.
    eig_tol : eigenvalues within +-eig_tol * max(1, |largest|) count as
        zero: a local minimum needs all above, a saddle one below.
    growth_tol : the weight norm growing by more than this (relative) over
        the probe, while the loss no longer falls, is a region at infinity.
    loss_tol : a loss falling by more than this (relative) over the probe is
        still descending: too early to say.
    The criteria and their defaults are justified in ``_classify``.
    """
    from .result import TrainResult

    if not isinstance(result, TrainResult):
        result = TrainResult.load(result)
    c = result.config
    if probe_epochs is None:
        probe_epochs = int(min(10_000, max(1_000, c.get("epochs", 0) // 10)))
    probe_epochs = check_int("probe_epochs", probe_epochs, 1, config.EPOCHS_MAX)
    if probe_points is None:  # 11, or one per epoch of a shorter probe
        probe_points = min(11, probe_epochs + 1)
    probe_points = check_int("probe_points", probe_points, 2, probe_epochs + 1)
    for name, value in (("grad_tol", grad_tol), ("eig_tol", eig_tol), ("growth_tol", growth_tol),
                        ("loss_tol", loss_tol)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < np.inf:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    hidden = result.params.hidden
    P = n_params(hidden, result.params.inputs)
    # the Hessians (N, P, P), their eigenvalues' workspace and the flat float64 parameters
    require_memory(result.n_networks * (3 * P * P + 2 * P) * 8,
                   f"analyse of {result.n_networks} networks of P={P} parameters (a P x P Hessian each)")
    flat = to_host(result.params.to_flat()).astype(np.float64)
    X, y = np.asarray(c["X"], dtype=np.float64), np.asarray(c["y"], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        grad, hess, loss = gradient_and_hessian(flat, hidden, X, y, c.get("loss", "mse"),
                                                c.get("activation", "sigmoid"), c.get("output", "sigmoid"))
    finite = np.isfinite(hess).all(axis=(1, 2))  # huge weights can overflow the second derivatives
    eig = np.full(hess.shape[:2], np.nan)
    eig[finite] = np.linalg.eigvalsh(hess[finite])
    solved, diverged = to_host(result.solved), to_host(result.diverged)
    probed = np.flatnonzero(~solved & ~diverged)
    n = result.n_networks
    norms, probe_loss = np.full((n, probe_points), np.nan), np.full(n, np.nan)
    marks = np.linspace(0, probe_epochs, probe_points).round().astype(np.int64)
    if probed.size:
        marks, norms[probed], probe_loss[probed] = _probe(_subset(result, probed), probe_epochs, probe_points,
                                                           backend)
    with np.errstate(invalid="ignore", divide="ignore"):  # zero weights that stay zero do not grow
        growth = np.where(norms[:, -1] == norms[:, 0], 0.0, (norms[:, -1] - norms[:, 0]) / norms[:, 0])
        descent = np.where(probe_loss == loss, 0.0, (loss - probe_loss) / loss)
    growth[np.isnan(norms[:, 0])] = np.nan
    thresholds = dict(grad_tol=grad_tol, eig_tol=eig_tol, growth_tol=growth_tol, loss_tol=loss_tol,
                      probe_epochs=probe_epochs)
    grad_norm = np.sqrt((grad * grad).sum(axis=1))
    kind, why = _classify(solved, diverged, grad_norm, eig, growth, descent, thresholds)
    groups, group_info = result._stuck_grouping(tol, max_groups)
    return Landscape(kind=kind, why=why, grad_norm=grad_norm, hessian=hess, hessian_eigenvalues=eig, loss=loss,
                     norms=norms, probe_epochs=marks, growth=growth, descent=descent,
                     groups=groups, group_info=group_info, thresholds=thresholds,
                     config=dict(hidden=hidden, epochs=c.get("epochs")))


def _subset(result, idx):
    """The networks ``idx`` of ``result`` as a TrainResult of their own
    (per-network config entries sliced too), enough to ``resume`` them."""
    n = result.n_networks
    take = lambda a: None if a is None else to_host(a)[idx]  # noqa: E731
    config = {k: (np.asarray(v)[idx] if k in PER_NETWORK and np.ndim(v) == 1 and len(v) == n else v)
              for k, v in result.config.items()}
    config.update(n_networks=len(idx), record_every=0)
    return dataclasses.replace(
        result, params=result.params.astype(result.params.dtype)[idx], loss=take(result.loss),
        predictions=take(result.predictions), solved=take(result.solved), solved_epoch=take(result.solved_epoch),
        diverged=take(result.diverged), diverged_epoch=take(result.diverged_epoch), loss_history=None,
        target_epoch=take(result.target_epoch),
        optimizer_state=None if result.optimizer_state is None else to_host(result.optimizer_state)[:, idx],
        config=config)


def _probe(result, epochs, points, backend):
    """(epochs (K,), weight norms (N, K), loss at the end (N,)): training
    continued from the result with its recipe and optimizer state
    (``resume``)."""
    from .training import resume

    marks = np.linspace(0, epochs, points).round().astype(np.int64)
    norms = [_norm(result)]
    for a, b in zip(marks[:-1], marks[1:]):  # in segments (a progress callback): Ctrl-C ends it within one
        result = resume(result, int(b - a), backend=backend, progress=lambda done, total: None)
        norms.append(_norm(result))
    return marks, np.stack(norms, axis=1), to_host(result.loss).astype(np.float64)


def _norm(result):
    flat = to_host(result.params.to_flat()).astype(np.float64)
    return np.sqrt((flat * flat).sum(axis=0))


def _classify(solved, diverged, grad_norm, eig, growth, descent, t):
    """Each network's kind and, for an undecided one, why.

    - solved: exactly ``result.solved``.
    - still descending (undecided): the loss fell by more than loss_tol
      (relative) over the probe: the run is too short to say. Measured on
      10^4 seeds of the seed's network (H = 2, lr 0.1, 10^5 epochs, probe
      10^4): stuck networks' losses fall by 1e-4 to 4e-3, networks leaving
      a plateau by 0.9 and more; 1e-2 lies between.
    - plateau, a region at infinity: the loss no longer falls while the
      weight norm grows by more than growth_tol (relative) over the probe.
      There the gradient decays like 1/t and the weights grow like log t:
      measured, 1.0-2.7e-2 over the probe (gradient norms 2e-4 to 6e-4),
      ten times the default; a network at a finite critical point, gradient
      below grad_tol, moves by at most lr * grad_tol * probe (1e-2 absolute
      over 10^4 epochs at lr 0.1, relative 1e-3 at the norms seen, ~10).
    - local minimum: the loss does not fall, the weights do not grow, the
      gradient is below grad_tol, and every Hessian eigenvalue is above
      eig_tol * max(1, |largest|).
    - saddle: the same but some eigenvalue below -eig_tol * max(1, |largest|).
    - undecided otherwise: diverged; a gradient above grad_tol at finite
      weights (a slow drift); a Hessian singular within eig_tol, or one
      that overflows.
    eig_tol = 1e-6: the Hessian is exact to ~1e-15 relative, but a point
    that is critical only to grad_tol shifts the eigenvalues by about
    grad_tol times the third derivatives (O(1)); 1e-6 is well above the
    1e-5 * O(1e-2) shift at the defaults and well below the smallest
    eigenvalues that decide (1e-5 to 1e-2 in the measured groups).
    """
    n = len(solved)
    kind = np.full(n, "undecided", dtype="<U13")
    why = np.full(n, "", dtype="<U48")
    scale = np.maximum(1.0, np.abs(eig).max(axis=1))
    low = eig[:, 0] / scale
    unsolved = ~solved & ~diverged
    descending = unsolved & (descent > t["loss_tol"])
    flat = unsolved & ~descending
    growing = flat & (growth > t["growth_tol"])
    critical = flat & ~growing & (grad_norm <= t["grad_tol"])
    kind[solved] = "solved"
    why[diverged & ~solved] = "diverged: an update overflowed"
    why[descending] = "still descending: the run is too short"
    kind[growing] = "plateau"
    why[flat & ~growing & ~critical] = "gradient above grad_tol at finite weights"
    kind[critical & (low > t["eig_tol"])] = "local-minimum"
    kind[critical & (low < -t["eig_tol"])] = "saddle"
    why[critical & (np.abs(low) <= t["eig_tol"])] = "Hessian singular within eig_tol"
    why[critical & np.isnan(low)] = "Hessian not finite (weights too large)"
    return kind, why
