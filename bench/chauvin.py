"""The README's worked example: epochs to criterion against hidden width.

Rumelhart, Hinton & Williams (1986, PDP vol. 1 ch. 8, p. 333) report
Chauvin's finding that the presentations needed to reach the criterion fall
with the hidden width roughly as P = 280 - 33 log2 H. Setup here: momentum
0.9, lr 1.0 on the mean squared error (eta = 0.25 on their summed squared
error), target_loss 0.01, PyTorch's initialisation, 10 000 seeds per width.

    python bench/chauvin.py [--networks 10000] [--epochs 5000] [--json PATH]
"""
import argparse
import json
import time

import numpy as np

import fastxor

WIDTHS = (2, 4, 8, 16, 32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=5_000)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    print(f"{'H':>3} {'reached %':>10} {'95 % CI':>13} {'mean epoch':>11} {'95 % CI':>15} {'median':>7} "
          f"{'paper 280-33 log2 H':>20} {'time s':>7}")
    for h in WIDTHS:
        t0 = time.perf_counter()
        r = fastxor.train(args.networks, epochs=args.epochs, hidden=h, lr=1.0, momentum=0.9, init="torch",
                          target_loss=0.01)
        dt = time.perf_counter() - t0
        t = r.stats()["target"]
        median = t["epoch_quantiles"][0.5] if t["epoch_quantiles"] else float("nan")
        paper = 280 - 33 * np.log2(h)
        row = dict(hidden=h, reached=t["reached"], networks=args.networks, reached_rate=t["reached_rate"],
                   reached_ci95=t["reached_ci95"], epoch_mean=t["epoch_mean"], epoch_mean_ci95=t["epoch_mean_ci95"],
                   epoch_median=float(median), paper=float(paper), seconds=dt, epochs=args.epochs)
        rows.append(row)
        lo, hi = t["reached_ci95"]
        mlo, mhi = t["epoch_mean_ci95"]
        print(f"{h:>3} {100 * t['reached_rate']:>10.2f} {100 * lo:>6.2f}-{100 * hi:<6.2f} {t['epoch_mean']:>11.1f} "
              f"{mlo:>7.1f}-{mhi:<7.1f} {median:>7.0f} {paper:>20.0f} {dt:>7.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows=rows, versions=fastxor.machine.versions() if hasattr(fastxor, "machine") else {}),
                      f, indent=1)


if __name__ == "__main__":
    main()
