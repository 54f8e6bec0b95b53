"""Stillinger–Weber against LAMMPS ``pair_style sw``, its parameter derivatives against finite
differences, the ``.sw`` reader/writer, and the host-side triplet lists it runs on."""

from __future__ import annotations

from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials import stillinger_weber
from rexfit.potentials.manybody_files import (
    SW_PARAMETERS,
    read_sw_file,
    triplet_tag,
    write_sw_file,
)
from rexfit.potentials.sw import StillingerWeber
from rexfit.structures.neighbors import build_neighbor_list, needs_rebuild
from rexfit.structures.system import make_system, pad_system
from rexfit.structures.triplets import (
    build_triplet_neighbor_list,
    build_triplets,
    triplet_pairs,
    with_triplets,
)
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

E_TOL = 1e-9  # eV/atom
F_TOL = 1e-8  # eV/Å
S_TOL = 1e-6  # GPa


def compare_with_lammps(potential, params, structure, coeff, skin=0.3):
    """(|ΔE|/N eV, max|ΔF| eV/Å, max|Δσ| GPa) of rexfit vs LAMMPS ``sw``."""
    pos, cell, species = structure
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, skin)
    ours = evaluate(potential, params, system, nbrs)
    ref = lammps_compute(pos, cell, species, (True,) * 3, "sw", coeff, len(potential.elements))
    n = len(pos)
    return (abs(float(ours.energy) - ref.energy) / n,
            float(np.abs(np.asarray(ours.forces) - ref.forces).max()),
            float(np.abs(np.asarray(ours.stress) - ref.stress).max() * EV_PER_A3_TO_GPA))


# --------------------------------------------------------------------------- a two-element file

def two_element_entries(tol=0.0):
    """A zincblende 'Ga'–'As'-style SW parameter set in the Wang–Stroud/CdTe.sw convention:
    pair values on the ijj (and jii) lines, three-body λ, ε, cosθ0 varying per triplet
    (ijk = ikj), some entries with a tolerance-shortened cutoff."""
    pair = {  # (epsilon, sigma, A, B) of the ij pair, symmetric
        ("Ga", "Ga"): (1.15, 2.20, 7.05, 0.60), ("As", "As"): (1.35, 2.05, 8.10, 0.66),
        ("Ga", "As"): (1.62, 2.10, 7.92, 0.72),
    }
    entries = {}
    for i, j, k in product(("Ga", "As"), repeat=3):
        eps, sigma, big_a, big_b = pair.get((i, j), pair.get((j, i)))
        if j != k:  # three-body-only line: two-body values unused (zero, as LAMMPS files do)
            sigma = big_a = big_b = 0.0
        entries[(i, j, k)] = {
            "epsilon": np.sqrt(eps * pair.get((i, k), pair.get((k, i)))[0]) if j != k else eps,
            "sigma": sigma, "a": 1.8 if j == k else 0.0,
            "lambda": {"Ga": 21.0, "As": 25.0}[i] + (2.0 if j != k else 0.0),
            "gamma": 1.2 if j == k else 0.0,
            "costheta0": -1.0 / 3.0 + (0.04 if j != k else 0.0) + (0.02 if i == "As" else 0.0),
            "A": big_a, "B": big_b, "p": 4.0, "q": 0.0,
            "tol": tol if (i, j, k) == ("As", "As", "As") else 0.0,
        }
    return entries


@pytest.fixture(scope="module")
def gaas_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sw") / "GaAs_test.sw"
    write_sw_file(path, two_element_entries(tol=1e-3), header=["two-element test potential"])
    return path


# --------------------------------------------------------------------------- LAMMPS parity

SI_CASES = {
    "diamond8": dict(name="Si", a=5.431, seed=1),
    "diamond8_strong": dict(name="Si", a=5.431, seed=2, strain=0.05, rattle=0.2),
    "diamond64": dict(name="Si", a=5.431, repeat=2, seed=3),
    "primitive2": dict(name="Si", a=5.431, seed=4, cubic=False),  # images of the same atom
}


