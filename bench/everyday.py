"""The figures a user meets first, measured in one run: the seed's script,
one network, the main job, and float32/float64 against the NumPy reference.

- the seed's script: the study script this project started from, as written
  (``SEED_SCRIPT`` below: nn.Linear modules, MSELoss, optim.SGD(lr=0.1),
  100 000 epochs, printing the loss every 1 000), run in a fresh process;
- fastxor, one network x 100 000 epochs (kernel loaded; the call alone);
- fastxor numba against the NumPy reference on the same 16 384 networks,
  float32 and float64 (numpy runs fewer epochs: it is ~100-250x slower);
- ``make run``'s job, ``fastxor train --networks 100000 --epochs 100000``,
  in a fresh process with its kernel cached: the wall time a user waits.

Run: ``make bench-everyday`` (about 2 minutes on 2 cores); writes
``bench/results/everyday-<date>.json``.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import fastxor
from fastxor.backends.numba_kernel import unrolled_only
from fastxor.bench.harness import environment, timed

#: The seed's study script, as the notes give it (its `torch.tensor(data: ...)`
#: annotations removed so that it runs).
SEED_SCRIPT = """
import torch
import torch.nn as nn
import torch.optim as optim

X = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float32)
y = torch.tensor([[0], [1], [1], [0]], dtype=torch.float32)

class XORNeuralNetwork(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim):
        super(XORNeuralNetwork, self).__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        hidden_output = torch.sigmoid(self.hidden_layer(x))
        output = torch.sigmoid(self.output_layer(hidden_output))
        return output

input_dim, hidden_dim, output_dim = 2, 2, 1
model = XORNeuralNetwork(input_dim, hidden_dim, output_dim)
criterion = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=0.1)
epochs = EPOCHS
for epoch in range(epochs):
    optimizer.zero_grad()
    predictions = model(X)
    loss = criterion(predictions, y)
    loss.backward()
    optimizer.step()
    if epoch % 1000 == 0:
        print(f"Epoch {epoch}, Loss: {loss.item()}")
"""


def wall(argv):
    res, seconds = timed(subprocess.run, argv, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{argv[:3]} failed: {res.stderr[-2000:]}")
    return seconds, res.stdout


def timed_train(n, epochs, **kw):
    fastxor.train(min(n, 64), epochs=2, **kw)  # load (or compile) the kernel first
    r, seconds = timed(fastxor.train, n, epochs=epochs, **kw)
    return seconds, r


def main():
    out = dict(environment=environment())
    try:
        import torch  # noqa: F401

        seconds, stdout = wall([sys.executable, "-c", SEED_SCRIPT.replace("EPOCHS", "100000")])
        out["seed_script"] = dict(networks=1, epochs=100_000, seconds=seconds, ne_per_s=1e5 / seconds,
                                  lines_printed=stdout.count("\n"))
    except ImportError:
        out["seed_script"] = None
    seconds, _ = timed_train(1, 100_000, backend="numba")
    out["one_network"] = dict(networks=1, epochs=100_000, seconds=seconds, ne_per_s=1e5 / seconds,
                              over_seed_script=out["seed_script"] and out["seed_script"]["seconds"] / seconds)
    out["against_numpy"] = []
    for dtype, epochs, numpy_epochs in (("float32", 20_000, 100), ("float64", 10_000, 100)):
        n = 16_384
        ts, a = timed_train(n, epochs, backend="numba", dtype=dtype)
        tn, b = timed_train(n, numpy_epochs, backend="numpy", dtype=dtype)
        short = fastxor.train(n, epochs=numpy_epochs, backend="numba", dtype=dtype)
        agree = float(np.abs(short.params.to_flat() - b.params.to_flat()).max())
        out["against_numpy"].append(dict(dtype=dtype, networks=n, epochs=epochs, numba_ne_per_s=n * epochs / ts,
                                         numpy_epochs=numpy_epochs, numpy_ne_per_s=n * numpy_epochs / tn,
                                         numba_over_numpy=(n * epochs / ts) / (n * numpy_epochs / tn),
                                         max_parameter_difference=agree))
    fastxor.train(64, epochs=2)  # make run's kernel is cached, as for a user's second run
    seconds, stdout = wall([sys.executable, "-m", "fastxor", "train", "--networks", "100000", "--epochs", "100000",
                            "--progress", "off"])
    out["make_run"] = dict(command="fastxor train --networks 100000 --epochs 100000", networks=100_000,
                           epochs=100_000, seconds=seconds, ne_per_s=1e10 / seconds,
                           solved_line=next((line for line in stdout.splitlines() if line.startswith("solved")), None))
    path = Path(__file__).parent / "results" / f"everyday-{time.strftime('%Y%m%d')}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "environment"}, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    with unrolled_only():  # warm-ups load the kernel the timed runs use
        main()
