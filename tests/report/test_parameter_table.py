"""The log's parameter table: long numbered runs (descriptor-model coefficients) collapse into one
row with value ranges; short runs and other parameters keep one row each."""

from __future__ import annotations

from rexfit.report.lines import COLLAPSE_RUN, parameter_table


def _p(initial, value, fitted=True, lo=None, hi=None):
    return dict(initial=initial, value=value, min=lo, max=hi, fitted=fitted)


def test_long_numbered_runs_collapse():
    params = {f"Mo[SNAP].beta{k}[Mo]": _p(0.0, k * 0.5 - 2.0) for k in range(31)}
    params.update({f"Mo[SNAP].beta{k}[W]": _p(1.0, 1.0, fitted=False) for k in range(31)})
    params.update({f"f.c{k}": _p(float(k), float(k)) for k in range(COLLAPSE_RUN)})
    params["LJ.sigma"] = _p(1.0, 1.1, lo=0.5, hi=2.0)
    lines = parameter_table(params)
    assert len(lines) == 1 + 2 + COLLAPSE_RUN + 1
    row = next(line for line in lines if "beta{0..30}[Mo] (31)" in line)
    assert "-2 … 13" in row and row.rstrip().endswith("yes")
    assert any("beta{0..30}[W] (31)" in line and not line.rstrip().endswith("yes")
               for line in lines)
    assert sum("f.c" in line for line in lines) == COLLAPSE_RUN  # short run: kept apart
    assert any("LJ.sigma" in line and "[0.5:2]" in line for line in lines)
