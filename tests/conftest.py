"""Shared fixtures. FER2013 comes from $MEMJAX_FER2013 (set by .ci/run) or the shared folder."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from memjax.data.fer2013 import FER2013, Split

REPO = Path(__file__).resolve().parent.parent


MAPS_BEFORE_CLEARING = 30_000
"""Every program XLA compiles for the CPU keeps its code in memory maps (a gradient of the
1.0x circuit network: ~4,600); Linux allows 65,530 per process, and past that XLA crashes
inside a compile (SIGSEGV or SIGABRT, seen in CI). Compiled programs are dropped after every
module, and after any test that leaves more maps than this."""


_CACHE_DIRECTORY = pytest.StashKey[str]()


def pytest_configure(config):
    """One on-disk XLA cache for the session: the modules compile many of the same programs
    (the shipped network's steady state, fine-tuning steps, stage solvers), and the caches in
    memory are dropped after every module (below), so without it they compile again."""
    import tempfile

    import jax

    directory = tempfile.mkdtemp(prefix="memjax-tests-xla-")
    config.stash[_CACHE_DIRECTORY] = directory
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


DURATIONS = json.loads((REPO / "tests" / "data" / "test_durations.json").read_text())["seconds"]


SLOW_SECONDS = 4.0
"""A test that took this long or longer (tests/data/test_durations.json) is slow: the fast
lane, ``pytest -m "not slow"``, leaves it to the full run. Most of a test's time is XLA
compiling its circuits, so a few seconds each is what fits the fast lane's 3 minutes on 2
cores. The shipped network, live ngspice and the main job are marked slow where they are."""


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    """Tests measured at :data:`SLOW_SECONDS` or more are marked slow. Longest tests first
    (tests/data/test_durations.json; the others keep their order behind them). pytest-xdist
    hands each worker the next test, or the next group of an xdist_group, in this order
    (`--no-loadscope-reorder` in pyproject.toml), so the two workers end together instead
    of one running the main job alone at the end: in CI the main job, last in collection
    order, ran its 14 min after the other worker had finished (50 min wall, 70 min of
    work, stop 33)."""
    for item in items:
        if DURATIONS.get(item.nodeid.split("@")[0], 0.0) >= SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: -DURATIONS.get(item.nodeid.split("@")[0], 0.0))


def pytest_unconfigure(config):
    import shutil

    directory = config.stash.get(_CACHE_DIRECTORY, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux: no such limit to guard
        return 0


def _release_compiled_programs() -> None:
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="module", autouse=True)
def _release_after_module():
    yield
    _release_compiled_programs()


@pytest.fixture(autouse=True)
def _release_when_maps_run_high():
    yield
    if _memory_maps() > MAPS_BEFORE_CLEARING:
        _release_compiled_programs()


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
