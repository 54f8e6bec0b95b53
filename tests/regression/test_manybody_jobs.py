"""Many-body potentials through the job language: <tersoff>, <abop>, <stillinger-weber> and
<adp> jobs against LAMMPS (energies, forces, stresses, relaxed-ion C_ij), exported files read by
LAMMPS, restarts from parameters.xml, and the errors a user meets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read
from scipy.optimize import minimize

from rexfit.cli import main
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

ROOT = Path(__file__).resolve().parents[2]
GPA = 160.21766208


def write_xyz(path, pos, cell, symbols):
    """Write an extxyz file; returns (positions, cell) as read back (the digits it kept)."""
    Atoms(symbols=list(symbols), positions=pos, cell=cell, pbc=True).write(path,
                                                                          format="extxyz")
    atoms = read(path)
    return atoms.positions, atoms.cell.array


def job_text(species, potential, structures, fitting=""):
    types = "".join(f"<species>{sp}</species>" for sp in species)
    return (f"<job><name>t</name><atom-types>{types}</atom-types>"
            f"<potentials>{potential}</potentials><structures>{structures}</structures>"
            f"{fitting}</job>")


def run(tmp_path, text, *args, name="job.xml"):
    (tmp_path / name).write_text(text)
    out = tmp_path / (name + ".out")
    code = main([str(tmp_path / name), "-q", "--output-dir", str(out), *args])
    return code, out


def results(out):
    return json.loads((out / "results.json").read_text())


def check_against_lammps(res, sid, pos, cell, species, style, coeff, ntypes, e_tol=1e-9):
    """results.json energy, forces and stress of ``sid`` against LAMMPS on the same atoms."""
    ref = lammps_compute(pos, cell, species, (True,) * 3, style, [coeff], ntypes)
    props = res["structures"][sid]["properties"]
    n = len(pos)
    assert abs(props["total-energy"]["value"] - ref.energy) / n < e_tol
    assert np.abs(np.array(props["atomic-forces"]["value"]) - ref.forces).max() < 1e-8
    assert np.abs(np.array(props["stress"]["value"]) - ref.stress * GPA).max() < 1e-6


PERTURBED = """<user-structure id="{sid}"><atoms-file>{file}</atoms-file>
  <properties><total-energy/><atomic-forces/><stress/></properties></user-structure>"""


# --------------------------------------------------------------------------- Tersoff


def relaxed_ion_c44_from_lammps(coeff, a):
    """C44 of diamond with the atoms relaxed at each strain (LAMMPS energies and forces,
    SciPy minimisation), by central differences of the LAMMPS stress."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=a, cubic=True)
    h = 1e-4
    stresses = []
    for sign in (1, -1):
        eps = np.eye(3)
        eps[1, 2] = eps[2, 1] = sign * h / 2
        cell = atoms.cell.array @ eps
        frac = atoms.get_scaled_positions()

        def energy(x):
            ref = lammps_compute(x.reshape(-1, 3), cell, [0] * 8, (True,) * 3, "tersoff",
                                 [coeff], 1)
            return ref.energy, -ref.forces.reshape(-1)

        res = minimize(energy, (frac @ cell).reshape(-1), jac=True, method="BFGS",
                       options=dict(gtol=1e-11, maxiter=500))
        ref = lammps_compute(res.x.reshape(-1, 3), cell, [0] * 8, (True,) * 3, "tersoff",
                             [coeff], 1)
        assert np.abs(ref.forces).max() < 1e-9
        stresses.append(ref.stress * GPA)
    return (stresses[0][3] - stresses[1][3]) / (2 * h)


@pytest.fixture(scope="module")
def tersoff_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tersoff")
    shutil.copy(potentials_dir() / "Si.tersoff", tmp / "Si.tersoff")
    pos, cell, species = crystal("Si", 5.43, seed=21, rattle=0.08)
    pos, cell = write_xyz(tmp / "si.xyz", pos, cell, ["Si"] * len(pos))
    structures = """<diamond-lattice id="diamond"><atom-type>Si</atom-type>
        <lattice-parameter>5.4</lattice-parameter>
        <relax><lattice-parameter/><atom-coordinates/></relax>
        <properties><lattice-parameter/><C11/><C12/><C44/></properties></diamond-lattice>
        """ + PERTURBED.format(sid="rattled", file="si.xyz")
    pot = '<tersoff id="Si" species-a="*" species-b="*"><param-file>Si.tersoff</param-file></tersoff>'
    code, out = run(tmp, job_text(["Si"], pot, structures))
    assert code == 0
    return tmp, results(out), (pos, cell, species)


