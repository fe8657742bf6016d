"""``fastxor bench``'s report: the table, the plot, the command."""
import json
import sys

from . import harness


def format_report(report):
    """The table: implementation x N -> NE/s and how many times faster fastxor is."""
    rows, env = report["rows"], report["environment"]
    sizes = sorted({r["n"] for r in rows})
    names = list(dict.fromkeys(r["impl"] for r in rows))
    lines = [
        f"machine: {env['cpu']}, {env['cores']} cores, GPU: {env['gpu'] or 'none'}",
        "versions: " + ", ".join(f"{k} {env[k]}" for k in ("python", "numpy", "numba", "torch", "jax", "cupy")
                                 if env.get(k)),
        f"network-epochs/s (float32, H=2, XOR, recipe {_recipe_text(report)}); in brackets: fastxor's speed-up over it",
        f"{'implementation':22s}" + "".join(f"{'N=' + format(n, ','):>24s}" for n in sizes),
    ]
    for name in names:
        cells = []
        for n in sizes:
            r = next((r for r in rows if r["impl"] == name and r["n"] == n), None)
            if r is None:
                cells.append(f"{'-':>24s}")
            elif not r["valid"]:
                cells.append(f"{'WRONG':>24s}")
            else:
                s = r["fastxor_speedup"]
                cells.append(f"{r['ne_per_s']:>11.3g} ({'x' + format(s, '.3g') if s else '':>9s})  ")
        lines.append(f"{name:22s}" + "".join(cells))
    first = {}
    for r in rows:  # the first size measured: where compilation / tracing happened
        first.setdefault(r["impl"], r["first_call_s"])
    lines.append("first call, 2 epochs (compile / trace / load, not in the figures above): "
                 + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()))
    for s in report["skipped"]:
        lines.append(f"skipped: {s['impl']} ({s['why']})")
    cb = report["compute_bound"]
    if (report.get("recipe") or {}).get("name", "seed") != "seed":
        return "\n".join(lines)  # the bound below counts the seed kernel's operations
    numba_rows = [r for r in rows if r["impl"] == "fastxor numba"]
    line = f"compute bound (float32, CPU): {cb['ne_per_s']:.3g} NE/s = {cb['model']}"
    if numba_rows:
        best = max(numba_rows, key=lambda r: r["ne_per_s"])
        line += f"; fastxor numba reaches {100 * best['ne_per_s'] / cb['ne_per_s']:.0f} % (N={best['n']:,})"
    lines.append(line)
    for w in report.get("widths", []):
        lines.append(f"hidden width {w['hidden']:>2d} (N={w['n']:,}): numba {w['numba_ne_per_s']:.3g} NE/s,"
                     f" {w['numba_over_numpy']:.0f}x the numpy reference"
                     + ("" if w["agree"] else " (results DISAGREE)"))
    return "\n".join(lines)


def plot_report(report, path):
    """Throughput against N per implementation, log-log."""
    from ..plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["impl"] for r in report["rows"]):
        pts = sorted((r["n"], r["ne_per_s"]) for r in report["rows"] if r["impl"] == name and r["valid"])
        if pts:
            ax.plot(*zip(*pts), "o-", label=name, lw=2 if name.startswith("fastxor") else 1)
    ax.set(xscale="log", yscale="log", xlabel="networks N", ylabel="network-epochs / s",
           title=report["environment"]["cpu"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _recipe_text(report):
    r = dict(report.get("recipe") or {"name": "seed", "lr": 0.1})
    name = r.pop("name")
    return f"{name}: " + ", ".join(f"{k} {v}" for k, v in r.items())


def main(args):
    from ..outputs import check_path, save_safely

    for path, suffix, option in ((args.json, ".json", "--json"), (args.plot, ".png", "--plot")):
        if path:
            check_path(path, suffix, option, force=getattr(args, "force", False))
    mode = harness.QUICK if args.quick else harness.FULL
    report = harness.run_suite(mode, log=lambda s: print(s, file=sys.stderr), recipe=getattr(args, "recipe", "seed"))
    print(format_report(report))

    def write_json(path):
        with open(path, "w") as f:
            json.dump(report, f, indent=1, default=str)
        return path

    for path, write in ((args.json, write_json), (args.plot, lambda p: plot_report(report, p))):
        if path:
            where, warning = save_safely(write, path, replace=getattr(args, "force", False))
            if warning:
                print(f"fastxor: warning: {warning}", file=sys.stderr)
            print(f"saved: {where}")
    return 0
