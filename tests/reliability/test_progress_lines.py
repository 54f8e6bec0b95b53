"""Issue 17, "Also": the final progress line is shown once (on a terminal nothing is glued to
it), and log.txt never repeats the last ``iter=`` line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rexfit.fit.driver import _Tracker
from rexfit.job import load_job
from rexfit.run import Log, run_job

ROOT = Path(__file__).resolve().parents[2]


def _lj_job(tmp_path: Path, interval: int, minimizer: str) -> Path:
    shutil.copytree(ROOT / "jobs/ar-lj", tmp_path / "ar-lj")
    path = tmp_path / "ar-lj/job.xml"
    text = path.read_text().replace("<fitting>", f'<fitting output-interval="{interval}">')
    text = re.sub(r"<BFGS [^>]*/>", minimizer, text)
    path.write_text(text)
    return path


ITER = re.compile(r"^iter= (\d+) residual= (\S+) grad= (\S+)$", re.M)


@pytest.mark.parametrize("interval, minimizer", [
    (1, '<BFGS conv-threshold="1e-10" max-iter="3"/>'),  # stops on an output iteration
    (2, '<BFGS conv-threshold="1e-10" max-iter="4"/>'),
    (1, '<nelder-mead max-iter="5"/>'),
])
def test_log_has_each_iteration_once(tmp_path, capsys, interval, minimizer):
    job, _ = load_job(str(_lj_job(tmp_path, interval, minimizer)))
    out = tmp_path / "out"
    res = run_job(job, output_dir=str(out), tty=False)
    shown = capsys.readouterr().out
    for text in (shown, (out / "log.txt").read_text()):
        numbers = [int(m[1]) for m in ITER.finditer(text)]
        assert numbers == sorted(set(numbers)), numbers  # increasing, no repeats
        assert numbers[0] == 0 and numbers[-1] == res["fit"]["iterations"]
    last = ITER.findall((out / "log.txt").read_text())[-1]
    assert float(last[1]) == pytest.approx(res["objective"]["training"], rel=1e-9)


def test_terminal_shows_the_final_line_once(tmp_path, capsys):
    job, _ = load_job(str(_lj_job(tmp_path, 1, '<BFGS conv-threshold="1e-10" max-iter="3"/>')))
    out = tmp_path / "out"
    res = run_job(job, output_dir=str(out), tty=True)
    shown = capsys.readouterr().out
    live = [line for line in shown.split("\n") if "\r  iteration" in line]
    assert len(live) == 1  # one line rewritten in place, then one newline
    states = [s for s in live[0].split("\r") if s.strip()]
    assert states[-1].split()[:2] == ["iteration", str(res["fit"]["iterations"])]
    fit_line = next(line for line in shown.split("\n") if "Fit stopped" in line
                    or "Fit converged" in line)
    assert fit_line.startswith("Fit ")  # nothing glued in front of it
    log = (out / "log.txt").read_text()
    assert "\r" not in log and len(ITER.findall(log)) == len(set(ITER.findall(log)))


class _Objective:
    def has_validation(self):
        return False


def test_a_final_point_other_than_the_last_iterate_is_labelled():
    log = Log(quiet=True)
    tr = _Tracker(_Objective(), log, interval=1, tty=False)
    tr.report(0, 10.0, 1.0, force=True)
    tr.report(3, 5.0, 0.5)
    tr.report(3, 5.0, 0.5, force=True, final=True)  # the same point: not repeated
    assert [line for line in log.text if line.startswith("iter=")] == [
        "iter= 0 residual= 10 grad= 1", "iter= 3 residual= 5 grad= 0.5"]
    tr.report(3, 4.5, 0.25, force=True, final=True)  # the best point evaluated, not the iterate
    assert log.text[-1] == "final point (best evaluated): residual= 4.5 grad= 0.25"
    tr2 = _Tracker(_Objective(), Log(quiet=True), interval=5, tty=False)
    tr2.report(0, 10.0, 1.0, force=True)
    tr2.report(7, 4.0, 0.1, force=True, final=True)  # not an output iteration: logged once
    assert tr2.log.text[-1] == "iter= 7 residual= 4 grad= 0.1"


def test_results_history_ends_with_the_final_objective(tmp_path):
    job, _ = load_job(str(_lj_job(tmp_path, 1, '<BFGS conv-threshold="1e-10" max-iter="3"/>')))
    out = tmp_path / "out"
    run_job(job, output_dir=str(out), quiet=True, tty=False)
    res = json.loads((out / "results.json").read_text())
    history = res["fit"]["history"]
    assert [h[0] for h in history] == sorted({h[0] for h in history})
    assert history[-1][1] == pytest.approx(res["objective"]["training"], rel=1e-9)
