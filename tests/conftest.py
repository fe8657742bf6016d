import os

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A fresh, reported random generator per test. A failure is replayed
    with FASTXOR_TEST_SEED=<the printed seed>."""
    seed = os.environ.get("FASTXOR_TEST_SEED")
    seed = int(seed) if seed else np.random.SeedSequence().entropy % 2**32
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)
