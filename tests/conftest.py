"""Strict test settings: 64-bit JAX, numpy errors raise, warnings are errors (pyproject); one
persistent compilation cache for the whole session, in a fresh temporary directory; XLA's
backend optimisation level 0 and, where XLA has them, its older CPU fusion emitters (quick
compiles)."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

# XLA's backend (LLVM) optimisation off for every program the tests compile, as rexfit itself
# does for small structures (rexfit.physics.relax.QUICK_COMPILE_OPTIONS): compilation is most
# of the suite's time and takes 15-30 % less; the tests' structures are small, so their run
# times stay short.  Results are the same to round-off (fused multiply-adds may differ in the
# last bit) and every tolerance is unchanged.  An XLA_FLAGS that sets the level (e.g. =2,
# XLA's default) is respected: `XLA_FLAGS=--xla_backend_optimization_level=2 pytest tests`
# runs the suite as users' large programs are compiled.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()


def _xla_accepts(flag: str) -> bool:
    """Whether this XLA knows ``flag`` (an unknown flag in XLA_FLAGS ends the process, so it
    is tried in a child process first)."""
    env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} {flag}")
    probe = "import jax; jax.jit(lambda v: v + 1)(1.0)"
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          timeout=120).returncode == 0


# On the CPU, XLA's older fusion emitters as well (again as for rexfit's small structures):
# they compile the suite's nested-derivative programs (elastic constants through relaxations)
# in about 20 % less CPU time (measured on tests/objective).  Skipped when XLA_FLAGS already
# chooses, or when this XLA has no such flag.
_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"] and _xla_accepts(_EMITTERS):
    os.environ["XLA_FLAGS"] += " " + _EMITTERS

import jax  # noqa: E402  (after XLA_FLAGS: read when the CPU backend starts)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Hermetic and shared: tests build the same programs again and again (the same potential on
# the same structures in a new objective); a session cache in a fresh directory, not the
# user's home, compiles each of them once.  rexfit.cli uses it too.
_CACHE = tempfile.mkdtemp(prefix="rexfit-tests-xla-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["REXFIT_CACHE_DIR"] = _CACHE
# no traced programs kept on disk (rexfit.programs): tests change module constants that
# tracing reads, which a program's key does not see; tests/unit/test_programs.py turns it on
os.environ["REXFIT_PROGRAM_CACHE"] = "0"
os.environ["REXFIT_FRAME_CACHE"] = "0"  # tests/datasets/test_frame_cache.py turns it on
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
