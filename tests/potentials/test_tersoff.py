"""Tersoff against LAMMPS ``pair_style tersoff`` (Si, SiC, GaN files shipped with LAMMPS), its
parameter derivatives against finite differences, and the ``.tersoff`` reader/writer."""

from __future__ import annotations

from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials import tersoff_family
from rexfit.potentials.manybody_files import (
    TERSOFF_PARAMETERS,
    read_tersoff_file,
    triplet_tag,
    write_tersoff_file,
)
from rexfit.potentials.tersoff import Tersoff
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

E_TOL = 1e-9  # eV/atom
F_TOL = 1e-8  # eV/Å
S_TOL = 1e-6  # GPa


def compare_with_lammps(potential, params, structure, path, ordered=False, skin=0.3):
    """(|ΔE|/N eV, max|ΔF| eV/Å, max|Δσ| GPa) of rexfit vs LAMMPS ``tersoff``."""
    pos, cell, species = structure
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, skin, ordered=ordered)
    ours = evaluate(potential, params, system, nbrs)
    coeff = [f"* * {path} {' '.join(potential.elements)}"]
    ref = lammps_compute(pos, cell, species, (True,) * 3, "tersoff", coeff,
                         len(potential.elements))
    n = len(pos)
    return (abs(float(ours.energy) - ref.energy) / n,
            float(np.abs(np.asarray(ours.forces) - ref.forces).max()),
            float(np.abs(np.asarray(ours.stress) - ref.stress).max() * EV_PER_A3_TO_GPA))


def _alloy(n, seed):
    species = np.random.default_rng(seed).integers(0, 2, n)
    species[:2] = [0, 1]
    return species


