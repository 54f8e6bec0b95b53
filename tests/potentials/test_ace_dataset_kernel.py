"""Non-linear ACE on the dataset engine's analytic kernel (rexfit.potentials.ace_dataset): the
same energies, forces, stresses, residuals, loss and parameter gradient (radial and function
coefficients) as the autodiff kernel to 1e-10 relative, on an Al-Cu basis with two densities,
FinnisSinclairShiftedScaled, core repulsion inside the density inner cutoff's switching range
and a job species the basis does not know; the gradient against central differences of the
loss; the engine picks the kernel for ACE (the zbl inner cutoff included, not for LinearACE).
The zbl inner cutoff (ZBL weighed against ACE by each atom's nearest neighbour): the same
agreement to 1e-12 on one and two elements, rattled and strained cells, a cell narrower than
the cutoff entirely in ZBL, a cluster with an exact tie of nearest neighbours and an atom
without neighbours, on kept terms and computed per evaluation."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

pytest.importorskip("pyace")

from rexfit.datasets.analytic import analytic_supported  # noqa: E402
from rexfit.datasets.engine import DatasetObjective  # noqa: E402
from rexfit.potentials import ace_dataset  # noqa: E402
from rexfit.potentials.ace.linear import LinearACE  # noqa: E402
from rexfit.potentials.ace.radial import ZBL_INNER  # noqa: E402
from rexfit.potentials.base import SumPotential  # noqa: E402
from rexfit.potentials.pair import LennardJones  # noqa: E402
from rexfit.potentials.lists import build_lists  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402
from tests.potentials.test_ace_linear import (SPECIES, alcu_basis, cells, items_of,  # noqa: E402
                                              relative)
from tests.support.ace_cases import (assert_engines_agree, zbl_basis,  # noqa: E402
                                     zbl_extra_items)

#: two densities, the second non-linear (m = 0.5)
EMBEDDING = (1.0, 1.0, 1.0, 0.5)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(potential for SPECIES, params, frames, items): random radial and function
    coefficients, cells some of whose atoms are inside the core cutoff's switching range."""
    path, ace, params = alcu_basis(tmp_path_factory.mktemp("ace"), embedding=EMBEDDING,
                                   ndensity=2)
    frames = cells()
    weights = []
    for atoms, species in frames:
        system = make_system(atoms.positions, atoms.cell.array, species)
        _, rho = ace.descriptors(params, system, build_lists(ace, system, 0.0, n_species=3))
        element, _ = ace._elements_of(system.species)
        weights.append(np.asarray(ace.core_weight(rho, element)))
    weights = np.concatenate(weights)
    assert np.any((weights > 0.05) & (weights < 0.95)) and np.any(weights > 0.999)
    return ace, params, frames, items_of(frames)


@pytest.mark.parametrize("chunk_atoms", [None, 16])
def test_analytic_kernel_equals_autodiff(case, chunk_atoms):
    """Predictions, residuals, loss and its gradient in crad and c, one flat chunk and
    several (16 atom slots: three structures each)."""
    ace, params, _, items = case
    options = {} if chunk_atoms is None else {"max_bucket_atoms": chunk_atoms}
    fast = DatasetObjective(ace, items, n_species=3, **options)
    slow = DatasetObjective(ace, items, n_species=3, kernel="autodiff")
    assert (fast.kernel, slow.kernel) == ("analytic", "autodiff")
    assert fast.flat_chunks and all(b.host.slots > 0 for b in fast._buckets)
    if chunk_atoms:
        assert fast.n_chunks > 1
    assert_engines_agree(fast, slow, params, 1e-10, relative)


def test_gradient_against_central_differences(case):
    """∂L/∂x of the analytic kernel along random directions of (crad, c) against central
    differences of its own loss."""
    ace, params, _, items = case
    engine = DatasetObjective(ace, items, n_species=3)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    _, grad = engine.value_and_grad(params)
    g = jax.flatten_util.ravel_pytree(grad)[0]
    rng = np.random.default_rng(5)
    for _ in range(3):
        v = rng.normal(size=flat.shape)
        h = 1e-6
        up, down = (engine.value(unravel(flat + s * h * v)) for s in (1.0, -1.0))
        numeric = (up - down) / (2 * h)
        assert abs(numeric - float(g @ v)) <= 1e-6 * abs(numeric), (numeric, float(g @ v))


def test_kernel_choice(case):
    """ACE: analytic (flat atom-major chunks of ACE's 512 atom slots on a CPU), with the zbl
    inner cutoff too; LinearACE: descriptor; ACE in a sum with a half-list term:
    autodiff."""
    ace, params, _, items = case
    assert ace_dataset.supported(ace) and analytic_supported(ace)
    engine = DatasetObjective(ace, items[:2], n_species=3)
    assert engine.kernel == "analytic"
    if jax.default_backend() == "cpu":
        assert engine.max_bucket_atoms == 512
    with pytest.raises(ValueError, match="flat"):
        DatasetObjective(ace, items[:2], n_species=3, kernel="analytic", flat_chunks=False)
    bonds = tuple(tuple(dataclasses.replace(b, inner=ZBL_INNER) for b in row)
                  for row in ace.bonds)
    zbl = dataclasses.replace(ace, bonds=bonds)
    object.__setattr__(zbl, "tables", ace.tables)
    assert ace_dataset.supported(zbl) and analytic_supported(zbl)
    assert DatasetObjective(zbl, items[:2], n_species=3).kernel == "analytic"
    linear = LinearACE.freeze(alcu_basis_linear(case), params["crad"])
    assert not analytic_supported(linear)
    assert analytic_supported(LennardJones(4.0))
    assert not analytic_supported(SumPotential((("ace", ace), ("lj", LennardJones(4.0)))))


