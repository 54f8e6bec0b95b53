"""The training phase end to end: the Al EAM example fit (the atomicrex documentation job,
run as it is), restart from parameters.xml, Ctrl-C, and every minimizer on a small job with a
known exact optimum."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rexfit.cli import main
from rexfit.job import load_job
from rexfit.objective.objective import Objective
from rexfit.run import run_job

ROOT = Path(__file__).resolve().parents[2]

# atomicrex on this job: command-line run 1054.8 after 35 evaluations; best run (SciPy
# L-BFGS-B through its Python interface) 1002.29.
ATOMICREX_BEST = 1002.29


@pytest.fixture(scope="module")
def al_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("al-fit")
    assert main([str(ROOT / "jobs/al-eam/job.xml"), "-q", "--output-dir", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_al_eam_fit_beats_atomicrex(al_fit):
    _, r = al_fit
    fit = r["fit"]
    assert fit["converged"] is True
    assert r["objective"]["training"] < ATOMICREX_BEST
    assert r["objective"]["initial"] == pytest.approx(1480.32, abs=0.005)
    # the gradient norm fell by more than six orders of magnitude from its initial ~4.5e4
    assert fit["grad_norm"] < 0.05
    hist = [v for _, v in fit["history"]]
    assert hist[0] == pytest.approx(1480.32, abs=0.005)
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(hist, hist[1:]))
    assert hist[-1] == pytest.approx(r["objective"]["training"], rel=1e-9)
    assert fit["evaluations"] >= fit["iterations"] > 5
    fitted = {k: v for k, v in r["parameters"].items() if v["fitted"]}
    assert len(fitted) == 4 and all(v["value"] != v["initial"] for v in fitted.values())


def test_log_has_iteration_lines(al_fit):
    out, r = al_fit
    log = (out / "log.txt").read_text()
    lines = re.findall(r"^iter= (\d+) residual= (\S+) grad= (\S+)$", log, flags=re.M)
    assert lines[0][0] == "0" and float(lines[0][1]) == pytest.approx(1480.32, abs=0.005)
    assert float(lines[-1][1]) == pytest.approx(r["objective"]["training"], rel=1e-9)
    assert "Fit converged" in log


def test_parameters_xml_reproduces_objective(al_fit, tmp_path):
    out, r = al_fit
    text = (ROOT / "jobs/al-eam/job.xml").read_text()
    include = (f'<xi:include href="{out / "parameters.xml"}" '
               'xmlns:xi="http://www.w3.org/2003/XInclude"/>')
    text = re.sub(r"<potentials>.*?</potentials>", include, text, flags=re.S)
    (tmp_path / "structures.xml").write_text((ROOT / "jobs/al-eam/structures.xml").read_text())
    (tmp_path / "job.xml").write_text(text)
    assert main([str(tmp_path / "job.xml"), "--no-fit", "-q", "--output-dir",
                 str(tmp_path / "out")]) == 0
    again = json.loads((tmp_path / "out/results.json").read_text())
    assert again["fit"] is None
    assert again["objective"]["training"] == pytest.approx(r["objective"]["training"], rel=1e-9)
    for name, p in r["parameters"].items():
        assert again["parameters"][name]["value"] == p["value"]


def test_ctrl_c_keeps_best_parameters(tmp_path, monkeypatch, capsys):
    """A KeyboardInterrupt in the middle of the fit: exit 130, results and parameters.xml
    written with the best parameters seen, which are better than the initial ones."""
    calls = {"n": 0}
    original = Objective.evaluate

    def interrupting(self, u, **kw):
        calls["n"] += 1
        if calls["n"] == 8 and kw.get("sets", ("training",)) == ("training",):
            raise KeyboardInterrupt
        return original(self, u, **kw)

    monkeypatch.setattr(Objective, "evaluate", interrupting)
    out = tmp_path / "out"
    assert main([str(ROOT / "jobs/al-eam/job.xml"), "-q", "--output-dir", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    r = json.loads((out / "results.json").read_text())
    assert r["fit"]["interrupted"] is True and r["fit"]["converged"] is False
    assert r["objective"]["training"] < r["objective"]["initial"]
    assert (out / "parameters.xml").exists()
    best = min(v for _, v in r["fit"]["history"])
    assert r["objective"]["training"] == pytest.approx(best, rel=1e-9)


# ------------------------------------------------------------------ minimizers on a small job

LJ_JOB = """<?xml version="1.0"?>
<job>
  <fitting output-interval="1">{minimizer}</fitting>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="LJ"><sigma>3.2</sigma><epsilon>0.012</epsilon><cutoff>9.0</cutoff>
      <fit-dof><sigma min="3.0" max="4.0"/><epsilon min="0.005" max="0.02"/></fit-dof>
    </lennard-jones>
  </potentials>
  <structures>
    <dimer-structure id="dimer">
      <atom-type-A>Ar</atom-type-A><atom-type-B>Ar</atom-type-B><atom-distance>3.7</atom-distance>
      <properties>
        <atom-distance fit="true" target="3.8" min="3.0" max="5.0"/>
        <total-energy fit="true" target="-0.0105" tolerance="0.0001"/>
      </properties>
    </dimer-structure>
  </structures>