CASES = {  # name: (file, elements, crystal kwargs)
    "Si_diamond8": ("Si.tersoff", ["Si"], dict(name="Si", a=5.431, seed=1)),
    "Si_diamond8_strong": ("Si.tersoff", ["Si"],
                           dict(name="Si", a=5.431, seed=2, strain=0.05, rattle=0.2)),
    "Si_diamond64": ("Si.tersoff", ["Si"], dict(name="Si", a=5.431, repeat=2, seed=3)),
    "Si_primitive2": ("Si.tersoff", ["Si"], dict(name="Si", a=5.431, seed=4, cubic=False)),
    "SiC_zincblende8": ("SiC.tersoff", ["Si", "C"],
                        dict(name="SiC", symbols="zincblende", a=4.36, seed=5)),
    "SiC_zincblende64": ("SiC.tersoff", ["Si", "C"],
                         dict(name="SiC", symbols="zincblende", a=4.36, repeat=2, seed=6,
                              strain=0.03)),
    # random Si/C occupation of a compressed diamond lattice: every triplet entry in use
    "SiC_alloy64": ("SiC.tersoff", ["Si", "C"],
                    dict(name="Si", a=4.7, repeat=2, seed=7, rattle=0.12,
                         species=_alloy(64, 7))),
    # m = 1 with λ3 ≠ 0 (the exponential of the first power)
    "GaN_wurtzite32": ("GaN.tersoff", ["Ga", "N"],
                       dict(name="GaN", symbols="wurtzite", a=3.189, c=5.185, repeat=2,
                            seed=8, cubic=False)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tersoff_matches_lammps(case):
    fname, elements, kwargs = CASES[case]
    path = potentials_dir() / fname
    potential, params = Tersoff.from_file(path, elements)
    de, df, ds = compare_with_lammps(potential, params, crystal(**kwargs), path)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


def test_ordered_and_unordered_triplets_agree():
    path = potentials_dir() / "SiC.tersoff"
    potential, params = Tersoff.from_file(path, ["Si", "C"])
    pos, cell, species = crystal(**CASES["SiC_alloy64"][2])
    system = make_system(pos, cell, species)
    unordered = potential.neighbor_list(system, 0.3)
    ordered = potential.neighbor_list(system, 0.3, ordered=True)
    assert ordered.triplets.count > unordered.triplets.count
    a = evaluate(potential, params, system, unordered)
    b = evaluate(potential, params, system, ordered)
    assert float(a.energy) == pytest.approx(float(b.energy), rel=1e-14)
    np.testing.assert_allclose(a.forces, b.forces, atol=1e-12)
    np.testing.assert_allclose(a.stress, b.stress, atol=1e-14)


def modified_sic_entries():
    """SiC.tersoff with the three-body-only (j ≠ k) entries made to differ from the ik pair's
    own entry: other R, D (the k-leg cutoff), γ, λ3 ≠ 0 and m = 1 on Si-centred triplets.
    LAMMPS must then take each value from the entry its convention names."""
    entries = read_tersoff_file(potentials_dir() / "SiC.tersoff")
    for (i, j, k), v in entries.items():
        if j != k:
            v.update(R=v["R"] - 0.12, D=v["D"] + 0.03, gamma=1.15, lambda3=0.9,
                     m=1.0 if i == "Si" else 3.0)
    return entries


def test_convention_of_which_entry_supplies_what_matches_lammps(tmp_path):
    path = tmp_path / "SiC_modified.tersoff"
    write_tersoff_file(path, modified_sic_entries())
    potential, params = Tersoff.from_file(path, ["Si", "C"])
    reach = np.asarray(potential.reach)
    assert reach[0, 0, 1] != reach[0, 1, 1]  # Si Si C: k leg cut differs from the Si–C pair
    for seed in (11, 12):
        structure = crystal("Si", 4.6, 2, seed=seed, rattle=0.15, species=_alloy(64, seed))
        de, df, ds = compare_with_lammps(potential, params, structure, path)
        assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


# --------------------------------------------------------------------------- derivatives

def _leaf_paths(params):
    return [(tag, name) for tag in params for name in params[tag]]


def _shift(params, tag, name, delta):
    out = {t: dict(v) for t, v in params.items()}
    out[tag][name] = params[tag][name] + delta
    return out


@pytest.mark.parametrize("which", ["Si", "SiC", "GaN"])
def test_parameter_gradients_match_finite_differences(which):
    """∂E/∂p, ∂F/∂p and ∂σ/∂p for every parameter against central differences."""
    fname, elements, kwargs = {
        # compressed and rattled: some bonds in the R ± D band
        "Si": ("Si.tersoff", ["Si"], dict(name="Si", a=4.9, seed=1, rattle=0.25)),
        "SiC": ("SiC.tersoff", ["Si", "C"], dict(name="Si", a=4.7, seed=9, rattle=0.12,
                                                 species=[0, 1, 0, 1, 1, 0, 0, 0])),
        # a rattled Ga/N occupation of a compressed diamond lattice: m = 1, λ3 ≠ 0
        "GaN": ("GaN.tersoff", ["Ga", "N"], dict(name="Si", a=4.6, seed=10, rattle=0.2,
                                                 species=[0, 1, 0, 1, 1, 0, 0, 1])),
    }[which]
    potential, params = Tersoff.from_file(potentials_dir() / fname, elements)
    pos, cell, species = crystal(**kwargs)
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, 0.2)

    def properties(p):
        ev = evaluate(potential, p, system, nbrs)
        return ev.energy, ev.forces, ev.stress

    props = jax.jit(properties)
    tangents = jax.jit(lambda p, t: jax.jvp(properties, (p,), (t,))[1])
    grad = jax.jit(jax.grad(lambda p: properties(p)[0]))(params)
    checked = []
    for tag, name in _leaf_paths(params):
        value = float(params[tag][name])
        tangent = jax.tree_util.tree_map(jnp.zeros_like, params)
        tangent[tag][name] = jnp.float64(1.0)
        de, dforces, dstress = tangents(params, tangent)
        assert float(de) == pytest.approx(float(grad[tag][name]), rel=1e-12, abs=1e-12)
        h = 1e-5 * abs(value) if value != 0.0 else 1e-5  # relative: β ~ 1e-6
        if float(grad[tag][name]) == 0.0 and not np.any(np.asarray(dforces)):
            if name != "m":  # m is discrete; anything else must not matter here (round-off:
                e0 = float(props(params)[0])  # λ3 = 0 enters as (λ3 Δr)³)
                e_plus = float(props(_shift(params, tag, name, h))[0])
                assert abs(e_plus - e0) <= 1e-12 * abs(e0), (tag, name)
            continue
        plus, minus = props(_shift(params, tag, name, h)), props(_shift(params, tag, name, -h))
        fd = [(np.asarray(u) - np.asarray(v)) / (2 * h) for u, v in zip(plus, minus)]
        scale = max(1.0, abs(float(de)))
        assert float(de) == pytest.approx(float(fd[0]), rel=1e-7, abs=1e-8 * scale), (tag, name)
        fscale = max(1e-3, np.abs(np.asarray(dforces)).max())
        np.testing.assert_allclose(dforces, fd[1], atol=1e-6 * fscale, err_msg=f"{tag} {name}")
        sscale = max(1e-4, np.abs(np.asarray(dstress)).max())
        np.testing.assert_allclose(dstress, fd[2], atol=1e-6 * sscale, err_msg=f"{tag} {name}")
        checked.append((tag, name))
    # Si: all but m.  SiC: λ3 = 0 enters cubed (zero slope), no C–C–C angle in this cell.
    # GaN: all but m and the two-body values on j ≠ k lines, which LAMMPS never reads.
    assert len(checked) == {"Si": 13, "SiC": 64, "GaN": 80}[which]
    if which == "GaN":
        two_body = {"n", "beta", "lambda2", "B", "lambda1", "A"}
        unread = {(t, n) for t in params for n in two_body if t not in ("GaGaGa", "GaNN",
                                                                       "NGaGa", "NNN")}
        assert set(checked) == {(t, n) for t in params for n in params[t] if n != "m"} - unread


def test_padding_is_inert_and_gradients_finite():
    path = potentials_dir() / "SiC.tersoff"
    potential, params = Tersoff.from_file(path, ["Si", "C"])
    pos, cell, species = crystal(**CASES["SiC_zincblende8"][2])
    system = make_system(pos, cell, species)
    plain = evaluate(potential, params, system, potential.neighbor_list(system, 0.3))
    padded = pad_system(system, 13)
    nbrs = potential.neighbor_list(padded, 0.3, capacity=400, triplet_capacity=3000)
    ours = evaluate(potential, params, padded, nbrs)
    assert float(ours.energy) == pytest.approx(float(plain.energy), rel=1e-14)
    np.testing.assert_allclose(ours.forces[:8], plain.forces, atol=1e-12)
    assert np.all(np.asarray(ours.forces)[8:] == 0.0)
    # isolated dimer (ζ = 0: b = 1 branch) and a pair at R + D: finite gradients
    rc = float(params["SiSiSi"]["R"] + params["SiSiSi"]["D"])
    cluster = make_system([[0, 0, 0], [2.3, 0, 0], [0, rc, 0], [10, 0, 0], [12.0, 0, 0]],
                          np.zeros((3, 3)), [0, 1, 0, 0, 0], pbc=(False,) * 3)
    nbrs = potential.neighbor_list(cluster, 0.1)
    g = jax.jit(jax.grad(lambda p, x: potential.energy(p, cluster.replace(positions=x), nbrs),
                         argnums=(0, 1)))(params, cluster.positions)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


# --------------------------------------------------------------------------- files

@pytest.mark.parametrize("fname", ["Si.tersoff", "SiC.tersoff", "GaN.tersoff", "SiCGe.tersoff",
                                   "SiC_1989.tersoff"])
def test_tersoff_file_round_trip(tmp_path, fname):
    entries = read_tersoff_file(potentials_dir() / fname)
    write_tersoff_file(tmp_path / "out.tersoff", entries, header=[f"copy of {fname}"])
    again = read_tersoff_file(tmp_path / "out.tersoff")
    assert list(again) == list(entries)
    assert again == entries


def test_shipped_file_values_and_potential_round_trip(tmp_path):
    entries = read_tersoff_file(potentials_dir() / "SiC.tersoff")
    si_si_c = entries[("Si", "Si", "C")]  # continued over two lines
    assert (si_si_c["m"], si_si_c["c"], si_si_c["R"], si_si_c["D"]) == (3.0, 100390.0, 2.36, 0.15)
    assert entries[("C", "Si", "Si")]["A"] == 1597.3111
    potential, params = Tersoff.from_file(potentials_dir() / "SiC.tersoff", ["Si", "C"])
    assert set(params) == {triplet_tag(*k) for k in product(("Si", "C"), repeat=3)}
    assert potential.cutoff == pytest.approx(3.0)
    text = tersoff_family.FAMILY.parameter_text(potential, params, ["test"])
    (tmp_path / "SiC_again.tersoff").write_text(text)
    potential2, params2 = Tersoff.from_file(tmp_path / "SiC_again.tersoff", ["Si", "C"])
    assert potential2 == potential
    assert all(float(params2[t][n]) == float(params[t][n])
               for t in params for n in TERSOFF_PARAMETERS)
    # the written file is one LAMMPS reads: same energy as the shipped one
    pos, cell, species = crystal(**CASES["SiC_zincblende8"][2])
    shipped = lammps_compute(pos, cell, species, (True,) * 3, "tersoff",
                             [f"* * {potentials_dir() / 'SiC.tersoff'} Si C"])
    written = lammps_compute(pos, cell, species, (True,) * 3, "tersoff",
                             [f"* * {tmp_path / 'SiC_again.tersoff'} Si C"])
    assert written.energy == shipped.energy


def test_tersoff_reader_rejects_what_lammps_rejects():
    line = "Si Si Si 3.0 1.0 1.3258 4.8381 2.0417 0.0 22.956 0.33675 1.3258 95.373 3.0 0.2 " \
           "3.2394 3264.7\n"
    assert read_tersoff_file(line)[("Si", "Si", "Si")]["lambda1"] == 3.2394
    with pytest.raises(ValueError, match="m not 1 or 3"):
        read_tersoff_file(line.replace("Si 3.0 1.0", "Si 2.0 1.0"))
    with pytest.raises(ValueError, match="D > R"):
        read_tersoff_file(line.replace("3.0 0.2 ", "0.1 0.2 "))
    with pytest.raises(ValueError, match="words"):
        read_tersoff_file(line.rstrip() + " 1.0\n")


def test_family_parameter_names_are_the_files():
    """What ``<fit-dof>`` may list is the file's names plus the aliases of h, which name file
    values; the linked and cutoff names are among them."""
    family = tersoff_family
    assert set(family.PARAMETERS) == set(TERSOFF_PARAMETERS) | set(family.ALIASES)
    assert set(family.ALIASES.values()) <= set(TERSOFF_PARAMETERS)
    assert family.PAIR_PARAMETERS | family.CUTOFF_PARAMETERS <= set(TERSOFF_PARAMETERS)
