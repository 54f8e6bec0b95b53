"""Strict test settings: 64-bit JAX, numpy errors raise, warnings are errors (pyproject), no
persistent compilation cache."""

import os

import jax
import numpy as np
import pytest

# Hermetic runs: no persistent compilation cache in the user's home (rexfit.cli would use it).
os.environ["REXFIT_CACHE_DIR"] = ""

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_addoption(parser):
    parser.addoption("--run-long", action="store_true",
                     help="also run the tests marked long (neural-network accuracy targets, "
                          "about 14 minutes)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-long"):
        return
    skip = pytest.mark.skip(reason="long training run: use --run-long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _strict_numpy():
    with np.errstate(all="raise"):
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop compiled XLA programs after each test module. Every program keeps memory maps of
    its machine code; a whole-suite run would otherwise pass the kernel's limit on maps per
    process (vm.max_map_count, 65530 by default) and LLVM aborts the process."""
    yield
    jax.clear_caches()