</job>
"""

# The exact optimum: r0 = 2^(1/6) sigma, E = -epsilon.
SIGMA, EPSILON = 3.8 / 2 ** (1 / 6), 0.0105

MINIMIZERS = {
    "BFGS": '<BFGS conv-threshold="1e-12" max-iter="100"/>',
    "lbfgs": '<lbfgs conv-threshold="1e-12" max-iter="100"/>',
    "nlopt-lbfgs": '<nlopt algorithm="LD_LBFGS" maxeval="100" ftol_rel="1e-12"/>',
    "nlopt-neldermead": '<nlopt algorithm="LN_NELDERMEAD" maxeval="400" ftol_rel="1e-12"/>',
    "nlopt-cobyla": '<nlopt algorithm="LN_COBYLA" maxeval="400" ftol_rel="1e-10"/>',
    "nelder-mead": '<nelder-mead max-iter="400" conv-threshold="1e-12"/>',
    "powell": '<powell max-iter="100" conv-threshold="1e-12"/>',
    "differential-evolution": ('<differential-evolution max-iter="40" seed="3" '
                               'conv-threshold="1e-12"/>'),
    "multistart": '<multistart count="3" seed="1"><BFGS conv-threshold="1e-12"/></multistart>',
    "adam": '<adam learning-rate="0.002" epochs="1500"/>',
}
TOLERANCE = {"differential-evolution": 1e-3, "adam": 1e-3, "nlopt-cobyla": 1e-4,
             "nelder-mead": 1e-5, "nlopt-neldermead": 1e-5, "powell": 1e-5}


@pytest.mark.parametrize("name", sorted(MINIMIZERS))
def test_minimizer_finds_exact_optimum(tmp_path, name):
    path = tmp_path / "job.xml"
    path.write_text(LJ_JOB.format(minimizer=MINIMIZERS[name]))
    job, _ = load_job(str(path))
    r = run_job(job, output_dir=str(tmp_path / "out"), quiet=True, tty=False)
    p = {k.split(".")[-1]: v["value"] for k, v in r["parameters"].items()}
    tol = TOLERANCE.get(name, 1e-7)
    assert p["sigma"] == pytest.approx(SIGMA, rel=tol)
    assert p["epsilon"] == pytest.approx(EPSILON, rel=tol)
    assert r["objective"]["training"] < 1e-6 if tol < 1e-6 else math.isfinite(
        r["objective"]["training"])
    assert r["fit"]["evaluations"] > 0 and r["fit"]["history"][0][0] == 0


def test_max_iter_override_and_bounds(tmp_path):
    """--max-iter caps the iterations; parameters never leave their [min, max]."""
    path = tmp_path / "job.xml"
    path.write_text(LJ_JOB.format(minimizer='<BFGS max-iter="100"/>')
                    .replace('<epsilon min="0.005" max="0.02"/>',
                             '<epsilon min="0.005" max="0.010"/>'))
    job, _ = load_job(str(path))
    r = run_job(job, output_dir=str(tmp_path / "out"), quiet=True, tty=False, max_iter=2)
    assert r["fit"]["iterations"] <= 2
    r = run_job(job, output_dir=str(tmp_path / "out2"), quiet=True, tty=False)
    eps = [v for k, v in r["parameters"].items() if k.endswith("epsilon")][0]["value"]
    assert eps == pytest.approx(0.010, abs=1e-12) and eps <= 0.010


def test_minimizer_runs_on_one_blas_thread(tmp_path, monkeypatch):
    """During the fit every BLAS library (NumPy's, SciPy's) is limited to one thread, so that
    idle worker threads cannot spin on the cores the objective runs on; the limits are
    restored afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import rexfit.fit.methods as methods

    seen = []
    original = methods.minimize

    def recording(*args, **kw):
        seen.append([pool["num_threads"] for pool in threadpool_info()
                     if pool["user_api"] == "blas"])
        return original(*args, **kw)

    monkeypatch.setattr(methods, "minimize", recording)
    path = tmp_path / "job.xml"
    path.write_text(LJ_JOB.format(minimizer='<BFGS max-iter="5"/>'))
    job, _ = load_job(str(path))
    with threadpool_limits(limits=2, user_api="blas"):
        before = [pool["num_threads"] for pool in threadpool_info()
                  if pool["user_api"] == "blas"]
        run_job(job, output_dir=str(tmp_path / "out"), quiet=True, tty=False)
        after = [pool["num_threads"] for pool in threadpool_info()
                 if pool["user_api"] == "blas"]
    assert before and seen == [[1] * len(before)]
    assert after == before


