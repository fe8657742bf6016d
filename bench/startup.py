"""Start-up benchmark: how long a researcher waits for a first result, in fresh
processes, beside JAX's ``jit`` of the same job measured in the same run.

The job: 1000 networks x 1000 epochs, float32, XOR (1e6 network-epochs).
- fastxor cold: ``fastxor train`` with an empty kernel cache (compiles the
  Philox init and the seed's kernel);
- fastxor warm: the same command again (every kernel cached; checked to write
  no file);
- fastxor new variants, with the cache warm for everything else (each
  compiles its kernel): H = 5, Adam, tanh, BCE (the one the README quotes),
  and the slower kinds, whose unrolled bodies are larger: H = 16 and H = 32
  (the widest layer allowed), 4-bit parity (16 samples) at H = 6, 12, 16
  and 32, Adam at H = 12 and 32, and Adam with BCE at H = 32 on XOR, 3- and
  4-bit parity (the largest kernels there are);
- JAX: a fresh process importing JAX, jit-compiling and running the peer of
  ``fastxor bench`` (vmap of the train step in ``lax.fori_loop``) for the
  same job and recipe;
- fastxor cold, warm and the H = 5 variant again in a *base install*: a fresh venv with only
  ``pip install <checkout>`` (NumPy and Numba), what a user without the
  extras has. The benchmark's own venv has SciPy (through JAX), and Numba's
  first load of a cached kernel imports ``scipy.linalg`` when it is there
  (its BLAS check): about 0.2 s of a warm start.
Each is the wall time of the whole process (import, compile, run, print),
repeated ``--repeat`` times; the median and the spread are reported.

Run: ``make bench-startup`` (or ``python bench/startup.py``); writes
``bench/results/startup-<date>.json``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastxor.bench.harness import environment

JOB = ["--networks", "1000", "--epochs", "1000"]
#: Never-seen variants timed with a warm cache: name -> ``fastxor train`` options.
VARIANTS = {
    "H5 adam tanh bce": ["--hidden", "5", "--optimizer", "adam", "--lr", "0.01", "--activation", "tanh", "--loss", "bce"],
    "H16 sgd": ["--hidden", "16"],
    "H32 sgd": ["--hidden", "32"],
    "parity4 H6 sgd": ["--hidden", "6", "--function", "parity4"],
    "H12 adam": ["--hidden", "12", "--optimizer", "adam", "--lr", "0.01"],
    "parity4 H12 sgd": ["--hidden", "12", "--function", "parity4"],
    "H32 adam": ["--hidden", "32", "--optimizer", "adam", "--lr", "0.01"],
    "parity4 H16 sgd": ["--hidden", "16", "--function", "parity4"],
    "H32 adam bce": ["--hidden", "32", "--optimizer", "adam", "--lr", "0.01", "--loss", "bce"],
    "parity4 H32 sgd": ["--hidden", "32", "--function", "parity4"],
    "parity3 H32 adam bce": ["--hidden", "32", "--function", "parity3", "--optimizer", "adam", "--lr", "0.01",
                             "--loss", "bce"],
    "parity4 H32 adam bce": ["--hidden", "32", "--function", "parity4", "--optimizer", "adam", "--lr", "0.01",
                             "--loss", "bce"],
}
VARIANT = VARIANTS["H5 adam tanh bce"]
JAX_JOB = """
import numpy as np
from fastxor.bench.peers import by_name
from fastxor.data import boolean_function
from fastxor.params import init_params
hidden, options = {hidden}, {options}
X, y = boolean_function("xor")
p = init_params(1000, hidden, 0)
run = by_name("jax vmap+fori_loop").setup(p, X, y, options.pop("lr"), options)
out = run(1000)
print(float(np.asarray(out.b2).sum()))
"""


def _files(directory):
    return {f: f.stat().st_mtime_ns for f in Path(directory).rglob("*") if f.is_file()}


def wall(argv, env):
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def fastxor_cmd(extra=(), python=sys.executable):
    return [python, "-m", "fastxor", "train", *JOB, "--backend", "numba", *extra]


def base_install(where):
    """A venv at ``where`` with fastxor installed from this checkout and
    nothing else; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = str(Path(where) / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", str(Path(__file__).resolve().parent.parent)], check=True,
                   capture_output=True)
    return python


