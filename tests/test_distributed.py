"""fastxor.distributed on a LocalCluster of 2 worker processes: shards are bit
for bit slices of one call, merged statistics print what one process prints,
a killed worker changes nothing, a stopped run resumes."""
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import fastxor

distributed = pytest.importorskip("distributed")
fd = pytest.importorskip("fastxor.distributed")

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def client():
    import dask

    # one retry per shard: a killed worker's shard runs again once, a second
    # death is the shard's fault (Dask's default allows 3)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = fd.local_cluster(2, threads=1)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _assert_same_run(loaded, one):
    for k in ("loss", "predictions", "solved", "solved_epoch", "diverged", "diverged_epoch", "loss_history",
              "target_epoch", "optimizer_state"):
        a, b = getattr(loaded, k), getattr(one, k)
        assert (a is None) == (b is None), k
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=k)
    np.testing.assert_array_equal(loaded.params.to_flat(), one.params.to_flat())


def test_odd_shards_are_bit_identical_to_one_call(client, rng, tmp_path):
    n = int(rng.integers(900, 2500))
    shard = int(rng.integers(97, 700)) | 1
    seed = int(rng.integers(0, 2**32))
    opts = dict(epochs=int(rng.integers(300, 2000)), seed=seed, start=int(rng.integers(0, 10**6)),
                lr=rng.uniform(0.1, 3.0, n), momentum=0.9, weight_decay=rng.choice([0.0, 1e-3], n),
                record_every=97, target_loss=0.05, lr_output=rng.uniform(0.1, 3.0, n))
    r = fd.train(n, client=client, shard_networks=shard, out=tmp_path / "run", progress=False, **opts)
    one = fastxor.train(n, **opts)
    assert r.shards == -(-n // shard) and r.shards_run == r.shards and r.workers == 2
    assert r.summary() == one.summary()
    assert r.solved == one.solved.sum() and r.success_ci95 == one.statistics().success_ci95
    loaded = fastxor.load(tmp_path / "run")
    _assert_same_run(loaded, one)
    np.testing.assert_array_equal(loaded.config["lr"], one.config["lr"])
    np.testing.assert_array_equal(loaded.config["lr_output"], one.config["lr_output"])


def test_sweep_on_the_cluster_equals_sweep(client, rng):
    kw = dict(lr=[0.5, 2.0], hidden=[2, 3], init_scale=[1.0, 1.5], networks=int(rng.integers(300, 700)),
              epochs=800, seed=int(rng.integers(0, 2**32)), target_loss=0.1)
    local = fastxor.sweep(**kw)
    cluster = fastxor.sweep(**kw, client=client, shard_networks=128)
    assert local.equals(cluster), (local, cluster)


def test_killed_worker_changes_nothing(client, rng, tmp_path):
    """SIGKILL a worker in the middle of a shard: Dask reruns the shard on a
    worker, and the run equals one call."""
    n, seed = 2400, int(rng.integers(0, 2**32))
    opts = dict(epochs=60_000, seed=seed)
    pids = client.run(os.getpid)
    out, box = tmp_path / "run", {}

    def go():
        try:
            box["r"] = fd.train(n, client=client, shard_networks=300, out=out, progress=False, **opts)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    deadline = time.time() + 60
    while not any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # inside a shard
    busy = [w for w, tasks in client.processing().items() if tasks]
    os.kill(pids[busy[0]], signal.SIGKILL)
    t.join(timeout=300)
    assert "error" not in box, box.get("error")
    one = fastxor.train(n, **opts)
    assert box["r"].summary() == one.summary()
    _assert_same_run(fastxor.load(out), one)
    client.wait_for_workers(2, timeout=60)


def test_stopped_run_resumes_only_missing_shards(client, rng, tmp_path):
    n, seed = 1500, int(rng.integers(0, 2**32))
    opts = dict(epochs=1000, seed=seed, init="torch" if rng.random() < 0.5 else "philox")
    out = tmp_path / "run"
    first = fd.train(n, client=client, shard_networks=256, out=out, progress=False, **opts)
    assert first.shards == 6 and first.shards_run == 6
    for i in (1, 4):  # as if the run had stopped before these two finished
        fd.shard_path(out, i).unlink()
    (out / ".shard-000001.npz.4242.tmp.npz").write_bytes(b"half a file")  # a crash's leftover
    again = fd.train(n, client=client, shard_networks=256, out=out, progress=False, **opts)
    assert again.shards_run == 2 and again.summary() == first.summary()
    _assert_same_run(fastxor.load(out), fastxor.train(n, **opts))
    # "auto" on a directory takes the shard size it was started with
    assert fd.train(n, client=client, out=out, progress=False, **opts).shards_run == 0


def test_another_run_in_the_directory_is_refused(client, tmp_path):
    out = tmp_path / "run"
    fd.train(300, client=client, shard_networks=100, out=out, progress=False, epochs=50)
    with pytest.raises(ValueError, match=r"holds another run \(it differs in: lr 0.1 vs 0.2"):
        fd.train(300, client=client, shard_networks=100, out=out, progress=False, epochs=50, lr=0.2)
    with pytest.raises(ValueError, match="holds another run"):
        fd.train(301, client=client, shard_networks=100, out=out, progress=False, epochs=50)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        fd.train(300, client=client, out=tmp_path / "other", progress=False, epochs=50)
    with pytest.raises(ValueError, match="not a file"):
        fd.train(300, client=client, out=tmp_path / "x.npz", progress=False, epochs=50)
    with pytest.raises(ValueError, match="lr has 3 values; a per-network lr needs n_networks=300"):
        fd.train(300, client=client, lr=[0.1, 0.2, 0.3], epochs=5)
    with pytest.raises(ValueError, match="hidden must be"):
        fd.train(300, client=client, hidden=0, epochs=5)


def test_a_shard_that_kills_every_worker_is_an_error_naming_it(client, monkeypatch):
    def crash(*args):
        os._exit(3)

    monkeypatch.setattr(fd, "_task", crash)
    with pytest.raises(RuntimeError, match=r"shard 0 \(networks 0\.\.99\) failed: it killed every worker"):
        fd.train(100, client=client, shard_networks=100, progress=False, epochs=10)
    client.wait_for_workers(2, timeout=60)


def test_workers_get_numba_threads_and_one_task_each(client):
    env = client.run(lambda: (os.environ.get("NUMBA_NUM_THREADS"), __import__("numba").config.NUMBA_NUM_THREADS))
    assert set(env.values()) == {("1", 1)}
    info = client.scheduler_info(n_workers=-1)["workers"]
    assert all(w["nthreads"] == 1 for w in info.values())


def test_cli_workers_and_merge_print_what_one_process_prints(tmp_path):
    def run(*args):
        p = subprocess.run([sys.executable, "-m", "fastxor.cli", *args], capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def summary(text):
        return text.split("\ntime:")[0]

    common = ["--networks", "3001", "--epochs", "1500", "--seed", "7", "--progress", "off"]
    one = run("train", *common)
    cluster = run("train", *common, "--workers", "2", "--out", "run", "--shard-networks", "700")
    assert summary(cluster) == summary(one)
    assert "shards: 5, 5 trained now on 2 workers" in cluster
    assert run("merge", "run").strip() == summary(one).strip()
    p = subprocess.run([sys.executable, "-m", "fastxor.cli", "train", *common, "--workers", "2", "--out", "run",
                        "--lr", "0.5"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "holds another run" in p.stderr


def test_a_local_cluster_is_refused_more_workers_than_cores(capsys):
    """``--workers 1000`` on a small machine would spawn 1 000 processes: one
    line naming the range, before any worker starts."""
    import os

    from fastxor import cli

    cores = len(os.sched_getaffinity(0))
    rc = cli.main(["train", "--networks", "100", "--epochs", "5", "--workers", str(cores + 1), "--progress", "off"])
    err = capsys.readouterr().err
    assert rc == 2 and f"workers must be in [1, {cores}] for a local cluster" in err and len(err.splitlines()) == 1


def test_shard_networks_0_is_refused_not_taken_for_auto(capsys):
    from fastxor import cli

    rc = cli.main(["train", "--networks", "100", "--epochs", "5", "--workers", "1", "--shard-networks", "0",
                   "--progress", "off"])
    err = capsys.readouterr().err
    assert rc == 2 and "shard_networks must be in [1, 100], got 0" in err


def test_the_rerun_checks_its_finished_shards_before_a_cluster_starts(tmp_path, monkeypatch):
    """A truncated shard in the run directory: the resuming rerun fails at
    once, naming the file and what to do, without starting a cluster."""
    from fastxor import shards

    out = tmp_path / "run"
    options = dict(epochs=20, lr=0.1, seed=1)
    shards.write_run_file(out, 96, 32, options)
    shards.run_shard(options, 0, 32, shards.shard_path(out, 0))
    path = shards.shard_path(out, 0)
    path.write_bytes(path.read_bytes()[:300])
    monkeypatch.setattr(fd, "connect", lambda *a, **k: pytest.fail("a cluster was started"))
    with pytest.raises(ValueError, match=f"remove {path} and rerun the same command"):
        fd.train(96, out=out, shard_networks=32, **options)


@pytest.mark.parametrize("text", ["not json", "{}", '{"address": 3}'])
def test_a_malformed_scheduler_file_is_one_line(text, tmp_path, capsys):
    from fastxor import cli

    f = tmp_path / "scheduler.json"
    f.write_text(text)
    rc = cli.main(["train", "--networks", "10", "--epochs", "1", "--scheduler-file", str(f), "--progress", "off"])
    err = capsys.readouterr().err
    assert rc == 2 and f"scheduler_file {f} is not a Dask scheduler file" in err and len(err.splitlines()) == 1


def test_a_worker_that_dies_while_it_starts_is_replaced(rng, tmp_path):
    """A worker process killed while it starts (before it joins the cluster):
    the local cluster starts again, and the run prints what one process
    prints."""
    import dask

    marker = tmp_path / "died"
    preload = tmp_path / "die_once.py"  # a Dask worker preload: runs inside each worker process as it starts
    preload.write_text(f"import os\ntry:\n    os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL))\n"
                       "except FileExistsError:\n    pass\nelse:\n    os._exit(1)\n")
    n, opts = int(rng.integers(500, 1500)), dict(epochs=300, seed=int(rng.integers(0, 2**32)))
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        r = fd.train(n, workers=2, threads=1, shard_networks=256, progress=False, **opts)
    assert marker.exists()  # a worker did die
    assert r.summary() == fastxor.train(n, **opts).summary() and r.workers == 2


class _DiesWhileWarming(fd.WarmKernel):
    """The warm-up plugin of a worker killed while it compiles: the first
    worker to set it up dies (``marker`` travels with the instance)."""

    marker = None

    def __init__(self, *args):
        super().__init__(*args)
        self.marker = str(type(self).marker)

    async def setup(self, worker):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return await super().setup(worker)
        os._exit(1)


def test_a_worker_that_dies_while_it_compiles_costs_nothing(client, rng, tmp_path, monkeypatch):
    """Dask's plugin registration raised CommClosedError when a worker died
    in it, and the run was lost; the run now goes on with the others."""
    monkeypatch.setattr(_DiesWhileWarming, "marker", tmp_path / "died")
    monkeypatch.setattr(fd, "WarmKernel", _DiesWhileWarming)
    n, opts = int(rng.integers(500, 1500)), dict(epochs=300, seed=int(rng.integers(0, 2**32)))
    r = fd.train(n, client=client, shard_networks=256, progress=False, **opts)
    assert (tmp_path / "died").exists()
    assert r.summary() == fastxor.train(n, **opts).summary()
    client.wait_for_workers(2, timeout=60)


def test_a_shard_that_cannot_be_saved_is_one_line(tmp_path):
    """A full disk (here: a file size limit) while a worker saves its shard:
    one line naming the shard, the error and what to do; no worker's error
    log, no traceback."""
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # run.json fits, a shard file does not

    p = subprocess.run([sys.executable, "-m", "fastxor.cli", "train", "--networks", "3000", "--epochs", "20",
                        "--workers", "1", "--shard-networks", "1500", "--out", "run", "--progress", "off"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, preexec_fn=small_files)
    errors = [line for line in p.stderr.splitlines() if "error" in line.lower()]
    assert p.returncode == 2, p.stderr
    assert len(errors) == 1 and errors[0].startswith("fastxor: error: shard 0 (networks 0..1499) could not be "
                                                     "saved: File too large"), p.stderr
    assert "Traceback" not in p.stderr and "rerun the same command" in errors[0]


def test_a_shard_sets_numba_threads_only_when_it_runs_on_numba(rng, tmp_path):
    """A shard on another backend (a GPU worker's cupy, here the reference)
    leaves Numba's thread count alone, and trains the same networks as that
    slice of one call; a numba shard takes its share of the cores."""
    import numba

    from fastxor import shards

    opts = dict(epochs=40, seed=int(rng.integers(0, 2**32)), backend="numpy", lr=np.linspace(0.2, 2.0, 50))
    whole = fastxor.train(50, **opts)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        st = shards.run_shard(opts, 20, 30, path=tmp_path / "s.npz", threads=2)
        assert numba.get_num_threads() == 1
        part = fastxor.load(tmp_path / "s.npz")
        np.testing.assert_array_equal(part.params.to_flat(), whole.params[20:50].to_flat())
        assert st.networks == 30 and st.solved == whole.solved[20:].sum()
        if numba.config.NUMBA_NUM_THREADS >= 2:
            shards.run_shard(dict(opts, backend="numba"), 0, 10, threads=2)
            assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(before)


def test_calibration_grows_until_the_worker_is_busy(monkeypatch):
    """A worker whose runs cost a fixed 20 ms plus N x epochs / 5e10 (a GPU:
    fixed costs dominate small runs) is measured within 25 % of its 5e10
    network-epochs/s; a single 4 096-network run (the old calibration) said
    about 30x less. A small run stops growing at its own size."""
    import time as _time

    calls = []

    def fake_shard(options, lo, n, path=None, threads=None):
        calls.append(n)
        _time.sleep(0.02 + n * options["epochs"] / 5e10)

    monkeypatch.setattr(fd, "run_shard", fake_shard)
    rate = fd._calibrate(dict(epochs=2000, backend="cupy"))
    assert 0.75 * 5e10 <= rate <= 5e10 and calls[1] == 4096 and calls[-1] > 4096, (rate, calls)
    assert 4096 * 2000 / (0.02 + 4096 * 2000 / 5e10) < 5e10 / 25  # what 4 096 networks alone measure
    calls.clear()
    fd._calibrate(dict(epochs=2000, backend="cupy"), n=10_000)
    assert max(calls) == 10_000


def test_gpu_workers_one_per_device_train_what_one_process_trains(cupy_device, rng, tmp_path):
    """What dask-cuda's LocalCUDACluster builds: one worker process per GPU,
    each seeing only its own (CUDA_VISIBLE_DEVICES), training cupy shards.
    Here the two GPUs are the strict fake CuPy's (where real CuPy runs, the
    test needs two GPUs): every worker launches on its own device, the
    shards equal one process's cupy run bit for bit, and the merged
    statistics print what it prints."""
    import dask
    from distributed import Client, Nanny, Scheduler, SpecCluster

    from conftest import FAKE_CUPY

    fake = getattr(cupy_device, "FAKE", False)
    if not fake and cupy_device.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    path = os.pathsep.join(([str(FAKE_CUPY)] if fake else []) + sys.path)

    def worker(gpu):
        env = dict(PYTHONPATH=path, CUDA_VISIBLE_DEVICES=str(gpu), FAKE_CUPY_DEVICES="2", NUMBA_NUM_THREADS="1")
        return {"cls": Nanny, "options": {"nthreads": 1, "env": env}}

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Port 8787 is already in use", UserWarning)  # another cluster's
        cluster = SpecCluster(scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
                              workers={f"gpu{g}": worker(g) for g in range(2)}, silence_logs=50)
    try:
        with Client(cluster) as client:
            n, kw = 3000, dict(epochs=300, seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=50,
                               optimizer="adam", lr=0.02)
            stats = fd.train(n, client=client, shard_networks=600, out=tmp_path / "shards", progress=False, **kw)

            def device():
                import cupy

                return cupy.cuda.runtime.getDeviceProperties(0)["pciBusID"], cupy._fake.launches if fake else 1

            used = client.run(device)
    finally:
        cluster.close()
    assert sorted(bus for bus, _ in used.values()) == [0, 1] and all(k > 0 for _, k in used.values())
    one = fastxor.train(n, **kw)
    _assert_same_run(fastxor.load(tmp_path / "shards"), one)
    assert stats.summary() == one.statistics().summary()
