"""Set-up and output work on the host: parameter values of a linear model are put on the device
and read back without programs (each eager conversion or index of a device array is a program
JAX traces and compiles in every run), and the finite check of results.json."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rexfit.errors import CalculationFailed
from tests.support.cli import ROOT


def test_linear_model_parameters_need_no_program():
    """A fresh process (JAX keeps eager programs for the process): building the SNAP job's
    potentials and reading every parameter value back traces nothing."""
    script = textwrap.dedent("""
        import jax
        jax.config.update("jax_enable_x64", True)
        from rexfit import timing
        counters = timing.install()
        from rexfit.job import load_job
        from rexfit.model.potentials import build_potentials
        from rexfit.objective.parameters import ParameterSpace
        job, _ = load_job("jobs/mo-snap-dataset/job.xml")
        pm = build_potentials(job)
        space = ParameterSpace(pm, job.constraints)
        values = space.named_values(space.host_tree(space.u0() + 0.5))
        print(counters.traces, len(values), values["Mo[SNAP].beta3[Mo]"])
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    traces, n, beta3 = proc.stdout.split()
    assert int(traces) == 0
    assert int(n) == 31 and math.isfinite(float(beta3))


def test_check_finite_names_where_a_value_is_not_finite():
    from rexfit.run import _check_finite

    _check_finite({"f": [[1.0, 2.0], [3.0, -4.5]], "mixed": [1, "x", None, 2.5, True], "e": []})
    with pytest.raises(CalculationFailed, match=r"results\.s\.forces"):
        _check_finite({"s": {"forces": [[1.0, 2.0], [0.5, float("nan")]]}})
    with pytest.raises(CalculationFailed, match=r"results\.x"):
        _check_finite({"x": [1, 2.0, float("inf")]})
    with pytest.raises(CalculationFailed):  # a NumPy float is a float too
        _check_finite({"x": [np.float64("nan")]})
