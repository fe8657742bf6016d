import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A fresh, reported random generator per test: failures can be replayed."""
    seed = np.random.SeedSequence().entropy % 2**32
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)
