"""Training a neural-network potential on LAMMPS Stillinger–Weber data: the validation error
falls, the written model file reproduces rexfit's predictions, and a training interrupted after
a checkpoint continues the same loss curve."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from rexfit.cli import main
from rexfit.physics.properties import evaluate
from rexfit.potentials.lists import build_lists
from rexfit.potentials.nn_files import read_model
from rexfit.structures.system import make_system
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal


@pytest.fixture(scope="module")
def si_data(tmp_path_factory):
    """40 strained and rattled diamond cells of 8 and 16 atoms, LAMMPS Si.sw energies and
    forces."""
    tmp = tmp_path_factory.mktemp("nn")
    coeff = f"* * {potentials_dir() / 'Si.sw'} Si"
    rng = np.random.default_rng(3)
    frames = []
    for k in range(40):
        pos, cell, _ = crystal("Si", 5.43 * (1 + rng.uniform(-0.04, 0.04)), seed=200 + k,
                               strain=0.03, rattle=rng.uniform(0.05, 0.2))
        if k % 2:
            pos, cell = np.vstack([pos, pos + cell[0]]), np.diag([2, 1, 1]) @ cell
        ref = lammps_compute(pos, cell, np.zeros(len(pos), int), (True,) * 3, "sw", [coeff], 1)
        atoms = Atoms(f"Si{len(pos)}", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces)
        frames.append(atoms)
    write(tmp / "si.xyz", frames, format="extxyz")
    return tmp


def job(minimizer, checkpoint=""):
    return f"""<job><name>Si NN</name><atom-types><species>Si</species></atom-types>
  <potentials>
    <neural-network id="Si" hidden="8 8" activation="tanh" seed="4">
      <acsf rcut="4.0"><g2 eta="0.05 0.3 1.0 3.0" rs="0"/>
        <g5 eta="0.05 0.3" zeta="1 4" lambda="1 -1"/></acsf>
      <element species="Si"/>
      <fit-dof><weights/><bias/></fit-dof>
      <export-potential>Si_nn.json</export-potential>
    </neural-network>
  </potentials>
  <structures>
    <dataset id="si" validation-fraction="0.2" seed="1"><file>si.xyz</file>
      <properties><atomic-energy tolerance="0.002"/><atomic-forces tolerance="0.05"/>
      </properties></dataset>
  </structures>
  <fitting output-interval="5"{checkpoint}>{minimizer}</fitting></job>"""


def run(path, out, *args):
    code = main([str(path), "-q", "--no-plots", "--output-dir", str(out), *args])
    return code, (json.loads((out / "results.json").read_text()) if code == 0 else None)


def test_training_lowers_the_validation_error_and_the_model_file_reproduces_it(si_data,
                                                                              tmp_path):
    shutil.copy(si_data / "si.xyz", tmp_path)
    (tmp_path / "job.xml").write_text(job('<BFGS conv-threshold="1e-14" max-iter="200"/>'))
    (tmp_path / "start.xml").write_text(job('<BFGS max-iter="1"/>'))
    code, start = run(tmp_path / "start.xml", tmp_path / "start")
    assert code == 0
    code, res = run(tmp_path / "job.xml", tmp_path / "out")
    assert code == 0
    before = start["metrics"]["validation"]["all"]
    after = res["metrics"]["validation"]["all"]
    assert after["energy_per_atom"]["rmse"] < 0.03  # eV/atom (small net, 200 steps)
    assert after["energy_per_atom"]["rmse"] < 0.2 * before["energy_per_atom"]["rmse"]
    assert after["forces"]["rmse"] < 0.5 * before["forces"]["rmse"]

    model, params = read_model(tmp_path / "out" / "Si_nn.json")
    frames = read(tmp_path / "si.xyz", index=":")
    entries = {int(r["source"].rsplit("#", 1)[1]): r for r in res["structures"].values()}
    for k in (0, 7, 31):
        atoms = frames[k]
        system = make_system(atoms.positions, atoms.cell.array, np.zeros(len(atoms), int))
        ours = evaluate(model, params, system, build_lists(model, system, 0.3))
        expected = entries[k]["properties"]["total-energy"]["value"]
        assert float(ours.energy) == pytest.approx(expected, rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(np.asarray(ours.forces),
                                   entries[k]["properties"]["atomic-forces"]["value"],
                                   rtol=0, atol=1e-10)


def test_restart_continues_the_same_loss_curve(si_data, tmp_path):
    shutil.copy(si_data / "si.xyz", tmp_path)
    path = tmp_path / "job.xml"
    path.write_text(job('<adam learning-rate="0.005" epochs="20"/>',
                        checkpoint=' checkpoint-interval="5"'))
    _, full = run(path, tmp_path / "full")
    code, _ = run(path, tmp_path / "split", "--max-iter", "10")
    assert code == 0
    code, resumed = run(path, tmp_path / "split", "--restart")
    assert code == 0
    assert [h[0] for h in resumed["fit"]["history"]] == [h[0] for h in full["fit"]["history"]]
    for a, b in zip(resumed["fit"]["history"], full["fit"]["history"]):
        assert a[1] == pytest.approx(b[1], rel=1e-9)
    assert resumed["objective"]["training"] == pytest.approx(full["objective"]["training"],
                                                             rel=1e-9)


def test_l2_regularisation_adds_to_the_training_objective(si_data, tmp_path):
    from rexfit.job import load_job
    from rexfit.model.potentials import build_potentials
    from rexfit.objective.objective import Objective
    from rexfit.objective.parameters import ParameterSpace

    shutil.copy(si_data / "si.xyz", tmp_path)
    objectives = []
    for l2 in (0.0, 0.01):
        path = tmp_path / f"job{l2}.xml"
        path.write_text(job("<BFGS/>").replace('seed="4"', f'seed="4" l2="{l2}"'))
        spec, _ = load_job(str(path))
        space = ParameterSpace(build_potentials(spec), spec.constraints)
        objectives.append((space, Objective(spec, space)))
    (space0, plain), (space1, regular) = objectives
    u = space1.u0()
    weights = np.array([e.path[2].startswith("w") or e.path[2] == "out"
                        for e in space1.fitted])
    assert weights.sum() == 12 * 8 + 8 * 8 + 8 and np.all(space1.l2[weights] == 0.01)
    assert np.all(space1.l2[~weights] == 0.0)
    a, b = plain.evaluate(u, grad=True), regular.evaluate(u, grad=True)
    p = u * space1.scale
    assert b.value - a.value == pytest.approx(0.01 * np.sum(p[weights] ** 2), rel=1e-10)
    np.testing.assert_allclose(b.grad - a.grad, 2 * 0.01 * p * weights, rtol=1e-8,
                               atol=1e-12)
    # validation objective unchanged
    va = plain.evaluate(u, grad=False, sets=("validation",)).value
    vb = regular.evaluate(u, grad=False, sets=("validation",)).value
    assert va == vb
