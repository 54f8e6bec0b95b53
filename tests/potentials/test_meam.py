"""Spline-MEAM against LAMMPS ``pair_style meam/spline`` (Ti, Si and TiO files shipped with
LAMMPS), parameter derivatives against finite differences, the meam/spline reader/writer and
the export of analytic MEAM potentials to LAMMPS splines."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from rexfit import expr as ex
from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials.functions import Analytic, Poly, Spline, UserFunction
from rexfit.potentials.meam import MEAM, MEAMSpline, export_splines
from rexfit.export.meam import write_meam_file, write_meam_spline
from rexfit.potentials.meam_files import (
    MEAMFileError,
    MEAMSplineFile,
    SplineData,
    clamped_second_derivatives,
    read_meam_spline,
)
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

E_TOL = 1e-9  # eV/atom
F_TOL = 1e-8  # eV/Å
S_TOL = 1e-6  # GPa


def lammps_errors(potential, params, structure, path, elements, skin=0.3):
    """(|ΔE|/N eV, max|ΔF| eV/Å, max|Δσ| GPa) of rexfit vs LAMMPS ``meam/spline``."""
    pos, cell, species = structure
    system = make_system(pos, cell, species)
    ours = evaluate(potential, params, system, potential.neighbor_list(system, skin))
    ref = lammps_compute(pos, cell, species, (True,) * 3, "meam/spline",
                         [f"* * {path} {' '.join(elements)}"], len(elements))
    return (abs(float(ours.energy) - ref.energy) / len(pos),
            float(np.abs(np.asarray(ours.forces) - ref.forces).max()),
            float(np.abs(np.asarray(ours.stress) - ref.stress).max() * EV_PER_A3_TO_GPA))


def ti_o_structure(seed=4):
    """16-atom strained, rattled hcp cell (smaller than twice the cutoff) with random Ti/O."""
    pos, cell, _ = crystal("Ti", 2.95, 2, "hcp", c=4.68, cubic=False, seed=seed)
    species = np.random.default_rng(seed).integers(0, 2, len(pos))
    species[:2] = (0, 1)
    return pos, cell, species


# --------------------------------------------------------------------------- LAMMPS parity

CASES = {
    "Ti_hcp16": ("Ti.meam.spline", ["Ti"],
                 dict(name="Ti", a=2.95, repeat=2, symbols="hcp", c=4.68, cubic=False, seed=1)),
    "Ti_hcp2_strong": ("Ti.meam.spline", ["Ti"],  # 2 atoms, cell ≪ cutoff: images of itself
                       dict(name="Ti", a=2.95, symbols="hcp", c=4.68, cubic=False, seed=2,
                            strain=0.05, rattle=0.15)),
    "Si_diamond8": ("Si_1.meam.spline", ["Si"], dict(name="Si", a=5.431, seed=3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_single_element_files_match_lammps(case):
    fname, elements, kw = CASES[case]
    path = potentials_dir() / fname
    potential, params = MEAM.from_file(path, elements)
    errors = lammps_errors(potential, params, crystal(**kw), path, elements)
    assert errors[0] < E_TOL and errors[1] < F_TOL and errors[2] < S_TOL, errors


def test_two_element_file_matches_lammps():
    path = potentials_dir() / "TiO.meam.spline"
    potential, params = MEAM.from_file(path, ["Ti", "O"])
    assert potential.cutoff == 5.5 and potential.f_reach == ((4.41, 5.5), (4.41, 5.5))
    errors = lammps_errors(potential, params, ti_o_structure(), path, ["Ti", "O"])
    assert errors[0] < E_TOL and errors[1] < F_TOL and errors[2] < S_TOL, errors
    # species s ↦ elements[s]: the same physical system with the element order swapped
    swapped, swapped_params = MEAM.from_file(path, ["O", "Ti"])
    pos, cell, species = ti_o_structure()
    one = make_system(pos, cell, species)
    two = make_system(pos, cell, 1 - species)
    e1 = evaluate(potential, params, one, potential.neighbor_list(one, 0.3)).energy
    e2 = jax.jit(swapped.energy)(swapped_params, two, swapped.neighbor_list(two, 0.3))
    assert float(e2) == pytest.approx(float(e1), rel=1e-13)


# --------------------------------------------------------------------------- derivatives

def test_parameter_gradients_match_finite_differences():
    """∂E/∂p, ∂F/∂p, ∂σ/∂p along random directions in the TiO parameter space (all values and
    end slopes of all 12 splines) against central differences; ∇E·t against the jvp."""
    potential, params = MEAM.from_file(potentials_dir() / "TiO.meam.spline", ["Ti", "O"])
    pos, cell, species = ti_o_structure()
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, 0.3)

    def properties(p):
        ev = evaluate(potential, p, system, nbrs)  # jitted; compiled by the parity test
        return ev.energy, ev.forces, ev.stress

    tangents = jax.jit(lambda p, t: jax.jvp(properties, (p,), (t,))[1])
    grad = jax.jit(jax.grad(lambda p: potential.energy(p, system, nbrs)))(params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(0)
    for _ in range(3):
        t = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(rng.normal(size=np.shape(x))) for x in leaves])
        de, dforces, dstress = tangents(params, t)
        dot = sum(float(jnp.vdot(g, v)) for g, v in zip(jax.tree_util.tree_leaves(grad),
                                                        jax.tree_util.tree_leaves(t)))
        assert float(de) == pytest.approx(dot, rel=1e-11)
        h = 1e-5
        plus = properties(jax.tree_util.tree_map(lambda x, v: x + h * v, params, t))
        minus = properties(jax.tree_util.tree_map(lambda x, v: x - h * v, params, t))
        fd = [(np.asarray(u) - np.asarray(v)) / (2 * h) for u, v in zip(plus, minus)]
        assert float(de) == pytest.approx(float(fd[0]), rel=1e-7, abs=1e-8)
        np.testing.assert_allclose(dforces, fd[1], atol=1e-6 * np.abs(fd[1]).max())
        np.testing.assert_allclose(dstress, fd[2], atol=1e-6 * np.abs(fd[2]).max())


def test_padding_is_inert_and_gradients_finite():
    potential, params = MEAM.from_file(potentials_dir() / "Ti.meam.spline", ["Ti"])
    pos, cell, species = crystal(**CASES["Ti_hcp2_strong"][2])  # evaluate() compiled already
    system = make_system(pos, cell, species)
    plain = evaluate(potential, params, system, potential.neighbor_list(system, 0.3))
    padded = pad_system(system, 5)
    nbrs = potential.neighbor_list(padded, 0.3, capacity=1024, triplet_capacity=16384)
    ours = evaluate(potential, params, padded, nbrs)
    assert float(ours.energy) == pytest.approx(float(plain.energy), rel=1e-14)
    np.testing.assert_allclose(ours.forces[:2], plain.forces, atol=1e-13)
    assert np.all(np.asarray(ours.forces)[2:] == 0.0)
    np.testing.assert_allclose(ours.stress, plain.stress, atol=1e-14)
    # a trimer with legs at the cutoff and at the f reach: finite gradients everywhere
    rc = potential.cutoff
    cluster = make_system([[0, 0, 0], [rc - 1e-9, 0, 0], [0, 4.41, 0], [0, 0, 2.0]],
                          np.zeros((3, 3)), pbc=(False,) * 3)
    nbrs = potential.neighbor_list(cluster, 0.1)
    g = jax.jit(jax.grad(lambda p, x: potential.energy(p, cluster.replace(positions=x), nbrs),
                         argnums=(0, 1)))(params, cluster.positions)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


# --------------------------------------------------------------------------- the spline

def test_spline_is_the_clamped_cubic_spline_with_linear_tails():
    knots = np.linspace(1.5, 4.5, 9)
    rng = np.random.default_rng(1)
    values, d0, d1 = rng.normal(size=9), -2.0, 0.7
    fn = MEAMSpline(tuple(knots))
    p = {"values": jnp.asarray(values), "derivative-left": d0, "derivative-right": d1}
    ref = CubicSpline(knots, values, bc_type=((1, d0), (1, d1)))
    x = np.linspace(1.5, 4.5, 301)
    np.testing.assert_allclose(jax.jit(fn)(p, x), ref(x), rtol=0, atol=1e-13)
    slope = jax.jit(jax.vmap(jax.grad(lambda y: fn(p, y))))
    np.testing.assert_allclose(slope(jnp.asarray(x[1:-1])),
                               ref(x[1:-1], 1), atol=1e-12)
    np.testing.assert_allclose(jax.jit(fn)(p, np.array([0.5, 6.0])),
                               [values[0] - d0, values[-1] + 1.5 * d1], atol=1e-14)
    np.testing.assert_allclose(jax.jit(fn.second_derivatives)(p), ref(knots, 2), atol=1e-11)
    np.testing.assert_allclose(clamped_second_derivatives(knots, values, d0, d1),
                               ref(knots, 2), atol=1e-11)
    # rexfit's atomicrex-style Spline is the same function on equally spaced knots
    atomicrex = Spline(cutoff=None, screening=None, knots=tuple(knots))
    nodes = {f"node[{k:g}].y": v for k, v in zip(knots, values)}
    wide = np.linspace(0.0, 6.0, 241)
    np.testing.assert_allclose(
        jax.jit(atomicrex)({**nodes, "derivative-left": d0, "derivative-right": d1}, wide),
        jax.jit(fn)(p, wide), rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="increasing"):
        MEAMSpline((1.0, 1.0))
    with pytest.raises(ValueError, match="equally spaced"):
        MEAMSpline((1.0, 1.5, 3.0))


# --------------------------------------------------------------------------- files

def test_written_files_round_trip_through_lammps(tmp_path):
    """Perturbed TiO parameters → multi-element file → LAMMPS and rexfit agree; the file
    reads back bit for bit; nonzero tails beyond the last knots (linear continuation up to
    the cutoff) agree too; Ti written in the old layout reads back in LAMMPS."""
    path = potentials_dir() / "TiO.meam.spline"
    potential, params = MEAM.from_file(path, ["Ti", "O"])
    rng = np.random.default_rng(2)

    def perturb(key, p, tails=False):
        values = np.asarray(p["values"]) * (1 + 0.05 * rng.normal(size=p["values"].shape))
        out = {"values": jnp.asarray(values),
               "derivative-left": p["derivative-left"] * 1.1,
               "derivative-right": p["derivative-right"] * 0.9}
        if tails and key[:2] in ("ph", "rh", "f_"):  # φ, ρ, f nonzero beyond their last knot
            out["values"] = out["values"].at[-1].add(0.01)
            out["derivative-right"] = out["derivative-right"] - 0.05
        return out

    perturbed = {k: perturb(k, v) for k, v in params.items()}
    written = tmp_path / "TiO_perturbed.meam.spline"
    write_meam_file(written, potential, perturbed, ["Ti", "O"], comment="rexfit test")
    again, again_params = MEAM.from_file(written, ["Ti", "O"])
    assert again == potential
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda x, y: bool(jnp.all(x == y)), perturbed, again_params))
    errors = lammps_errors(potential, perturbed, ti_o_structure(), written, ["Ti", "O"])
    assert errors[0] < 1e-8 and errors[1] < 1e-8 and errors[2] < S_TOL, errors

    with_tails = {k: perturb(k, v, tails=True) for k, v in params.items()}
    with pytest.raises(ValueError, match="f_reach"):  # f is pruned at its last knot
        write_meam_file(tmp_path / "refused.meam.spline", potential, with_tails, ["Ti", "O"])
    unpruned, _ = MEAM.from_file(path, ["Ti", "O"], prune_f=False)
    assert unpruned.f_reach == ((5.5, 5.5), (5.5, 5.5))
    written = tmp_path / "TiO_tails.meam.spline"
    write_meam_file(written, unpruned, with_tails, ["Ti", "O"])
    errors = lammps_errors(unpruned, with_tails, ti_o_structure(), written, ["Ti", "O"])
    assert errors[0] < 1e-8 and errors[1] < 1e-8 and errors[2] < S_TOL, errors

    ti, ti_params = MEAM.from_file(potentials_dir() / "Ti.meam.spline", ["Ti"])
    old = tmp_path / "Ti_old.meam.spline"
    write_meam_file(old, ti, ti_params, ["Ti"], old_format=True)
    assert read_meam_spline(old).old_format
    again, again_params = MEAM.from_file(old, ["Ti"])
    assert again == ti
    errors = lammps_errors(ti, ti_params, crystal(**CASES["Ti_hcp16"][2]), old, ["Ti"])
    assert errors[0] < 1e-8 and errors[1] < 1e-8, errors


def test_reader_reads_both_layouts_and_rejects_malformed_files(tmp_path):
    ti = read_meam_spline(potentials_dir() / "Ti.meam.spline")
    assert ti.old_format and ti.elements == () and ti.cutoff == 5.5
    assert [len(s.knots) for s in (*ti.phi, *ti.rho, *ti.U, *ti.f, *ti.g)] == [13, 11, 4, 10, 8]
    assert ti.rho[0].derivative_left == -1.0 and ti.phi[0].values[0] == 3.744277175966389349
    tio = read_meam_spline(potentials_dir() / "TiO.meam.spline")
    assert tio.elements == ("Ti", "O") and len(tio.phi) == 3 and len(tio.g) == 3
    assert tio.phi[1].knots[0] == 1.9 and tio.U[1].cutoff == 8.28193

    good = ("# test UNITS: metal\nmeam/spline 1 X\n"
            + "".join("spline3eq\n3\n0 0\n1.0 1 0\n2.0 0.5 0 # comment\n\n3.0 0 0\n"
                      for _ in range(5)))
    assert read_meam_spline(good).phi[0].values[1] == 0.5
    cases = {
        "metal": good.replace("metal", "real"),
        "off the uniform grid": good.replace("2.0 0.5", "2.1 0.5", 1),
        "at least 2 knots": good.replace("3\n0 0", "1\n0 0", 1),
        "integer": good.replace("3\n0 0", "three\n0 0", 1),
        "number": good.replace("1.0 1 0", "1.0 one 0", 1),
        "spline3eq": good.replace("spline3eq", "spline", 1),
        "end of file": good[:-20],
        "element names": good.replace("meam/spline 1 X", "meam/spline 2 X"),
    }
    for message, text in cases.items():
        with pytest.raises(MEAMFileError, match=message) as info:
            read_meam_spline(text)
        assert isinstance(info.value, ValueError)
    bad = tmp_path / "bad.meam.spline"
    bad.write_text(cases["number"])
    with pytest.raises(ValueError, match=r"bad.meam.spline:6: .*one"):
        read_meam_spline(bad)
    with pytest.raises(ValueError, match="not in the meam/spline file"):
        MEAM.from_file(potentials_dir() / "TiO.meam.spline", ["Ti", "C"])
    with pytest.raises(ValueError, match="one element"):
        MEAM.from_file(potentials_dir() / "Ti.meam.spline", ["Ti", "O"])
    uneven = SplineData(np.array([1.0, 1.5, 3.0]), np.zeros(3), 0.0, 0.0)
    with pytest.raises(ValueError, match="uniform"):
        write_meam_spline(tmp_path / "x", MEAMSplineFile(("X",), *[(uneven,)] * 5))


# --------------------------------------------------------------------------- analytic MEAM

def analytic_meam():
    """A two-species MEAM of user functions, predefined kinds, a polynomial and an atomicrex
    spline, with smooth cutoffs (f vanishes at 4.2 Å, everything else at 5.0 Å)."""
    screen = Analytic(cutoff=5.0, screening=None, kind="XpowN-cutoff")
    screen_f = Analytic(cutoff=4.2, screening=None, kind="XpowN-cutoff")
    sp = {"h": jnp.float64(1.2), "N": jnp.float64(4.0)}
    morse = UserFunction(cutoff=None, screening=screen,
                         expression=ex.parse("A*exp(-2*a*(r-r0)) - 2*A*exp(-a*(r-r0))"),
                         param_names=("A", "a", "r0"))
    dens = UserFunction(cutoff=None, screening=screen, expression=ex.parse("c*exp(-b*r)"),
                        param_names=("c", "b"))
    radial_f = Analytic(cutoff=None, screening=screen_f, kind="gaussian")
    angular = Poly(cutoff=None, screening=None, powers=(0, 1, 2))
    embed = Poly(cutoff=None, screening=None, powers=(0, 1, 2))
    knots = tuple(np.linspace(-1.0, 1.0, 6))
    g_spline = Spline(cutoff=None, screening=None, knots=knots)
    params = {
        "V_AA": {"A": 0.4, "a": 1.4, "r0": 2.6, "screening": sp},
        "V_AB": {"A": 0.3, "a": 1.3, "r0": 2.8, "screening": sp},
        "V_BB": {"A": 0.5, "a": 1.5, "r0": 2.5, "screening": sp},
        "rho_A": {"c": 3.0, "b": 1.1, "screening": sp},
        "rho_B": {"c": 2.0, "b": 0.9, "screening": sp},
        "f_A": {"prefactor": 1.0, "eta": 0.4, "mu": 2.5, "screening": sp},
        "f_B": {"prefactor": 0.7, "eta": 0.3, "mu": 2.7, "screening": sp},
        "g_AA": {"coeff[0]": 0.2, "coeff[1]": -0.3, "coeff[2]": 0.5},
        "g_AB": {**{f"node[{k:g}].y": 0.1 * np.cos(3 * k) for k in knots},
                 "derivative-left": 0.3, "derivative-right": -0.2},
        "g_BB": {"coeff[0]": -0.1, "coeff[1]": 0.2, "coeff[2]": 0.3},
        "U_A": {"coeff[0]": 0.7, "coeff[1]": -0.9, "coeff[2]": 0.04},
        "U_B": {"coeff[0]": -0.2, "coeff[1]": -0.6, "coeff[2]": 0.03},
    }
    params = jax.tree_util.tree_map(jnp.float64, params)
    potential = MEAM.create(
        2, 5.0,
        pair={(0, 0): ("V_AA", morse), (0, 1): ("V_AB", morse), (1, 1): ("V_BB", morse)},
        density={0: ("rho_A", dens), 1: ("rho_B", dens)},
        f={0: ("f_A", radial_f), 1: ("f_B", radial_f)},
        g={(0, 0): ("g_AA", angular), (0, 1): ("g_AB", g_spline), (1, 1): ("g_BB", angular)},
        embedding={0: ("U_A", embed), 1: ("U_B", embed)})
    return potential, params


def test_analytic_meam_forces_are_energy_gradients_and_export_to_lammps(tmp_path):
    potential, params = analytic_meam()
    assert potential.f_reach == ((4.2, 4.2), (4.2, 4.2))
    pos, cell, _ = crystal("Cu", 3.7, 1, "fcc", seed=6, strain=0.03, rattle=0.12)
    pos, cell = np.concatenate([pos, pos + 0.5 * cell[0]]), cell @ np.diag([2.0, 1.0, 1.0])
    species = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, 0.3)
    ours = evaluate(potential, params, system, nbrs)
    def energy(x):  # evaluate() is compiled for these shapes already
        return evaluate(potential, params, system.replace(positions=x), nbrs).energy

    h = 1e-5
    for atom, axis in [(0, 0), (1, 1), (2, 2), (5, 0), (7, 1)]:
        step = jnp.zeros_like(system.positions).at[atom, axis].set(h)
        fd = -(energy(system.positions + step) - energy(system.positions - step)) / (2 * h)
        assert float(ours.forces[atom, axis]) == pytest.approx(float(fd), abs=1e-8)

    # export: the g_AB atomicrex spline is copied exactly, the rest sampled
    exported, ex_params = export_splines(potential, params, 400, r_min=1.5,
                                         rho_range=(0.0, 14.0), elements=["A", "B"])
    assert exported.cutoff == 5.0 and exported.f_reach == ((4.2, 4.2), (4.2, 4.2))
    assert len(dict(exported.g)[(0, 0, 1)][1].knots) == 6
    spline_ev = evaluate(exported, ex_params, system, exported.neighbor_list(system, 0.3))
    de = abs(float(spline_ev.energy - ours.energy)) / len(pos)
    df = float(np.abs(np.asarray(spline_ev.forces - ours.forces)).max())
    assert de < 1e-6 and df < 1e-4, (de, df)  # the export's approximation error
    path = tmp_path / "AB.meam.spline"
    write_meam_file(path, exported, ex_params, ["A", "B"])
    errors = lammps_errors(exported, ex_params, (pos, cell, species), path, ["A", "B"])
    assert errors[0] < E_TOL and errors[1] < F_TOL and errors[2] < S_TOL, errors
    with pytest.raises(ValueError, match="export_splines"):
        write_meam_file(tmp_path / "no.meam.spline", potential, params, ["A", "B"])
