"""Fitting to a <dataset>: Stillinger–Weber parameters recovered from energies, forces and
stresses that LAMMPS computed with Si.sw, the validation set reported with metrics; the
dataset objective's gradient against finite differences."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from rexfit.cli import main
from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.objective.objective import Objective
from rexfit.objective.parameters import ParameterSpace
from rexfit.potentials.manybody_files import read_sw_file, write_sw_file
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

TRUE = {"A": 7.049556277, "B": 0.6022245584, "sigma": 2.0951, "gamma": 1.20, "lambda": 21.0}
START = {"A": 1.08, "B": 0.93, "sigma": 1.04, "gamma": 0.92, "lambda": 1.1}  # ±10 %


@pytest.fixture(scope="module")
def sw_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("swdata")
    coeff = f"* * {potentials_dir() / 'Si.sw'} Si"
    frames = []
    for k in range(24):
        pos, cell, species = crystal("Si", 5.43 * (1 + 0.03 * np.sin(k)), seed=100 + k,
                                     strain=0.03, rattle=0.1)
        ref = lammps_compute(pos, cell, species, (True,) * 3, "sw", [coeff], 1)
        atoms = Atoms(f"Si{len(pos)}", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces,
                                           stress=ref.stress)
        atoms.info["group"] = "strained" if k % 2 else "rattled"
        frames.append(atoms)
    write(tmp / "si.xyz", frames, format="extxyz")
    entries = read_sw_file(potentials_dir() / "Si.sw")
    start = {key: dict(v) for key, v in entries.items()}
    for name, factor in START.items():
        start[("Si", "Si", "Si")][name] *= factor
    write_sw_file(tmp / "Si_start.sw", start)
    return tmp


def job_text(fit=True):
    dofs = "".join(f"<{n}/>" for n in TRUE)
    fitting = ('<fitting><BFGS conv-threshold="1e-15" max-iter="300"/></fitting>'
               if fit else "")
    return f"""<job><name>SW dataset</name><atom-types><species>Si</species></atom-types>
      <potentials><stillinger-weber id="Si" species-a="*" species-b="*">
        <param-file>Si_start.sw</param-file><fit-dof>{dofs}</fit-dof></stillinger-weber>
      </potentials>
      <structures>
        <dataset id="si" validation-fraction="0.25" seed="2">
          <file group-from="comment">si.xyz</file>
          <properties><atomic-energy tolerance="0.001"/><atomic-forces tolerance="0.01"/>
            <stress tolerance="0.1"/></properties>
        </dataset>
      </structures>{fitting}</job>"""


def test_sw_parameters_recovered_from_lammps_data(sw_data, tmp_path):
    shutil.copy(sw_data / "si.xyz", tmp_path)
    shutil.copy(sw_data / "Si_start.sw", tmp_path)
    (tmp_path / "job.xml").write_text(job_text())
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for name, value in TRUE.items():
        assert res["parameters"][f"Si[SW].{name}"]["value"] == pytest.approx(value, rel=1e-5)
    entries = [r for r in res["structures"].values() if r.get("dataset") == "si"]
    assert len(entries) == 24
    assert sum(r["set"] == "validation" for r in entries) == 6  # 3 per group
    val = res["metrics"]["validation"]["all"]
    assert val["energy_per_atom"]["rmse"] < 1e-5 and val["forces"]["rmse"] < 1e-4
    assert set(res["metrics"]["training"]["groups"]) == {"rattled", "strained"}
    assert (out / "plots" / "parity_forces.png").exists()
    history = res["fit"]["history"]  # validation objective every output-interval and at the end
    assert len(history[0]) == 3 and len(history[-1]) == 3
    assert history[-1][2] == pytest.approx(res["objective"]["validation"], rel=1e-9)
    # the objective is the sum of the entries' weighted residuals
    total = sum(p["weighted_residual"] for r in entries if r["set"] == "training"
                for p in r["properties"].values() if "weighted_residual" in p)
    assert res["objective"]["training"] == pytest.approx(total, rel=1e-9)


def test_dataset_objective_gradient_matches_finite_differences(sw_data, tmp_path):
    shutil.copy(sw_data / "si.xyz", tmp_path)
    shutil.copy(sw_data / "Si_start.sw", tmp_path)
    (tmp_path / "job.xml").write_text(job_text(fit=False))
    job, _ = load_job(str(tmp_path / "job.xml"))
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    u = space.u0()
    ev = objective.evaluate(u, grad=True)
    h = 1e-6
    for k in range(space.size):
        du = np.zeros(space.size)
        du[k] = h
        fd = (objective.evaluate(u + du, grad=False).value
              - objective.evaluate(u - du, grad=False).value) / (2 * h)
        assert ev.grad[k] == pytest.approx(fd, rel=1e-6, abs=1e-8 * abs(ev.value))


def test_least_squares_recovers_the_parameters(sw_data, tmp_path):
    shutil.copy(sw_data / "si.xyz", tmp_path)
    shutil.copy(sw_data / "Si_start.sw", tmp_path)
    text = job_text().replace('<BFGS conv-threshold="1e-15" max-iter="300"/>',
                              '<least-squares method="trf"/>')
    (tmp_path / "job.xml").write_text(text)
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["fit"]["method"] == "least-squares" and res["fit"]["converged"]
    assert res["fit"]["evaluations"] < 40
    for name, value in TRUE.items():
        assert res["parameters"][f"Si[SW].{name}"]["value"] == pytest.approx(value, rel=1e-6)


def linear_job(sw_data, tmp_path, dofs, solver):
    """The SW dataset job fitting only ``dofs`` with ``solver``; A and λ enter the energy
    linearly (A ε [...] and λ ε [...]), σ does not."""
    shutil.copy(sw_data / "si.xyz", tmp_path)
    shutil.copy(sw_data / "Si_start.sw", tmp_path)
    text = job_text().replace('<BFGS conv-threshold="1e-15" max-iter="300"/>', solver)
    text = text.replace("".join(f"<{n}/>" for n in TRUE), "".join(f"<{n}/>" for n in dofs))
    (tmp_path / "job.xml").write_text(text)
    return tmp_path / "job.xml"


def test_linear_solve_recovers_linear_parameters_in_one_step(sw_data, tmp_path):
    """Only A and λ fitted, the other parameters at their generating values: one SVD solve
    recovers A and λ from 8 % and 10 % off; the first residual evaluation is reused."""
    entries = read_sw_file(sw_data / "Si_start.sw")
    for name in ("B", "sigma", "gamma"):
        entries[("Si", "Si", "Si")][name] = TRUE[name]
    shutil.copy(sw_data / "si.xyz", tmp_path)
    path = linear_job(sw_data, tmp_path, ("A", "lambda"), "<linear-solve/>")
    write_sw_file(tmp_path / "Si_start.sw", entries)
    out = tmp_path / "out"
    assert main([str(path), "-q", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["fit"]["method"] == "linear-solve" and res["fit"]["converged"]
    assert res["fit"]["evaluations"] <= 3 and "rank 2 of 2" in res["fit"]["message"]
    for name in ("A", "lambda"):
        # to the precision of the extxyz data (≈ 1e-8)
        assert res["parameters"][f"Si[SW].{name}"]["value"] == pytest.approx(TRUE[name],
                                                                            rel=1e-7)


def test_linear_solve_ridge_matches_the_normal_equations(sw_data, tmp_path):
    """With ridge α the solution is (JᵀJ + α I)⁻¹ Jᵀ b in the unscaled parameters."""
    path = linear_job(sw_data, tmp_path, ("A", "lambda"), '<linear-solve ridge="0.5"/>')
    job, _ = load_job(str(path))
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    u0 = space.u0()
    r0, jac = objective.residuals(u0)
    a = jac / space.scale
    p0 = u0 * space.scale
    expected = np.linalg.solve(a.T @ a + 0.5 * np.eye(2), a.T @ (a @ p0 - r0))
    out = tmp_path / "out"
    assert main([str(path), "-q", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    got = [res["parameters"][f"Si[SW].{n}"]["value"] for n in ("A", "lambda")]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert abs(got[0] - TRUE["A"]) > 1e-6  # the ridge pulled the solution away


def test_linear_solve_l1_shrinks_and_refuses_nonlinear_parameters(sw_data, tmp_path, capsys):
    path = linear_job(sw_data, tmp_path, ("A", "lambda"), '<linear-solve l1="1e9"/>')
    out = tmp_path / "out"
    assert main([str(path), "-q", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    # a huge L1 weight drives both coefficients to zero
    for name in ("A", "lambda"):
        assert abs(res["parameters"][f"Si[SW].{name}"]["value"]) < 1e-6
    path = linear_job(sw_data, tmp_path, ("A", "sigma"), "<linear-solve/>")
    code = main([str(path), "-q", "--output-dir", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2 and "not affine in the fitted parameters" in err
    assert not (tmp_path / "out2" / "results.json").exists()


LJ_JOB = """<job><name>ls</name><atom-types><species>Ar</species></atom-types>
  <potentials><lennard-jones id="LJ" species-a="*" species-b="*"><sigma>3.3</sigma>
    <epsilon>0.012</epsilon><cutoff>8.0</cutoff><fit-dof><sigma/><epsilon/></fit-dof>
  </lennard-jones></potentials>
  <structures>
    <fcc-lattice id="fcc"><atom-type>Ar</atom-type><lattice-parameter>5.3</lattice-parameter>
      <properties><lattice-parameter fit="true" target="5.26" min="4.5" max="6"/>
        <atomic-energy fit="true" target="-0.08"/><C44 fit="true" target="2.0"
        residual-style="squared-relative"/></properties></fcc-lattice>
    <hcp-lattice id="hcp"><atom-type>Ar</atom-type><lattice-parameter>3.7</lattice-parameter>
      <ca-ratio>1.63</ca-ratio><relax><lattice-parameter/><ca-ratio/></relax>
      <properties><atomic-energy fit="true" target="-0.079"/></properties></hcp-lattice>
  </structures></job>"""


def test_residuals_and_jacobian_through_relaxations(tmp_path):
    """Σ r² equals the objective; J = ∂r/∂u (through relaxed lattice DOFs) matches central
    differences of r."""
    (tmp_path / "job.xml").write_text(LJ_JOB)
    job, _ = load_job(str(tmp_path / "job.xml"))
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    u = space.u0() * np.array([1.01, 0.97])
    assert objective.least_squares_ready() is None
    r, jac = objective.residuals(u)
    assert float(r @ r) == pytest.approx(objective.evaluate(u, grad=False).value, rel=1e-12)
    h = 1e-6
    for k in range(space.size):
        du = np.zeros(space.size)
        du[k] = h
        fd = (objective.residuals(u + du)[0] - objective.residuals(u - du)[0]) / (2 * h)
        np.testing.assert_allclose(jac[:, k], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_least_squares_needs_squared_residuals(tmp_path, capsys):
    text = LJ_JOB.replace('residual-style="squared-relative"', 'residual-style="absolute-diff"')
    text = text.replace("</structures>", "</structures><fitting><least-squares/></fitting>")
    (tmp_path / "job.xml").write_text(text)
    code = main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "absolute-diff" in err and "not a square" in err


EAM_TRUE = {"A": 520.0, "lambda": 2.65, "twomu": 1.2, "D": 2.4}


def eam_potential(values, fit):
    dofs = (lambda names: f"<fit-dof>{''.join(f'<{n}/>' for n in names)}</fit-dof>"
            if fit else "")
    screen = ("<screening><user-function id='{id}'><cutoff>5.5</cutoff><input-var>r</input-var>"
              "<expression>1 - 1/(1 + ((r - cutoff)/1.5)^4)</expression></user-function>"
              "</screening>")
    return f"""<eam id="Cu" species-a="*" species-b="*">
      <mapping><pair-interaction species-a="*" species-b="*" function="V"/>
        <electron-density species-a="*" species-b="*" function="rho"/>
        <embedding-energy species="*" function="F"/></mapping>
      <functions>
        <user-function id="V"><input-var>r</input-var><expression>A*exp(-lambda*r)</expression>
          <param name="A">{values['A']}</param><param name="lambda">{values['lambda']}</param>
          {dofs(['A', 'lambda'])}{screen.format(id='sV')}</user-function>
        <user-function id="rho"><input-var>r</input-var><expression>exp(-twomu*r)</expression>
          <param name="twomu">{values['twomu']}</param>{dofs(['twomu'])}{screen.format(id='sr')}
        </user-function>
        <user-function id="F"><input-var>rho</input-var><expression>-D*sqrt(rho)</expression>
          <param name="D">{values['D']}</param>{dofs(['D'])}</user-function>
      </functions>
      {'' if fit else '<export-eam-file resolution="40000" rho-range-factor="3">Cu_true.eam.fs</export-eam-file>'}
    </eam>"""


def test_analytic_eam_recovered_from_lammps_data(tmp_path):
    """Data from LAMMPS with the exported table of a known analytic EAM (fine grid): fitting
    the same analytic form from perturbed starts recovers its parameters."""
    from ase.build import bulk

    bulk("Cu", "fcc", 3.6, cubic=True).write(tmp_path / "fcc.xyz", format="extxyz")
    (tmp_path / "make.xml").write_text(
        "<job><name>make</name><atom-types><species>Cu</species></atom-types>"
        f"<potentials>{eam_potential(EAM_TRUE, False)}</potentials><structures>"
        "<user-structure id='s'><atoms-file>fcc.xyz</atoms-file></user-structure>"
        "</structures></job>")
    assert main([str(tmp_path / "make.xml"), "-q", "--output-dir", str(tmp_path / "made")]) == 0
    table = tmp_path / "made" / "Cu_true.eam.fs"
    frames = []
    for k in range(16):
        pos, cell, species = crystal("Cu", 3.6 * (1 + 0.02 * np.sin(k)), seed=300 + k,
                                     strain=0.02, rattle=0.08)
        ref = lammps_compute(pos, cell, species, (True,) * 3, "eam/fs", [f"* * {table} Cu"], 1)
        atoms = Atoms(f"Cu{len(pos)}", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces,
                                           stress=ref.stress)
        frames.append(atoms)
    write(tmp_path / "cu.xyz", frames, format="extxyz")
    start = {"A": 560.0, "lambda": 2.55, "twomu": 1.28, "D": 2.2}
    (tmp_path / "fit.xml").write_text(
        "<job><name>fit</name><atom-types><species>Cu</species></atom-types>"
        f"<potentials>{eam_potential(start, True)}</potentials><structures>"
        "<dataset id='cu' validation-fraction='0.25' seed='5'><file>cu.xyz</file>"
        "<properties><atomic-energy tolerance='0.001'/><atomic-forces/></properties></dataset>"
        "</structures><fitting><least-squares/></fitting></job>")
    out = tmp_path / "out"
    assert main([str(tmp_path / "fit.xml"), "-q", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for name, full in (("A", "V[user-function].A"), ("lambda", "V[user-function].lambda"),
                       ("twomu", "rho[user-function].twomu"), ("D", "F[user-function].D")):
        assert res["parameters"][f"Cu[EAM].{full}"]["value"] == pytest.approx(
            EAM_TRUE[name], rel=1e-5), name
    val = res["metrics"]["validation"]["all"]
    assert val["energy_per_atom"]["rmse"] < 1e-5 and val["forces"]["rmse"] < 1e-4


def test_example_dataset_job_recovers_si_sw(tmp_path):
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "out"
    assert main([str(root / "jobs/si-sw-dataset/job.xml"), "-q", "--no-plots",
                 "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for name, value in TRUE.items():
        assert res["parameters"][f"Si[SW].{name}"]["value"] == pytest.approx(value, rel=1e-6)
    assert (out / "Si_fitted.sw").exists()


def minibatch_objective(sw_data, tmp_path, batch):
    shutil.copy(sw_data / "si.xyz", tmp_path)
    shutil.copy(sw_data / "Si_start.sw", tmp_path)
    text = job_text().replace('<BFGS conv-threshold="1e-15" max-iter="300"/>',
                              f'<adam batch-size="{batch}" epochs="3" learning-rate="0.01"/>')
    (tmp_path / "job.xml").write_text(text)
    job, _ = load_job(str(tmp_path / "job.xml"))
    space = ParameterSpace(build_potentials(job), job.constraints)
    return job, space, Objective(job, space)


def test_minibatch_estimates_are_unbiased(sw_data, tmp_path):
    """Averaged over the one-chunk minibatches, the scaled estimates are the full objective
    and gradient; all chunks at once give them exactly."""
    _, space, objective = minibatch_objective(sw_data, tmp_path, 3)
    units = objective.minibatch_units()
    assert len(units) >= 3 and max(n for *_, n in units) <= 6
    u = space.u0()
    full = objective.evaluate(u, grad=True)
    picked_all: dict = {}
    for key, chunk, _ in units:
        picked_all.setdefault(key, []).append(chunk)
    f, g = objective.evaluate_minibatch(u, picked_all)
    assert f == pytest.approx(full.value, rel=1e-12)
    np.testing.assert_allclose(g, full.grad, rtol=1e-10)
    estimates = [objective.evaluate_minibatch(u, {key: [chunk]}) for key, chunk, _ in units]
    assert np.mean([e[0] for e in estimates]) == pytest.approx(full.value, rel=1e-12)
    np.testing.assert_allclose(np.mean([e[1] for e in estimates], axis=0), full.grad,
                               rtol=1e-10)


def test_minibatch_adam_with_schedule_and_early_stopping(sw_data, tmp_path):
    shutil.copy(sw_data / "si.xyz", tmp_path)
    shutil.copy(sw_data / "Si_start.sw", tmp_path)
    text = job_text().replace(
        '<BFGS conv-threshold="1e-15" max-iter="300"/>',
        '<adam batch-size="4" epochs="40" learning-rate="0.02" schedule="exponential" '
        'decay-rate="0.95" patience="3"/>')
    (tmp_path / "job.xml").write_text(text)
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--no-plots", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    history = res["fit"]["history"]
    assert res["objective"]["training"] < 0.05 * history[0][1]
    # the kept parameters are those with the lowest validation objective seen
    validation = [h[2] for h in history if len(h) == 3]
    assert res["objective"]["validation"] <= min(validation) * (1 + 1e-9)
