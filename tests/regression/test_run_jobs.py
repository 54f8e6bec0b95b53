"""Running jobs end to end through the command line: output files, results.json contract,
atomicrex's objective value, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rexfit.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def al_eam(tmp_path_factory):
    out = tmp_path_factory.mktemp("al-eam")
    assert main([str(ROOT / "jobs/al-eam/job.xml"), "--no-fit", "-q", "--output-dir", str(out)]) == 0
    return out


def test_output_files(al_eam):
    assert sorted(p.name for p in al_eam.iterdir()) == ["log.txt", "parameters.xml", "results.json"]


def test_initial_objective_equals_atomicrex(al_eam):
    # atomicrex's log for this job starts "iter= 1 residual= 1480.32" at the given parameters.
    results = json.loads((al_eam / "results.json").read_text())
    assert results["objective"]["training"] == pytest.approx(1480.32, abs=0.005)
    assert results["objective"]["initial"] == results["objective"]["training"]
    assert results["objective"]["validation"] is None


def test_results_json_contract(al_eam):
    r = json.loads((al_eam / "results.json").read_text())
    assert {"rexfit_version", "job", "objective", "fit", "parameters", "structures"} <= set(r)
    assert r["job"] == "Al EAM potential"
    a = r["parameters"]["Al[EAM].V[user-function].A"]
    assert a == {"value": 500.0, "initial": 500.0, "fitted": True, "min": None, "max": None}
    fcc = r["structures"]["fcc"]
    assert (fcc["set"], fcc["natoms"], fcc["relative_weight"]) == ("training", 1, 5.0)
    lp = fcc["properties"]["lattice-parameter"]
    assert lp["relaxed"] is True and lp["fit"] is True and lp["unit"] == "A"
    assert lp["abs_weight"] == pytest.approx(0.15625)
    assert lp["tolerance"] == 0.005 and lp["residual_style"] == "squared"
    assert lp["weighted_residual"] == pytest.approx(0.15625 * ((lp["value"] - 4.05) / 0.005) ** 2)
    bcc = r["structures"]["bcc"]["properties"]
    assert bcc["lattice-parameter"]["relaxed"] is False and bcc["lattice-parameter"]["value"] == 2.6
    assert bcc["atomic-energy"]["abs_weight"] == pytest.approx(0.125)


def test_log_has_atomicrex_lines(al_eam):
    log = (al_eam / "log.txt").read_text()
    assert "Structure 'fcc':" in log
    assert "atomic-energy: " in log and "Abs. weight: 0.15625; Tolerance: 0.01; Weighted residual:" in log
    assert "(relaxed) [3:5]" in log
    assert "lattice-parameter: 2.6 A [2:3.3]" in log


def test_validation_set_and_lj_dimer(tmp_path):
    assert main([str(ROOT / "jobs/ar-lj/job.xml"), "--no-fit", "-q", "--output-dir",
                 str(tmp_path)]) == 0
    r = json.loads((tmp_path / "results.json").read_text())
    assert [k for k, v in r["structures"].items() if v["set"] == "validation"] == ["hcp", "bcc"]
    assert r["objective"]["validation"] is not None
    dimer = r["structures"]["dimer"]["properties"]
    # A Lennard-Jones dimer relaxes to r = 2^(1/6) σ with energy −ε.
    assert dimer["atom-distance"]["value"] == pytest.approx(2 ** (1 / 6) * 3.40, rel=1e-9)
    assert dimer["total-energy"]["value"] == pytest.approx(-0.0104, rel=1e-9)


def test_lj_fcc_energy_against_ase(tmp_path):
    """fcc argon at the relaxed lattice parameter, energy per atom vs ASE's LJ calculator
    (ASE shifts each pair energy to zero at the cutoff; the shift is added back)."""
    from ase.build import bulk
    from ase.calculators.lj import LennardJones

    assert main([str(ROOT / "jobs/ar-lj/job.xml"), "--no-fit", "-q", "--output-dir",
                 str(tmp_path)]) == 0
    r = json.loads((tmp_path / "results.json").read_text())
    fcc = r["structures"]["fcc"]["properties"]
    a = fcc["lattice-parameter"]["value"]
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat((2, 2, 2))
    sigma, eps, rc = 3.40, 0.0104, 8.5
    atoms.calc = LennardJones(sigma=sigma, epsilon=eps, rc=rc, smooth=False)
    e_ase = atoms.get_potential_energy()
    from ase.neighborlist import neighbor_list

    npairs = len(neighbor_list("i", atoms, rc)) / 2
    shift = 4 * eps * ((sigma / rc) ** 12 - (sigma / rc) ** 6)
    e_ref = (e_ase + npairs * shift) / len(atoms)
    assert fcc["atomic-energy"]["value"] == pytest.approx(e_ref, rel=1e-10)


@pytest.mark.parametrize("fmt,name", [("poscar", "POSCAR_hcp"), ("extxyz", "hcp.xyz"),
                                      ("lammps-dump", "hcp.dump")])
def test_output_structure_file(tmp_path, fmt, name):
    """<output file format>: the relaxed structure is written and reads back (ASE) with the
    relaxed lattice parameter."""
    import ase.io

    text = (ROOT / "jobs/ar-lj/job.xml").read_text().replace(
        '<hcp-lattice id="hcp">', f'<hcp-lattice id="hcp"><output file="{name}" format="{fmt}"/>')
    job = tmp_path / "job.xml"
    job.write_text(text)
    out = tmp_path / "out"
    assert main([str(job), "--no-fit", "-q", "--output-dir", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    a = r["structures"]["hcp"]["properties"]["lattice-parameter"]["value"]
    read_fmt = {"poscar": "vasp", "extxyz": "extxyz", "lammps-dump": "lammps-dump-text"}[fmt]
    atoms = ase.io.read(out / name, format=read_fmt)
    assert len(atoms) == 2
    assert atoms.cell.lengths()[0] == pytest.approx(a, rel=1e-12)
    assert atoms.get_volume() == pytest.approx(r["structures"]["hcp"]["properties"]["total-volume"]["value"], rel=1e-12)
