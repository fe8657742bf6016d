# Two entry points, each doing all the set-up on a fresh machine:
#   make run    - install into .venv, train 100 000 seeds x 100 000 epochs, print statistics
#   make test   - install into .venv with the test extras and PyTorch (CPU build), run the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -q ".[test]" torch==2.13.0
	touch $@

.PHONY: run test docs bench bench-everyday bench-startup bench-scale bench-recipes bench-inputs bench-parity bench-maps bench-landscape bench-dask clean
run: $(VENV)/.installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(VENV)/bin/fastxor train --networks 100000 --epochs 100000

# -n auto: one test process per core (the suite is mostly kernel compilation, one core each)
test: $(VENV)/.test-installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(VENV)/bin/pytest -q -n auto tests

# the documentation site, from docs/ and mkdocs.yml, into site/
docs: $(VENV)/.test-installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) -m mkdocs build --strict

bench: $(VENV)/.test-installed
	$(PIP) install -q ".[bench]"
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) -m pytest bench -q --benchmark-columns=median --benchmark-sort=name

# first result in fresh processes: empty cache, warm cache, a new variant, beside JAX's jit (about 3 minutes)
# the figures a user meets first: the seed's script, one network, make run's job, numba against numpy
# float32 and float64 (about 2 minutes)
bench-everyday: $(VENV)/.test-installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/everyday.py

bench-startup: $(VENV)/.test-installed
	$(PIP) install -q ".[bench]"
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/startup.py

# network-epochs/s of every training recipe against the seed's, and compile times (about 5 minutes)
bench-recipes: $(VENV)/.installed
	$(PY) bench/recipes.py

# the Numba kernel on XOR, parity3 and parity4: NE/s, sample-epochs/s, fraction of the op-count bound (about 2 minutes)
bench-inputs: $(VENV)/.installed
	$(PY) bench/inputs.py

# n-bit parity, n = 2..6, H = n and 2n, 10 000 PyTorch-initialised seeds each: solved %, epochs, growth per bit
bench-parity: $(VENV)/.test-installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/parity.py

# trainability maps: a 4096^2 map against the kernel alone (time, peak memory), and the README's three
# worked examples, images in docs/maps/ (about 13 minutes)
bench-maps: $(VENV)/.test-installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/maps.py all

# Dask on this machine: cluster start, task overhead, efficiency against one process (about 2 minutes)
bench-dask: $(VENV)/.test-installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/dask_cluster.py

# where 100 000 seeds of H = 2, H = 3 and momentum get stuck, classified; analysis speed at 10^6 (about 15 minutes)
bench-landscape: $(VENV)/.installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/landscape.py

# where the time and memory of one run go, N = 1e5 .. 1e7 (about 10 minutes)
bench-scale: $(VENV)/.installed
	$(PIP) install -q --no-deps --force-reinstall .
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) build *.egg-info