def alcu_basis_linear(case):
    """A one-density linear embedding of the case's basis (for LinearACE)."""
    ace = case[0]
    emb = tuple(dataclasses.replace(e, weights=e.weights[:1], exponents=(1.0,))
                for e in ace.embeddings)
    out = dataclasses.replace(ace, embeddings=emb)
    object.__setattr__(out, "tables", ace.tables)
    return out


def test_exact_radial_functions_and_a_cluster(case):
    """The exact radial functions (spline=False: slopes by forward mode) and a free cluster
    (no periodicity, an atom without neighbours) among periodic cells, in one flat chunk."""
    from rexfit.datasets.items import Item

    ace, params, frames, items = case
    exact = ace.with_spline(False)
    rng = np.random.default_rng(8)
    cluster = Item(np.array([[0.0, 0.0, 0.0], [2.4, 0.3, 0.1], [0.2, 2.5, -0.3],
                             [9.0, 9.0, 9.0]]), np.eye(3) * 20.0, np.array([0, 2, 0, 2]),
                   pbc=(False, False, False), energy=1.0, forces=rng.normal(size=(4, 3)),
                   tol_energy=0.01, tol_forces=0.1)
    data = items[:3] + [cluster]
    fast = DatasetObjective(exact, data, n_species=3)
    slow = DatasetObjective(exact, data, n_species=3, kernel="autodiff")
    assert fast.kernel == "analytic" and fast.n_chunks == 1
    for ours, ref in zip(fast.predictions(params), slow.predictions(params)):
        assert abs(ours.energy - ref.energy) <= 1e-10 * abs(ref.energy)
        assert relative(ours.forces, ref.forces) < 1e-10
    value, grad = fast.value_and_grad(params)
    value_ref, grad_ref = slow.value_and_grad(params)
    assert abs(value - value_ref) <= 1e-10 * value_ref
    for a, b in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(grad_ref)):
        assert relative(a, b) < 1e-10


# ---------------------------------------------------------------- the zbl inner cutoff

@pytest.fixture(scope="module", params=["AlCu", "Cu"])
def zbl_case(request, tmp_path_factory):
    """(potential, params, items) with the zbl inner cutoff: Al-Cu (two densities, the job's
    species with Ni unknown to the basis) or Cu alone (one non-linear density, SBessel);
    rattled, strained cells and :func:`zbl_extra_items`, whose atoms' weights f take 0, 1 and
    values between (checked)."""
    directory = tmp_path_factory.mktemp("zbl")
    if request.param == "AlCu":
        ace, params = zbl_basis(directory)
        ace, frames, species = ace.for_species(SPECIES), cells(), [0, 2]
    else:
        ace, params = zbl_basis(directory, elements=("Cu",), embedding=(1.0, 0.75),
                                ndensity=1, radbase="SBessel", seed=6)
        frames = [(atoms, np.zeros(len(atoms), int)) for atoms, _ in cells(seed=4)]
        species = [0]
    items = items_of(frames) + zbl_extra_items(species)
    weights = []
    for item in items:
        system = make_system(item.positions, item.cell, item.species, pbc=item.pbc)
        weights.append(np.asarray(ace._zbl_switch(system, build_lists(ace, system, 0.0,
                                                                      n_species=3))))
    weights = np.concatenate(weights)
    assert np.any(weights == 0.0) and np.any(weights == 1.0)
    assert np.sum((weights > 0.05) & (weights < 0.95)) >= 5, weights
    assert 0.05 < weights[-4] < 0.95  # the cluster's middle atom, two nearest at 2.25 Å
    return ace, params, items


def test_zbl_takes_the_analytic_kernel_and_equals_autodiff(zbl_case):
    """Predictions, residuals, loss, gradient (crad and c), VJP and Jacobian of the analytic
    kernel (kept terms, the engine's own choice) against the autodiff kernel, to 1e-12."""
    ace, params, items = zbl_case
    assert ace_dataset.supported(ace) and analytic_supported(ace)
    fast = DatasetObjective(ace, items, n_species=3)
    slow = DatasetObjective(ace, items, n_species=3, kernel="autodiff")
    assert (fast.kernel, slow.kernel) == ("analytic", "autodiff")
    assert fast._fixed is not None  # the weights and their slopes kept with the other terms
    assert_engines_agree(fast, slow, params, 1e-12, relative)


def test_zbl_terms_per_evaluation_and_several_chunks(zbl_case, monkeypatch):
    """The analytic kernel computing its terms per evaluation, in chunks of 16 atom slots,
    against the same kernel on kept terms in one chunk, to 1e-12."""
    from rexfit.datasets import kept_terms

    ace, params, items = zbl_case
    kept = DatasetObjective(ace, items, n_species=3)
    monkeypatch.setattr(kept_terms, "FIXED_TERMS_BYTES", 0)
    fresh = DatasetObjective(ace, items, n_species=3, max_bucket_atoms=16)
    assert fresh.kernel == "analytic" and fresh._fixed is None and fresh.n_chunks > 1
    assert_engines_agree(fresh, kept, params, 1e-12, relative)
