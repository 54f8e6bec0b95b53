"""The batched dataset engine (rexfit.datasets.engine): per-structure energies, forces and
stresses equal the single-structure ``evaluate``; the objective's gradient, the residuals, the
Jacobian and its products agree with finite differences and with each other; compilations are
bounded by the bucket shapes; chunked, streamed evaluation equals the unchunked one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk

from rexfit.datasets.engine import DatasetObjective
from rexfit.datasets.items import ENERGY, FORCE, STRESS, Item
from rexfit.model.potentials import get_path, set_path
from rexfit.physics.properties import evaluate
from rexfit.potentials.base import SumPotential
from rexfit.potentials.eam import EAM
from rexfit.potentials.eam_files import read_eam_file, read_funcfl, tabulated_eam
from rexfit.potentials.functions import Analytic, Spline
from rexfit.potentials.lists import build_lists
from rexfit.potentials.pair import LennardJones
from rexfit.potentials.sw import StillingerWeber
from rexfit.potentials.tersoff import Tersoff
from rexfit.structures.neighbors import bucket_size
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_ref import potentials_dir
from tests.support.structures import crystal, make_cases

TOL = 1e-12  # eV, eV/Å, eV/Å³: batched vs single-structure evaluation


# --------------------------------------------------------------------------- helpers


def _items(structures, seed=0):
    """Items with random targets (energy, forces, stress where the volume allows), weights
    and tolerances; every third item lacks its force target, every fourth its energy."""
    rng = np.random.default_rng(seed)
    items = []
    for k, (pos, cell, species, pbc) in enumerate(structures):
        n = len(pos)
        periodic = abs(np.linalg.det(cell)) > 0
        items.append(Item(
            pos, cell, species, pbc,
            energy=(-3.0 * n + rng.normal()) if k % 4 != 3 else None,
            forces=rng.normal(0.0, 0.5, (n, 3)) if k % 3 != 2 else None,
            stress=rng.normal(0.0, 0.01, 6) if periodic else None,
            weight_energy=1.0 + k % 2, weight_forces=0.5, weight_stress=2.0,
            tol_energy=0.01, tol_forces=0.1, tol_stress=0.002, name=f"s{k}"))
    return items


def _cases(a, ntypes, names):
    return [(c.positions, c.cell, c.species, c.pbc)
            for c in make_cases(a=a, ntypes=ntypes) if c.name in names]


# mixed sizes and periodicities: 1, 2, 32 periodic atoms and a 13-atom cluster
MIXED = ("one_atom_oblique", "two_atom_small", "strained_triclinic", "cluster")


def _compare_with_evaluate(potential, params, items, predictions):
    """Batched predictions vs ``evaluate`` of each structure alone.  The single structures are
    padded to common atom and list capacities per periodicity (padding is inert), so that
    ``evaluate`` compiles once per periodicity rather than once per structure."""
    systems = [make_system(it.positions, it.cell, it.species, it.pbc) for it in items]
    counts = []
    for system in systems:
        nbrs = build_lists(potential, system, 0.0)
        triplets = getattr(nbrs, "triplets", None)
        counts.append((int(np.sum(np.asarray(nbrs.mask))),
                       0 if triplets is None else triplets.count))
    for it, system, pred in zip(items, systems, predictions):
        same = [k for k, other in enumerate(systems) if other.pbc == system.pbc]
        padded = pad_system(system, max(systems[k].natoms for k in same))
        nbrs = build_lists(potential, padded, 0.0,
                           capacity=bucket_size(max(counts[k][0] for k in same)),
                           triplet_capacity=bucket_size(max(counts[k][1] for k in same)))
        ref = evaluate(potential, params, padded, nbrs)
        n = system.natoms
        assert abs(pred.energy - float(ref.energy)) < TOL, it.name
        np.testing.assert_allclose(pred.forces, np.asarray(ref.forces)[:n], rtol=0, atol=TOL,
                                   err_msg=it.name)
        if abs(np.linalg.det(it.cell)) > 0:
            np.testing.assert_allclose(pred.stress, ref.stress, rtol=0, atol=TOL,
                                       err_msg=it.name)
        else:
            assert np.all(np.isnan(pred.stress))


# --------------------------------------------------------------------------- analytic EAM


def _analytic_eam():
    """Two-species EAM from the job function library (Morse pair, Gaussian density, both
    screened smoothly to zero at 5 Å; spline embedding) and its params."""
    screen = Analytic(cutoff=5.0, screening=None, kind="exp-A")
    pair = Analytic(cutoff=5.0, screening=screen, kind="morse-C")
    density = Analytic(cutoff=5.0, screening=screen, kind="gaussian")
    knots = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0)
    embedding = Spline(cutoff=None, screening=None, knots=knots)
    f64 = jnp.float64
    params = {
        "V00": {"A": f64(60.0), "lambda": f64(2.0), "B": f64(4.0), "mu": f64(1.0),
                "delta": f64(0.0), "screening": {}},
        "V01": {"A": f64(55.0), "lambda": f64(2.1), "B": f64(3.5), "mu": f64(0.95),
                "delta": f64(0.01), "screening": {}},
        "V11": {"A": f64(50.0), "lambda": f64(2.05), "B": f64(3.0), "mu": f64(0.9),
                "delta": f64(-0.01), "screening": {}},
        "rho0": {"prefactor": f64(0.5), "eta": f64(0.5), "mu": f64(2.5), "screening": {}},
        "rho1": {"prefactor": f64(0.6), "eta": f64(0.4), "mu": f64(2.4), "screening": {}},
    }
    for s, scale in ((0, 2.0), (1, 1.8)):
        nodes = {f"node[{k:g}].y": f64(-scale * np.sqrt(k)) for k in knots}
        params[f"F{s}"] = {**nodes, "derivative-left": f64(-3.0),
                           "derivative-right": f64(-scale / (2 * np.sqrt(12.0)))}
    eam = EAM.alloy(
        2, 5.0,
        pair={(0, 0): ("V00", pair), (0, 1): ("V01", pair), (1, 1): ("V11", pair)},
        density={0: ("rho0", density), 1: ("rho1", density)},
        embedding={0: ("F0", embedding), 1: ("F1", embedding)},
    )
    return eam, params


FITTED = (("V00", "A"), ("V01", "lambda"), ("V11", "delta"), ("rho0", "prefactor"),
          ("rho1", "eta"), ("F0", "node[4].y"), ("F1", "derivative-right"), ("F0", "node[8].y"))


def _transform(base):
    """x (len(FITTED),) ↦ params tree: the fitted leaves set from x (a fit vector)."""

    def tree(x):
        out = base
        for k, path in enumerate(FITTED):
            out = set_path(out, path, x[k])
        return out

    x0 = np.array([float(get_path(base, path)) for path in FITTED])
    return tree, x0


@pytest.fixture(scope="module")
def analytic_case():
    """The analytic EAM, 1-, 4- and 8-atom periodic cells (one bucket, so that each kernel
    compiles once), the fit transform and its start vector."""
    eam, params = _analytic_eam()
    structures = [crystal("Cu", 3.615, 1, seed=1, cubic=False, species=[1]),
                  crystal("Cu", 3.615, 1, seed=2, species=[0, 1, 0, 0]),
                  crystal("Cu", 3.615, 2, seed=3, cubic=False, species=np.arange(8) % 2)]
    items = _items([(p, c, s, (True,) * 3) for p, c, s in structures], seed=4)
    tree, x0 = _transform(params)
    return eam, params, items, tree, x0


def _central_difference(fn, x0, k):
    h = 1e-6 * max(1.0, abs(x0[k]))
    up, down = x0.copy(), x0.copy()
    up[k] += h
    down[k] -= h
    return (fn(up) - fn(down)) / (2 * h)


@pytest.mark.parametrize("kernel", ["analytic", "autodiff"])
def test_objective_gradient_matches_finite_differences(analytic_case, kernel):
    eam, params, items, tree, x0 = analytic_case
    obj = DatasetObjective(eam, items, transform=tree, kernel=kernel)
    assert obj.kernel == kernel and len(obj.bucket_shapes) == 1
    value, grad = obj.value_and_grad(x0)
    assert value == pytest.approx(obj.value(x0), rel=1e-13)
    r = obj.residuals(x0)
    assert len(r) == obj.n_rows and float(np.sum(r * r)) == pytest.approx(value, rel=1e-13)
    assert value > 1.0  # every term contributes: the test is not vacuous
    for k in range(len(x0)):
        fd = _central_difference(obj.value, x0, k)
        assert grad[k] == pytest.approx(fd, rel=1e-6, abs=1e-7 * value), FITTED[k]
    if kernel == "autodiff":  # same residuals as the analytic kernel
        other = DatasetObjective(eam, items, transform=tree, kernel="analytic")
        np.testing.assert_allclose(other.residuals(x0), r, rtol=0, atol=1e-11)


def test_jacobian_and_its_products(analytic_case):
    eam, params, items, tree, x0 = analytic_case
    obj = DatasetObjective(eam, items, transform=tree)
    r = obj.residuals(x0)
    _, grad = obj.value_and_grad(x0)
    jac = obj.jacobian(x0)
    assert jac.shape == (obj.n_rows, len(x0))
    for k in range(len(x0)):
        fd = _central_difference(obj.residuals, x0, k)
        np.testing.assert_allclose(jac[:, k], fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max(),
                                   err_msg=str(FITTED[k]))
    t = np.random.default_rng(0).normal(size=len(x0))
    r_jvp, jt = obj.jvp(x0, t)
    np.testing.assert_allclose(r_jvp, r, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(jt, jac @ t, rtol=1e-11, atol=1e-11 * np.abs(jt).max())
    np.testing.assert_allclose(obj.vjp(x0, 2 * r), grad, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(2 * jac.T @ r, grad, rtol=1e-10, atol=1e-10)
    # J·D along given directions, computed without forming J
    directions = np.random.default_rng(1).normal(size=(len(x0), len(x0)))
    np.testing.assert_allclose(obj.jacobian(x0, directions), jac @ directions, rtol=1e-11,
                               atol=1e-11 * np.abs(jac).max())


def test_rows_are_labelled_and_scaled(analytic_case):
    eam, params, items, tree, x0 = analytic_case
    obj = DatasetObjective(eam, items, transform=tree)
    rows, r, pred = obj.rows, obj.residuals(x0), obj.predictions(x0)
    _compare_with_evaluate(eam, params, items, pred)
    for k, it in enumerate(items):
        mine = rows.structure == k
        n = len(it.positions)
        assert np.sum(rows.kind[mine] == ENERGY) == (it.energy is not None)
        assert np.sum(rows.kind[mine] == FORCE) == (3 * n if it.forces is not None else 0)
        assert np.sum(rows.kind[mine] == STRESS) == (6 if it.stress is not None else 0)
        scale_e = np.sqrt(it.weight_energy) / (n * it.tol_energy)
        scale_f = np.sqrt(it.weight_forces / (3 * n)) / it.tol_forces
        scale_s = np.sqrt(it.weight_stress / 6) / it.tol_stress
        if it.energy is not None:
            assert r[mine & (rows.kind == ENERGY)][0] == pytest.approx(
                scale_e * (pred[k].energy - it.energy), rel=1e-12)
        if it.forces is not None:
            f = mine & (rows.kind == FORCE)
            np.testing.assert_allclose(r[f], scale_f * (pred[k].forces - it.forces)[
                rows.atom[f], rows.component[f]], rtol=1e-12)
        if it.stress is not None:
            np.testing.assert_allclose(r[mine & (rows.kind == STRESS)],
                                       scale_s * (pred[k].stress - it.stress), rtol=1e-12)


# --------------------------------------------------------------------------- LAMMPS files


def _eam_file_models():
    p = potentials_dir()
    cu, cu_params = tabulated_eam(read_eam_file(p / "Cu_mishin1.eam.alloy"), ["Cu"])
    fs, fs_params = tabulated_eam(read_eam_file(p / "FeP_mm.eam.fs"), ["Fe", "P"])
    funcfl, funcfl_params = tabulated_eam(read_funcfl([p / "Cu_u3.eam", p / "Ag_u3.eam"]),
                                          ["Cu", "Ag"])
    lj = LennardJones.between(4.0, 0, 1, 2)  # only between the two species
    mixed = SumPotential((("eam", funcfl), ("lj", lj)))
    mixed_params = {"eam": funcfl_params,
                    "lj": {"sigma": jnp.float64(2.3), "epsilon": jnp.float64(0.02)}}
    return {"Cu_mishin1": (cu, cu_params, 1, 3.615), "FeP_fs": (fs, fs_params, 2, 3.6),
            "CuAg_u3+lj": (mixed, mixed_params, 2, 3.8)}


@pytest.mark.parametrize("name", ["Cu_mishin1", "FeP_fs", "CuAg_u3+lj"])
def test_tabulated_eam_matches_single_structure_evaluation(name):
    potential, params, ntypes, a = _eam_file_models()[name]
    items = _items(_cases(a, ntypes, MIXED), seed=1)
    obj = DatasetObjective(potential, items)
    assert obj.kernel == "analytic"
    _compare_with_evaluate(potential, params, items, obj.predictions(params))


def _sw_case(name):
    """(potential, items, transform, x0, fitted paths) of a Stillinger–Weber dataset: Si.sw on
    three Si cells, or GaN.sw on zinc-blende GaN cells (one with atoms of a third,
    non-interacting species) and the MIXED cases.  The GaN fit moves entries that make the two legs of a pair and
    the two orders of an angle differ (γ of Ga N N, cosθ0 of Ga Ga N, σ of N Ga Ga)."""
    if name == "Si":
        potential, params = StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si"])
        structures = [crystal("Si", 5.431, seed=1), crystal("Si", 5.431, seed=2, cubic=False),
                      crystal("Si", 5.431, seed=3, strain=0.05, rattle=0.2)]
        structures = [(p, c, s, (True,) * 3) for p, c, s in structures]
        fitted = (("SiSiSi", "epsilon"), ("SiSiSi", "lambda"), ("SiSiSi", "sigma"),
                  ("SiSiSi", "A"), ("SiSiSi", "costheta0"))
    else:
        potential, params = StillingerWeber.from_file(potentials_dir() / "GaN.sw", ["Ga", "N"])
        structures = [(p, c, s, (True,) * 3) for p, c, s in (
            crystal("GaN", 4.5, symbols="zincblende", seed=4),
            crystal("GaN", 4.5, symbols="zincblende", seed=5, strain=0.04, rattle=0.15))]
        structures[1][2][[0, 5]] = 2  # two atoms of a species the potential leaves out
        structures += _cases(3.1, 2, MIXED)
        fitted = (("GaNN", "gamma"), ("GaGaN", "costheta0"), ("NGaGa", "sigma"),
                  ("GaGaGa", "lambda"), ("NNN", "A"))

    def tree(x):
        out = params
        for k, path in enumerate(fitted):
            out = set_path(out, path, x[k])
        return out

    x0 = np.array([float(get_path(params, path)) for path in fitted])
    return potential, _items(structures, seed=2), tree, x0, fitted


@pytest.mark.parametrize("name", ["Si", "GaN"])
def test_sw_kernels_match_single_structure_evaluation_and_gradient(name):
    """The analytic Stillinger–Weber kernel: energies, forces and stresses equal the
    single-structure evaluation and the autodiff kernel; the objective's gradient and the
    Jacobian agree with finite differences."""
    potential, items, tree, x0, fitted = _sw_case(name)
    obj = DatasetObjective(potential, items, transform=tree)
    assert obj.kernel == "analytic"
    _compare_with_evaluate(potential, tree(x0), items, obj.predictions(x0))
    # the autodiff reference in as few chunk shapes as the periodicities allow
    other = DatasetObjective(potential, items, transform=tree, kernel="autodiff",
                             merge_padding=10.0)
    np.testing.assert_allclose(obj.residuals(x0), other.residuals(x0), rtol=0, atol=1e-10)
    value, grad = obj.value_and_grad(x0)
    r, jac = obj.residuals_and_jacobian(x0)
    assert value == pytest.approx(float(r @ r), rel=1e-12)
    np.testing.assert_allclose(2 * jac.T @ r, grad, rtol=1e-10, atol=1e-10 * value)
    for k in range(len(x0)):
        fd = _central_difference(obj.value, x0, k)
        assert grad[k] == pytest.approx(fd, rel=1e-6, abs=1e-7 * value), fitted[k]
        column = _central_difference(obj.residuals, x0, k)
        np.testing.assert_allclose(jac[:, k], column, rtol=1e-5,
                                   atol=1e-6 * np.max(np.abs(column)), err_msg=str(fitted[k]))


def test_sw_with_lennard_jones_sum_uses_the_analytic_kernel():
    potential, items, tree, x0, _ = _sw_case("GaN")
    lj = LennardJones.between(3.5, 0, 1, 2)
    total = SumPotential((("sw", potential), ("lj", lj)))
    lj_params = {"sigma": jnp.float64(1.2), "epsilon": jnp.float64(0.05)}
    obj = DatasetObjective(total, items)
    assert obj.kernel == "analytic"
    params = {"sw": tree(x0), "lj": lj_params}
    _compare_with_evaluate(total, params, items, obj.predictions(params))


def test_predictions_at_the_last_jacobian_point_reuse_its_outputs():
    """After residuals_and_jacobian(x), predictions(x) compiles nothing (a fresh transform
    makes a fresh kernel spec) and gives the numbers of a separate evaluation; another point
    is evaluated afresh."""
    potential, items, tree, x0, _ = _sw_case("Si")
    fresh = DatasetObjective(potential, items, transform=tree).predictions(x0)
    obj = DatasetObjective(potential, items, transform=lambda x: tree(x))
    before = DatasetObjective.cache_sizes()["predictions"]
    r, _ = obj.residuals_and_jacobian(x0)
    np.testing.assert_allclose(r, obj.residuals(x0), rtol=1e-13, atol=1e-13)
    for a, b in zip(obj.predictions(x0), fresh):
        assert a.energy == pytest.approx(b.energy, rel=1e-14)
        np.testing.assert_allclose(a.forces, b.forces, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.stress, b.stress, rtol=0, atol=1e-14)
        np.testing.assert_allclose(a.virial, b.virial, rtol=0, atol=1e-12)
    assert DatasetObjective.cache_sizes()["predictions"] == before
    moved = obj.predictions(x0 * 1.001)
    assert DatasetObjective.cache_sizes()["predictions"] == before + 1
    assert moved[0].energy != pytest.approx(fresh[0].energy, rel=1e-6)


def test_small_buckets_join_larger_ones_within_the_padding_budget():
    """4 cells of 8 atoms join the 16-atom class (32 padding slots, 1.5 % of the atoms); the
    16-atom cells stay out of the 64-atom class (70 % padding)."""
    structures = []
    for reps in [(1, 1, 2)] * 4 + [(1, 2, 2)] * 31 + [(2, 2, 4)] * 25:
        atoms = bulk("Cu", "fcc", 3.615, cubic=True).repeat(reps)
        structures.append((atoms.positions, atoms.cell.array, np.zeros(len(atoms), int),
                           (True,) * 3))
    lj = LennardJones(4.5)
    merged = DatasetObjective(lj, _items(structures), max_bucket_atoms=None)
    assert [shape[1] for shape in merged.bucket_shapes] == [16, 64]
    # 35 and 25 structures, padded to the rungs 40 and 32 of the shape ladder
    assert [shape[0] for shape in merged.bucket_shapes] == [40, 32]
    assert [merged.chunk_structures(key) for key in merged.chunk_keys] == [35, 25]
    apart = DatasetObjective(lj, _items(structures), max_bucket_atoms=None, merge_padding=0)
    assert [shape[1] for shape in apart.bucket_shapes] == [8, 16, 64]
    params = {"sigma": jnp.float64(2.3), "epsilon": jnp.float64(0.4)}
    np.testing.assert_allclose(merged.residuals(params), apart.residuals(params), rtol=1e-13,
                               atol=1e-13)


# --------------------------------------------------------------------------- compilation


def test_compilations_bounded_by_bucket_shapes():
    """200 structures of 8–64 atoms: a handful of bucket shapes, one compilation each."""
    rng = np.random.default_rng(5)
    prim = bulk("Cu", "fcc", 3.615).cell.array
    structures = []
    for _ in range(200):
        reps = rng.integers(2, 5, 3)  # 8 … 64 atoms
        cell = (prim * reps[:, None]) @ (np.eye(3) + rng.normal(0, 0.02, (3, 3)))
        grid = np.stack(np.meshgrid(*[np.arange(m) for m in reps], indexing="ij"), -1)
        frac = grid.reshape(-1, 3) / reps
        pos = frac @ cell + rng.normal(0, 0.05, (len(frac), 3))
        structures.append((pos, cell, rng.integers(0, 2, len(pos)), (True,) * 3))
    lj = LennardJones(4.5)
    params = {"sigma": jnp.float64(2.3), "epsilon": jnp.float64(0.4)}
    obj = DatasetObjective(lj, _items(structures, seed=6), max_bucket_atoms=512)
    sizes = [len(s[0]) for s in structures]
    assert min(sizes) == 8 and max(sizes) == 64
    shapes = set(obj.bucket_shapes)
    assert len(shapes) == len(obj.bucket_shapes) <= 7  # atom classes 8, 12, 16, 24, 32, 48, 64
    assert obj.n_chunks > len(shapes)  # big buckets were split into chunks of equal shape
    before = DatasetObjective.cache_sizes()["value"]
    obj.value(params)
    obj.value(params)
    assert DatasetObjective.cache_sizes()["value"] - before == len(shapes)


# --------------------------------------------------------------------------- streaming


def test_chunked_streaming_equals_one_chunk(analytic_case):
    """Three reorderings of the dataset, streamed in chunks of its own bucket shape: every
    structure gets the same numbers as in the single resident chunk, no new compilation."""
    eam, params, items, tree, x0 = analytic_case
    whole = DatasetObjective(eam, items, transform=tree, max_bucket_atoms=24)
    v1, g1 = whole.value_and_grad(x0)
    r1, p1 = whole.residuals(x0), whole.predictions(x0)
    order = [0, 1, 2, 2, 0, 1, 1, 2, 0]
    streamed = DatasetObjective(eam, [items[k] for k in order], transform=tree,
                                max_bucket_atoms=24, resident_bytes=0)
    assert whole.resident and not streamed.resident
    assert streamed.n_chunks == 3 and streamed.bucket_shapes == whole.bucket_shapes
    compiled = DatasetObjective.cache_sizes()
    v2, g2 = streamed.value_and_grad(x0)
    assert v2 == pytest.approx(3 * v1, rel=1e-14)
    np.testing.assert_allclose(g2, 3 * g1, rtol=1e-13)
    r2, p2 = streamed.residuals(x0), streamed.predictions(x0)
    for k, source in enumerate(order):
        np.testing.assert_array_equal(r2[streamed.rows.structure == k],
                                      r1[whole.rows.structure == source])
        assert p2[k].energy == p1[source].energy
        np.testing.assert_array_equal(p2[k].forces, p1[source].forces)
        np.testing.assert_array_equal(p2[k].stress, p1[source].stress)
    assert DatasetObjective.cache_sizes() == compiled


def test_rejects_bad_targets():
    cluster = _cases(3.615, 1, ("cluster",))[0]
    pos, cell, species, pbc = cluster
    lj = LennardJones(4.5)
    with pytest.raises(ValueError, match="non-zero volume"):
        DatasetObjective(lj, [Item(pos, cell, species, pbc, stress=np.zeros(6))])
    with pytest.raises(ValueError, match="forces must have shape"):
        DatasetObjective(lj, [Item(pos, cell, species, pbc, forces=np.zeros((2, 3)))])
    with pytest.raises(ValueError, match="tolerances"):
        DatasetObjective(lj, [Item(pos, cell, species, pbc, energy=1.0, tol_energy=0.0)])
    with pytest.raises(ValueError, match="analytic kernel"):
        tersoff, _ = Tersoff.from_file(potentials_dir() / "Si.tersoff", ["Si"])
        DatasetObjective(tersoff, [Item(pos, cell, species, pbc)], kernel="analytic")




# --------------------------------------------------------------------------- descriptor kernel


def test_descriptor_kernel_matches_autodiff_with_a_zbl_base():
    """A linear SNAP (2J = 4, Mo_Zuo's cutoff and radius) over ZBL: the descriptor kernel
    (precomputed rows and per-atom designs, ZBL as a fixed base) gives the autodiff kernel's
    predictions, residuals, gradient and Jacobian with respect to the coefficients."""
    from rexfit.descriptors.bispectrum import Bispectrum
    from rexfit.potentials.snap import SNAP
    from rexfit.potentials.zbl import ZBL

    snap = SNAP(Bispectrum(4, 4.6, (0.5,), (1.0,), bzeroflag=False), ("Mo",))
    rng = np.random.default_rng(11)
    params = {"Mo": {"beta0": jnp.float64(-8.5),
                     "beta": jnp.asarray(rng.normal(0.0, 0.05, snap.n_linear))}}
    total = SumPotential((("core", ZBL(1.6, 2.4, (42.0,))), ("Mo", snap)))
    structures = [crystal("Mo", 3.15, seed=k, rattle=0.25) for k in range(3)]
    structures.append(crystal("Mo", 3.15, repeat=2, seed=9))
    items = _items([(p, c, s, (True,) * 3) for p, c, s in structures], seed=4)

    def tree(x):
        beta = params["Mo"]["beta"].at[jnp.arange(5)].set(x[1:])
        return {"core": {}, "Mo": {"Mo": {"beta0": x[0], "beta": beta}}}

    x0 = np.concatenate([[float(params["Mo"]["beta0"])], np.asarray(params["Mo"]["beta"][:5])])
    fast = DatasetObjective(total, items, transform=tree)
    # the autodiff reference in one chunk shape (its SNAP programs take long to compile)
    slow = DatasetObjective(total, items, transform=tree, kernel="autodiff", merge_padding=10.0)
    assert fast.kernel == "descriptor" and len(slow.bucket_shapes) == 1
    for a, b in zip(fast.predictions(x0), slow.predictions(x0)):
        assert a.energy == pytest.approx(b.energy, abs=1e-11)
        np.testing.assert_allclose(a.forces, b.forces, rtol=0, atol=1e-11)
        np.testing.assert_allclose(a.stress, b.stress, rtol=0, atol=1e-13)
    r1, j1 = fast.residuals_and_jacobian(x0)
    r2, j2 = slow.residuals_and_jacobian(x0)
    np.testing.assert_allclose(r1, r2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(j1, j2, rtol=1e-10, atol=1e-10 * np.abs(j2).max())
    v1, g1 = fast.value_and_grad(x0)
    v2, g2 = slow.value_and_grad(x0)
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-10 * np.abs(g2).max())
    with pytest.raises(ValueError, match="descriptor kernel"):
        DatasetObjective(LennardJones(4.5), items, kernel="descriptor")


def test_pinn_runs_on_the_descriptor_kernel_with_pruned_triplets():
    """A PINN (LSP rows precomputed, BOP on the pair vectors) through the descriptor kernel
    gives the autodiff kernel's gradient and Jacobian and the predictions of ``evaluate`` on
    the full, unpruned triplet list; the dataset keeps only the triplets that contribute."""
    from rexfit.descriptors.lsp import LSP
    from rexfit.potentials.pinn import BOP_PARAMETERS, PINN

    base = {"Si": dict(zip(BOP_PARAMETERS, (7.5, 6.15, 2.48, 1.73, 0.3, -0.33, 1.5, 1.0)))}
    descriptor = LSP((2.0, 2.5, 3.0), 0.6, 4.0, 1.0, (0, 1, 2, 4))
    model = PINN(descriptor, ("Si",), (5, 3), rc=3.9, d=1.2)
    params = model.initial_params(seed=3, base=base, output_scale=0.3)
    rng = np.random.default_rng(5)
    params["Si"].update(mean=jnp.asarray(rng.normal(0, 0.1, descriptor.n_features)),
                        std=jnp.asarray(rng.uniform(0.5, 2.0, descriptor.n_features)))
    structures = [crystal("Si", 5.43, seed=k, rattle=0.15, strain=0.03) for k in range(3)]
    structures.append(crystal("Si", 5.43, repeat=2, seed=7))
    items = _items([(p, c, s, (True,) * 3) for p, c, s in structures], seed=4)

    def tree(x):  # four first-layer weights, two output weights and the base
        w1 = params["Si"]["w1"].at[:4].set(x[:4])
        return {"Si": dict(params["Si"], w1=w1, out=params["Si"]["out"].at[:2].set(x[4:6]),
                           base=x[6:])}

    x0 = np.concatenate([params["Si"]["w1"][:4], params["Si"]["out"][:2], params["Si"]["base"]])
    fast = DatasetObjective(model, items, transform=tree)
    # the autodiff reference in one chunk shape (its PINN programs take long to compile)
    slow = DatasetObjective(model, items, transform=tree, kernel="autodiff", merge_padding=10.0)
    assert fast.kernel == "descriptor" and len(slow.bucket_shapes) == 1
    full = 0
    for k, (it, a) in enumerate(zip(items, fast.predictions(x0))):
        system = make_system(it.positions, it.cell, it.species, it.pbc)
        nbrs = build_lists(model, system, 0.0)
        full += nbrs.triplets.count
        if k not in (0, 3):  # one structure of each size against evaluate (a compilation each)
            continue
        ref = evaluate(model, tree(x0), system, nbrs)
        assert a.energy == pytest.approx(float(ref.energy), rel=1e-13)
        np.testing.assert_allclose(a.forces, np.asarray(ref.forces), rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.stress, np.asarray(ref.stress), rtol=0, atol=1e-14)
    kept = sum(int(b.host.tmask.sum()) for b in fast._buckets)
    assert 0 < kept < 0.5 * full
    v1, g1 = fast.value_and_grad(x0)
    v2, g2 = slow.value_and_grad(x0)
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-10 * np.abs(g2).max())
    r1, j1 = fast.residuals_and_jacobian(x0)
    r2, j2 = slow.residuals_and_jacobian(x0)
    np.testing.assert_allclose(r1, r2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(j1, j2, rtol=1e-9, atol=1e-10 * np.abs(j2).max())


# --------------------------------------------------------------------------- shared programs


def test_shape_ladder_is_global_and_bounded():
    """Padded sizes are rungs of one ladder (independent of the dataset), ≥ the size, at
    most 4/3 of it above 6, and multiples where asked."""
    from rexfit.datasets.buckets import ladder

    rungs = sorted({ladder(n) for n in range(1, 5000)})
    assert rungs[:12] == [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24]
    for n in range(1, 5000):
        assert n <= ladder(n) <= max(6, 4 * n / 3 + 1)
        assert ladder(n, 8) % 8 == 0 and ladder(n, 8) >= n


def _lj_structures(seeds, repeat=1):
    out = []
    for seed in seeds:
        pos, cell, species = crystal("Cu", 3.615, repeat, seed=seed, strain=0.0, rattle=0.03)
        out.append((pos, cell, species, (True,) * 3))
    return out


def test_a_second_dataset_of_the_same_shapes_traces_nothing():
    """Two datasets (different structures and counts, equal-but-distinct potential objects:
    a training and a validation part, or two <dataset>s of a job) land on the same chunk
    shapes, and the second one's evaluations trace and compile no program."""
    from rexfit import timing

    timing.install()
    params = {"sigma": jnp.float64(2.3), "epsilon": jnp.float64(0.4)}
    first = DatasetObjective(LennardJones(4.5), _items(_lj_structures(range(13)), seed=1))
    second = DatasetObjective(LennardJones(4.5), _items(_lj_structures(range(20, 25)), seed=2))
    # 13 and 5 structures of 4 atoms (class 8): chunks of at least 256 atom slots, 32 each
    assert first.bucket_shapes == second.bucket_shapes == [(32, 8, 96)]

    def use(obj):
        obj.value(params)
        obj.value_and_grad(params)
        obj.residuals_and_jacobian(params)
        obj.predictions({k: v * 1.01 for k, v in params.items()})

    use(first)
    before = timing.snapshot()
    use(second)
    after = timing.snapshot()
    assert after.traces == before.traces
    assert after.compile_requests == before.compile_requests


def test_descriptor_datasets_share_the_feature_program():
    """Descriptor rows are computed in blocks of one shape for every dataset: a second
    descriptor-kernel dataset of other sizes traces no feature program, and one of the same
    chunk shapes traces nothing at all."""
    from rexfit import timing
    from rexfit.datasets import descriptor_kernel as dk
    from rexfit.descriptors.bispectrum import Bispectrum
    from rexfit.potentials.snap import SNAP

    timing.install()

    def snap():  # a fresh, equal object each time
        return SNAP(Bispectrum(2, 4.6, (0.5,), (1.0,), bzeroflag=False), ("Mo",))

    def structures(seeds, repeat=1):
        return [(p, c, s, (True,) * 3)
                for p, c, s in (crystal("Mo", 3.15, repeat, seed=k, rattle=0.1) for k in seeds)]

    rng = np.random.default_rng(0)
    params = {"Mo": {"beta0": jnp.float64(-1.0), "beta": jnp.asarray(rng.normal(0, 0.1, 5))}}
    first = DatasetObjective(snap(), _items(structures(range(7)), seed=1))
    first.value_and_grad(params)
    first.predictions(params)
    block = timing.snapshot().programs.get("_neighbor_block_design", [0])[0]
    assert block >= 1
    other = DatasetObjective(snap(), _items(structures(range(3), repeat=2), seed=3))
    assert timing.snapshot().programs.get("_neighbor_block_design", [0])[0] == block
    before = timing.snapshot()
    same = DatasetObjective(snap(), _items(structures(range(10, 18)), seed=2))
    assert same.bucket_shapes == first.bucket_shapes
    same.value_and_grad(params)
    same.predictions(params)
    assert timing.snapshot().traces == before.traces
    # rows and derivatives per structure do not depend on the company it is computed in
    alone = DatasetObjective(snap(), _items(structures([12]), seed=2))
    k = 2  # structure seed 12 is the third of `same`
    np.testing.assert_allclose(alone.descriptor_rows()[1],
                               same.descriptor_rows()[1][k * 2:(k + 1) * 2], rtol=0,
                               atol=1e-12)
    assert other.n_chunks >= 1 and dk.BLOCK_ATOMS >= 8


def test_linear_model_designs_equal_the_pair_derivative_path(monkeypatch):
    """A species-linear SNAP (two elements, an inert third species, a ZBL base) keeps per-atom
    force and virial designs instead of per-pair derivatives: predictions, residuals,
    Jacobian and gradient equal those of the per-pair path to round-off, and the kept inputs
    are smaller."""
    from rexfit.datasets import descriptor_kernel as dk
    from rexfit.descriptors.bispectrum import Bispectrum
    from rexfit.potentials.snap import SNAP
    from rexfit.potentials.zbl import ZBL

    snap = SNAP(Bispectrum(4, 4.6, (0.5, 0.45), (1.0, 0.8), bzeroflag=False), ("Mo", "Nb"))
    total = SumPotential((("core", ZBL(1.6, 2.4, (42.0, 41.0, 40.0))), ("Mo", snap)))
    structures = []
    for k in range(4):
        pos, cell, _ = crystal("Mo", 3.2, repeat=1 + k // 3, seed=20 + k, rattle=0.2)
        species = np.arange(len(pos)) % 2
        species[-1] = 2 if k == 1 else species[-1]  # an inert atom
        structures.append((pos, cell, species, (True,) * 3))
    items = _items(structures, seed=6)
    rng = np.random.default_rng(1)
    k = snap.n_linear

    def tree(x):
        return {"core": {}, "Mo": {"Mo": {"beta0": x[0], "beta": x[1:1 + k]},
                                   "Nb": {"beta0": x[1 + k], "beta": x[2 + k:]}}}

    x0 = rng.normal(0.0, 0.3, 2 * (k + 1))
    fast = DatasetObjective(total, items, transform=tree, n_species=3)
    assert all(isinstance(g, tuple) for g in fast._buckets[0].host.feature_grads)
    monkeypatch.setattr(dk, "species_linear", lambda model: None)
    pairs = DatasetObjective(total, items, transform=tree, n_species=3)
    assert not isinstance(pairs._buckets[0].host.feature_grads[0], tuple)
    assert fast.input_bytes < pairs.input_bytes
    for a, b in zip(fast.predictions(x0), pairs.predictions(x0)):
        assert a.energy == pytest.approx(b.energy, rel=1e-13, abs=1e-12)
        np.testing.assert_allclose(a.forces, b.forces, rtol=0,
                                   atol=1e-12 * max(1.0, np.abs(b.forces).max()))
        np.testing.assert_allclose(a.virial, b.virial, rtol=0,
                                   atol=1e-12 * max(1.0, np.abs(b.virial).max()))
    r1, j1 = fast.residuals_and_jacobian(x0)
    r2, j2 = pairs.residuals_and_jacobian(x0)
    np.testing.assert_allclose(r1, r2, rtol=0, atol=1e-11 * np.abs(r2).max())
    np.testing.assert_allclose(j1, j2, rtol=0, atol=1e-11 * np.abs(j2).max())
    assert np.abs(j2[:, 1 + k:]).max() > 0  # the second element's columns are exercised
    v1, g1 = fast.value_and_grad(x0)
    v2, g2 = pairs.value_and_grad(x0)
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=0, atol=1e-11 * np.abs(g2).max())


def test_blocks_are_packed_first_fit_whatever_the_order():
    """Feature blocks hold whole structures up to BLOCK_ATOMS atoms and the pair limit,
    largest first into the first block with room; every structure in exactly one block."""
    from rexfit.datasets import descriptor_kernel as dk

    def geometry(n, pairs):
        return dk.Geometry(np.zeros(n, np.int32), np.zeros(pairs, np.int32),
                           np.zeros(pairs, np.int32), np.zeros((pairs, 3)))

    atoms = [10, 100, 30, 60, 8, 60, 200]
    geometries = [geometry(n, 4 * n) for n in atoms]
    blocks = dk._blocks(geometries, max_pairs=None)
    assert sorted(k for b in blocks for k in b) == list(range(len(atoms)))
    assert sorted(sorted(atoms[k] for k in b) for b in blocks) == [
        [8, 10, 100], [30], [60, 60], [200]]  # first fit, decreasing; 200 alone
    assert all(b == sorted(b) for b in blocks)
    limited = dk._blocks(geometries, max_pairs=300)
    for b in limited:
        assert len(b) == 1 or (sum(atoms[k] for k in b) <= dk.BLOCK_ATOMS
                               and sum(4 * atoms[k] for k in b) <= 300)
    # the order of the data does not change how many blocks it takes
    assert len(dk._blocks(geometries[::-1], max_pairs=None)) == len(blocks)


def test_pooled_engines_compute_rows_together_with_the_same_values(monkeypatch):
    """Descriptor engines made inside pooled_rows() (a job's datasets) get their rows from
    one pass over all their structures, equal to each engine's rows on its own."""
    from rexfit.datasets import descriptor_kernel as dk
    from rexfit.datasets.buckets import pooled_rows
    from rexfit.descriptors.bispectrum import Bispectrum
    from rexfit.potentials.snap import SNAP

    calls = []
    program = dk.neighbor_block_design

    def counted(*args):
        calls.append(args[2].shape)
        return program(*args)

    monkeypatch.setattr(dk, "neighbor_block_design", counted)
    snap = SNAP(Bispectrum(2, 4.6, (0.5,), (1.0,), bzeroflag=False), ("Mo",))
    rng = np.random.default_rng(0)
    params = {"Mo": {"beta0": jnp.float64(-1.0), "beta": jnp.asarray(rng.normal(0, 0.1, 5))}}
    sets = [[(p, c, s, (True,) * 3) for p, c, s in
             (crystal("Mo", 3.15, 1, seed=k, rattle=0.1) for k in seeds)]
            for seeds in (range(3), range(3, 5))]
    with pooled_rows():
        pooled = [DatasetObjective(snap, _items(st, seed=k)) for k, st in enumerate(sets)]
        assert not calls  # nothing computed before the scope ends
    assert len(calls) == 1  # one block for the five small cells of both engines
    alone = [DatasetObjective(snap, _items(st, seed=k)) for k, st in enumerate(sets)]
    assert len(calls) == 3
    for a, b in zip(pooled, alone):
        for x, y in zip(a.descriptor_rows(), b.descriptor_rows()):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        va, ga = a.value_and_grad(params)
        vb, gb = b.value_and_grad(params)
        assert float(va) == float(vb)
        np.testing.assert_array_equal(np.asarray(ga["Mo"]["beta"]), np.asarray(gb["Mo"]["beta"]))


def test_value_and_predictions_share_their_quick_program():
    """"value" and "predictions" are one program: for small chunks too they are one jitted
    function (two would trace and request the same program twice in a run)."""
    from rexfit.datasets.kernels import QUICK_CHUNK_SLOTS, chunk_kernel

    small = QUICK_CHUNK_SLOTS
    assert chunk_kernel("value", small) is chunk_kernel("predictions", small)
    assert chunk_kernel("value", small + 1) is chunk_kernel("predictions", small + 1)
    assert chunk_kernel("value", small) is not chunk_kernel("residuals", small)