def test_constraint_ties_parameters(tmp_path):
    """A dependent DOF is computed from the others (and never fitted on its own)."""
    path = tmp_path / "job.xml"
    text = LJ_JOB.format(minimizer='<BFGS conv-threshold="1e-12"/>').replace(
        "</structures>", """</structures>
  <parameter-constraints>
    <constraint id="tie" dependent-dof="LJ[LJ].epsilon">
      <expression>LJ[LJ].sigma * 0.003</expression>
    </constraint>
  </parameter-constraints>""")
    path.write_text(text)
    job, _ = load_job(str(path))
    r = run_job(job, output_dir=str(tmp_path / "out"), quiet=True, tty=False)
    p = {k.split(".")[-1]: v["value"] for k, v in r["parameters"].items()}
    assert p["epsilon"] == pytest.approx(0.003 * p["sigma"], rel=1e-14)
    assert p["sigma"] != 3.2
    # parameters.xml carries the dependent value too
    xml = (tmp_path / "out/parameters.xml").read_text()
    assert repr(p["epsilon"]) in xml


def test_validate_potentials_and_terminal_progress(tmp_path, capsys):
    """<validate-potentials/> prints its checks before the fit; on a terminal the progress is
    one line rewritten in place while log.txt still gets the iter= lines."""
    path = tmp_path / "job.xml"
    path.write_text(LJ_JOB.format(minimizer='<BFGS conv-threshold="1e-12"/>')
                    .replace("<job>", "<job><validate-potentials/>"))
    job, _ = load_job(str(path))
    run_job(job, output_dir=str(tmp_path / "out"), tty=True)
    shown = capsys.readouterr().out
    log = (tmp_path / "out/log.txt").read_text()
    assert "Validating potentials" in log and "PASS" in log and "FAIL" not in log
    assert log.index("Validating potentials") < log.index("Training phase")
    assert "\r  iteration" in shown and "iter= " not in shown
    assert re.search(r"^iter= \d+ residual= ", log, flags=re.M)
