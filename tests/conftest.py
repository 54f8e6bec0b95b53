"""Strict test settings: 64-bit JAX, numpy errors raise, warnings are errors (pyproject); one
persistent compilation cache for the whole session, in a fresh temporary directory."""

import atexit
import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

# Hermetic and shared: tests build the same programs again and again (the same potential on
# the same structures in a new objective); a session cache in a fresh directory, not the
# user's home, compiles each of them once.  rexfit.cli uses it too.
_CACHE = tempfile.mkdtemp(prefix="rexfit-tests-xla-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["REXFIT_CACHE_DIR"] = _CACHE
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

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
