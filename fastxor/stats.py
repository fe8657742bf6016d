"""The statistics of a run as a mergeable object: ``Stats.of(a) + Stats.of(b)``
equals ``Stats.of(a and b trained in one call)``.

Why: a run split into shards (``fastxor.distributed``, a resumed directory of
shard files) must print exactly what one process prints. So everything the
summary shows is kept as counts that add up: the solved / diverged / target
counts (Wilson intervals are computed from the merged counts), exact
histograms of the solved and target epochs (integers, so their quantiles are
exact), a log-binned histogram of the final losses (``LOSS_BINS_PER_DECADE``
bins per decade: a loss quantile is the geometric centre of its bin, within
0.12 % of the value), and the unsolved networks' cells in output space with
their counts, summed outputs and binned losses, from which the stuck groups
are formed after merging. ``TrainResult.stats()`` and ``summary()`` are
computed through this class, so one process and a merged cluster run print
the same text.
"""
from dataclasses import dataclass, field

import numpy as np

from . import options
from .arrays import array_module, to_host

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
STUCK_TOL = 0.05  # the summary's stuck groups: outputs within 0.05 (max-norm) share a group
MAX_GROUPS = 5
LOSS_BINS_PER_DECADE = 1000
ZERO_LOSS_BIN = -(2**40)  # a loss of exactly 0 (its own bin: log10 is -inf)
_LOSS_KEY = 2**21  # (cell, loss bin) pairs as one int64: cell * _LOSS_KEY + _pair_bin(bin)
_BIN_OFFSET = 2**20  # finite bins lie in +-(324 decades * LOSS_BINS_PER_DECADE) < 2**19


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


@dataclass(frozen=True)
class Counts:
    """A histogram of integers, sparse: sorted distinct ``values`` and their
    ``counts``. Adding two is exact; so are its quantiles (NumPy's linear
    rule, on the implicit sorted sample)."""

    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def of(cls, x):
        """The histogram of the integers ``x``, a host or GPU array: counted
        where they are, only the histogram is copied to the host."""
        xp = array_module(x)
        x = xp.asarray(x, dtype=np.int64).reshape(-1)
        dense = max(2**22 if xp is np else 0, 2 * x.size)  # a GPU's memory is the run's: no 32 MB for a few values
        if x.size and int(x.max()) - int(x.min()) < dense:  # a dense range: O(N), no sort
            lo = int(x.min())
            dense = xp.bincount(x - lo)
            v = xp.flatnonzero(dense)
            return cls(to_host(v + lo), to_host(dense[v]))
        v, c = xp.unique(x, return_counts=True)
        return cls(to_host(v), to_host(c).astype(np.int64))

    @classmethod
    def weighted(cls, values, counts):
        """The histogram of ``values`` each seen ``counts`` times (any order, repeats allowed)."""
        u, inverse = np.unique(np.asarray(values, dtype=np.int64), return_inverse=True)
        return cls(u, np.bincount(inverse.reshape(-1), weights=counts, minlength=len(u)).astype(np.int64))

    def __add__(self, other):
        return Counts.weighted(np.concatenate([self.values, other.values]),
                               np.concatenate([self.counts, other.counts]))

    @property
    def total(self):
        return int(self.counts.sum())

    def sorted_at(self, i):
        """The i-th smallest element (i an int array)."""
        return self.values[np.searchsorted(np.cumsum(self.counts), np.asarray(i), side="right")]

    def quantiles(self, qs=QUANTILES, transform=None):
        """``np.quantile`` of the sample at ``qs`` (of ``transform(values)``,
        which must be increasing), as {q: float}; None when empty."""
        n = self.total
        if n == 0:
            return None
        h = (n - 1) * np.asarray(qs, dtype=np.float64)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        f = transform or (lambda v: v.astype(np.float64))
        a, b = f(self.sorted_at(lo)), f(self.sorted_at(hi))
        return dict(zip(qs, (float(x) for x in a + (h - lo) * (b - a))))

    def mean_interval(self, z=Z95):
        """(mean, 95 % normal-approximation interval of the mean or None below 2 values)."""
        n = self.total
        if n == 0:
            return None, None
        v = self.values.astype(np.float64)
        mean = float((v * self.counts).sum() / n)
        if n < 2:
            return mean, None
        var = float((self.counts * (v - mean) ** 2).sum() / (n - 1))
        half = z * np.sqrt(var) / np.sqrt(n)
        return mean, (mean - half, mean + half)


