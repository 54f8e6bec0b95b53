"""ACE as a job's ``<ace>`` potential, against pyace (PyPI python-ace): lattice properties of the
example basis (jobs/cu-ace/Cu.yaml) agree with pyace's energy, stress and finite-difference
elastic constants on the relaxed cell; a linear ACE fitted with ``<linear-solve>`` to energies,
forces and stresses that pyace computed recovers the coefficients; the exported ``.yace`` and
``.yaml`` give pyace the same energies; bad ``<fit-dof>`` tags are located errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pyace = pytest.importorskip("pyace")

from ase import units  # noqa: E402
from ase.build import bulk  # noqa: E402

import rexfit  # noqa: E402
from rexfit.errors import InputErrors  # noqa: E402
from rexfit.potentials.ace.files import read_bbasis, write_bbasis  # noqa: E402
from rexfit.potentials.ace.model import ACE  # noqa: E402
from tests.support.ace_cases import ace_job as lattice_job  # noqa: E402
from tests.support.ace_cases import labelled_cells as dataset  # noqa: E402
from tests.support.ace_cases import CU_DATASET, linear_basis  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CU_YAML = ROOT / "jobs" / "cu-ace" / "Cu.yaml"


FCC = """    <fcc-lattice id="fcc">
      <atom-type>Cu</atom-type>
      <lattice-parameter>3.55</lattice-parameter>
      <properties>
        <lattice-parameter fit="true" target="3.6" min="3.3" max="4.0"/>
        <atomic-energy/> <C11/> <C12/> <C44/>
      </properties>
    </fcc-lattice>"""


def pyace_stress(atoms, calc, strain):
    """pyace's stress (Voigt, eV/Å³) of ``atoms`` deformed by I + ``strain``."""
    other = atoms.copy()
    other.set_cell(atoms.cell[:] @ (np.eye(3) + strain).T, scale_atoms=True)
    other.calc = calc
    return other.get_stress(voigt=True)


def test_lattice_properties_agree_with_pyace(tmp_path):
    """fcc Cu relaxed by rexfit: pyace finds the same energy per atom and zero stress on that
    cell, and its finite-difference elastic constants equal rexfit's C11, C12, C44."""
    job = tmp_path / "job.xml"
    job.write_text(lattice_job(str(CU_YAML), FCC))
    res = rexfit.run(job, tmp_path / "out", no_fit=True)
    props = res.results["structures"]["fcc"]["properties"]
    a = props["lattice-parameter"]["value"]
    assert abs(a - 3.55) > 0.02  # it did relax (the potential's minimum is near 3.62 Å)
    atoms = bulk("Cu", "fcc", a, cubic=True)
    calc = pyace.PyACECalculator(str(CU_YAML))
    atoms.calc = calc
    assert abs(atoms.get_potential_energy() / len(atoms) - props["atomic-energy"]["value"]) \
        < 1e-10
    assert np.abs(atoms.get_stress()).max() / units.GPa < 1e-6  # GPa: relaxed
    h = 1e-5
    normal = np.zeros((3, 3))
    normal[0, 0] = h
    shear = np.zeros((3, 3))
    shear[1, 2] = shear[2, 1] = h / 2  # engineering shear γ_yz = h
    dn = (pyace_stress(atoms, calc, normal) - pyace_stress(atoms, calc, -normal)) / (2 * h)
    ds = (pyace_stress(atoms, calc, shear) - pyace_stress(atoms, calc, -shear)) / (2 * h)
    reference = {"C11": dn[0], "C12": dn[1], "C44": ds[3]}
    for name, value in reference.items():
        assert abs(props[name]["value"] - value / units.GPa) < 1e-5, (name, props[name], value)


