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


_CACHE_VARIABLE = "MEMJAX_TESTS_XLA_CACHE"
"""The session's on-disk XLA cache, made by the controlling process and inherited by the
pytest-xdist workers it starts, so that both workers share it."""
_OWNS_CACHE = pytest.StashKey[bool]()


def pytest_configure(config):
    """One on-disk XLA cache for the session, shared by both workers and kept for every
    program however short its compile (``jax_persistent_cache_min_compile_time_secs`` 0). The
    in-memory caches are keyed by the Python function and dropped after every module (below);
    this one is keyed by the program, so a network, stage solver or fine-tuning step built
    again in another test, module or worker loads instead of compiling: ~40-90 ms per small
    program on these cores, and ~750 programs a network test (measured 2026-12-07)."""
    import tempfile

    import jax

    if _CACHE_VARIABLE not in os.environ:  # the controller, or a run without workers
        os.environ[_CACHE_VARIABLE] = tempfile.mkdtemp(prefix="memjax-tests-xla-")
        config.stash[_OWNS_CACHE] = True
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_VARIABLE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


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

    if config.stash.get(_OWNS_CACHE, False):
        shutil.rmtree(os.environ.pop(_CACHE_VARIABLE), ignore_errors=True)


@pytest.fixture(autouse=True)
def _compile_effort(request):
    """XLA's most costly optimisations off (``jax_disable_most_optimizations``: LLVM at -O0,
    no expensive passes) in the fast lane's tests and in those marked ``compile_bound``.
    Such a test compiles hundreds of programs and runs most of them once, on a few small
    inputs, so compiling is its cost. Where a test runs long enough for the code's speed to
    count, slower code costs more than the faster compiles save (2 cores, 2026-12-07: a
    training resume 33 -> 56 s, a CLI run over the test split 65 -> 76 s, against the chip's
    read-noise test 153 -> 112 s), and the full optimisations stay on. Same programs and
    arithmetic either way; only the machine code differs. ``MEMJAX_TESTS_OPTIMIZED=all``
    keeps them on everywhere, to compare."""
    import jax

    node = request.node
    fast = node.get_closest_marker("compile_bound") or not node.get_closest_marker("slow")
    fast = fast and os.environ.get("MEMJAX_TESTS_OPTIMIZED") != "all"
    jax.config.update("jax_disable_most_optimizations", bool(fast))
    yield


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