@pytest.mark.parametrize("case", list(SI_CASES))
def test_si_sw_matches_lammps(case):
    path = potentials_dir() / "Si.sw"
    potential, params = StillingerWeber.from_file(path, ["Si"])
    structure = crystal(**SI_CASES[case])
    de, df, ds = compare_with_lammps(potential, params, structure, [f"* * {path} Si"])
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


@pytest.mark.parametrize("repeat", [1, 2])
def test_written_two_element_sw_matches_lammps(gaas_file, repeat):
    potential, params = StillingerWeber.from_file(gaas_file, ["Ga", "As"])
    structure = crystal("GaAs", 5.65, repeat, "zincblende", seed=10 + repeat, strain=0.03)
    de, df, ds = compare_with_lammps(potential, params, structure,
                                     [f"* * {gaas_file} Ga As"])
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


def test_shipped_gan_sw_matches_lammps():
    path = potentials_dir() / "GaN.sw"
    potential, params = StillingerWeber.from_file(path, ["Ga", "N"])
    structure = crystal("GaN", 3.189, 2, "wurtzite", c=5.185, seed=7, cubic=False)
    de, df, ds = compare_with_lammps(potential, params, structure, [f"* * {path} Ga N"])
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


# --------------------------------------------------------------------------- derivatives

def _leaf_paths(params):
    return [(tag, name) for tag in params for name in params[tag]]


def _shift(params, tag, name, delta):
    out = {t: dict(v) for t, v in params.items()}
    out[tag][name] = params[tag][name] + delta
    return out


@pytest.mark.parametrize("which", ["Si", "GaAs"])
def test_parameter_gradients_match_finite_differences(gaas_file, which):
    """∂E/∂p, ∂F/∂p and ∂σ/∂p for every parameter against central differences."""
    if which == "Si":
        potential, params = StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si"])
        pos, cell, species = crystal("Si", 5.431, seed=5)
    else:
        potential, params = StillingerWeber.from_file(gaas_file, ["Ga", "As"])
        pos, cell, species = crystal("GaAs", 4.9, 1, "zincblende", seed=6, strain=0.03,
                                     rattle=0.15)  # compressed: all entries in use
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, 0.2)

    def properties(p):
        ev = evaluate(potential, p, system, nbrs)
        return ev.energy, ev.forces, ev.stress

    props = jax.jit(properties)
    tangents = jax.jit(lambda p, t: jax.jvp(properties, (p,), (t,))[1])
    grad = jax.jit(jax.grad(lambda p: properties(p)[0]))(params)
    checked = 0
    for tag, name in _leaf_paths(params):
        value = float(params[tag][name])
        tangent = jax.tree_util.tree_map(jnp.zeros_like, params)
        tangent[tag][name] = jnp.float64(1.0)
        de, dforces, dstress = tangents(params, tangent)
        assert float(de) == pytest.approx(float(grad[tag][name]), rel=1e-12, abs=1e-12)
        h = 1e-5 * max(1.0, abs(value))
        if float(grad[tag][name]) == 0.0 and not np.any(np.asarray(dforces)):
            if name != "tol":  # tol only moves a hard cutoff; anything else must not matter
                e_plus = props(_shift(params, tag, name, h))[0]
                assert float(e_plus) == float(props(params)[0]), (tag, name)
            continue
        plus, minus = props(_shift(params, tag, name, h)), props(_shift(params, tag, name, -h))
        fd = [(np.asarray(u) - np.asarray(v)) / (2 * h) for u, v in zip(plus, minus)]
        scale = max(1.0, abs(float(de)))
        assert float(de) == pytest.approx(float(fd[0]), rel=1e-7, abs=1e-8 * scale), (tag, name)
        fscale = max(1e-3, np.abs(np.asarray(dforces)).max())
        np.testing.assert_allclose(dforces, fd[1], atol=1e-6 * fscale, err_msg=f"{tag} {name}")
        sscale = max(1e-4, np.abs(np.asarray(dstress)).max())
        np.testing.assert_allclose(dstress, fd[2], atol=1e-6 * sscale, err_msg=f"{tag} {name}")
        checked += 1
    assert checked == (10 if which == "Si" else 52)  # all but tol (and unused values)