def test_tersoff_job_matches_lammps(tersoff_run):
    tmp, res, (pos, cell, species) = tersoff_run
    check_against_lammps(res, "rattled", pos, cell, species, "tersoff",
                         f"* * {tmp / 'Si.tersoff'} Si", 1)


def test_tersoff_relaxed_ion_elastic_constants_match_lammps_finite_differences(tersoff_run):
    tmp, res, _ = tersoff_run
    props = res["structures"]["diamond"]["properties"]
    a = props["lattice-parameter"]["value"]
    c44 = relaxed_ion_c44_from_lammps(f"* * {tmp / 'Si.tersoff'} Si", a)
    assert abs(props["C44"]["value"] - c44) < 0.01
    assert props["C44"]["value"] < 0.9 * 92.3  # well below the clamped-ion value (~92 GPa)


# --------------------------------------------------------------------------- SW fit, export


def test_sw_fit_exports_a_file_lammps_reproduces(tmp_path):
    """Fit two SW parameters briefly, export: LAMMPS on the exported file gives rexfit's
    energies, forces and stresses of a perturbed two-element cell; the parameters.xml restart
    reproduces the objective."""
    shutil.copy(potentials_dir() / "GaN.sw", tmp_path / "GaN.sw")
    pos, cell, species = crystal(name="GaN", symbols="wurtzite", a=3.19, c=5.19, seed=4,
                                 rattle=0.08, cubic=False)
    pos, cell = write_xyz(tmp_path / "gan.xyz", pos, cell, np.array(["Ga", "N"])[species])
    pot = """<stillinger-weber id="GaN" species-a="*" species-b="*">
      <param-file>GaN.sw</param-file>
      <fit-dof><epsilon tag="GaNN"/><lambda tag="GaNN"/></fit-dof>
      <export-potential>GaN_fitted.sw</export-potential></stillinger-weber>"""
    structures = """<user-structure id="target"><atoms-file>gan.xyz</atoms-file>
        <properties><total-energy fit="true" target="-40.0"/><stress fit="true" target="0 0 0 0 0 0"/>
        </properties></user-structure>""" + PERTURBED.format(sid="rattled", file="gan.xyz")
    fitting = '<fitting><BFGS conv-threshold="1e-12" max-iter="4"/></fitting>'
    code, out = run(tmp_path, job_text(["Ga", "N"], pot, structures, fitting))
    assert code == 0
    res = results(out)
    eps = res["parameters"]["GaN[SW].epsilon[GaNN]"]
    assert eps["value"] != eps["initial"]
    exported = out / "GaN_fitted.sw"
    text = exported.read_text()
    assert f"{eps['value']!r}" in text
    check_against_lammps(res, "rattled", pos, cell, species, "sw", f"* * {exported} Ga N", 2)
    # restart from parameters.xml: the pair parameter moved on both lines (GaNN and NGaGa)
    # the fitted file is written once, under the <export-potential> name parameters.xml uses
    assert not (out / "GaN.fitted.sw").exists()
    assert "<param-file>GaN_fitted.sw</param-file>" in (out / "parameters.xml").read_text()
    job = (tmp_path / "job.xml").read_text()
    start, end = job.index("<potentials>"), job.index("</potentials>") + len("</potentials>")
    include = ('<xi:include href="job.xml.out/parameters.xml" '
               'xmlns:xi="http://www.w3.org/2003/XInclude"/>')
    code, again = run(tmp_path, job[:start] + include + job[end:], "--no-fit", name="re.xml")
    assert code == 0
    assert results(again)["objective"]["training"] == pytest.approx(
        res["objective"]["training"], rel=1e-9)