def jax_cmd(hidden, options):
    return [sys.executable, "-c", JAX_JOB.format(hidden=hidden, options=options)]


def measure(repeat, base_python=None):
    rows = {}
    base = dict(os.environ)

    def record(name, seconds):
        rows.setdefault(name, []).append(seconds)
        print(f"{name}: {seconds:.2f} s", file=sys.stderr)

    jax_ok = subprocess.run([sys.executable, "-c", "import jax"], capture_output=True).returncode == 0
    variant_options = dict(lr=0.01, optimizer="adam", activation="tanh", loss="bce")
    for _ in range(repeat):  # interleaved: a shared machine drifts
        with tempfile.TemporaryDirectory() as cache:
            env = dict(base, FASTXOR_CACHE_DIR=cache)
            record("fastxor cold (empty cache), seed's variant", wall(fastxor_cmd(), env))
            before = _files(cache)
            record("fastxor warm (cached), seed's variant", wall(fastxor_cmd(), env))
            assert _files(cache) == before, "a warm run wrote to the kernel cache"
            for name, options in VARIANTS.items():
                record(f"fastxor new variant ({name}), warm cache", wall(fastxor_cmd(options), env))
            record("fastxor warm, the H5 variant", wall(fastxor_cmd(VARIANT), env))
        if base_python:
            with tempfile.TemporaryDirectory() as cache:
                env = dict(base, FASTXOR_CACHE_DIR=cache)
                record("base install: fastxor cold (empty cache), seed's variant",
                       wall(fastxor_cmd(python=base_python), env))
                record("base install: fastxor warm (cached), seed's variant", wall(fastxor_cmd(python=base_python), env))
                record("base install: fastxor new variant (H5 adam tanh bce), warm cache",
                       wall(fastxor_cmd(VARIANT, python=base_python), env))
        if jax_ok:
            record("jax jit, seed's variant (fresh process)", wall(jax_cmd(2, dict(lr=0.1)), base))
            record("jax jit, H5 adam tanh bce (fresh process)", wall(jax_cmd(5, variant_options), base))
            record("jax jit, H32 sgd (fresh process)", wall(jax_cmd(32, dict(lr=0.1)), base))
            record("jax jit, H32 adam (fresh process)", wall(jax_cmd(32, dict(lr=0.01, optimizer="adam")), base))
    return {name: dict(median_s=statistics.median(v), min_s=min(v), max_s=max(v), runs=v)
            for name, v in rows.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-base-install", action="store_true", help="skip the base-install venv (needs pip and a network)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as venv:
        python = None if args.no_base_install else base_install(venv)
        rows = measure(args.repeat, python)
        base_has_scipy = python and subprocess.run([python, "-c", "import scipy"], capture_output=True).returncode == 0
    here_has_scipy = subprocess.run([sys.executable, "-c", "import scipy"], capture_output=True).returncode == 0
    report = dict(environment=environment(), job="1000 networks x 1000 epochs, float32, XOR, backend numba",
                  scipy_installed=dict(benchmark_venv=here_has_scipy, base_install=bool(base_has_scipy)),
                  wall_seconds=rows)
    width = max(map(len, rows))
    for name, r in rows.items():
        print(f"{name:<{width}}  {r['median_s']:6.2f} s  ({r['min_s']:.2f}-{r['max_s']:.2f})")
    out = Path(args.out or Path(__file__).parent / "results" / f"startup-{time.strftime('%Y%m%d')}.json")
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"saved: {out}")


if __name__ == "__main__":
    main()
