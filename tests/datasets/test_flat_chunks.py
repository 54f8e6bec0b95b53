"""Flat autodiff chunks (ACE's structures packed back to back, one chunk shape) give the
numbers of the buckets by size to round-off."""

import jax
import numpy as np
import pytest
from ase.build import bulk

from rexfit.datasets.engine import DatasetObjective
from rexfit.datasets.items import Item
from rexfit.potentials.ace.files import read_bbasis
from rexfit.potentials.ace.model import ACE

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def ace(tmp_path_factory):
    pyace = pytest.importorskip("pyace")
    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.0,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 1, 1]}}})
    path = tmp_path_factory.mktemp("ace") / "basis.yaml"
    config.save(str(path))
    potential, params = ACE.from_bbasis(read_bbasis(path))
    rng = np.random.default_rng(3)
    params = jax.tree_util.tree_map(lambda v: np.asarray(v) + 0.1 * rng.normal(size=v.shape),
                                    params)
    return potential, params


def items():
    rng = np.random.default_rng(5)
    out = []
    for k, rep in enumerate([(1, 1, 1), (2, 1, 1), (2, 2, 1), (1, 1, 1), (2, 2, 2), (1, 2, 1)]):
        atoms = bulk("Cu", "fcc", 3.6, cubic=True).repeat(rep)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))),
                       scale_atoms=True)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        n = len(atoms)
        out.append(Item(atoms.positions.copy(), atoms.cell.array.copy(), np.zeros(n, int),
                        energy=-3.0 * n + rng.normal(),
                        forces=rng.normal(size=(n, 3)) if k != 3 else None,
                        stress=rng.normal(size=6) * 0.01 if k % 2 else None,
                        weight_forces=rng.uniform(0.5, 1.5, n) if k == 2 else 1.0,
                        tol_energy=0.01, tol_forces=0.1, tol_stress=0.05))
    return out


def test_flat_chunks_match_buckets(ace):
    potential, params = ace
    data = items()
    flat = DatasetObjective(potential, data, max_bucket_atoms=40, kernel="autodiff")
    buckets = DatasetObjective(potential, data, flat_chunks=False, kernel="autodiff")
    assert flat.flat_chunks and not buckets.flat_chunks
    assert len(set(flat.bucket_shapes)) == 1 and flat.n_chunks > 1
    v1, g1 = flat.value_and_grad(params)
    v2, g2 = buckets.value_and_grad(params)
    assert v1 == pytest.approx(v2, rel=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12 * np.abs(b).max())
    np.testing.assert_allclose(flat.residuals(params), buckets.residuals(params),
                               rtol=1e-11, atol=1e-9)
    assert np.array_equal(flat.rows.kind, buckets.rows.kind)
    for p, q in zip(flat.predictions(params), buckets.predictions(params)):
        assert p.energy == pytest.approx(q.energy, rel=1e-12)
        np.testing.assert_allclose(p.forces, q.forces, rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(p.stress, q.stress, rtol=1e-10, atol=1e-12)
    c = np.random.default_rng(1).normal(size=flat.n_rows)
    for a, b in zip(jax.tree_util.tree_leaves(flat.vjp(params, c)),
                    jax.tree_util.tree_leaves(buckets.vjp(params, c))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    flat_x = jax.flatten_util.ravel_pytree(params)[0]
    d = np.random.default_rng(2).normal(size=(flat_x.size, 2))
    np.testing.assert_allclose(flat.jacobian(params, d), buckets.jacobian(params, d),
                               rtol=1e-10, atol=1e-8)
