"""What Dask costs and gives on this machine (``make bench-dask``; named so that it does not shadow the
``distributed`` package when run as a script):

- cluster start: a LocalCluster of 2 spawned worker processes, until a task
  has run on each (fastxor and Numba imported, the kernel loaded from cache);
- overhead per task: Dask alone (an empty task) and a fastxor shard of 64
  networks x 1 epoch (the shard's fixed cost: init, kernel call, statistics);
- efficiency: network-epochs per CPU-second of 2 workers x 1 Numba thread
  against one process with 2 Numba threads, the same run, interleaved
  repeats (this machine is shared and noisy);
- a projection for a cluster, as a model with its formula.

Writes bench/results/distributed-<date>.json.
"""
import argparse
import json
import os
import platform
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=f"bench/results/distributed-{time.strftime('%Y%m%d')}.json")
    a = ap.parse_args()

    import dask
    import distributed
    import numba

    import fastxor
    from fastxor import distributed as fd
    from fastxor.bench.harness import timed

    res = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpu=platform.processor() or platform.machine(),
               cores=os.cpu_count(), python=platform.python_version(), numba=numba.__version__,
               dask=dask.__version__, distributed=__import__("importlib.metadata").metadata.version("distributed"), networks=a.networks, epochs=a.epochs)
    fastxor.train(1000, epochs=10, backend="numba")  # this process's kernel compiled / loaded

    t0 = time.perf_counter()
    cluster = fd.local_cluster(2, threads=1)
    client = distributed.Client(cluster)
    res["cluster_start_s"] = time.perf_counter() - t0
    fd.train(128, client=client, shard_networks=64, progress=False, epochs=1)  # fastxor loaded on both workers
    res["cluster_ready_s"] = time.perf_counter() - t0

    k = 200
    _, t = timed(lambda: client.gather([client.submit(lambda i: i, i, pure=False) for i in range(k)]))
    res["dask_task_overhead_ms"] = 1e3 * t / k * 2  # two workers: per task of one worker
    _, t = timed(lambda: fd.train(k * 64, client=client, shard_networks=64, progress=False, epochs=1))
    res["fastxor_shard_overhead_ms"] = 1e3 * t / k * 2

    ne = a.networks * a.epochs
    rows = []
    for rep in range(a.repeats):  # interleaved: one process, then the cluster
        numba.set_num_threads(2)
        _, t1 = timed(lambda: fastxor.train(a.networks, epochs=a.epochs, backend="numba"))
        shard = -(-a.networks // 8)
        r, t2 = timed(lambda: fd.train(a.networks, client=client, shard_networks=shard, progress=False,
                                       epochs=a.epochs, backend="numba"))
        rows.append(dict(one_process_s=t1, one_process_ne_per_cpu_s=ne / t1 / 2, cluster_s=t2,
                         cluster_ne_per_cpu_s=ne / t2 / 2, shards=r.shards, efficiency=t1 / t2))
        print(rows[-1], flush=True)
    res["runs"] = rows
    eff = float(np.median([r["efficiency"] for r in rows]))
    eta = min(1.0, eff)  # the model never assumes more than linear scaling
    per_core = float(np.median([r["one_process_ne_per_cpu_s"] for r in rows]))
    res["efficiency_median"] = eff
    cores, big = 1000, 1e9 * 1e5
    shards = 10 * cores
    res["projection"] = dict(
        model="T = N*E / (cores * r * eta) + ceil(shards / cores) * overhead + start; r = this machine's "
              "network-epochs per core-second, eta = the efficiency measured here (at most 1), overhead = the fastxor "
              "shard overhead measured here, start = the cluster's readiness measured here (a real cluster's "
              "start is the scheduler's, not modelled)",
        networks=1e9, epochs=1e5, cores=cores, shards=shards, r=per_core, eta=eta,
        seconds=big / (cores * per_core * eta) + np.ceil(shards / cores) * res["fastxor_shard_overhead_ms"] / 1e3
        + res["cluster_ready_s"])
    client.close()
    cluster.close()
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
