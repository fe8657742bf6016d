"""Where the XOR networks get stuck, classified (fastxor.analyse), and how fast
the analysis is. Writes bench/results/landscape-<date>.json; about 10 minutes
on this project's 2-core machine.

    python bench/landscape.py [--seeds 100000] [--epochs 100000]

Cases (the seed's network and lr unless said): H = 2; H = 3 (where
Sprinkhuizen-Kuyper & Boers exhibit local minima); H = 2 with momentum 0.9;
then the speed case, 10^6 networks of H = 2 analysed after 5 000 epochs.
"""
import argparse
import json
import time

import numpy as np

import fastxor
from fastxor.bench.harness import environment


def case(name, seeds, epochs, **options):
    t0 = time.perf_counter()
    r = fastxor.train(seeds, epochs=epochs, seed=0, **options)
    trained = time.perf_counter() - t0
    t0 = time.perf_counter()
    land = fastxor.analyse(r)
    analysed = time.perf_counter() - t0
    print(f"== {name}: trained in {trained:.0f} s, analysed in {analysed:.1f} s", flush=True)
    print(land.summary(), flush=True)
    out = dict(name=name, networks=seeds, epochs=epochs, options=options, train_s=trained, analyse_s=analysed,
               success_rate=r.stats()["success_rate"], counts=land.counts(), summary=land.summary(),
               groups=[])
    for g, info in enumerate(land.group_info):
        m = land.groups == g
        eig = land.hessian_eigenvalues[m]
        out["groups"].append(dict(
            outputs=info["outputs"], count=info["count"], counts=land.counts(m),
            grad_norm_median=float(np.median(land.grad_norm[m])),
            growth_median=float(np.nanmedian(land.growth[m])),
            negative_eigenvalue_fraction=float((eig[:, 0] < 0).mean()),
            smallest_eigenvalue_median=float(np.median(eig[:, 0])),
            largest_eigenvalue_median=float(np.median(eig[:, -1]))))
    minima = np.flatnonzero(land.kind == "local-minimum")
    out["local_minima"] = [dict(index=int(i), loss=float(land.loss[i]), grad_norm=float(land.grad_norm[i]),
                                eigenvalues=land.hessian_eigenvalues[i].tolist(),
                                params=r.params[int(i)].to_flat()[:, 0].astype(float).tolist())
                           for i in minima[:20]]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=100_000)
    ap.add_argument("--speed-networks", type=int, default=1_000_000)
    ap.add_argument("--out", default=f"bench/results/landscape-{time.strftime('%Y%m%d')}.json")
    a = ap.parse_args()
    res = dict(environment=environment(), cases=[])
    res["cases"].append(case("H=2", a.seeds, a.epochs))
    res["cases"].append(case("H=3", a.seeds, a.epochs, hidden=3))
    res["cases"].append(case("H=2 momentum 0.9", a.seeds, a.epochs, momentum=0.9))
    speed = case("speed: H=2 after 5 000 epochs", a.speed_networks, 5_000)
    res["speed"] = dict(networks=a.speed_networks, analyse_s=speed["analyse_s"], counts=speed["counts"])
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print("saved", a.out)


if __name__ == "__main__":
    main()