# --------------------------------------------------------------------------- ABOP


def test_example_fe_abop_job_equals_lammps_tersoff_on_its_file(tmp_path):
    job = ROOT / "jobs/fe-abop/job.xml"
    code = main([str(job), "-q", "--output-dir", str(tmp_path / "out")])
    assert code == 0
    res = results(tmp_path / "out")
    bcc = res["structures"]["bcc"]["properties"]
    a = bcc["lattice-parameter"]["value"]
    ref = lammps_compute(np.zeros((1, 3)), np.array([[-a, a, a], [a, -a, a], [a, a, -a]]) / 2,
                         [0], (True,) * 3, "tersoff",
                         [f"* * {ROOT / 'jobs/fe-abop/Fe.tersoff'} Fe"], 1)
    assert abs(bcc["atomic-energy"]["value"] - ref.energy) < 1e-9
    assert bcc["atomic-energy"]["value"] == pytest.approx(-4.28, abs=0.01)  # published Ec
    assert a == pytest.approx(2.86, abs=0.01)


# --------------------------------------------------------------------------- ADP


def test_adp_param_file_job_matches_lammps(tmp_path):
    shutil.copy(potentials_dir() / "AlCu.adp", tmp_path / "AlCu.adp")
    pos, cell, _ = crystal("Al", 4.05, seed=5, rattle=0.08)
    species = np.array([0, 1, 1, 0])
    pos, cell = write_xyz(tmp_path / "alcu.xyz", pos, cell, np.array(["Al", "Cu"])[species])
    pot = '<adp id="AlCu" species-a="*" species-b="*"><param-file>AlCu.adp</param-file></adp>'
    code, out = run(tmp_path, job_text(["Al", "Cu"], pot,
                                       PERTURBED.format(sid="rattled", file="alcu.xyz")))
    assert code == 0
    check_against_lammps(results(out), "rattled", pos, cell, species, "adp",
                         f"* * {tmp_path / 'AlCu.adp'} Al Cu", 2)


ADP_FUNCTIONS = """
  <functions>
    <user-function id="V"><input-var>r</input-var>
      <expression>A*exp(-l*r)</expression><param name="A">900</param><param name="l">2.9</param>
      <cutoff>5.0</cutoff>
      <screening><user-function id="s1"><cutoff>5.0</cutoff><input-var>r</input-var>
        <expression>(r-cutoff)^4/(0.3^4+(r-cutoff)^4)</expression></user-function></screening>
    </user-function>
    <user-function id="rho"><input-var>r</input-var>
      <expression>exp(-2*r)</expression><cutoff>5.0</cutoff>
      <screening><user-function id="s2"><cutoff>5.0</cutoff><input-var>r</input-var>
        <expression>(r-cutoff)^4/(0.3^4+(r-cutoff)^4)</expression></user-function></screening>
    </user-function>
    <user-function id="F"><input-var>r</input-var>
      <expression>-sqrt(r)*D</expression><param name="D">2.0</param></user-function>
    <user-function id="u"><input-var>r</input-var>
      <expression>c*exp(-r)</expression><param name="c">0.4</param><cutoff>5.0</cutoff>
      <screening><user-function id="s3"><cutoff>5.0</cutoff><input-var>r</input-var>
        <expression>(r-cutoff)^4/(0.3^4+(r-cutoff)^4)</expression></user-function></screening>
    </user-function>
    <user-function id="w"><input-var>r</input-var>
      <expression>c*exp(-r)</expression><param name="c">-0.3</param><cutoff>5.0</cutoff>
      <screening><user-function id="s4"><cutoff>5.0</cutoff><input-var>r</input-var>
        <expression>(r-cutoff)^4/(0.3^4+(r-cutoff)^4)</expression></user-function></screening>
    </user-function>
  </functions>
  <mapping>
    <pair-interaction species-a="*" species-b="*" function="V"/>
    <electron-density species-a="*" species-b="*" function="rho"/>
    <embedding-energy species="*" function="F"/>
    <u-function species-a="*" species-b="*" function="u"/>
    <w-function species-a="*" species-b="*" function="w"/>
  </mapping>"""