def test_padding_atoms_and_slots_are_inert_and_gradients_finite():
    potential, params = StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si"])
    pos, cell, species = crystal("Si", 5.431, seed=8)
    system = make_system(pos, cell, species)
    plain = evaluate(potential, params, system, potential.neighbor_list(system, 0.3))
    padded = pad_system(system, 12)
    nbrs = potential.neighbor_list(padded, 0.3, capacity=512, triplet_capacity=4096)
    ours = evaluate(potential, params, padded, nbrs)
    assert float(ours.energy) == pytest.approx(float(plain.energy), rel=1e-14)
    np.testing.assert_allclose(ours.forces[:8], plain.forces, atol=1e-13)
    assert np.all(np.asarray(ours.forces)[8:] == 0.0)
    np.testing.assert_allclose(ours.stress, plain.stress, atol=1e-14)
    # a dimer just inside the cutoff and a trimer at the cutoff: finite gradients everywhere
    rc = potential.cutoff
    cluster = make_system([[0, 0, 0], [rc - 1e-9, 0, 0], [0, rc, 0]], np.zeros((3, 3)),
                          pbc=(False,) * 3)
    nbrs = potential.neighbor_list(cluster, 0.1)
    g = jax.jit(jax.grad(lambda p, x: potential.energy(p, cluster.replace(positions=x), nbrs),
                         argnums=(0, 1)))(params, cluster.positions)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


# --------------------------------------------------------------------------- files

def test_sw_file_round_trip(tmp_path, gaas_file):
    shipped = read_sw_file(potentials_dir() / "Si.sw")  # entry continued over two lines
    assert shipped[("Si", "Si", "Si")]["A"] == 7.049556277
    assert shipped[("Si", "Si", "Si")]["costheta0"] == -0.333333333333
    for entries in (shipped, read_sw_file(potentials_dir() / "CdTe.sw"),
                    two_element_entries(tol=1e-3)):
        write_sw_file(tmp_path / "out.sw", entries)
        again = read_sw_file(tmp_path / "out.sw")
        assert list(again) == list(entries)
        assert again == {k: {n: float(v[n]) for n in SW_PARAMETERS} for k, v in entries.items()}
    # potential → file → potential
    potential, params = StillingerWeber.from_file(gaas_file, ["Ga", "As"])
    text = stillinger_weber.FAMILY.parameter_text(potential, params, ["test"])
    (tmp_path / "again.sw").write_text(text)
    potential2, params2 = StillingerWeber.from_file(tmp_path / "again.sw", ["Ga", "As"])
    assert potential2 == potential
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda x, y: bool(x == y),
                                                         params, params2))
    assert set(params) == {triplet_tag(*k) for k in product(("Ga", "As"), repeat=3)}


def test_sw_reader_rejects_malformed_files(tmp_path):
    good = "Si Si Si 2.1683 2.0951 1.80 21.0 1.20 -0.3333 7.0 0.60 4.0 0.0 0.0\n"
    assert read_sw_file("# UNITS: metal\n" + good)[("Si", "Si", "Si")]["lambda"] == 21.0
    with pytest.raises(ValueError, match="incomplete"):
        read_sw_file(good.rsplit(" ", 2)[0] + "\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_sw_file(good + good)
    with pytest.raises(ValueError, match="UNITS"):
        read_sw_file("# UNITS: real\n" + good)
    with pytest.raises(ValueError, match="illegal"):
        read_sw_file(good.replace("21.0", "-21.0"))
    with pytest.raises(ValueError, match="missing"):
        StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si", "C"])


# --------------------------------------------------------------------------- triplets

def _brute_force_triplets(system, nbrs, first, second, skin, ordered):
    m = np.asarray(nbrs.mask)
    i, j = np.asarray(nbrs.i), np.asarray(nbrs.j)
    pos, cell = np.asarray(system.positions), np.asarray(system.cell)
    d = pos[j] + np.asarray(nbrs.shifts) @ cell - pos[i]
    r = np.linalg.norm(d, axis=1)
    s = np.asarray(system.species)
    out = set()
    for a in np.nonzero(m)[0]:
        for b in np.nonzero(m)[0]:
            if a == b or i[a] != i[b]:
                continue
            ok = r[a] < first[s[i[a]], s[j[a]]] + skin and \
                r[b] < second[s[i[a]], s[j[a]], s[j[b]]] + skin
            if ordered and ok:
                out.add((a, b))
            elif not ordered and ok:
                out.add((min(a, b), max(a, b)))
    return out


@pytest.mark.parametrize("ordered", [True, False])
def test_triplets_match_brute_force_enumeration(ordered):
    pos, cell, _ = crystal("Si", 5.431, seed=9, cubic=False, strain=0.05)  # 2-atom cell
    species = np.array([0, 1])
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, 4.0, 0.25, half=False)
    first = np.array([[3.0, 2.6], [2.6, 3.9]])
    second = np.array([[[3.0, 2.5], [3.5, 2.4]], [[3.7, 2.2], [2.9, 3.3]]])
    ij, ik = triplet_pairs(system, nbrs, first, second, ordered=ordered)
    found = set(zip(ij.tolist(), ik.tolist()))
    assert len(found) == len(ij) > 0
    assert found == _brute_force_triplets(system, nbrs, first, second, 0.25, ordered)
    assert np.all(np.asarray(nbrs.i)[ij] == np.asarray(nbrs.i)[ik])
    # no pruning: all pairs of legs of a centre, M(M−1) ordered per atom
    ij, _ = triplet_pairs(system, nbrs, ordered=True)
    per_atom = np.bincount(np.asarray(nbrs.i)[np.asarray(nbrs.mask)])
    assert len(ij) == int(np.sum(per_atom * (per_atom - 1)))