def loss_bins(loss):
    """Each finite loss's bin: floor(log10(loss) * LOSS_BINS_PER_DECADE), or
    ZERO_LOSS_BIN for 0 (in blocks: the float64 temporaries stay in cache),
    where the losses are (host or GPU)."""
    xp = array_module(loss)
    out = xp.empty(len(loss), dtype=np.int64)
    for a in range(0, len(loss), 65536):
        x = xp.asarray(loss[a:a + 65536], dtype=np.float64)
        pos = x > 0
        b = xp.log10(xp.where(pos, x, 1.0))
        b *= LOSS_BINS_PER_DECADE
        xp.floor(b, out=b)
        out[a:a + 65536] = xp.where(pos, b, ZERO_LOSS_BIN)
    return out


def loss_bin_centres(bins):
    """The geometric centre of each loss bin (0 for ZERO_LOSS_BIN)."""
    bins = np.asarray(bins)
    return np.where(bins == ZERO_LOSS_BIN, 0.0, 10.0 ** ((bins + 0.5) / LOSS_BINS_PER_DECADE))


def cell_coords(pred, side, unit=1.0):
    """Each row's cell in output space: round(pred / side) per output (outputs
    are in [0, 1]: clipped there, NaN counted at 0.5), an (N, S) int16 array;
    ``unit``: pred holds outputs times it (8-bit outputs: 255). In blocks:
    the float64 temporaries stay in cache."""
    xp = array_module(pred)
    top = int(np.round(1.0 / side))
    out = xp.empty(pred.shape, dtype=np.int16)
    for a in range(0, len(pred), 65536):
        c = xp.asarray(pred[a:a + 65536], dtype=np.float64) / (side * unit)
        xp.round(c, out=c)
        xp.clip(c, 0, top, out=c)
        c[xp.isnan(c)] = np.round(0.5 / side)
        out[a:a + 65536] = c
    return out


def cells_are_numbers(samples, side=STUCK_TOL / 2):
    """Whether a cell of ``samples`` outputs is one int64 (a mixed-radix
    number: S <= 11 at the summary's STUCK_TOL), so that ``unique_cells``
    sorts numbers, on a GPU where the outputs are."""
    return (int(np.round(1.0 / side)) + 1) ** samples < 2**63


def unique_cells(coords, side):
    """(cells (C, S) in lexicographic order, each row's cell index (N,), counts (C,)).

    Where the S outputs' mixed-radix number fits an int64 (S <= 11 at the
    summary's STUCK_TOL) the rows are sorted as those numbers (10^7 rows in
    about a second), else as rows; the result is the same either way. The
    cells and counts are host arrays; the index is where ``coords`` is (a
    GPU sorts its own rows, as numbers; rows of more samples are sorted on
    the host)."""
    xp = array_module(coords)
    n, s = coords.shape
    base = int(np.round(1.0 / side)) + 1
    if cells_are_numbers(s, side):
        keys = xp.zeros(n, dtype=np.int64)
        for i in range(s):
            keys *= base
            keys += coords[:, i]
        counts = Counts.of(keys)
        index = xp.searchsorted(xp.asarray(counts.values), keys)
        digits = counts.values[:, None] // base ** np.arange(s - 1, -1, -1, dtype=np.int64)[None, :] % base
        return digits.astype(np.int16), index, counts.counts
    cells, index, counts = np.unique(to_host(coords), axis=0, return_inverse=True, return_counts=True)
    return cells, xp.asarray(index.reshape(-1)), counts.astype(np.int64)


def _pair_bin(bins):
    """A loss bin as the low part of a (cell, bin) pair key: 0 for ZERO_LOSS_BIN."""
    return array_module(bins).where(bins == ZERO_LOSS_BIN, 0, bins + _BIN_OFFSET)


def _bin_of_pair(low):
    return np.where(low == 0, ZERO_LOSS_BIN, low - _BIN_OFFSET)


