"""Worked example: n-bit parity for n = 2..6, H = n and H = 2n, 10 000
PyTorch-initialised seeds each (``init="torch"``: exactly
``torch.manual_seed(s); nn.Linear(n, H), nn.Linear(H, 1)``), the classic
backprop recipe of the time (sigmoid units, MSE, SGD with momentum 0.9,
lr 0.5, full batch), up to 20 000 epochs.

For each case: the fraction solved (every output on its target's side of
0.5) with its Wilson 95 % interval, the median and mean epochs to solve
(of the solved), and a least-squares fit of log(median epochs) against n
per width, set beside Tesauro & Janssens' (1988) ~4^n. Their setup differs:
they tuned lr, momentum and the initial weight range for each n and used
a stricter output criterion.

Run: ``make bench-parity`` (or ``python bench/parity.py``; needs torch);
writes ``bench/results/parity-<date>.json``.
"""
import argparse
import json
import time

import numpy as np

import fastxor
from fastxor.bench.harness import environment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=20_000)
    ap.add_argument("--bits", default="2,3,4,5,6")
    ap.add_argument("--json", default=time.strftime("bench/results/parity-%Y%m%d.json"))
    args = ap.parse_args()
    rows = []
    t_all = time.perf_counter()
    print(f"{'n':>2} {'H':>3} {'solved %':>9} {'95 % CI':>13} {'median':>8} {'mean':>8} {'seconds':>8}")
    for n in map(int, args.bits.split(",")):
        for hidden in (n, 2 * n):
            t0 = time.perf_counter()
            r = fastxor.train(args.networks, epochs=args.epochs, function=f"parity{n}", hidden=hidden, lr=0.5,
                              momentum=0.9, init="torch", seed=0)
            dt = time.perf_counter() - t0
            s = r.stats()
            solved = r.solved_epoch[r.solved_epoch >= 0]
            row = dict(bits=n, hidden=hidden, networks=args.networks, epochs=args.epochs, solved=int(r.solved.sum()),
                       success_rate=s["success_rate"], success_ci95=s["success_ci95"],
                       median_epochs=float(np.median(solved)) if solved.size else None,
                       mean_epochs=float(solved.mean()) if solved.size else None,
                       diverged=int(r.diverged.sum()), seconds=dt,
                       network_epochs_per_s=args.networks * args.epochs / dt)
            rows.append(row)
            lo, hi = row["success_ci95"]
            med = f"{row['median_epochs']:8.0f}" if solved.size else f"{'-':>8}"
            mean = f"{row['mean_epochs']:8.0f}" if solved.size else f"{'-':>8}"
            print(f"{n:>2} {hidden:>3} {100 * row['success_rate']:>9.2f} {100 * lo:>6.2f}-{100 * hi:<6.2f} {med} "
                  f"{mean} {dt:>8.1f}", flush=True)
    fits = {}
    for label, width in (("H = n", lambda n: n), ("H = 2n", lambda n: 2 * n)):
        pts = [(r["bits"], r["median_epochs"]) for r in rows if r["hidden"] == width(r["bits"]) and r["median_epochs"]]
        if len(pts) >= 2:
            slope, _ = np.polyfit([p[0] for p in pts], np.log([p[1] for p in pts]), 1)
            fits[label] = dict(growth_per_bit=float(np.exp(slope)), points=len(pts))
            print(f"{label}: median epochs grow x{np.exp(slope):.2f} per bit (Tesauro & Janssens: ~x4)")
    with open(args.json, "w") as f:
        json.dump(dict(recipe=dict(loss="mse", activation="sigmoid", optimizer="sgd", lr=0.5, momentum=0.9,
                                   init="torch", dtype="float32"), rows=rows, fits=fits,
                       seconds=time.perf_counter() - t_all, environment=environment()), f, indent=1)
    print(f"saved {args.json} ({time.perf_counter() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
