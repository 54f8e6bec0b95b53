"""Issue 20, part 2: progress at each output-interval — dataset RMSE (training and
validation, physical units), worst-fitting properties, iteration of the maximum, a verdict in
plain words — without programs of its own."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from rexfit import timing
from rexfit.fit import driver, methods
from rexfit.job import load_job
from rexfit.job.spec import MinimizerSpec
from rexfit.report.heartbeat import Heartbeat
from rexfit.run import run_job
from rexfit.timing import Clock

ROOT = Path(__file__).resolve().parents[2]
ITER = re.compile(r"^iter= (\d+) residual= \S+ grad= \S+$")


def _job(tmp_path: Path, case: str, minimizer: str, interval: int, name: str = "j") -> Path:
    shutil.copytree(ROOT / "jobs" / case, tmp_path / name)
    path = tmp_path / name / "job.xml"
    text = re.sub(r"<fitting[^>]*>", f'<fitting output-interval="{interval}">', path.read_text())
    text = re.sub(r"<(least-squares|BFGS)[^>]*/>", minimizer, text)
    path.write_text(text)
    return path


#: A fit to structure properties that compiles in about a second (no relaxation): LJ argon
#: energies of fcc and sc; bcc in the validation set.
TINY_JOB = """<?xml version="1.0" encoding="UTF-8"?>
<job>
  <name>tiny LJ</name>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="ArAr" species-a="*" species-b="*">
      <sigma>3.40</sigma>
      <epsilon>0.0104</epsilon>
      <cutoff>8.5</cutoff>
      <fit-dof>
        <sigma min="3.0" max="4.0"/>
        <epsilon min="0.005" max="0.02"/>
      </fit-dof>
    </lennard-jones>
  </potentials>
  <structures>
    <fcc-lattice id="fcc" relative-weight="3">
      <atom-type>Ar</atom-type>
      <lattice-parameter>5.311</lattice-parameter>
      <properties><atomic-energy fit="true" target="-0.080"/></properties>
    </fcc-lattice>
    <sc-lattice id="sc">
      <atom-type>Ar</atom-type>
      <lattice-parameter>3.6</lattice-parameter>
      <properties><atomic-energy fit="true" target="-0.05"/></properties>
    </sc-lattice>
    <bcc-lattice id="bcc" fit="false">
      <atom-type>Ar</atom-type>
      <lattice-parameter>4.2</lattice-parameter>
      <properties><atomic-energy fit="true" target="-0.07"/></properties>
    </bcc-lattice>
  </structures>
  <fitting output-interval="{interval}">
    {minimizer}
  </fitting>
</job>
"""


def tiny_job(tmp_path: Path, minimizer: str, interval: int) -> Path:
    path = tmp_path / "tiny.xml"
    path.write_text(TINY_JOB.replace("{interval}", str(interval)).replace("{minimizer}",
                                                                         minimizer))
    return path


def _run(path: Path, out: Path, **kw) -> dict:
    job, _ = load_job(str(path))
    return run_job(job, output_dir=str(out), tty=False, plots=False, **kw)


@pytest.fixture(scope="module")
def si_sw(tmp_path_factory):
    """si-sw-dataset, 4 BFGS iterations, output every 2: (results, log.txt)."""
    tmp = tmp_path_factory.mktemp("si")
    res = _run(_job(tmp, "si-sw-dataset", '<BFGS max-iter="4"/>', 2), tmp / "out", quiet=True)
    return res, (tmp / "out/log.txt").read_text()


def test_dataset_fit_logs_rmse_tables_at_output_iterations(si_sw):
    res, log = si_sw
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if ITER.match(line)]
    assert [int(ITER.match(lines[i])[1]) for i in starts] == [0, 2, 4]
    for i in starts:
        assert lines[i + 1].startswith(f"  iteration {ITER.match(lines[i])[1]} of 4, ")
        head, train, val = lines[i + 2:i + 5]
        assert head.split()[1:] == ["RMSE", "energy", "meV/atom", "forces", "meV/Å", "stress",
                                    "GPa"]
        assert train.split()[1] == "training" and val.split()[1] == "validation"
    assert ", at most " in lines[starts[1] + 1] and " left (" in lines[starts[1] + 1]
    progress = res["fit"]["progress"]
    assert [p["iteration"] for p in progress] == [0, 2, 4]
    assert set(progress[-1]["rmse"]) == {"training", "validation"}


def test_last_rmse_equals_the_output_phase_metrics(si_sw):
    """The RMSE at the final point (from the predictions program at an output iteration) is
    the output phase's (from the per-entry records): same definition, same units."""
    res, log = si_sw
    last = res["fit"]["progress"][-1]["rmse"]
    for set_name in ("training", "validation"):
        for q in ("energy_per_atom", "forces", "stress"):
            assert last[set_name][q] == pytest.approx(
                res["metrics"][set_name]["all"][q]["rmse"], rel=1e-9)
    train_forces = [line for line in log.splitlines() if line.startswith("  |   training")
                    or line.startswith("  | training")][-1].split()
    assert float(train_forces[3]) == pytest.approx(1e3 * last["training"]["forces"], rel=1e-3)


