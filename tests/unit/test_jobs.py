"""Every example job and every template validates; the flagship job is read as atomicrex
defines it; the schema ships inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from rexfit.cli import TEMPLATES, main
from rexfit.job import load_job, names
from rexfit.job.summary import fitted_parameters

ROOT = Path(__file__).resolve().parents[2]
JOBS = sorted((ROOT / "jobs").glob("*/job.xml"))


def test_there_are_example_jobs():
    assert {p.parent.name for p in JOBS} >= {"al-eam", "ar-lj", "si-tersoff"}


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.parent.name)
def test_example_job_validates(job, capsys):
    assert main(["validate", str(job)]) == 0, capsys.readouterr().err


def test_jobs_readme_describes_every_job():
    readme = (ROOT / "jobs" / "README.md").read_text(encoding="utf-8")
    for job in JOBS:
        assert f"`{job.parent.name}/`" in readme


@pytest.mark.parametrize("kind", TEMPLATES)
def test_template_validates(kind, tmp_path, capsys):
    assert main(["template", kind]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "job.xml"
    path.write_text(text, encoding="utf-8")
    if kind == "ace":  # the template reads a B-basis file placed next to it
        (tmp_path / "Cu.yaml").write_bytes((ROOT / "jobs/cu-ace/Cu.yaml").read_bytes())
    if kind == "tersoff":  # the template reads a LAMMPS file placed next to it
        (tmp_path / "Si.tersoff").write_bytes((ROOT / "jobs/si-tersoff/Si.tersoff").read_bytes())
    if kind in ("snap", "nn"):  # the template reads a dataset placed next to it
        from ase.build import bulk
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.io import write

        atoms = bulk("Mo", "bcc", 3.15, cubic=True) if kind == "snap" else bulk("Si")
        atoms.calc = SinglePointCalculator(atoms, energy=-21.8, forces=[[0.0] * 3] * 2)
        write(tmp_path / "data.xyz", [atoms], format="extxyz")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_unknown_template_kind(capsys):
    assert main(["template", "nonsense"]) == 2
    assert "available: ace, eam" in capsys.readouterr().err


def test_al_eam_job_content():
    job, warnings = load_job(str(ROOT / "jobs/al-eam/job.xml"))
    assert warnings == []
    assert fitted_parameters(job) == [
        "Al[EAM].V[user-function].A", "Al[EAM].V[user-function].lambda",
        "Al[EAM].rho[user-function].twomu", "Al[EAM].F[user-function].D"]
    params = dict(names.potential_params(job.potentials[0]))
    assert params["Al[EAM].V[user-function].A"].value == 500.0
    assert params["Al[EAM].V[user-function].V_screening[user-function].h"].fit is False
    fcc, bcc, hcp, diamond = job.all_structures()
    assert (fcc.relative_weight, fcc.lattice_parameter) == (5.0, 4.05)
    assert fcc.relax == {"lattice-parameter"}  # fitted DOF property relaxes
    assert bcc.relax == frozenset()            # min/max alone do not relax
    assert hcp.ca_ratio == 1.6
    lp = bcc.property("lattice-parameter")
    assert (lp.fit, lp.min, lp.max) == (False, 2.0, 3.3)
    assert [p.name for p in fcc.properties if p.fit] == [
        "lattice-parameter", "atomic-energy", "bulk-modulus", "C11", "C12", "C44"]
    assert job.fitting.minimizer.kind == "BFGS"
    assert dict(job.fitting.minimizer.options) == {"conv-threshold": 1e-10, "max-iter": 200}
    # Origins point into the included files.
    assert fcc.origin.path.endswith("structures.xml")
    assert params["Al[EAM].F[user-function].D"].origin.path.endswith("potential.xml")


def test_validation_group_goes_to_validation_set():
    job, _ = load_job(str(ROOT / "jobs/ar-lj/job.xml"))
    assert [s.id for s in job.training] == ["fcc", "dimer"]
    assert [s.id for s in job.validation] == ["hcp", "bcc"]


def test_verbose_validate_says_what_the_job_computes(capsys):
    job = ROOT / "jobs/al-eam/job.xml"
    assert main(["validate", "-v", str(job)]) == 0
    out = capsys.readouterr().out
    assert "training phase: <BFGS conv-threshold=1e-10 max-iter=200> over 4 parameters" in out
    assert "Al[EAM].F[user-function].D" in out
    assert "fcc <fcc-lattice> (training); relaxes lattice-parameter" in out


def test_schema_found_through_package_resources():
    shipped = resources.files("rexfit.schemas").joinpath("job.xsd").read_bytes()
    assert shipped == (ROOT / "schemas" / "job.xsd").read_bytes()


def test_wheel_contains_schema_and_templates(tmp_path):
    pytest.importorskip("setuptools")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("rexfit-*.whl")
    members = zipfile.ZipFile(wheel).namelist()
    assert "rexfit/schemas/job.xsd" in members
    assert "rexfit/templates/eam.xml" in members
    assert "rexfit/cli.py" in members
    # every Python package of the source tree is in the wheel (pyproject lists them by hand)
    for init in sorted((ROOT / "rexfit").rglob("__init__.py")):
        rel = init.relative_to(ROOT).as_posix()
        assert rel in members, f"{rel} missing from the wheel: add it to pyproject packages"


@pytest.mark.parametrize("job", ["al-eam", "ar-lj"])
def test_model_and_spec_name_parameters_alike(job):
    """The model layer and the job layer agree on every DOF name (one naming scheme)."""
    from rexfit.model.potentials import build_potentials

    spec, _ = load_job(str(ROOT / "jobs" / job / "job.xml"))
    from_spec = {n for p in spec.potentials for n, _ in names.potential_params(p)}
    from_model = {e.name for e in build_potentials(spec).entries}
    assert from_spec == from_model and from_spec


def test_verbose_validate_shows_each_files_selection(capsys):
    job = ROOT / "jobs/mo-snap-groups/job.xml"
    assert main(["validate", "-v", str(job)]) == 0
    out = capsys.readouterr().out
    assert '<file select="config_type!=phases"> ' in out
    assert '<file index="::2" group="phases"> ' in out
    assert '<validation-file index="1::2" group="phases"> ' in out
