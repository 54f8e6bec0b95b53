"""Residual conventions of the dataset engine's items: the default rows are the documented
mean-per-structure ones (written out here from the predictions), ``mean_components=False``
sums over the components, ``energy_per_atom=False`` compares total energies, per-atom force
weights scale each atom's rows; and the job attributes that choose them."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from rexfit.cli import main
from rexfit.datasets.engine import DatasetObjective
from rexfit.datasets.items import ENERGY, FORCE, STRESS, Item
from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.objective.objective import Objective
from rexfit.objective.parameters import ParameterSpace
from rexfit.potentials.pair import LennardJones
from tests.support.structures import crystal

PARAMS = {"sigma": jnp.float64(2.3), "epsilon": jnp.float64(0.4)}
W = {"energy": 0.7, "forces": 0.3, "stress": 1.9}
TOL = {"energy": 0.02, "forces": 0.1, "stress": 0.003}


@pytest.fixture(scope="module")
def structures():
    rng = np.random.default_rng(3)
    out = []
    for k, repeat in enumerate((1, 1, 2)):  # 4, 4 and 32 atoms
        pos, cell, species = crystal("Cu", 3.61, repeat=repeat, seed=k, rattle=0.08)
        n = len(pos)
        out.append((pos, cell, species, -3.0 * n + rng.normal(), rng.normal(0, 0.3, (n, 3)),
                    rng.normal(0, 0.01, 6)))
    return out


def _items(structures, **conventions):
    return [Item(pos, cell, species, energy=e, forces=f, stress=s,
                 weight_energy=W["energy"], weight_forces=W["forces"], weight_stress=W["stress"],
                 tol_energy=TOL["energy"], tol_forces=TOL["forces"], tol_stress=TOL["stress"],
                 name=f"s{k}", **conventions)
            for k, (pos, cell, species, e, f, s) in enumerate(structures)]


def _expected(structures, preds, *, per_atom=True, mean=True, atom_weights=None):
    """The residual vector written out from the predictions (rows: energy, 3N forces atom by
    atom x y z, 6 stresses per structure)."""
    rows = []
    for k, ((pos, _, _, e, f, s), p) in enumerate(zip(structures, preds)):
        n = len(pos)
        rows.append(np.sqrt(W["energy"]) * (p.energy - e) / ((n if per_atom else 1) * TOL["energy"]))
        wf = W["forces"] * (np.ones(n) if atom_weights is None else atom_weights[k])
        share = 3 * n if mean else 1
        rows.extend((np.sqrt(wf / share)[:, None] * (p.forces - f) / TOL["forces"]).reshape(-1))
        rows.extend(np.sqrt(W["stress"] / (6 if mean else 1)) * (p.stress - s) / TOL["stress"])
    return np.array(rows)


def test_default_rows_are_the_documented_mean_per_structure(structures):
    engine = DatasetObjective(LennardJones(4.5), _items(structures))
    preds = engine.predictions(PARAMS)
    r = engine.residuals(PARAMS)
    np.testing.assert_allclose(r, _expected(structures, preds), rtol=1e-12, atol=1e-12)
    assert engine.value(PARAMS) == pytest.approx(float(np.sum(r * r)), rel=1e-12)


def test_summed_components_and_total_energy(structures):
    items = _items(structures, energy_per_atom=False, mean_components=False)
    engine = DatasetObjective(LennardJones(4.5), items)
    preds = engine.predictions(PARAMS)
    r = engine.residuals(PARAMS)
    np.testing.assert_allclose(r, _expected(structures, preds, per_atom=False, mean=False),
                               rtol=1e-12, atol=1e-12)
    # against the default: energy rows N times larger, force rows √(3N), stress rows √6
    default = DatasetObjective(LennardJones(4.5), _items(structures)).residuals(PARAMS)
    rows = engine.rows
    n = np.array([len(structures[k][0]) for k in rows.structure])
    np.testing.assert_allclose(r[rows.kind == ENERGY], (default * n)[rows.kind == ENERGY],
                               rtol=1e-12)
    np.testing.assert_allclose(r[rows.kind == FORCE],
                               (default * np.sqrt(3 * n))[rows.kind == FORCE], rtol=1e-12)
    np.testing.assert_allclose(r[rows.kind == STRESS], (default * np.sqrt(6))[rows.kind == STRESS],
                               rtol=1e-12)
    assert engine.value(PARAMS) == pytest.approx(float(np.sum(r * r)), rel=1e-12)


def test_per_atom_force_weights(structures):
    rng = np.random.default_rng(5)
    atom_w = [rng.uniform(0.0, 2.0, len(s[0])) for s in structures]
    items = [Item(it.positions, it.cell, it.species, energy=it.energy, forces=it.forces,
                  stress=it.stress, weight_energy=it.weight_energy,
                  weight_forces=W["forces"] * w, weight_stress=it.weight_stress,
                  tol_energy=it.tol_energy, tol_forces=it.tol_forces,
                  tol_stress=it.tol_stress, name=it.name, mean_components=False)
             for it, w in zip(_items(structures), atom_w)]
    engine = DatasetObjective(LennardJones(4.5), items)
    preds = engine.predictions(PARAMS)
    np.testing.assert_allclose(engine.residuals(PARAMS),
                               _expected(structures, preds, mean=False, atom_weights=atom_w),
                               rtol=1e-12, atol=1e-12)
    bad = [Item(items[0].positions, items[0].cell, forces=items[0].forces,
                weight_forces=np.ones(3))]
    with pytest.raises(ValueError, match="per-atom force weights"):
        DatasetObjective(LennardJones(4.5), bad)
    bad = [Item(items[0].positions, items[0].cell, forces=items[0].forces,
                weight_forces=-np.ones(len(items[0].positions)))]
    with pytest.raises(ValueError, match="weights must be ≥ 0"):
        DatasetObjective(LennardJones(4.5), bad)


DATASET_JOB = """<job><name>c</name><atom-types><species>Cu</species></atom-types>
<potentials><lennard-jones id="LJ" species-a="*" species-b="*"><sigma>2.3</sigma>
<epsilon>0.4</epsilon><cutoff>4.5</cutoff></lennard-jones></potentials>
<structures>
<dataset id="d" {attrs}><file>d.xyz</file></dataset>
</structures></job>"""


def test_job_attributes(tmp_path):
    (tmp_path / "d.xyz").write_text("1\nenergy=-1.0 pbc=\"T T T\" "
                                    "Lattice=\"3 0 0 0 3 0 0 0 3\"\nCu 0 0 0\n")
    path = tmp_path / "job.xml"
    path.write_text(DATASET_JOB.format(attrs=""))
    spec, problems = load_job(str(path))
    assert not problems
    (ds,) = spec.all_datasets()
    assert (ds.component_residuals, ds.energy_residual) == ("mean", "per-atom")
    path.write_text(DATASET_JOB.format(
        attrs='component-residuals="sum" energy-residual="total"'))
    (ds,) = load_job(str(path))[0].all_datasets()
    assert (ds.component_residuals, ds.energy_residual) == ("sum", "total")
    path.write_text(DATASET_JOB.format(attrs='component-residuals="average"'))
    assert main(["validate", str(path)]) == 2


def test_total_energy_residual_in_a_job(tmp_path):
    """energy-residual="total": ((E − E*)/δ)² with δ = 0.01 eV by default (not per atom);
    component-residuals="sum": Σ over the 3N force components."""
    rng = np.random.default_rng(2)
    frames = []
    for k in range(3):
        pos, cell, _ = crystal("Cu", 3.61, seed=k, rattle=0.08)
        atoms = Atoms("Cu4", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=-14.0 + rng.normal(0, 0.3),
                                           forces=rng.normal(0, 0.3, (4, 3)))
        frames.append(atoms)
    write(tmp_path / "d.xyz", frames, format="extxyz")
    path = tmp_path / "job.xml"
    path.write_text(DATASET_JOB.format(
        attrs='energy-residual="total" component-residuals="sum"'))
    job, _ = load_job(str(path))
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    ev = objective.evaluate(space.u0(), grad=False)
    term = objective.datasets[("d", "training")]
    expected = 0.0
    for r in term.records(ev.params):
        p = r["properties"]
        de = p["total-energy"]["value"] - p["total-energy"]["target"]
        df = np.array(p["atomic-forces"]["value"]) - np.array(p["atomic-forces"]["target"])
        assert p["atomic-energy"]["tolerance"] == 0.01
        expected += 0.5 / 3 * (de / 0.01) ** 2 + 0.5 / 3 * np.sum((df / 0.01) ** 2)
    assert ev.datasets[("d", "training")] == pytest.approx(expected, rel=1e-12)