def test_adp_from_functions_exports_a_table_lammps_reproduces(tmp_path):
    pos, cell, species = crystal("Ni", 3.52, seed=6, rattle=0.08)
    pos, cell = write_xyz(tmp_path / "ni.xyz", pos, cell, ["Ni"] * len(pos))
    pot = (f'<adp id="Ni" species-a="*" species-b="*">{ADP_FUNCTIONS}'
           '<export-adp-file resolution="4000" rho-range-factor="2.0">Ni_fit.adp'
           '</export-adp-file></adp>')
    code, out = run(tmp_path, job_text(["Ni"], pot, PERTURBED.format(sid="rattled",
                                                                       file="ni.xyz")))
    assert code == 0
    res = results(out)
    ref = lammps_compute(pos, cell, species, (True,) * 3, "adp",
                         [f"* * {out / 'Ni_fit.adp'} Ni"], 1)
    props = res["structures"]["rattled"]["properties"]
    assert abs(props["total-energy"]["value"] - ref.energy) / len(pos) < 1e-8
    assert np.abs(np.array(props["atomic-forces"]["value"]) - ref.forces).max() < 1e-6


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("dof, message", [
    ('<A tag="SiSiC"/>', "tag 'SiSiC' is not an element triplet"),
    ('<A tag="SiSiSi"/><A tag="SiSiSi"/>', "twice"),
])
def test_tersoff_dof_errors(tmp_path, capsys, dof, message):
    shutil.copy(potentials_dir() / "Si.tersoff", tmp_path / "Si.tersoff")
    pot = ('<tersoff id="Si" species-a="*" species-b="*"><param-file>Si.tersoff</param-file>'
           f'<fit-dof>{dof}</fit-dof></tersoff>')
    structures = '<diamond-lattice id="d"><atom-type>Si</atom-type><lattice-parameter>5.43</lattice-parameter></diamond-lattice>'
    code, out = run(tmp_path, job_text(["Si", "C"], pot, structures))
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_linked_pair_dofs_and_abop_two_body_tags_are_checked(tmp_path, capsys):
    shutil.copy(potentials_dir() / "GaN.tersoff", tmp_path / "GaN.tersoff")
    structures = ('<diamond-lattice id="d"><atom-type>Ga</atom-type>'
                  '<lattice-parameter>5.6</lattice-parameter></diamond-lattice>')
    for kind, dofs, message in [
        ("tersoff", '<A tag="GaNN"/><A tag="NGaGa"/>', "fit only one of them"),
        ("abop", '<D0 tag="GaGaN"/>', "use tag='GaGaGa'"),
    ]:
        pot = (f'<{kind} id="p" species-a="*" species-b="*"><param-file>GaN.tersoff'
               f'</param-file><fit-dof>{dofs}</fit-dof></{kind}>')
        code, _ = run(tmp_path, job_text(["Ga", "N"], pot, structures))
        err = capsys.readouterr().err
        assert code == 2 and message in err, err


def test_species_missing_from_the_file_is_an_error(tmp_path, capsys):
    shutil.copy(potentials_dir() / "Si.tersoff", tmp_path / "Si.tersoff")
    pot = '<tersoff id="Si" species-a="*" species-b="*"><param-file>Si.tersoff</param-file></tersoff>'
    structures = '<diamond-lattice id="d"><atom-type>C</atom-type><lattice-parameter>3.6</lattice-parameter></diamond-lattice>'
    code, _ = run(tmp_path, job_text(["C", "Si"], pot, structures))
    err = capsys.readouterr().err
    assert code == 2 and "no entries for species C" in err


# --------------------------------------------------------------------------- MEAM


