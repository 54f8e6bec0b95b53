"""Linear ACE on the dataset engine's descriptor kernel (rexfit.potentials.ace.linear): the same
energies, forces, stresses, residuals, objective gradient and Jacobian as the autodiff kernel
(to round-off), energies and forces as pyace's, core repulsion with the density inner cutoff
counted; the family builds the descriptor form only when the radial coefficients are fixed and
the embedding is linear; a <linear-solve> fit through it recovers pyace's coefficients."""

from __future__ import annotations

import jax
import numpy as np
import pytest

pyace = pytest.importorskip("pyace")

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from rexfit.datasets.engine import DatasetObjective  # noqa: E402
from rexfit.datasets.items import Item  # noqa: E402
from rexfit.potentials.ace.files import read_bbasis, write_bbasis  # noqa: E402
from rexfit.potentials.ace.linear import LinearACE, linear_embedding  # noqa: E402
from rexfit.potentials.ace.model import ACE  # noqa: E402
from rexfit.potentials.lists import build_lists  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402

#: the job's species: not alphabetical, and Ni is not an element of the basis
SPECIES = ("Cu", "Ni", "Al")


def alcu_basis(tmp_path, embedding=(1.3, 1.0), ndensity=1):
    """(file, potential for SPECIES, params): an Al-Cu basis with core repulsion and the
    density inner cutoff set so that rattled cells have atoms inside its switching range,
    random radial and function coefficients, written by rexfit."""
    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Al", "Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": list(embedding), "ndensity": ndensity,
                               "rho_core_cut": 0.5, "drho_core_cut": 0.45}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.5,
                          "dcut": 0.01, "core-repulsion": [2.0, 0.4],
                          "inner_cutoff_type": "density"}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 1, 1]}}})
    config.save(str(tmp_path / "basis.yaml"))
    basis = read_bbasis(tmp_path / "basis.yaml")
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(3)
    params = jax.tree_util.tree_map(lambda v: rng.normal(size=np.shape(v)), params)
    write_bbasis(tmp_path / "alcu.yaml", potential.to_bbasis(basis, params))
    potential, params = ACE.from_bbasis(read_bbasis(tmp_path / "alcu.yaml"))
    return tmp_path / "alcu.yaml", potential.for_species(SPECIES), params