def test_linear_solve_recovers_pyace_coefficients_and_exports_read_back(tmp_path):
    """A linear ACE (10 functions) started 0.3 away from the coefficients pyace labelled the
    data with finds them again with one <linear-solve> (measured: 3e-10) from 12 cells' energies
    and stresses (extxyz keeps them exactly, forces only to 1e-8 eV/Å, which moves the solution
    by ~1e-6; stresses weighted lightly: pyace's and rexfit's agree to 1e-8 relative, not to
    round-off); the exported B-basis and .yace files,
    read by pyace, give the labels; parameters.xml names the fitted B-basis file."""
    truth_file, truth, start = linear_basis(tmp_path)
    frames = dataset(tmp_path / "cu.xyz", truth_file, count=12)
    structures = CU_DATASET
    extra = "<fit-dof><coefficients/></fit-dof><export-potential>fitted.yace</export-potential>"
    job = tmp_path / "job.xml"
    job.write_text(lattice_job("start.yaml", structures, extra,
                               "<fitting><linear-solve/></fitting>"))
    res = rexfit.run(job, tmp_path / "out")
    fitted = np.array([res.parameters[f"Cu[ACE].c{k + 1}[Cu]"] for k in range(truth.size)])
    assert truth.size == 10
    np.testing.assert_allclose(fitted, truth, rtol=0, atol=1e-8)
    out = tmp_path / "out"
    assert re.search(r"<param-file>fitted\.yaml</param-file>", (out / "parameters.xml").read_text())
    assert "pair_coeff * * fitted.yace Cu" in (out / "fitted.pace").read_text()
    for name in ("fitted.yaml", "fitted.yace"):
        calc = pyace.PyACECalculator(str(out / name))
        for atoms in frames:
            other = atoms.copy()
            other.calc = calc
            e_ref = atoms.get_potential_energy()
            assert abs(other.get_potential_energy() - e_ref) / len(atoms) < 1e-8, name
            assert np.abs(other.get_forces() - atoms.get_forces()).max() < 1e-7, name


def test_bad_fit_dof_tags_are_located(tmp_path):
    """An unknown block tag and an unknown group are errors naming the <fit-dof> line."""
    for extra, message in (('<fit-dof><coefficients tag="CuAl"/></fit-dof>',
                            "is not a species block"),
                           ("<fit-dof><beta/></fit-dof>", "not a parameter of")):
        job = tmp_path / "job.xml"
        xml = lattice_job(str(CU_YAML), FCC, extra)
        job.write_text(xml)
        with pytest.raises(InputErrors) as info:
            rexfit.run(job, tmp_path / "out", no_fit=True)
        line = xml[:xml.index("<fit-dof>")].count("\n") + 1
        errors = [str(e) for e in info.value.errors]
        assert any(message in e and f":{line}" in e for e in errors), (line, errors)


def test_export_commands_overlay_and_species_not_in_the_file(tmp_path):
    """NAME.pace: hybrid/overlay with another potential's overlay (a ZBL), NULL for a job
    species the file does not describe; the first file is the B-basis YAML parameters.xml
    names, and rexfit reads it back to the same coefficients."""
    from rexfit.potentials import ace_family

    spec = ace_family.AceSpec(str(CU_YAML), (), "Cu", None)
    term, params = ace_family.build_model(spec, ("Cu", "Ni"), None)
    overlays = (("core", ("zbl 1.0 2.0", ("1 1 zbl 29.0 29.0",))), ("other", None))
    files = ace_family.export_files(term, params, "out/fit.yace", "a header", overlays,
                                    ("Cu", "Ni"))
    assert [name for name, _ in files] == ["out/fit.yaml", "out/fit.yace", "out/fit.pace"]
    lines = files[2][1].splitlines()
    assert lines[2:] == ["# the job's other potentials (other) are not included",
                         "pair_style hybrid/overlay zbl 1.0 2.0 pace",
                         "pair_coeff 1 1 zbl 29.0 29.0", "pair_coeff * * pace fit.yace Cu NULL"]
    (tmp_path / "fit.yaml").write_text(files[0][1])
    assert files[0][1].startswith("# a header\n")
    assert read_bbasis(tmp_path / "fit.yaml") == read_bbasis(CU_YAML)