def test_measuring_adds_no_program(tmp_path, monkeypatch):
    """The RMSE at output iterations uses the predictions program the validation objective
    and the output phase run anyway: a fit with it traces no more programs than without."""
    counts = {}
    for name, measure in (("without", False), ("with", True)):
        if not measure:
            monkeypatch.setattr(driver._Tracker, "measure", lambda self, k, u: None)
        else:
            monkeypatch.undo()
        jax.clear_caches()  # every program traced again (compiled ones come from the cache)
        res = _run(_job(tmp_path, "si-sw-dataset", '<BFGS max-iter="2"/>', 1, name),
                   tmp_path / f"out-{name}", quiet=True)
        t = res["timing"]
        counts[name] = t["programs_traced"]
        assert t["programs_traced"] >= 4  # really traced again (value, gradient, …)
        assert bool(res["fit"]["progress"]) == measure
    assert counts["with"] <= counts["without"], counts


def test_property_fit_names_the_worst_fitting_properties(tmp_path):
    res = _run(tiny_job(tmp_path, '<BFGS conv-threshold="1e-10" max-iter="4"/>', 2),
               tmp_path / "out", quiet=True)
    log = (tmp_path / "out/log.txt").read_text()
    worst_lines = [line for line in log.splitlines()
                   if line.startswith("  worst-fitting (weighted residual): ")]
    assert len(worst_lines) == len(res["fit"]["progress"]) >= 2
    final = res["fit"]["progress"][-1]
    assert final["iteration"] == res["fit"]["iterations"]
    # the worst property at the end is the one with the largest weighted residual in the
    # output phase's records, with the same value
    residuals = {f"{sid}.{name}": p["weighted_residual"]
                 for sid, st in res["structures"].items() if st["set"] == "training"
                 for name, p in st["properties"].items() if p.get("fit")}
    name, value = final["worst"][0]
    assert name == max(residuals, key=residuals.get)
    assert value == pytest.approx(residuals[name], rel=1e-6)
    assert [w for _, w in final["worst"]] == sorted((w for _, w in final["worst"]), reverse=True)


def test_results_keep_the_raw_message_and_log_the_verdict(tmp_path):
    res = _run(tiny_job(tmp_path, '<BFGS conv-threshold="1e-10" max-iter="100"/>', 10),
               tmp_path / "out", quiet=True)
    fit = res["fit"]
    assert fit["converged"] and fit["message"].startswith("CONVERGENCE")
    assert fit["verdict"].startswith("converged: ") and "CONVERGENCE" not in fit["verdict"]
    log = (tmp_path / "out/log.txt").read_text()
    assert f"Fit {fit['verdict']} (" in log and "FACTR" not in log
    on_disk = json.loads((tmp_path / "out/results.json").read_text())
    assert on_disk["fit"]["verdict"] == fit["verdict"] and on_disk["fit"]["warnings"] == []


_BFGS = MinimizerSpec(kind="BFGS", options=(("conv-threshold", 1e-10),), origin=None)

