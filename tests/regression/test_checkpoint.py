"""Checkpoints and --restart: a fit interrupted after a checkpoint and restarted reaches the same
final objective (Adam: the same trajectory, its moments restored) with one continuous history."""

from __future__ import annotations

import json

import pytest

from rexfit.cli import main

JOB = """<job><name>ckpt</name><atom-types><species>Ar</species></atom-types>
  <potentials><lennard-jones id="LJ" species-a="*" species-b="*"><sigma>3.3</sigma>
    <epsilon>0.012</epsilon><cutoff>8.0</cutoff><fit-dof><sigma/><epsilon/></fit-dof>
  </lennard-jones></potentials>
  <structures>
    <fcc-lattice id="fcc"><atom-type>Ar</atom-type><lattice-parameter>5.3</lattice-parameter>
      <properties><lattice-parameter fit="true" target="5.26" min="4.5" max="6"/>
        <atomic-energy fit="true" target="-0.08"/></properties></fcc-lattice>
    <dimer-structure id="dimer"><atom-type>Ar</atom-type><atom-distance>3.8</atom-distance>
      <properties><atom-distance fit="true" target="3.76" min="3" max="5"/></properties>
    </dimer-structure>
  </structures>
  <fitting checkpoint-interval="5">{minimizer}</fitting></job>"""


def run(path, out, *args):
    code = main([str(path), "-q", "--output-dir", str(out), *args])
    return code, (json.loads((out / "results.json").read_text()) if code == 0 else None)


@pytest.mark.parametrize("minimizer, exact", [
    ('<adam learning-rate="0.01" epochs="30"/>', True),
    ('<BFGS conv-threshold="1e-14" max-iter="60"/>', False),
])
def test_restart_reaches_the_uninterrupted_result(tmp_path, minimizer, exact):
    path = tmp_path / "job.xml"
    path.write_text(JOB.format(minimizer=minimizer))
    _, full = run(path, tmp_path / "full")
    # "interrupted": the first run stops after 10 iterations (checkpoints at 5 and 10)
    code, first = run(path, tmp_path / "split", "--max-iter", "10")
    assert code == 0
    state = json.loads((tmp_path / "split" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == 10
    assert (tmp_path / "split" / "checkpoint" / "parameters.xml").exists()
    code, resumed = run(path, tmp_path / "split", "--restart")
    assert code == 0
    if exact:  # the same trajectory (up to relaxations restarted without their warm start)
        assert resumed["objective"]["training"] == pytest.approx(
            full["objective"]["training"], rel=1e-7)
        assert [h[0] for h in resumed["fit"]["history"]] == [h[0] for h in full["fit"]["history"]]
        for a, b in zip(resumed["fit"]["history"], full["fit"]["history"]):
            assert a[1] == pytest.approx(b[1], rel=1e-7)
    else:
        assert resumed["objective"]["training"] == pytest.approx(
            full["objective"]["training"], rel=1e-8, abs=1e-12)
        its = [h[0] for h in resumed["fit"]["history"]]
        assert its[:11] == list(range(11)) and its == sorted(its)


def test_restart_without_checkpoint_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "job.xml"
    path.write_text(JOB.format(minimizer="<BFGS/>"))
    code, _ = run(path, tmp_path / "none", "--restart")
    assert code == 2 and "there is no checkpoint" in capsys.readouterr().err
