"""SNAP in a job: a linear SNAP fitted with <linear-solve> to energies, forces and stresses that
LAMMPS computed with the shipped Mo_Zuo_JPCA2020 SNAP (alone, and over a fixed ZBL base:
Δ-learning) recovers the generating coefficients; the exported files run in LAMMPS and give
rexfit's energies; the job language checks its input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from rexfit.cli import main
from rexfit.potentials.snap_files import read_snapcoeff
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

STEM = "Mo_Zuo_JPCA2020"
ZBL = (1.6, 2.4)  # inner, outer (Å): acts on the shortest distances of the rattled cells


def _pair_lines(zbl: bool):
    files = f"{potentials_dir() / (STEM + '.snapcoeff')} {potentials_dir() / (STEM + '.snapparam')}"
    if zbl:
        return (f"hybrid/overlay zbl {ZBL[0]} {ZBL[1]} snap",
                ["1 1 zbl 42.0 42.0", f"* * snap {files} Mo"])
    return "snap", [f"* * {files} Mo"]


@pytest.fixture(scope="module", params=[False, True], ids=["snap", "zbl+snap"])
def mo_data(request, tmp_path_factory):
    """24 strained and rattled bcc Mo cells (2–16 atoms), LAMMPS energies, forces, stresses
    in an ASE database (full precision)."""
    zbl = request.param
    tmp = tmp_path_factory.mktemp("mo")
    style, lines = _pair_lines(zbl)
    rng = np.random.default_rng(7)
    with connect(tmp / "mo.db", append=False) as db:
        for k in range(24):
            repeat = (1, 1, 1) if k < 8 else (2, 1, 1) if k < 16 else (2, 2, 2)
            pos, cell, _ = crystal("Mo", 3.147 * (1 + rng.uniform(-0.03, 0.03)), seed=k,
                                   strain=0.03, rattle=0.12 if not zbl else 0.25)
            shifts = np.array([[i, j, l] for i in range(repeat[0]) for j in range(repeat[1])
                               for l in range(repeat[2])], float)
            pos = (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
            cell = np.diag(repeat) @ cell
            species = np.zeros(len(pos), int)
            ref = lammps_compute(pos, cell, species, (True,) * 3, style, lines, 1)
            atoms = Atoms(f"Mo{len(pos)}", positions=pos, cell=cell, pbc=True)
            atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces,
                                               stress=ref.stress)
            db.write(atoms)
    shutil.copy(potentials_dir() / (STEM + ".snapparam"), tmp / "Mo.snapparam")
    return tmp, zbl


def _job(zbl: bool, export: str = "Mo_fit", solver: str = "<linear-solve/>") -> str:
    base = f'<zbl id="core" inner="{ZBL[0]}" outer="{ZBL[1]}"/>' if zbl else ""
    # the settings of Mo.snapparam, from the file or (with ZBL) written inline
    settings = ('<descriptor twojmax="6" rcutfac="4.6" rfac0="0.99363" rmin0="0" '
                'bzeroflag="0"/>' if zbl else "<param-file>Mo.snapparam</param-file>")
    return f"""<job><name>Mo SNAP fit</name><atom-types><species>Mo</species></atom-types>
  <potentials>{base}
    <snap id="Mo">{settings}
      <element species="Mo" radius="0.5" weight="1"/>
      <fit-dof><beta0/><beta/></fit-dof>
      <export-potential>{export}</export-potential></snap>
  </potentials>
  <structures>
    <dataset id="mo" validation-fraction="0.25" seed="3"><file format="db">mo.db</file>
      <properties><atomic-energy tolerance="0.001"/><atomic-forces tolerance="0.01"/>
        <stress tolerance="0.001"/></properties></dataset>
  </structures>
  <fitting>{solver}</fitting></job>"""


def test_linear_snap_fit_recovers_the_generating_coefficients(mo_data, tmp_path):
    data, zbl = mo_data
    for name in ("mo.db", "Mo.snapparam"):
        shutil.copy(data / name, tmp_path)
    (tmp_path / "job.xml").write_text(_job(zbl))
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--no-plots", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["fit"]["method"] == "linear-solve" and "rank 31 of 31" in res["fit"]["message"]
    truth = read_snapcoeff(potentials_dir() / (STEM + ".snapcoeff"))["Mo"].coefficients
    fitted = read_snapcoeff(out / "Mo_fit.snapcoeff")["Mo"].coefficients
    # written once, under the <export-potential> name, which parameters.xml points to
    assert not (out / "Mo.fitted.snapcoeff").exists()
    assert "<coeff-file>Mo_fit.snapcoeff</coeff-file>" in (out / "parameters.xml").read_text()
    np.testing.assert_allclose(fitted, truth, rtol=1e-6, atol=1e-6 * np.abs(truth).max())
    for k, value in enumerate(truth):
        name = "Mo[SNAP].beta0[Mo]" if k == 0 else f"Mo[SNAP].beta{k}[Mo]"
        assert res["parameters"][name]["value"] == pytest.approx(value, rel=1e-6,
                                                                 abs=1e-7)
    metrics = res["metrics"]["validation"]["all"]
    assert metrics["energy_per_atom"]["rmse"] < 1e-6
    assert metrics["forces"]["rmse"] < 1e-5

    # the exported files run in LAMMPS (with the ZBL overlay when the job has one)
    lines = (out / "Mo_fit.snap").read_text().splitlines()
    style = next(line.split(None, 1)[1] for line in lines if line.startswith("pair_style"))
    coeffs = [line.split(None, 1)[1].replace("Mo_fit.", str(out / "Mo_fit."))
              for line in lines if line.startswith("pair_coeff")]
    assert ("hybrid/overlay zbl" in style) == zbl
    entries = {key: r for key, r in res["structures"].items() if r.get("dataset") == "mo"}
    assert len(entries) == 24
    by_row = {int(r["source"].rsplit("id=", 1)[1]): r for r in entries.values()}
    db = connect(str(data / "mo.db"))
    for row_id in (1, 10, 21):  # 2, 4 and 16 atoms
        atoms = db.get(id=row_id).toatoms()
        ref = lammps_compute(atoms.positions, atoms.cell.array, np.zeros(len(atoms), int),
                             (True,) * 3, style, coeffs, 1)
        ours = by_row[row_id]["properties"]["total-energy"]["value"]
        assert abs(ours - ref.energy) / len(atoms) < 1e-9