def cells(count=5, seed=1):
    """Rattled, strained fcc cells of 4 and 8 atoms, random species (Ni in the last only)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        atoms = bulk("Cu", "fcc", 3.7 + 0.1 * k, cubic=True).repeat((1, 1, 1 + k % 2))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0, 0.03, (3, 3))),
                       scale_atoms=True)
        atoms.positions += rng.normal(0, 0.15, atoms.positions.shape)
        species = rng.choice([0, 2] if k < count - 1 else [0, 1, 2], len(atoms))
        out.append((atoms, species))
    return out


def items_of(frames, seed=2):
    rng = np.random.default_rng(seed)
    return [Item(a.positions, a.cell.array, s, energy=rng.normal(),
                 forces=rng.normal(size=(len(a), 3)), stress=0.01 * rng.normal(size=6),
                 weight_energy=1.0, weight_forces=0.5, weight_stress=0.2, tol_energy=0.01,
                 tol_forces=0.1, tol_stress=1e-3)
            for a, s in frames]


def relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def assert_kernels_agree(fast, slow, params, tol):
    """The descriptor kernel ``fast`` against the autodiff kernel ``slow``: predictions,
    objective and gradient (function coefficients), residuals and Jacobian columns, to
    ``tol`` relative; crad is fixed (zero gradient)."""
    for ours, ref in zip(fast.predictions(params), slow.predictions(params)):
        assert abs(ours.energy - ref.energy) <= tol * abs(ref.energy)
        assert relative(ours.forces, ref.forces) < tol
        assert relative(ours.virial, ref.virial) < tol
        assert relative(ours.stress, ref.stress) < tol
    value, grad = fast.value_and_grad(params)
    value_ref, grad_ref = slow.value_and_grad(params)
    assert abs(value - value_ref) <= tol * value_ref
    for block in params["c"]:
        assert np.abs(grad_ref["c"][block]).max() > 0.0
        assert relative(grad["c"][block], grad_ref["c"][block]) < tol, block
    assert all(np.all(np.asarray(g) == 0.0) for g in grad["crad"].values())  # fixed
    n_c = sum(np.size(v) for v in params["c"].values())  # ravel order: "c" before "crad"
    (r, jac), (r_ref, jac_ref) = (e.residuals_and_jacobian(params) for e in (fast, slow))
    assert relative(r, r_ref) < tol
    assert relative(jac[:, :n_c], jac_ref[:, :n_c]) < tol


def assert_pyace_agrees(potential_file, symbols, frames, predictions, skip=None):
    """Energies (1e-10 eV/atom) and forces (1e-9 relative) of ``predictions`` against pyace's
    calculator on the same potential, for the frames without species ``skip``."""
    calc = pyace.PyACECalculator(str(potential_file))
    for (atoms, species), ours in zip(frames, predictions):
        if skip is not None and skip in species:
            continue
        other = Atoms([symbols[s] for s in species], atoms.positions, cell=atoms.cell,
                      pbc=True)
        other.calc = calc
        assert abs(other.get_potential_energy() - ours.energy) / len(other) < 1e-10
        f_ref = other.get_forces()
        assert np.abs(ours.forces - f_ref).max() < 1e-9 * max(1.0, np.abs(f_ref).max())


def test_descriptor_kernel_equals_autodiff_and_pyace(tmp_path):
    """LinearACE through the descriptor kernel (rows precomputed, per-atom designs) against
    the plain ACE through the autodiff kernel on the same data: predictions, residuals,
    objective and gradient (function coefficients), Jacobian columns, to 1e-10 relative; the
    energies and forces also against pyace on the cells without Ni; the core repulsion is in
    play (atoms inside the density inner cutoff's switching range)."""
    path, ace, params = alcu_basis(tmp_path)
    linear = LinearACE.freeze(ace, params["crad"])
    frames = cells()
    items = items_of(frames)
    fast = DatasetObjective(linear, items, n_species=3)
    slow = DatasetObjective(ace, items, n_species=3, kernel="autodiff")
    assert (fast.kernel, slow.kernel) == ("descriptor", "autodiff")
    switching, kept = [], []
    for atoms, species in frames:  # the core weight f_cut(ρ_core) of every atom
        system = make_system(atoms.positions, atoms.cell.array, species)
        nbrs = build_lists(ace, system, 0.0, n_species=3)
        b, rho = ace.descriptors(params, system, nbrs)
        element, _ = ace._elements_of(system.species)
        switching.append(np.asarray(ace.core_weight(rho, element)))
        rows = np.asarray(linear.descriptor.features(system, nbrs))
        own = np.asarray(ace.features(params, system, nbrs)) * np.asarray(
            ace.core_weight(rho, element))[:, None]
        assert relative(rows[:, :-1], own) < 1e-13  # f_cut B, file order
        assert relative(rows[:, -1], np.where(species == 1, 0.0, rho)) < 1e-13
        kept.append(rows)
    _, engine_rows = fast.descriptor_rows()  # precomputed in atom-major blocks, bucket order
    kept = np.concatenate(kept)
    key = np.random.default_rng(0).normal(size=kept.shape[1])
    assert relative(engine_rows[np.argsort(engine_rows @ key)],
                    kept[np.argsort(kept @ key)]) < 1e-12
    weights = np.concatenate(switching)
    assert np.any((weights > 0.05) & (weights < 0.95)) and np.any(weights > 0.999), weights
    assert_kernels_agree(fast, slow, params, 1e-10)
    assert_pyace_agrees(path, SPECIES, frames, fast.predictions(params), skip=1)


def test_family_builds_the_descriptor_form_only_for_fixed_crad_and_linear_embedding(tmp_path):
    """<coefficients/> alone with a linear embedding: a LinearACE (descriptor kernel); with
    <crad/> fitted too, or two densities: the plain ACE (analytic kernel, in flat chunks of
    512 atom slots on a CPU, as ACE asks)."""
    from rexfit.potentials import ace_family

    class Dof:
        def __init__(self, name):
            self.name, self.tag, self.origin = name, None, None

    def register(dof, path, value, name=None, tag=None):
        return value

    linear_file, _, _ = alcu_basis(tmp_path)
    (tmp_path / "two").mkdir()
    two_file, _, _ = alcu_basis(tmp_path / "two", embedding=(1.0, 1.0, 1.0, 0.5), ndensity=2)
    items = items_of(cells(count=2))
    for path, dofs, kernel in ((linear_file, ("coefficients",), "descriptor"),
                               (linear_file, ("coefficients", "crad"), "analytic"),
                               (two_file, ("coefficients",), "analytic")):
        spec = ace_family.AceSpec(str(path), tuple(map(Dof, dofs)), "AlCu", None)
        term, params = ace_family.build_model(spec, SPECIES, register)
        assert isinstance(term, LinearACE) == (kernel == "descriptor")
        assert linear_embedding(term) == (path == linear_file)
        engine = DatasetObjective(term, items, n_species=3, kernel="auto")
        assert engine.kernel == kernel, (path, dofs)
        if kernel == "analytic" and jax.default_backend() == "cpu":
            assert engine.max_bucket_atoms == 512  # ACE's analytic_chunk_atoms, not 4096
    with pytest.raises(ValueError, match="linear"):
        LinearACE.freeze(term, params["crad"])


def test_linear_solve_fit_runs_on_the_descriptor_kernel(tmp_path, monkeypatch):
    """The <linear-solve> job of test_ace_job (pyace's labels of energies and stresses)
    runs on the descriptor kernel and recovers pyace's coefficients to 1e-8."""
    import rexfit
    from tests.support.ace_cases import CU_DATASET, ace_job, labelled_cells, linear_basis

    kernels = []
    made = DatasetObjective.__init__

    def spy(self, *args, **kw):
        made(self, *args, **kw)
        kernels.append(self.kernel)

    monkeypatch.setattr(DatasetObjective, "__init__", spy)
    truth_file, truth, _ = linear_basis(tmp_path)
    labelled_cells(tmp_path / "cu.xyz", truth_file, count=12)
    structures = CU_DATASET
    job = tmp_path / "job.xml"
    job.write_text(ace_job("start.yaml", structures, "<fit-dof><coefficients/></fit-dof>",
                           "<fitting><linear-solve/></fitting>"))
    res = rexfit.run(job, tmp_path / "out")
    assert kernels and set(kernels) == {"descriptor"}
    fitted = np.array([res.parameters[f"Cu[ACE].c{k + 1}[Cu]"] for k in range(truth.size)])
    np.testing.assert_allclose(fitted, truth, rtol=0, atol=1e-8)


@pytest.mark.parametrize("elements", [("Al", "Cu"), ("Cu",)])
def test_zbl_inner_cutoff_on_the_descriptor_kernel(tmp_path, elements):
    """The zbl inner cutoff with a linear embedding (E_i = w f_i B_i·c + (1 − f_i) ρ_core,i,
    f_i the nearest neighbour's weight): the family's LinearACE, its rows [f B, (1 − f)
    ρ_core] against the model's weight, B-basis and ρ_core (from the neighbour list and from
    the engine's atom-major blocks), and the descriptor kernel against the plain ACE on the
    autodiff kernel (predictions, residuals, objective, gradient and Jacobian columns of c, to
    1e-12 relative) on atoms entirely in ZBL, in the switch (an exact tie of nearest
    neighbours among them) and in ACE; energies and forces of the cells against pyace."""
    from rexfit.potentials import ace_family
    from tests.support.ace_cases import zbl_basis, zbl_extra_items

    ace, params = zbl_basis(tmp_path, elements=elements, embedding=(1.3, 1.0), ndensity=1,
                            seed=7)
    two = len(elements) == 2
    if two:
        ace, frames, kinds = ace.for_species(SPECIES), cells(), [0, 2]
    else:
        frames = [(atoms, np.zeros(len(atoms), int)) for atoms, _ in cells(seed=4)]
        kinds = [0]
    items = items_of(frames) + zbl_extra_items(kinds)
    assert linear_embedding(ace)  # affine in c with the zbl weight too
    spec = ace_family.AceSpec(str(tmp_path / "zbl.yaml"), (), "".join(elements), None)
    family, _ = ace_family.build_model(spec, SPECIES if two else ("Cu",),
                                       lambda *a, **k: a[2])
    assert isinstance(family, LinearACE)
    linear = LinearACE.freeze(ace, params["crad"])
    fast = DatasetObjective(linear, items, n_species=3)
    slow = DatasetObjective(ace, items, n_species=3, kernel="autodiff")
    assert (fast.kernel, slow.kernel) == ("descriptor", "autodiff")
    weights, kept = [], []
    for item in items:
        system = make_system(item.positions, item.cell, item.species, pbc=item.pbc)
        nbrs = build_lists(ace, system, 0.0, n_species=3)
        f = np.asarray(ace._zbl_switch(system, nbrs))
        _, rho = ace.descriptors(params, system, nbrs)
        live = np.asarray(item.species) != (1 if two else -1)
        rows = np.asarray(linear.descriptor.features(system, nbrs))
        own = np.asarray(ace.features(params, system, nbrs)) * f[:, None]
        assert relative(rows[:, :-1], own) < 1e-13
        assert relative(rows[:, -1], np.where(live, (1.0 - f) * np.asarray(rho), 0.0)) < 1e-13
        weights.append(f)
        kept.append(rows)
    weights = np.concatenate(weights)
    assert np.any(weights == 0.0) and np.any(weights == 1.0)
    assert np.sum((weights > 0.05) & (weights < 0.95)) >= 5, weights
    _, engine_rows = fast.descriptor_rows()  # the atom-major blocks, bucket order
    kept = np.concatenate(kept)
    key = np.random.default_rng(0).normal(size=kept.shape[1])
    assert relative(engine_rows[np.argsort(engine_rows @ key)],
                    kept[np.argsort(kept @ key)]) < 1e-12
    assert_kernels_agree(fast, slow, params, 1e-12)
    assert_pyace_agrees(tmp_path / "zbl.yaml", SPECIES if two else ("Cu",), frames,
                        fast.predictions(params), skip=1 if two else None)