def test_triplet_capacity_padding_and_pytree():
    potential, params = StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si"])
    pos, cell, species = crystal("Si", 5.431, seed=11)
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    reach = np.asarray(potential.reach)
    tight = build_triplets(system, nbrs, reach, ordered=False)
    count = tight.count
    assert tight.capacity >= count and tight.capacity <= max(32, 1.5 * count)
    assert not np.any(np.asarray(tight.mask)[count:])
    assert np.all(np.asarray(tight.ij)[count:] == 0) and np.all(np.asarray(tight.ik)[count:] == 0)
    with pytest.raises(ValueError, match="capacity"):
        build_triplets(system, nbrs, reach, ordered=False, capacity=count - 1)
    roomy = with_triplets(nbrs, build_triplets(system, nbrs, reach, ordered=False,
                                               capacity=4 * count))
    e_tight = potential.energy(params, system, with_triplets(nbrs, tight))
    e_roomy = potential.energy(params, system, roomy)
    assert float(e_roomy) == pytest.approx(float(e_tight), rel=1e-14)
    ordered = with_triplets(nbrs, build_triplets(system, nbrs, reach, ordered=True))
    assert ordered.triplets.count == 2 * count
    assert float(potential.energy(params, system, ordered)) == pytest.approx(float(e_tight),
                                                                            rel=1e-13)
    # a TripletNeighborList is a NeighborList pytree: jit, needs_rebuild and leaves work
    assert not bool(jax.jit(needs_rebuild)(roomy, system))
    leaves, treedef = jax.tree_util.tree_flatten(roomy)
    assert jax.tree_util.tree_unflatten(treedef, leaves).triplets.capacity == 4 * count
    with pytest.raises(TypeError, match="triplets"):
        potential.energy(params, system, nbrs)
    with pytest.raises(ValueError, match="full"):
        build_triplets(system, build_neighbor_list(system, 4.0, 0.3))


def test_triplet_list_built_with_skin_stays_valid_until_rebuild():
    potential, params = StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si"])
    pos, cell, species = crystal("Si", 5.431, seed=12, rattle=0.15)
    system = make_system(pos, cell, species)
    reach = np.asarray(potential.reach)
    nbrs = build_triplet_neighbor_list(system, potential.cutoff, 0.4, reach, reach,
                                       ordered=False)
    rng = np.random.default_rng(0)
    moved = system.replace(positions=system.positions + rng.normal(0, 0.06, pos.shape))
    assert not bool(needs_rebuild(nbrs, moved))
    fresh = potential.neighbor_list(moved, 0.0)
    assert float(potential.energy(params, moved, nbrs)) == pytest.approx(
        float(potential.energy(params, moved, fresh)), rel=1e-14)
