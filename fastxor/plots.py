"""Figures of a run or a sweep (matplotlib, an optional extra: ``plot``).

Each function writes one PNG and returns its path; ``plot_result`` and
``plot_sweep`` write the standard set that ``fastxor plot`` produces.
"""
from pathlib import Path

import numpy as np

from .arrays import to_host
from .machine import install_hint
from .backends.numpy_reference import forward


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(f"plotting needs matplotlib: {install_hint('plot')}") from exc
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, layout=True, **options):
    """Write ``fig`` to ``path`` (a file name, or a file object that stays
    one: a notebook's image), laid out tightly unless ``layout`` is False
    (figures with a colorbar over several axes), and release it: pyplot keeps
    every figure it made until closed (clearing is not enough), so a loop of
    plots grew without bound."""
    import matplotlib.pyplot as plt

    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=110, **options)
    plt.close(fig)
    return path if hasattr(path, "write") else Path(path)


def loss_curves(result, path, sample=30, seed=0):
    """A sample of loss curves, the median and the 5-95 % band (log scale)."""
    plt = _pyplot()
    if result.loss_history is None or result.loss_history.shape[1] == 0:
        raise ValueError("loss curves need a loss history: train with record_every > 0")
    e, h = result.history_epochs, np.asarray(result.loss_history, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pick = np.random.default_rng(seed).choice(len(h), min(sample, len(h)), replace=False)
    for i in pick:
        ax.plot(e, h[i], lw=0.6, alpha=0.5, color="tab:green" if result.solved[i] else "tab:red")
    q = np.nanquantile(h, (0.05, 0.5, 0.95), axis=0)
    ax.fill_between(e, q[0], q[2], color="tab:blue", alpha=0.2, label="5-95 %")
    ax.plot(e, q[1], color="tab:blue", lw=2, label="median")
    ax.set(yscale="log", xlabel="epoch", ylabel="MSE loss",
           title=f"{result.n_networks} networks (sample: green solved, red not)")
    ax.legend()
    return _save(fig, path)


def solved_epochs(result, path):
    """Histogram of the epoch at which each network first solved the task."""
    plt = _pyplot()
    at = result.solved_epoch[result.solved_epoch >= 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist(at, bins=60, color="tab:blue")
    ax.set(xlabel="first solved epoch", ylabel="networks",
           title=f"{at.size} of {result.n_networks} solved ({100 * at.size / result.n_networks:.1f} %)")
    return _save(fig, path)


def final_losses(result, path):
    """Distribution of final losses (log-spaced bins), solved vs not."""
    plt = _pyplot()
    loss = np.asarray(result.loss, dtype=np.float64)
    ok = np.isfinite(loss) & (loss > 0)
    bins = np.geomspace(loss[ok].min(), loss[ok].max(), 60) if ok.sum() > 1 else 10
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mask, label, colour in ((result.solved, "solved", "tab:green"), (~result.solved, "not solved", "tab:red")):
        ax.hist(loss[ok & mask], bins=bins, alpha=0.7, label=label, color=colour)
    ax.set(xscale="log", xlabel="final loss", ylabel="networks", title="final loss")
    ax.legend()
    return _save(fig, path)


def decision_surfaces(result, path, per_kind=3):
    """Output over [0, 1]^2 with each hidden unit's line w.x + b = 0, for a
    few solved and a few unsolved networks."""
    plt = _pyplot()
    kinds = [("solved", np.flatnonzero(result.solved)[:per_kind]),
             ("not solved", np.flatnonzero(~result.solved & ~result.diverged)[:per_kind])]
    cols = max(1, max(len(ix) for _, ix in kinds))
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 6.4), squeeze=False)
    g = np.linspace(-0.25, 1.25, 121)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    X = np.asarray(result.config["X"], dtype=np.float64)
    y = np.asarray(result.config["y"], dtype=np.float64)
    im = None
    for row, (label, idx) in enumerate(kinds):
        for col in range(cols):
            ax = axes[row, col]
            if col >= len(idx):
                ax.axis("off")
                continue
            p = result.params[int(idx[col])].astype(np.float64)
            _, out = _forward_on(p, grid, result.config.get("activation", "sigmoid"), result.config.get("output", "sigmoid"))
            im = ax.contourf(gx, gy, out.reshape(gx.shape), levels=np.linspace(0, 1, 11), cmap="RdBu_r")
            ax.contour(gx, gy, out.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.5)
            for w, b in zip(p.W1[0], p.b1[0]):  # hidden unit j: w0 x + w1 y + b = 0
                if abs(w[1]) > 1e-12:
                    ax.plot(g, -(w[0] * g + b) / w[1], "--", color="0.3", lw=1)
                elif abs(w[0]) > 1e-12:
                    ax.axvline(-b / w[0], ls="--", color="0.3", lw=1)
            ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", vmin=0, vmax=1, edgecolors="k", s=60)
            ax.set(xlim=(g[0], g[-1]), ylim=(g[0], g[-1]), title=f"{label}: #{int(idx[col])}")
    if im is None:  # every network diverged: nothing to draw
        axes[0, 0].text(0.5, 0.5, "no network to show:\nall diverged", ha="center", va="center")
    else:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="output")
    return _save(fig, path, layout=False)