def test_dof_groups_name_every_coefficient_in_file_order():
    """<coefficients/> and <crad tag=.../>: one DOF per coefficient, named and placed in the
    flat params leaf in the order of the file's arrays (what parameters.xml and the fitted
    file are written from)."""
    from rexfit.potentials import ace_family

    class Dof:
        def __init__(self, name, tag=None):
            self.name, self.tag, self.origin = name, tag, None

    recorded = []

    def register(dof, path, value, name=None, tag=None):
        recorded.append((dof.name, path, value, name, tag))
        return value

    spec = ace_family.AceSpec(str(CU_YAML), (Dof("coefficients"), Dof("crad", "CuCu")), "Cu",
                              None)
    term, params = ace_family.build_model(spec, ("Cu",), register)
    basis = read_bbasis(CU_YAML)
    block = basis.block("Cu")
    c = [x for f in block.functions for x in f.c]
    crad = np.asarray(block.radcoefficients, float).ravel()
    assert [r[1:] for r in recorded if r[0] == "coefficients"] == [
        (("c", "Cu", k), c[k], f"c{k + 1}", "Cu") for k in range(len(c))]
    assert [r[1:] for r in recorded if r[0] == "crad"] == [
        (("crad", "Cu-Cu", k), crad[k], f"crad{k + 1}", "CuCu") for k in range(crad.size)]
    assert np.array_equal(term.shaped(params)["crad"]["Cu-Cu"],
                          np.asarray(block.radcoefficients, float))


def test_two_elements_in_a_job_whose_species_are_not_alphabetical(tmp_path):
    """An Al-Cu basis (random coefficients) under <atom-types> Cu, Al (the file's elements are
    alphabetical, the job's types are not): L1_2 Cu3Al energies equal pyace's (and differ from
    Al3Cu's, so a swap of the species would show)."""
    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Al", "Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.5,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]}}})
    config.save(str(tmp_path / "basis.yaml"))
    basis = read_bbasis(tmp_path / "basis.yaml")
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(5)
    new = {"crad": {k: rng.normal(size=v.shape) for k, v in params["crad"].items()},
           "c": {k: 0.1 * rng.normal(size=v.shape) for k, v in params["c"].items()}}
    write_bbasis(tmp_path / "AlCu.yaml", potential.to_bbasis(basis, new))
    lattice = (3.9, 4.3)
    structures = "\n".join(f"""    <L12-lattice id="L12-{k}">
      <atom-type-A>Cu</atom-type-A><atom-type-B>Al</atom-type-B>
      <lattice-parameter>{a}</lattice-parameter>
      <properties><atomic-energy/></properties>
    </L12-lattice>""" for k, a in enumerate(lattice))
    xml = lattice_job("AlCu.yaml", structures).replace(
        "<species>Cu</species>", "<species>Cu</species><species>Al</species>")
    (tmp_path / "job.xml").write_text(xml)
    res = rexfit.run(tmp_path / "job.xml", tmp_path / "out", no_fit=True)
    calc = pyace.PyACECalculator(str(tmp_path / "AlCu.yaml"))
    for k, a in enumerate(lattice):
        ours = res.results["structures"][f"L12-{k}"]["properties"]["atomic-energy"]["value"]
        energies = []
        for symbols in ("AlCu3", "CuAl3"):  # corner first, then the faces
            atoms = bulk("Cu", "fcc", a, cubic=True)
            atoms.set_chemical_symbols([symbols[:2]] + [symbols[2:4]] * 3)
            atoms.calc = calc
            energies.append(atoms.get_potential_energy() / len(atoms))
        assert abs(energies[0] - ours) < 1e-10, (a, ours, energies)
        assert abs(energies[1] - ours) > 1e-3  # the other assignment differs


def test_unreadable_basis_file_is_a_located_error(tmp_path):
    """A B-basis file with a YAML syntax error: an input error at the <ace> line, naming the
    file."""
    (tmp_path / "bad.yaml").write_text("global: [1\nspecies: {\n")
    xml = lattice_job("bad.yaml", FCC)
    (tmp_path / "job.xml").write_text(xml)
    with pytest.raises(InputErrors) as info:
        rexfit.run(tmp_path / "job.xml", tmp_path / "out", no_fit=True)
    line = xml[:xml.index("<ace ")].count("\n") + 1
    assert any(f":{line}:" in str(e) and "bad.yaml" in str(e) for e in info.value.errors)