def _renumbered(pairs, new_index):
    """(cell, bin) pairs with each cell index i replaced by new_index[i]."""
    v = pairs.values
    return Counts(new_index[v // _LOSS_KEY] * _LOSS_KEY + v % _LOSS_KEY, pairs.counts)


def group_cells(cells, counts, side, tol):
    """Greedy grouping of occupied cells (lexicographic order, their counts):
    the biggest cell seeds a group, each next cell joins the first group whose
    centre is within ``tol`` (max-norm), else starts one. (C,) group index."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    centres = np.empty(cells.shape)
    n_centres = 0
    cell_group = np.empty(len(cells), dtype=np.int64)
    for c in order:
        x = cells[c] * side
        near = np.flatnonzero(np.abs(centres[:n_centres] - x).max(axis=1) <= tol)
        if near.size:
            cell_group[c] = near[0]
        else:
            cell_group[c], centres[n_centres] = n_centres, x
            n_centres += 1
    return cell_group


#: The configuration keys whose value may differ per network: merged as a (min, max) range
#: (the init scale is not a statistic of the trained networks, and None for given parameters).
RANGES = tuple(k for k in options.PER_NETWORK if k != "init_scale")
#: The configuration keys the summary shows; shards merge only when these agree.
HEADER = ("hidden", "epochs", "dtype", "function", "X", "y", *(k for k in options.RECIPE if k not in RANGES),
          "fast_math", "init", "seed")


def header_of(config):
    """The part of a run's config that its statistics carry."""
    h = {k: config.get(k, options.DEFAULTS[k] if k in options.RECIPE else None) for k in HEADER}
    h["y"] = list(h["y"]) if h["y"] is not None else None
    h["betas"] = list(h["betas"]) if h["betas"] is not None else None
    for k in RANGES:
        if config.get(k, 0.0) is None:  # lr_output not given: the hidden layer's lr
            h[k] = None
            continue
        v = np.asarray(config.get(k, 0.0), dtype=np.float64)
        h[k] = (float(v.min()), float(v.max()))
    h["backend"] = config.get("backend")
    h["interrupted"] = bool(config.get("interrupted", False))
    h["epochs_requested"] = config.get("epochs_requested")
    start, n = config.get("start"), config.get("n_networks")
    # which networks of the seed these are, so that a merge never counts one twice
    # (unknown for given initial parameters)
    h["networks_at"] = [(int(start), int(start) + int(n))] if None not in (start, n, config.get("seed")) else None
    return h


def _merge_headers(a, b):
    bad = [k for k in HEADER if a.get(k) != b.get(k)]
    if bad:
        k = bad[0]
        raise ValueError(f"cannot merge the statistics of different runs: {k} {a.get(k)!r} vs {b.get(k)!r}")
    h = dict(a)
    h["networks_at"] = _merge_ranges(a.get("networks_at"), b.get("networks_at"), a.get("seed"))
    for k in RANGES:
        if (a[k] is None) != (b[k] is None):
            raise ValueError(f"cannot merge the statistics of different runs: {k} {a[k]!r} vs {b[k]!r}")
        h[k] = None if a[k] is None else (min(a[k][0], b[k][0]), max(a[k][1], b[k][1]))
    h["backend"] = "+".join(sorted(set(str(a["backend"]).split("+")) | set(str(b["backend"]).split("+"))))
    h["interrupted"] = a["interrupted"] or b["interrupted"]
    return h


def _merge_ranges(a, b, seed):
    """The union of two lists of network ranges [start, end) of one seed,
    refused where they overlap (a network counted twice); None if either is unknown."""
    if a is None or b is None:
        return None
    merged = sorted(map(tuple, a + b))
    for (s0, e0), (s1, e1) in zip(merged, merged[1:]):
        if s1 < e0:
            raise ValueError(f"cannot merge these statistics: networks {s1}..{min(e0, e1) - 1} of seed {seed} "
                             "would be counted twice")
    out = [merged[0]]
    for s, e in merged[1:]:
        out[-1:] = [(out[-1][0], e)] if s == out[-1][1] else [out[-1], (s, e)]
    return out


@dataclass(frozen=True)
class Stats:
    """Mergeable statistics of a set of networks trained with one configuration
    (see the module docstring). Build with ``Stats.of(result)``; add with ``+``."""

    networks: int
    solved: int
    diverged: int
    solved_epochs: Counts
    losses: Counts  # finite final losses, binned (``loss_bins``)
    nonfinite_losses: int
    cells: np.ndarray  # (C, S) the unsolved, not diverged networks' output cells (``cell_coords``), sorted
    cell_counts: np.ndarray  # (C,) networks per cell
    cell_sums: np.ndarray  # (C, S) their summed outputs
    cell_losses: Counts  # (cell index, loss bin) pairs: index * _LOSS_KEY + _pair_bin(bin)
    target_epochs: Counts = None  # epochs at which networks reached target_loss; None without a target
    config: dict = field(default_factory=dict)  # ``header_of(config)``

    @classmethod
    def of(cls, result):
        """The statistics of a TrainResult."""
        return cls.of_arrays(result.config, result.solved, result.diverged, result.solved_epoch, result.loss,
                             result.predictions, result.target_epoch, n=result.n_networks)

    @classmethod
    def of_arrays(cls, config, solved, diverged, solved_epoch, loss, predictions, target_epoch=None, n=None):
        """The statistics of per-network outcome arrays (a TrainResult's, or a
        slice of them) trained with ``config``. Computed where the arrays are:
        results kept on a GPU (``device_arrays``) are reduced there and only
        the statistics, kilobytes, come to the host."""
        xp = array_module(loss)
        solved, diverged = xp.asarray(solved).astype(bool), xp.asarray(diverged).astype(bool)
        solved_epoch, pred = xp.asarray(solved_epoch), xp.asarray(predictions)
        finite = xp.isfinite(loss)
        all_bins = loss_bins(xp.where(finite, loss, 1.0))  # each loss's bin, computed once
        stuck = ~solved & ~diverged
        side = STUCK_TOL / 2
        pred = pred[stuck]
        cells, index, counts = unique_cells(cell_coords(pred, side), side)
        sums = np.stack([to_host(xp.bincount(index, weights=pred[:, i], minlength=len(cells)))
                         for i in range(pred.shape[1])], axis=1) if len(index) else np.zeros((0, pred.shape[1]))
        ok = finite[stuck]
        pair = Counts.of(index[ok] * _LOSS_KEY + _pair_bin(all_bins[stuck][ok]))
        target = None
        if target_epoch is not None:
            te = xp.asarray(target_epoch)
            target = Counts.of(te[te >= 0])
        header = header_of(config)
        if len(solved) != config.get("n_networks"):  # a slice of the run: which networks is not known
            header["networks_at"] = None
        return cls(
            networks=int(len(solved) if n is None else n), solved=int(solved.sum()), diverged=int(diverged.sum()),
            solved_epochs=Counts.of(solved_epoch[solved_epoch >= 0]), losses=Counts.of(all_bins[finite]),
            nonfinite_losses=int((~finite).sum()), cells=cells, cell_counts=counts, cell_sums=sums, cell_losses=pair,
            target_epochs=target, config=header,
        )

    def __add__(self, other):
        if isinstance(other, int) and other == 0:  # sum(stats_list)
            return self
        if not isinstance(other, Stats):
            return NotImplemented
        if (self.target_epochs is None) != (other.target_epochs is None):
            raise ValueError("cannot merge the statistics of a run with a target_loss and one without")
        if self.cells.shape[1] != other.cells.shape[1] and len(self.cells) and len(other.cells):
            raise ValueError("cannot merge the statistics of runs with different sample counts")
        both = np.concatenate([self.cells, other.cells]).reshape(-1, max(self.cells.shape[1], other.cells.shape[1]))
        cells, index = np.unique(both, axis=0, return_inverse=True) if len(both) else (both, np.zeros(0, np.int64))
        index = index.reshape(-1)
        ours, theirs = index[:len(self.cells)], index[len(self.cells):]
        counts = np.bincount(index, weights=np.concatenate([self.cell_counts, other.cell_counts]),
                             minlength=len(cells)).astype(np.int64)
        sums = np.zeros((len(cells), cells.shape[1]))
        np.add.at(sums, index, np.concatenate([self.cell_sums, other.cell_sums]).reshape(-1, cells.shape[1]))
        return Stats(
            networks=self.networks + other.networks, solved=self.solved + other.solved,
            diverged=self.diverged + other.diverged, solved_epochs=self.solved_epochs + other.solved_epochs,
            losses=self.losses + other.losses, nonfinite_losses=self.nonfinite_losses + other.nonfinite_losses,
            cells=cells, cell_counts=counts, cell_sums=sums,
            cell_losses=_renumbered(self.cell_losses, ours) + _renumbered(other.cell_losses, theirs),
            target_epochs=None if self.target_epochs is None else self.target_epochs + other.target_epochs,
            config=_merge_headers(self.config, other.config),
        )

    __radd__ = __add__

    @property
    def success_rate(self):
        return self.solved / self.networks

    @property
    def success_ci95(self):
        return wilson_interval(self.solved, self.networks)

    def stuck_groups(self, max_groups=MAX_GROUPS):
        """The unsolved (not diverged) networks grouped by where they ended
        (outputs within ``STUCK_TOL``): up to ``max_groups`` dicts, largest
        first, as ``TrainResult.stuck_groups``."""
        if not len(self.cells):
            return []
        side = STUCK_TOL / 2
        group = group_cells(self.cells, self.cell_counts, side, STUCK_TOL)
        sizes = np.bincount(group, weights=self.cell_counts).astype(np.int64)
        sums = np.stack([np.bincount(group, weights=self.cell_sums[:, i]) for i in range(self.cells.shape[1])], axis=1)
        pair_group = group[self.cell_losses.values // _LOSS_KEY]
        pair_bin = _bin_of_pair(self.cell_losses.values % _LOSS_KEY)
        out = []
        for g in np.argsort(-sizes, kind="stable")[:max_groups]:
            mine = pair_group == g
            median = Counts.weighted(pair_bin[mine], self.cell_losses.counts[mine]).quantiles((0.5,), loss_bin_centres)
            out.append(dict(outputs=tuple(float(v) for v in sums[g] / sizes[g]), count=int(sizes[g]),
                            fraction=sizes[g] / self.networks,
                            median_loss=float("nan") if median is None else median[0.5]))
        return out

    def as_dict(self):
        """The figures of ``TrainResult.stats()``."""
        target = None
        if self.target_epochs is not None:
            reached = self.target_epochs.total
            mean, interval = self.target_epochs.mean_interval()
            target = dict(
                target_loss=self.config.get("target_loss"), reached=reached, reached_rate=reached / self.networks,
                reached_ci95=wilson_interval(reached, self.networks), epoch_mean=mean, epoch_mean_ci95=interval,
                epoch_quantiles=self.target_epochs.quantiles(),
            )
        return dict(
            target=target, networks=self.networks, solved=self.solved, success_rate=self.success_rate,
            success_ci95=self.success_ci95, diverged=self.diverged,
            solved_epoch_quantiles=self.solved_epochs.quantiles(),
            loss_quantiles=self.losses.quantiles(transform=loss_bin_centres),
        )

    def __repr__(self):  # the dataclass's would print every count array
        from .notebook import text_repr

        return text_repr("Stats", self.summary())

    def _repr_html_(self):  # Jupyter
        from .notebook import html_repr

        return html_repr("Stats", self.summary())

    def summary(self):
        """A short human-readable report (what ``fastxor train`` prints)."""
        s, c = self.as_dict(), self.config
        lr = _describe_range(c["lr"])
        lines = [
            f"{s['networks']} networks, H={c.get('hidden')}, lr={lr}, "
            f"{c.get('epochs')} epochs, {c.get('dtype')}, backend={c.get('backend')}",
            f"solved: {s['solved']} ({100 * s['success_rate']:.2f} %, 95 % CI "
            f"{100 * s['success_ci95'][0]:.2f}-{100 * s['success_ci95'][1]:.2f} %)",
            f"diverged: {s['diverged']}",
        ]
        recipe = describe_recipe(c)
        if recipe:
            lines.insert(1, f"recipe: {recipe}")
        q = " ".join(f"{int(100 * p)}%" for p in QUANTILES)
        if s["solved_epoch_quantiles"]:
            v = " ".join(f"{x:.0f}" for x in s["solved_epoch_quantiles"].values())
            lines.append(f"solved epoch quantiles ({q}): {v}")
        if s["loss_quantiles"]:
            v = " ".join(f"{x:.3g}" for x in s["loss_quantiles"].values())
            lines.append(f"final loss quantiles   ({q}): {v}")
        if self.nonfinite_losses:
            lines.append(f"non-finite final loss: {self.nonfinite_losses}")
        t = s["target"]
        if t is not None:
            lo, hi = t["reached_ci95"]
            lines.append(f"loss <= {t['target_loss']:g} reached: {t['reached']} ({100 * t['reached_rate']:.2f} %, "
                         f"95 % CI {100 * lo:.2f}-{100 * hi:.2f} %)")
            if t["epoch_quantiles"]:
                v = " ".join(f"{x:.0f}" for x in t["epoch_quantiles"].values())
                mean, interval = t["epoch_mean"], t["epoch_mean_ci95"]
                ci = f" (95 % CI {interval[0]:.1f}-{interval[1]:.1f})" if interval else ""
                lines.append(f"target epoch: mean {mean:.1f}{ci}, quantiles ({q}): {v}")
        if c.get("interrupted"):
            lines.append(f"INTERRUPTED after {c['epochs']} of {c['epochs_requested']} epochs")
        groups = self.stuck_groups()
        if groups:
            n = len(groups[0]["outputs"])
            if n <= PRINTED_OUTPUTS:
                lines.append(f"unsolved networks by where they ended (outputs for the {n} samples):")
            else:
                lines.append(f"unsolved networks by where they ended ({n} outputs each: the samples on the wrong "
                             "side of 0.5, and the outputs' range):")
            sides = None if c.get("y") is None else np.sign(np.asarray(c["y"], dtype=np.float64) - 0.5)
            for g in groups:
                lines.append(f"  {_describe_outputs(g['outputs'], sides)}: {g['count']} "
                             f"({100 * g['fraction']:.2f} %), median loss {g['median_loss']:.3g}")
        return "\n".join(lines)


#: Stuck groups of up to this many samples print every output; larger ones a summary.
PRINTED_OUTPUTS = 8


def _describe_outputs(outputs, sides):
    """A stuck group's mean outputs: all of them for a few samples, else
    which samples are on the wrong side of 0.5 (indices from 0) and the range."""
    o = np.asarray(outputs)
    if len(o) <= PRINTED_OUTPUTS:
        return "(" + ", ".join(f"{v:.2f}" for v in o) + ")"
    wrong = np.flatnonzero(sides * (o - 0.5) <= 0) if sides is not None and len(sides) == len(o) else None
    shown = "?" if wrong is None else (", ".join(str(i) for i in wrong[:10]) + (", ..." if len(wrong) > 10 else ""))
    count = "?" if wrong is None else len(wrong)
    return f"{count} wrong [{shown}], outputs {o.min():.2f}..{o.max():.2f}"


def _describe_range(r):
    lo, hi = r
    return f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"


def describe_recipe(c):
    """The training recipe in a few words, or "" for the seed's (sgd, mse,
    sigmoid). ``c``: a config, or a ``header_of`` one."""
    def desc(key):
        v = np.asarray(c.get(key, 0.0), dtype=np.float64)
        return _describe_range((v.min(), v.max()))

    opt = c.get("optimizer") or "sgd"
    parts = [opt]
    if opt == "sgd":
        if np.any(c.get("momentum", 0.0)):
            parts.append(f"momentum={desc('momentum')}" + (" nesterov" if c.get("nesterov") else "")
                         + (f" dampening={c['dampening']:g}" if c.get("dampening") else ""))
    else:
        parts.append(f"betas=({c['betas'][0]:g}, {c['betas'][1]:g}) eps={c['eps']:g}")
    if np.any(c.get("weight_decay", 0.0)):
        parts.append(f"weight_decay={desc('weight_decay')}")
    if c.get("lr_output") is not None:
        parts.append(f"lr_output={desc('lr_output')}")
    parts += [c.get("loss") or "mse", f"{c.get('activation') or 'sigmoid'} hidden"]
    if c.get("output") == "linear":
        parts.append("linear output")
    if c.get("target_loss") is not None:
        parts.append(f"target_loss={c['target_loss']:g}")
    text = ", ".join(parts)
    return "" if text == "sgd, mse, sigmoid hidden" else text