def _forward_on(p, points, activation="sigmoid", output="sigmoid"):
    """Hidden and output values of one network on arbitrary inputs (the
    reference forward pass, with the run's hidden activation and output unit)."""
    _, h, _, out = forward(p, points, activation, output)
    return h[0], out[0]


def output_dir(out_dir, option="--out"):
    """``out_dir`` created if needed; a clear error, naming ``option``, when it
    is a file or cannot be made."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out} is a file: the plots go into a directory; name another one")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the plot directory {out}: {exc.strerror}") from None
    return out


def plot_result(result, out_dir):
    """The standard figures of a run into ``out_dir``; returns their paths."""
    out = output_dir(out_dir)
    paths = []
    if result.loss_history is not None and result.loss_history.shape[1]:
        paths.append(loss_curves(result, out / "loss_curves.png"))
    paths += [
        solved_epochs(result, out / "solved_epochs.png"),
        final_losses(result, out / "final_losses.png"),
    ]
    if np.shape(result.config["X"])[1] == 2:  # a plane to draw
        paths.append(decision_surfaces(result, out / "decision_surfaces.png"))
    else:
        paths.append(sample_outputs(result, out / "sample_outputs.png"))
    return paths


def sample_outputs(result, path, per_kind=3):
    """Each sample's output for a few solved and a few unsolved networks,
    beside its target: the view of a network on D != 2 inputs."""
    plt = _pyplot()
    y = np.asarray(result.config["y"], dtype=np.float64)
    pred = to_host(result.predictions)
    kinds = [("solved", np.flatnonzero(to_host(result.solved))[:per_kind]),
             ("not solved", np.flatnonzero(~to_host(result.solved) & ~to_host(result.diverged))[:per_kind])]
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.12 * len(y) + 3), 6.4), squeeze=False)
    samples = np.arange(len(y))
    for ax, (label, idx) in zip(axes[:, 0], kinds):
        ax.plot(samples, y, "ks", ms=5, label="target")
        for i in idx:
            ax.plot(samples, pred[i], "o-", ms=3, lw=0.8, label=f"#{int(i)}")
        ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
        ax.set(ylim=(-0.05, 1.05), xlabel="sample (row of X)", ylabel="output", title=label)
        ax.legend(fontsize=7, ncol=4)
    return _save(fig, path)


def success_heatmap(table, path):
    """Success rate per (lr, init_scale), one panel per hidden width."""
    plt = _pyplot()
    t = table.to_records(index=False) if hasattr(table, "to_records") else table
    widths = sorted(set(int(h) for h in t["hidden"]))
    lrs, scales = sorted(set(t["lr"])), sorted(set(t["init_scale"]))
    fig, axes = plt.subplots(1, len(widths), squeeze=False, layout="constrained",
                             figsize=(1.5 + (1.2 + 0.8 * len(lrs)) * len(widths), 2.0 + 0.6 * len(scales)))
    for ax, h in zip(axes[0], widths):
        m = np.full((len(scales), len(lrs)), np.nan)
        for r in t[t["hidden"] == h]:
            m[scales.index(r["init_scale"]), lrs.index(r["lr"])] = r["success_rate"]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", color="w" if v < 0.6 else "k")
        ax.set(xticks=range(len(lrs)), xticklabels=[f"{v:g}" for v in lrs],
               yticks=range(len(scales)), yticklabels=[f"{v:g}" for v in scales],
               xlabel="learning rate", ylabel="init scale", title=f"H = {h}: % solved")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    return _save(fig, path, layout=False)


def plot_sweep(table, out_dir):
    out = output_dir(out_dir)
    return [success_heatmap(table, out / "success_rate.png")]


def landscape_figures(land, out_dir, sample=20, seed=0):
    """Two figures of a ``Landscape`` into ``out_dir``: every stuck group's
    Hessian spectra (all P eigenvalues of up to 200 networks, symmetric-log
    scale, negative ones are saddle directions), and the weight norm against
    the probe's epochs for ``sample`` networks of each group (growing: a
    region at infinity). Returns the paths."""
    plt = _pyplot()
    out = output_dir(out_dir)
    rng = np.random.default_rng(seed)
    groups = [(f"({', '.join(f'{v:.2f}' for v in g['outputs'])})", land.groups == i)
              for i, g in enumerate(land.group_info)]
    if not groups:
        raise ValueError("no unsolved networks: nothing to plot")
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 4))
    for x, (name, mask) in enumerate(groups):
        idx = np.flatnonzero(mask)
        idx = rng.choice(idx, min(200, idx.size), replace=False)
        eig = land.hessian_eigenvalues[idx]
        jitter = rng.uniform(-0.25, 0.25, eig.shape)
        ax.scatter(x + jitter.ravel(), eig.ravel(), s=3, alpha=0.4, c=np.where(eig.ravel() < 0, "C3", "C0"))
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], rotation=20, fontsize=7)
    ax.set_ylabel("Hessian eigenvalues at the end point")
    ax.set_title("stuck groups (outputs for the samples): spectra, negative in red")
    paths = [_save(fig, out / "hessian_spectra.png")]
    fig, ax = plt.subplots(figsize=(6, 4))
    for x, (name, mask) in enumerate(groups):
        idx = np.flatnonzero(mask & np.isfinite(land.norms[:, 0]))
        for k, i in enumerate(rng.choice(idx, min(sample, idx.size), replace=False)):
            ax.plot(land.probe_epochs, land.norms[i], color=f"C{x}", lw=0.8, alpha=0.6, label=name if k == 0 else None)
    ax.set_xlabel(f"epochs after the end of training (the run had {land.config.get('epochs')})")
    ax.set_ylabel("weight norm |theta|")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "weight_norms.png"))
    return paths


#: Colours of a map's stuck groups 1, 2, ... ("other stuck" last) and of divergence.
_STUCK_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
_DIVERGED_COLOUR = "#000000"


def plot_map(m, path):
    """A trainability map (``fastxor.maps.Map``) as an image, log axes where
    the map's are. Criterion "solved": solved cells shaded by their first
    solved epoch (colour bar), each unsolved group and divergence in its own
    flat colour. "finite" / "converged": trainable cells shaded by final
    loss / initial loss (colour bar), the untrainable finite ones red,
    diverged ones black (Sohl-Dickstein's convergent/divergent picture)."""
    plt = _pyplot()
    from matplotlib import colors, patches, ticker

    ry, rx = m.shape
    rgb = np.zeros((ry, rx, 3))
    cmap = plt.get_cmap("viridis")
    handles = []

    def paint(where, colour, label):
        if where.any():
            rgb[where] = colors.to_rgb(colour)
            text = label if len(label) <= 58 else label[:55] + "..."
            handles.append(patches.Patch(color=colour, label=f"{text} ({100 * where.mean():.1f} %)"))

    if m.criterion == "solved":
        good = m.outcome == 0
        value = np.where(good, m.solved_epoch, 0).astype(np.float64) + 1
        norm = colors.LogNorm(vmin=1, vmax=max(float(value.max()), 2.0))
        bar = "first solved epoch + 1"
        for code, label in sorted(m.outcome_labels.items()):
            if code:
                colour = _DIVERGED_COLOUR if code < 0 else _STUCK_COLOURS[min(code - 1, len(_STUCK_COLOURS) - 1)]
                paint(m.outcome == code, colour, label)
    else:
        good = m.trainable
        with np.errstate(all="ignore"):
            ratio = np.log10(np.maximum(m.loss / m.initial_loss, 1e-300))
        value = np.where(good, ratio, 0.0)
        low = float(np.nanmin(value[good])) if good.any() else -1.0
        norm = colors.Normalize(vmin=min(low, -1e-3), vmax=0.0)
        bar = "log10(final loss / initial loss)"
        paint(~good & ~m.diverged, _STUCK_COLOURS[0], "finite, not converged" if m.criterion == "converged"
              else "untrainable")
        paint(m.diverged, _DIVERGED_COLOUR, "diverged")
    rgb[good] = cmap(np.ma.getdata(norm(value))[good])[:, :3]
    fx = np.log10 if m.log else (lambda a: a)
    half_x = (fx(m.x[-1]) - fx(m.x[0])) / (2 * (rx - 1))
    half_y = (fx(m.y[-1]) - fx(m.y[0])) / (2 * (ry - 1))
    extent = (fx(m.x[0]) - half_x, fx(m.x[-1]) + half_x, fx(m.y[0]) - half_y, fx(m.y[-1]) + half_y)
    fig, ax = plt.subplots(figsize=(8, 6.5 + 0.22 * len(handles)))
    ax.imshow(rgb, origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    for axis, values in ((ax.xaxis, m.x), (ax.yaxis, m.y)):  # enough digits to tell a zoomed map's ticks apart
        span = abs(values[-1] - values[0]) / max(abs(values[0]), abs(values[-1]), 1e-300)
        digits = max(3, int(np.ceil(-np.log10(max(span, 1e-16)))) + 3)
        if m.log:
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _, d=digits: f"{10 ** v:.{d}g}"))
        else:
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _, d=digits: f"{v:.{d}g}"))
    names = (("hidden-layer lr (W1, b1)", "output-layer lr (W2, b2)") if m.kind == "lr"
             else tuple(f"{d} (offset from the centre)" for d in m.spec.get("directions_label", ("u", "v"))))
    ax.set(xlabel=names[0] + (" (log)" if m.log else ""), ylabel=names[1] + (" (log)" if m.log else ""))
    title = f"{m.kind} map, {rx} x {ry}, {m.spec['epochs']} epochs, trainable = {m.criterion}"
    try:
        d, (lo, hi) = m.boundary_dimension()
        title += f"\nboundary dimension {d:.2f} (scales {lo:.2f}..{hi:.2f})"
    except ValueError:
        pass
    ax.set_title(title, fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=bar)
    if handles:  # below the map: it would hide cells
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.1), ncol=1, fontsize=7,
                  frameon=False)
    return _save(fig, path, layout=False, bbox_inches="tight", format="png")