# every stop message rexfit's minimizers produce (SciPy 1.17, older SciPy spellings, own)
RAW = {
    "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH": "objective changed by less than 1e-10",
    "CONVERGENCE: REL_REDUCTION_OF_F_<=_FACTR*EPSMCH": "objective changed by less than 1e-10",
    "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL": "gradient fell below 1e-10",
    "CONVERGENCE: NORM_OF_PROJECTED_GRADIENT_<=_PGTOL": "gradient fell below",
    "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT": "iteration limit (max-iter 7)",
    "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT": "limit of objective evaluations",
    "ABNORMAL: ": "line search",
    "ABNORMAL_TERMINATION_IN_LNSRCH": "line search",
    "ABNORMAL: ROUNDING ERRORS PREVENT PROGRESS": "line search",
    "Converged (|f_n-f_(n-1)| ~= 0)": "objective stopped changing",
    "Converged (|x_n-x_(n-1)| ~= 0)": "parameters stopped changing",
    "Local minimum reached (|pg| ~= 0)": "projected gradient is zero",
    "Max. number of function evaluations reached": "limit of objective evaluations",
    "Linear search failed": "line search",
    "Optimization terminated successfully": "convergence test",
    "Optimization terminated successfully.": "convergence test",
    "Iteration limit reached": "iteration limit",
    "Positive directional derivative for linesearch": "line search",
    "Maximum number of iterations has been exceeded.": "iteration limit",
    "Maximum number of function evaluations has been exceeded.": "objective evaluations",
    "Return from COBYLA because the trust region radius reaches its lower bound.":
        "trust region",
    "Return from COBYLA because the objective function has been evaluated MAXFUN times.":
        "objective evaluations",
    "NaN result encountered.": "NaN",
    "`gtol` termination condition is satisfied.": "gradient fell below gtol",
    "`ftol` termination condition is satisfied.": "sum of squares changed",
    "`xtol` termination condition is satisfied.": "parameters changed by less than",
    "Both `ftol` and `xtol` termination conditions are satisfied.": "and the parameters",
    "The maximum number of function evaluations is exceeded.": "objective evaluations",
    "no parameters to fit": "no fitted parameters",
    "the checkpoint used the whole iteration budget": "whole iteration budget",
    "relative change below conv-threshold": "between epochs",
    "stopped after 30 epochs": "all 30 epochs",
    "stopped after 30 epochs (4 minibatch steps each)": "all 30 epochs",
    "linear least squares solved (SVD, rank 3 of 3)": "solved exactly (SVD, rank 3 of 3)",
    "early stopping: the validation objective did not improve for 5 epochs":
        "best validation objective are kept",
    "maxtime 10 s reached": "time limit (maxtime 10 s)",
    "objective reached stopval 0.5": "reached stopval 0.5",
    "interrupted (Ctrl-C); best parameters kept": "Ctrl-C",
    "Maximum number of iterations has been exceeded.; polished with L-BFGS-B "
    "(CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL)": "then polished with L-BFGS-B",
}


@pytest.mark.parametrize("raw", list(RAW))
def test_every_stop_message_has_plain_words(raw):
    for converged in (True, False):
        text = methods.plain_stop(_BFGS, raw, converged, max_iter=7)
        assert text.startswith("converged: " if converged else "stopped: ")
        assert RAW[raw] in text, text
        if raw[0].isupper() or "`" in raw:  # SciPy's words never reach the verdict raw
            assert raw.rstrip(".") not in text


def test_rmse_table_units():
    rows = driver.rmse_table({"training": {"energy_per_atom": 0.0012, "forces": 0.05},
                              "validation": {"energy_per_atom": 0.002, "forces": None}})
    assert rows[0].split()[1:] == ["RMSE", "energy", "meV/atom", "forces", "meV/Å"]
    assert rows[1].split()[1:] == ["training", "1.2", "50"]
    assert rows[2].split()[1:] == ["validation", "2", "-"]
    assert np.all([r.startswith(driver.RMSE_ROW) for r in rows])


class _Log:
    def __init__(self):
        self.last_output = time.monotonic()
        self.fit_started = True


def test_heartbeat_speaks_during_a_long_fit_iteration():
    """Once the fit prints its own lines the heartbeat waits fit_quiet_after seconds, then says
    where the fit is (what the driver told timing.progress)."""
    log, clock, stream = _Log(), Clock(), io.StringIO()
    clock.phase("fit")
    timing.progress("iteration 3 of 10 done, objective 1.5")
    try:
        with Heartbeat(log, clock, quiet_after=0.05, every=0.1, fit_quiet_after=0.4,
                       stream=stream, tty=False):
            time.sleep(0.3)  # shorter than fit_quiet_after: the fit's own lines suffice
            assert stream.getvalue() == ""
            time.sleep(0.6)
    finally:
        timing.progress("")
    lines = stream.getvalue().splitlines()
    assert lines and all("fitting; iteration 3 of 10 done, objective 1.5" in line
                         for line in lines)
