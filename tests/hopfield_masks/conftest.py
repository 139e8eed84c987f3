"""Fixtures for hopfield_masks tests: random ±1 patterns built with numpy from a seed."""
import numpy as np
import pytest
import torch


def random_patterns(seed: int, count: int, dim: int, density: float = 0.5) -> torch.Tensor:
    """(count, dim) float32 ±1 patterns with independent bits, P(+1) = density."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.where(rng.random((count, dim)) < density, 1.0, -1.0).astype(np.float32))


@pytest.fixture
def patterns_of():
    return random_patterns
