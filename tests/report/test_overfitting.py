"""Issue 20, part 3: a fit whose validation error grows while the training error falls, or
ends more than OVERFIT_FACTOR times the training error, says so (log and results.json
``fit.warnings``)."""

from __future__ import annotations

import json

from rexfit.fit import driver
from rexfit.fit.driver import OVERFIT_FACTOR, overfitting_warnings
from rexfit.job import load_job
from rexfit.run import run_job
from tests.report.test_progress_metrics import tiny_job


def _progress(train, val, q="forces"):
    return [{"iteration": 2 * k, "seconds": 0.0,
             "rmse": {"training": {q: t}, "validation": {q: v}}}
            for k, (t, v) in enumerate(zip(train, val))]


def test_validation_rising_while_training_falls_is_reported():
    w = overfitting_warnings(_progress([0.5, 0.3, 0.25, 0.22], [0.6, 0.4, 0.5, 0.6]), [])
    assert len(w) == 1
    assert w[0].startswith("overfitting: the validation force RMSE rose from 400 meV/Å "
                           "(iteration 2) to 600 meV/Å (iteration 6)")
    assert w[0].endswith("while the training RMSE fell from 300 to 220 meV/Å")
    # both: one sentence for the quantity
    w = overfitting_warnings(_progress([0.5, 0.3, 0.2, 0.05], [0.6, 0.4, 0.5, 0.6]), [])
    assert len(w) == 1 and w[0].endswith(
        "fell from 300 to 50 meV/Å, and ends 12.0× the training RMSE (50 meV/Å; warned above "
        "3×)")


def test_validation_far_above_training_at_the_end_is_reported():
    w = overfitting_warnings(_progress([0.5, 0.1, 0.01], [0.5, 0.2, 0.05], "energy_per_atom"),
                             [])
    assert w == ["overfitting: the validation energy RMSE ends at 50 meV/atom, 5.0× the "
                 f"training RMSE (10 meV/atom; warned above {OVERFIT_FACTOR:g}×)"]


def test_a_fit_that_generalises_gets_no_warning():
    assert overfitting_warnings(_progress([0.5, 0.3, 0.2], [0.6, 0.35, 0.25]), []) == []
    # small wiggles (below OVERFIT_RISE) and a validation error within the factor
    assert overfitting_warnings(_progress([0.5, 0.3, 0.2], [0.6, 0.30, 0.31]), []) == []
    # both exact (below the floor): no ratio
    assert overfitting_warnings(_progress([1e-9, 1e-10, 1e-12], [1e-9, 1e-10, 1e-11]), []) == []
    # too few measurements for a trend
    assert overfitting_warnings(_progress([0.5, 0.1], [0.2, 0.25]), []) == []
    # a quantity the fit does not fit (stress measured, not fitted) is not judged
    stress = _progress([0.5, 0.1, 0.01], [0.5, 0.2, 0.05], "stress")
    assert overfitting_warnings(stress, [], {"energy_per_atom", "forces"}) == []
    assert len(overfitting_warnings(stress, [], {"stress"})) == 1


def test_property_fits_use_the_validation_objective_of_the_history():
    history = [[0, 10.0, 5.0], [1, 9.0], [2, 6.0, 2.0], [3, 5.0], [4, 3.0, 4.0], [5, 2.5, 4.5]]
    w = overfitting_warnings([], history)
    assert w == ["overfitting: the validation objective rose from 2 (iteration 2) to 4.5 "
                 "(iteration 5) while the training objective fell from 6 to 2.5"]
    assert overfitting_warnings([], [[0, 10.0, 5.0], [2, 6.0, 4.0], [4, 3.0, 3.0]]) == []


def test_a_run_reports_overfitting_in_the_log_and_results(tmp_path, monkeypatch):
    """The whole path: measured RMSE (here made to overfit) → fit.warnings in results.json
    and 'Warning: overfitting: …' after the fit's verdict in log.txt."""
    path = tiny_job(tmp_path, '<BFGS conv-threshold="1e-10" max-iter="4"/>', 1)
    seen = []

    def rmse(self, u):  # validation forces worsen as training ones improve
        seen.append(len(seen))
        n = len(seen)
        return {"training": {"forces": 1.0 / n}, "validation": {"forces": 0.5 + 0.1 * n}}

    monkeypatch.setattr(driver._Tracker, "_rmse", rmse)
    job, _ = load_job(str(path))
    out = tmp_path / "out"
    res = run_job(job, output_dir=str(out), tty=False, quiet=True, plots=False)
    warnings = res["fit"]["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "overfitting: the validation force RMSE rose from ")
    assert "and ends " in warnings[0]
    assert json.loads((out / "results.json").read_text())["fit"]["warnings"] == warnings
    log = (out / "log.txt").read_text().splitlines()
    verdict = next(i for i, line in enumerate(log) if line.startswith("Fit "))
    assert log[verdict + 1:verdict + 1 + len(warnings)] == [f"Warning: {w}" for w in warnings]