def test_meam_param_file_job_matches_lammps(tmp_path):
    shutil.copy(potentials_dir() / "Ti.meam.spline", tmp_path / "Ti.meam.spline")
    pos, cell, species = crystal(name="Ti", symbols="hcp", a=2.95, c=4.68, seed=7,
                                 rattle=0.08, cubic=False)
    pos, cell = write_xyz(tmp_path / "ti.xyz", pos, cell, ["Ti"] * len(pos))
    pot = ('<meam id="Ti" species-a="*" species-b="*"><param-file>Ti.meam.spline'
           '</param-file></meam>')
    code, out = run(tmp_path, job_text(["Ti"], pot, PERTURBED.format(sid="rattled",
                                                                       file="ti.xyz")))
    assert code == 0
    check_against_lammps(results(out), "rattled", pos, cell, species, "meam/spline",
                         f"* * {tmp_path / 'Ti.meam.spline'} Ti", 1)


MEAM_FUNCTIONS = """
  <functions>
    <spline id="phi"><cutoff>4.5</cutoff><derivative-left>-20</derivative-left>
      <derivative-right>0</derivative-right>
      <nodes><node x="1.5" y="3.0"/><node x="2.25" y="0.4"/><node x="3.0" y="-0.1"/>
        <node x="3.75" y="-0.02"/><node x="4.5" y="0"/></nodes></spline>
    <spline id="rho"><cutoff>4.5</cutoff><derivative-left>-1</derivative-left>
      <derivative-right>0</derivative-right>
      <nodes><node x="1.5" y="0.9"/><node x="2.25" y="0.5"/><node x="3.0" y="0.2"/>
        <node x="3.75" y="0.05"/><node x="4.5" y="0"/></nodes></spline>
    <spline id="f"><cutoff>4.0</cutoff><derivative-left>-0.5</derivative-left>
      <derivative-right>0</derivative-right>
      <nodes><node x="1.5" y="0.6"/><node x="2.5" y="0.3"/><node x="3.5" y="0.05"/>
        <node x="4.5" y="0"/></nodes></spline>
    <user-function id="g"><input-var>x</input-var>
      <expression>a + b*x + c*x*x</expression><param name="a">0.1</param>
      <param name="b">0.2</param><param name="c">0.4</param></user-function>
    <user-function id="U"><input-var>r</input-var>
      <expression>-sqrt(r + 0.25) + 0.5 + 0.1*r*r</expression></user-function>
  </functions>
  <mapping>
    <pair-interaction species-a="*" species-b="*" function="phi"/>
    <electron-density species-a="*" species-b="*" function="rho"/>
    <f-function species-a="*" species-b="*" function="f"/>
    <g-function species-a="*" species-b="*" function="g"/>
    <embedding-energy species="*" function="U"/>
  </mapping>"""


def test_meam_from_functions_fits_and_exports_a_file_lammps_reproduces(tmp_path):
    pos, cell, species = crystal("Al", 4.05, seed=8, rattle=0.08)
    pos, cell = write_xyz(tmp_path / "al.xyz", pos, cell, ["Al"] * len(pos))
    pot = (f'<meam id="M" species-a="*" species-b="*">{MEAM_FUNCTIONS}'
           '<export-potential>M.meam.spline</export-potential></meam>')
    structures = """<fcc-lattice id="fcc"><atom-type>Al</atom-type>
        <lattice-parameter>4.05</lattice-parameter><properties>
        <atomic-energy fit="true" target="-3.3"/><C44 fit="true" target="30"/></properties>
        </fcc-lattice>""" + PERTURBED.format(sid="rattled", file="al.xyz")
    pot = pot.replace('<param name="c">0.4</param>',
                      '<param name="c">0.4</param><fit-dof><c/><b/></fit-dof>')
    fitting = '<fitting><BFGS conv-threshold="1e-12" max-iter="3"/></fitting>'
    code, out = run(tmp_path, job_text(["Al"], pot, structures, fitting))
    assert code == 0
    res = results(out)
    assert res["parameters"]["M[MEAM].g[user-function].c"]["value"] != 0.4
    ref = lammps_compute(pos, cell, species, (True,) * 3, "meam/spline",
                         [f"* * {out / 'M.meam.spline'} Al"], 1)
    props = res["structures"]["rattled"]["properties"]
    assert abs(props["total-energy"]["value"] - ref.energy) / len(pos) < 1e-8
    assert np.abs(np.array(props["atomic-forces"]["value"]) - ref.forces).max() < 1e-5
