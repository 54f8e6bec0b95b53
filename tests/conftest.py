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


@pytest.fixture(autouse=True)
def _strict_numpy():
    with np.errstate(all="raise"):
        yield
