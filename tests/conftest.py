"""Shared fixtures. FER2013 comes from $MEMJAX_FER2013 (set by .ci/run) or the shared folder."""

import os
from pathlib import Path

import numpy as np
import pytest

from memjax.data.fer2013 import FER2013, Split

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fer2013_path() -> Path:
    candidates = [os.environ.get("MEMJAX_FER2013"), REPO.parent / "shared/data/fer2013/fer2013.npz"]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    pytest.fail(
        "FER2013 not found: set MEMJAX_FER2013 to fer2013.npz (see README); tests on the real "
        "data never skip"
    )


@pytest.fixture(scope="session")
def fer2013(fer2013_path):
    from memjax.data import load_fer2013

    return load_fer2013(fer2013_path)


def random_split(rng: np.random.Generator, n: int) -> Split:
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    return Split(images, rng.integers(0, 7, n).astype(np.uint8))


@pytest.fixture
def tiny_data() -> FER2013:
    rng = np.random.default_rng(0)
    return FER2013(random_split(rng, 96), random_split(rng, 32), random_split(rng, 32), "random")
