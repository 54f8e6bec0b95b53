"""<export-eam-file>: the table rexfit writes is read by LAMMPS (eam/fs and eam/alloy) and
gives rexfit's energies and forces on a perturbed cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.physics.properties import evaluate
from rexfit.run import run_job
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.lammps_ref import lammps_compute

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["Al.eam.fs", "Al.eam.alloy"])
def exported(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    for name in ("potential.xml", "structures.xml"):
        text = (ROOT / "jobs/al-eam" / name).read_text()
        if name == "potential.xml":
            text = text.replace("<mapping>", f"<export-eam-file>{request.param}</export-eam-file>\n  <mapping>")
        (d / name).write_text(text)
    (d / "job.xml").write_text((ROOT / "jobs/al-eam/job.xml").read_text())
    job, _ = load_job(str(d / "job.xml"))
    run_job(job, output_dir=str(d / "out"), no_fit=True, quiet=True)
    return job, d / "out" / request.param


def test_lammps_reads_export_and_agrees(exported):
    job, path = exported
    assert path.exists()
    pm = build_potentials(job)
    rng = np.random.default_rng(3)
    a = 4.05
    cell = a * np.eye(3) * 2 + rng.normal(0, 0.02, (3, 3))
    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    frac = np.concatenate([(base + np.array(s)) / 2 for s in np.ndindex(2, 2, 2)])
    pos = frac @ cell + rng.normal(0, 0.05, (32, 3))
    system = make_system(pos, cell, np.zeros(32, int))
    ev = evaluate(pm.potential, pm.params, system, build_neighbor_list(system, pm.cutoff))
    style = "eam/alloy" if path.name.endswith(".alloy") else "eam/fs"
    ref = lammps_compute(pos, cell, np.zeros(32, int), (True, True, True), style,
                         [f"* * {path} Al"])
    assert float(ev.energy) / 32 == pytest.approx(ref.energy / 32, abs=1e-7)
    np.testing.assert_allclose(np.asarray(ev.forces), ref.forces, atol=1e-6)
