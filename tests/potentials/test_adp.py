"""ADP against LAMMPS ``pair_style adp`` (Ni.adp, AlCu.adp shipped with LAMMPS), parameter
derivatives of an analytic ADP against finite differences, and adp files in and out (an
analytic ADP exported as a table and run by LAMMPS; tables written and read back)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials.adp import ADP, read_adp, tabulated_adp
from rexfit.export.adp import adp_tables_from_potential, write_adp_file, write_adp_tables
from rexfit.potentials.adp_files import ADPTables, read_adp_file
from rexfit.potentials.functions import Analytic, Poly
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import Case, crystal, make_cases

E_TOL = 1e-9  # eV/atom
F_TOL = 1e-8  # eV/Å
S_TOL = 1e-6  # GPa
W_TOL = 1e-8  # eV (virial, non-periodic cases)

PAD_ATOMS = 32  # one padded shape per model → one compilation per model
CAPACITY = {"Ni": 1536, "AlCu": 2304}  # half-list pair slots


def _lammps(case: Case, path, elements):
    return lammps_compute(case.positions, case.cell, case.species, case.pbc, "adp",
                          [f"* * {path} {' '.join(elements)}"], len(elements))


def _errors(potential, params, case: Case, path, elements, *, half=True, capacity=None):
    """(|ΔE|/N eV, max|ΔF| eV/Å, max|Δσ| GPa or max|ΔW| eV if not periodic) vs LAMMPS."""
    system = pad_system(make_system(case.positions, case.cell, case.species, case.pbc),
                        PAD_ATOMS)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.2, half=half, capacity=capacity)
    ours = evaluate(potential, params, system, nbrs)
    ref = _lammps(case, path, elements)
    n = case.natoms
    assert np.all(np.asarray(ours.forces)[n:] == 0.0)
    if all(case.pbc):
        ds = np.abs(np.asarray(ours.stress) - ref.stress).max() * EV_PER_A3_TO_GPA
    else:
        ds = np.abs(np.asarray(ours.virial) - ref.virial).max()
    return (abs(float(ours.energy) - ref.energy) / n,
            float(np.abs(np.asarray(ours.forces)[:n] - ref.forces).max()), float(ds))


def _assert_parity(errors, case: Case):
    de, df, ds = errors
    assert de < E_TOL and df < F_TOL and ds < (S_TOL if all(case.pbc) else W_TOL), errors


def _crystal_case(name, *args, **kwargs) -> Case:
    pos, cell, species = crystal(*args, **kwargs)
    return Case(name, pos, cell, species, (True,) * 3)


def _vacancy(a, seed) -> Case:
    pos, cell, species = crystal("Ni", a, 2, seed=seed, strain=0.02, rattle=0.08)
    return Case("vacancy", np.delete(pos, 13, axis=0), cell, np.delete(species, 13), (True,) * 3)


def _ni_cases():
    return {c.name: c for c in make_cases(a=3.52, ntypes=1, seed=4) + [_vacancy(3.52, 5)]}


def _alcu_cases():
    rng = np.random.default_rng(6)
    # non-periodic directions are covered by the Ni slab; the AlCu cluster suffices here
    cases = [c for c in make_cases(a=3.95, ntypes=2, seed=6) if c.name != "slab"]
    cases.append(_crystal_case("random_alloy32", "Al", 4.0, 2, seed=7, strain=0.03,
                               rattle=0.12, species=rng.integers(0, 2, 32)))
    return {c.name: c for c in cases}


@pytest.fixture(scope="module")
def ni():
    path = potentials_dir() / "Ni.adp"
    return (*tabulated_adp(read_adp(path), ["Ni"]), path)


@pytest.fixture(scope="module")
def alcu():
    path = potentials_dir() / "AlCu.adp"
    return (*tabulated_adp(read_adp(path), ["Al", "Cu"]), path)


# --------------------------------------------------------------------------- LAMMPS parity

@pytest.mark.parametrize("case_name", list(_ni_cases()))
def test_ni_adp_matches_lammps(ni, case_name):
    potential, params, path = ni
    case = _ni_cases()[case_name]
    _assert_parity(_errors(potential, params, case, path, ["Ni"], capacity=CAPACITY["Ni"]),
                   case)


@pytest.mark.parametrize("case_name", list(_alcu_cases()))
def test_alcu_adp_matches_lammps(alcu, case_name):
    potential, params, path = alcu
    case = _alcu_cases()[case_name]
    _assert_parity(_errors(potential, params, case, path, ["Al", "Cu"],
                           capacity=CAPACITY["AlCu"]), case)


def test_type_mapping_with_repeated_and_reversed_elements(alcu):
    """``pair_coeff * * AlCu.adp Cu Al Cu``: three types, two of them the same element."""
    _, _, path = alcu
    potential, params = tabulated_adp(read_adp(path), ["Cu", "Al", "Cu"])
    rng = np.random.default_rng(8)
    case = _crystal_case("three_types", "Al", 3.95, 2, seed=8, rattle=0.12,
                         species=rng.permutation(np.arange(32) % 3))
    _assert_parity(_errors(potential, params, case, path, ["Cu", "Al", "Cu"],
                           capacity=CAPACITY["AlCu"]), case)


def test_full_neighbour_list_agrees_with_half(alcu):
    potential, params, path = alcu
    case = _alcu_cases()["random_alloy32"]
    _assert_parity(_errors(potential, params, case, path, ["Al", "Cu"], half=False), case)


def test_density_beyond_table_is_held_as_lammps_does(ni):
    """LAMMPS's adp (unlike eam/alloy) keeps F at its last tabulated value above ρ_max."""
    potential, params, path = ni
    tables = read_adp(path)
    case = _crystal_case("compressed", "Ni", 3.52 * 0.58, 1, seed=3)
    nbrs = build_neighbor_list(make_system(case.positions, case.cell), tables.cutoff, 0.0,
                               half=False)
    d = case.positions[nbrs.j] - case.positions[nbrs.i] + np.asarray(nbrs.shifts) @ case.cell
    r = np.linalg.norm(d, axis=1)[np.asarray(nbrs.mask)]
    grid = np.arange(tables.nr) * tables.dr
    rho = np.interp(r[r < tables.cutoff], grid, tables.rho["Ni"]).sum() / case.natoms
    assert rho > 1.1 * (tables.nrho - 1) * tables.drho  # mean density well above the table
    _assert_parity(_errors(potential, params, case, path, ["Ni"], capacity=CAPACITY["Ni"]),
                   case)


# --------------------------------------------------------------------------- analytic ADP

RC = 5.5  # Å


def _screened(kind):
    """An analytic function times x⁴/(1 + x⁴), x = (r − RC)/h: smooth to third order at RC."""
    screen = Analytic(cutoff=RC, screening=None, kind="XpowN-cutoff")
    return Analytic(cutoff=RC, screening=screen, kind=kind)


def _morse(A, B, lam, mu, h):
    return {"A": A, "B": B, "lambda": lam, "mu": mu, "delta": 0.0,
            "screening": {"h": h, "N": 4.0}}


def _gauss(pre, eta, mu, h):
    return {"prefactor": pre, "eta": eta, "mu": mu, "screening": {"h": h, "N": 4.0}}


def analytic_adp() -> tuple[ADP, dict]:
    """Two species ("Al", "Cu"); one u function shared by all pairs, w of two kinds."""
    morse, gauss = _screened("morse-C"), _screened("gaussian")
    poly = Poly(cutoff=None, screening=None, powers=(1, 2, 3))
    potential = ADP.create(
        2, RC,
        pair={(0, 0): ("phi_AlAl", morse), (1, 0): ("phi_AlCu", morse),
              (1, 1): ("phi_CuCu", morse)},
        density={0: ("rho_Al", gauss), 1: ("rho_Cu", gauss)},
        embedding={0: ("F_Al", poly), 1: ("F_Cu", poly)},
        u={(0, 0): ("u", gauss), (0, 1): ("u", gauss), (1, 1): ("u", gauss)},
        w={(0, 0): ("w_AlAl", gauss), (0, 1): ("w_AlCu", morse), (1, 1): ("w_CuCu", gauss)},
    )
    params = {
        "phi_AlAl": _morse(600.0, 12.0, 3.2, 1.4, 1.5),
        "phi_AlCu": _morse(900.0, 15.0, 3.3, 1.45, 1.4),
        "phi_CuCu": _morse(1200.0, 18.0, 3.4, 1.5, 1.3),
        "rho_Al": _gauss(0.09, 0.25, 1.8, 1.6),
        "rho_Cu": _gauss(0.06, 0.3, 1.6, 1.5),
        "F_Al": {"coeff[1]": -3.0, "coeff[2]": 0.8, "coeff[3]": -0.05},
        "F_Cu": {"coeff[1]": -4.0, "coeff[2]": 1.2, "coeff[3]": -0.1},
        "u": _gauss(0.04, 0.4, 2.6, 1.5),
        "w_AlAl": _gauss(0.02, 0.5, 2.7, 1.4),
        "w_AlCu": _morse(0.5, 0.1, 1.6, 0.9, 1.6),
        "w_CuCu": _gauss(-0.03, 0.45, 2.5, 1.5),
    }
    return potential, jax.tree_util.tree_map(jnp.float64, params)


def _shifted(params, path, delta):
    return jax.tree_util.tree_map_with_path(lambda p, v: v + delta if p == path else v, params)


def test_analytic_parameter_gradients_match_finite_differences():
    """∂E/∂p, ∂F/∂p and ∂σ/∂p for every parameter against central differences."""
    potential, params = analytic_adp()
    pos, cell, species = crystal("Al", 3.95, 1, seed=9, strain=0.03, rattle=0.15,
                                 species=[0, 1, 1, 0])
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, RC, 0.2)

    def properties(p):
        ev = evaluate(potential, p, system, nbrs)
        return ev.energy, ev.forces, ev.stress

    # one compiled function: (E, F, σ) and their derivatives along a parameter direction
    jvp = jax.jit(lambda p, t: jax.jvp(properties, (p,), (t,)))
    grad = jax.jit(jax.grad(potential.energy))(params, system, nbrs)  # reverse mode
    assert float(potential.angular_energy(params, system, nbrs)) / 4 > 0.005  # ADP matters
    values = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    flat_grad = dict(jax.tree_util.tree_flatten_with_path(grad)[0])
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    for path, value in values.items():
        name = jax.tree_util.keystr(path)
        de, dforces, dstress = jvp(params, _shifted(zero, path, 1.0))[1]
        assert float(de) == pytest.approx(float(flat_grad[path]), rel=1e-12, abs=1e-12), name
        assert abs(float(de)) > 0.0, name  # every parameter matters in this cell
        h = 1e-5 * abs(float(value)) if float(value) != 0.0 else 1e-6
        plus = jvp(_shifted(params, path, h), zero)[0]
        minus = jvp(_shifted(params, path, -h), zero)[0]
        fd = [(np.asarray(a) - np.asarray(b)) / (2 * h) for a, b in zip(plus, minus)]
        assert float(de) == pytest.approx(float(fd[0]), rel=1e-7, abs=1e-8), name
        fscale = max(1e-3, np.abs(np.asarray(dforces)).max())
        np.testing.assert_allclose(dforces, fd[1], atol=1e-6 * fscale, err_msg=name)
        sscale = max(1e-4, np.abs(np.asarray(dstress)).max())
        np.testing.assert_allclose(dstress, fd[2], atol=1e-6 * sscale, err_msg=name)
    assert len(values) == 59


def test_padding_is_inert_and_gradients_finite():
    """Padding atoms and pairs change nothing; a lone atom (ρ = μ = λ = 0) and a pair exactly
    at the cutoff give finite gradients.  (The LAMMPS tests above all run padded too.)"""
    potential, params = analytic_adp()
    cluster = make_system([[0, 0, 0], [2.5, 0.3, 0], [0.2, RC, 0], [20, 0, 0], [1.2, 1.9, 0.4]],
                          np.zeros((3, 3)), [0, 1, 1, 0, 1], pbc=(False,) * 3)
    plain = jax.jit(potential.energy)(params, cluster, build_neighbor_list(cluster, RC, 0.1))
    padded = pad_system(cluster, 8)
    nbrs = build_neighbor_list(padded, RC, 0.1, capacity=64)
    energy, (g_params, g_x) = jax.jit(jax.value_and_grad(
        lambda p, x: potential.energy(p, padded.replace(positions=x), nbrs), argnums=(0, 1)))(
        params, padded.positions)
    assert float(energy) == pytest.approx(float(plain), rel=1e-14)
    assert np.all(np.asarray(g_x)[5:] == 0.0) and np.all(np.asarray(g_x)[3] == 0.0)
    leaves = jax.tree_util.tree_leaves((g_params, g_x))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)


def test_eam_part_and_zero_angular_functions():
    """With u = w = 0 the ADP is its EAM part; in a perfect cubic crystal μ = 0 and the
    quadrupole terms cancel (½ λ:λ = ν²/6 for λ ∝ identity)."""
    potential, params = analytic_adp()
    pos, cell, species = crystal("Al", 3.95, 1, seed=11, rattle=0.1, species=[0, 1, 1, 0])
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, RC, 0.2)
    zeroed = dict(params, u=dict(params["u"], prefactor=jnp.float64(0.0)),
                  w_AlAl=dict(params["w_AlAl"], prefactor=jnp.float64(0.0)),
                  w_AlCu=dict(params["w_AlCu"], A=jnp.float64(0.0), B=jnp.float64(0.0)),
                  w_CuCu=dict(params["w_CuCu"], prefactor=jnp.float64(0.0)))
    assert float(potential.energy(zeroed, system, nbrs)) == pytest.approx(
        float(potential.eam.energy(params, system, nbrs)), rel=1e-14)
    pos, cell, _ = crystal("Al", 3.95, 1, strain=0.0, rattle=0.0)
    perfect = make_system(pos, cell, [0, 0, 0, 0])
    assert abs(float(potential.angular_energy(params, perfect,
                                              build_neighbor_list(perfect, RC, 0.2)))) < 1e-14


# --------------------------------------------------------------------------- export

def _export_case() -> Case:
    rng = np.random.default_rng(12)
    return _crystal_case("export", "Al", 3.9, 2, seed=12, strain=0.03, rattle=0.12,
                         species=rng.integers(0, 2, 32))


@pytest.mark.parametrize("n, tol", [(2000, (1e-11, 1e-8, 1e-7)), (10000, (1e-13, 1e-10, 1e-9))])
def test_exported_table_run_by_lammps_matches_analytic(tmp_path, n, tol):
    """Analytic ADP → adp file (Nr = Nrho = n, cutoff on the grid) → LAMMPS, against rexfit's
    analytic values.  Measured (this model): n = 2000: 2.5e-12 eV/atom, 5e-9 eV/Å, 5e-9 GPa;
    n = 10000: ≤1e-15 eV/atom, 4e-11 eV/Å, 6e-11 GPa (interpolation error ∝ n⁻⁴ in E)."""
    potential, params = analytic_adp()
    case = _export_case()
    path = tmp_path / "AlCu_fit.adp"
    write_adp_file(path, potential, params, ["Al", "Cu"], n, RC / (n - 1), n, 4.0 / (n - 1))
    de, df, ds = _errors(potential, params, case, path, ["Al", "Cu"])
    assert de < tol[0] and df < tol[1] and ds < tol[2], (de, df, ds)


@pytest.mark.parametrize("fname, elements", [("Ni.adp", ["Ni"]), ("AlCu.adp", ["Al", "Cu"])])
def test_tables_written_and_read_back_are_identical(tmp_path, fname, elements):
    tables = read_adp(potentials_dir() / fname)
    write_adp_tables(tmp_path / fname, tables)
    again = read_adp_file(tmp_path / fname)
    assert again.same_as(tables)
    assert again.pairs() == [(a, b) for k, a in enumerate(elements) for b in elements[:k + 1]]
    case = _crystal_case("rewritten", "Al", 3.95, 1, seed=13, species=[0, 0, 0, 0])
    assert (_lammps(case, tmp_path / fname, elements).energy
            == _lammps(case, potentials_dir() / fname, elements).energy)


def test_shipped_file_contents_and_params_names():
    tables = read_adp(potentials_dir() / "AlCu.adp")
    assert tables.elements == ("Al", "Cu") and tables.numbers == (13, 29)
    assert tables.masses == (26.982, 63.546) and tables.info[1] == ("0.3615000000E+01", "fcc")
    assert (tables.nrho, tables.nr, tables.cutoff) == (10000, 10000, 6.287210)
    assert list(tables.u2r) == [("Al", "Al"), ("Cu", "Al"), ("Cu", "Cu")]
    potential, params = tabulated_adp(tables, ["Al", "Cu"])
    assert set(params) == {"F_Al", "F_Cu", "rho_Al", "rho_Cu", "z2r_Al_Al", "z2r_Cu_Al",
                           "z2r_Cu_Cu", "u_Al_Al", "u_Cu_Al", "u_Cu_Cu", "w_Al_Al", "w_Cu_Al",
                           "w_Cu_Cu"}
    assert potential.cutoff == 6.287210 and potential.n_species == 2
    assert np.array_equal(params["w_Cu_Al"]["values"], tables.w2r[("Cu", "Al")])


def test_export_rejects_what_a_file_cannot_hold(tmp_path):
    potential, params = analytic_adp()
    with pytest.raises(ValueError, match="before the cutoff"):
        adp_tables_from_potential(potential, params, ["Al", "Cu"], 100, 0.05, 100, 0.05)
    with pytest.raises(ValueError, match="2 element names|1 element names"):
        adp_tables_from_potential(potential, params, ["Al"], 200, 0.05, 100, 0.05)
    gauss = _screened("gaussian")
    receiving = ADP.create(2, RC, {}, {(0, 0): ("a", gauss), (1, 0): ("b", gauss)}, {}, {}, {})
    rp = {"a": params["rho_Al"], "b": params["rho_Cu"]}
    with pytest.raises(ValueError, match="depends on the receiving species"):
        adp_tables_from_potential(receiving, rp, ["Al", "Cu"], 200, 0.05, 100, 0.05)


def test_export_of_functions_singular_at_the_origin():
    inverse = Poly(cutoff=None, screening=None, powers=(-1,))  # c/x: infinite at 0
    potential = ADP.create(1, 3.0, {(0, 0): ("phi", inverse)}, {0: ("rho", inverse)},
                           {0: ("F", inverse)}, {}, {})
    params = {"phi": {"coeff[-1]": 2.0}, "rho": {"coeff[-1]": 1.0}, "F": {"coeff[-1]": 1.0}}
    tables = adp_tables_from_potential(potential, params, ["Ni"], 31, 0.1, 10, 0.5)
    np.testing.assert_allclose(tables.z2r[("Ni", "Ni")], 2.0, rtol=1e-15)  # r·φ = 2
    assert tables.rho["Ni"][0] == 2 * 10.0 - 5.0 and tables.F["Ni"][0] == 2 * 2.0 - 1.0
    assert np.all(tables.u2r[("Ni", "Ni")] == 0.0)  # no u function: zero
    params["u"] = _gauss(1.0, -500.0, 0.0, 1.0)  # exp(+500 r²) overflows
    potential = ADP.create(1, 3.0, {}, {}, {}, {(0, 0): ("u", _screened("gaussian"))}, {})
    with pytest.raises(ValueError, match="u of Ni-Ni is not finite at grid point"):
        adp_tables_from_potential(potential, params, ["Ni"], 31, 0.1, 10, 0.5)


def test_create_checks_mappings():
    gauss = _screened("gaussian")
    with pytest.raises(ValueError, match="given twice"):
        ADP.create(2, RC, {(0, 1): ("a", gauss), (1, 0): ("b", gauss)}, {}, {}, {}, {})
    with pytest.raises(ValueError, match="out of"):
        ADP.create(2, RC, {}, {}, {}, {(0, 2): ("u", gauss)}, {})
    adp = ADP.create(2, RC, {}, {1: ("rho", gauss), (1, 1): ("rho", gauss)}, {}, {}, {})
    assert dict(adp.density) == {(0, 1): ("rho", gauss), (1, 1): ("rho", gauss)}
    assert adp == ADP.create(2, RC, {}, {(1, 1): ("rho", gauss), 1: ("rho", gauss)}, {}, {},
                             {})
    hash(adp)


# --------------------------------------------------------------------------- malformed files

def _small_tables() -> ADPTables:
    r = np.linspace(1.0, 0.0, 6)
    return ADPTables(("Ni",), (28,), (58.69,), 6, 0.5, 6, 1.0, 5.0, {"Ni": -r}, {"Ni": r},
                     {("Ni", "Ni"): r}, {("Ni", "Ni"): 0.1 * r}, {("Ni", "Ni"): 0.2 * r},
                     (("3.52", "fcc"),), ("a", "b", "c"))


@pytest.mark.parametrize("edit, line, message", [
    (lambda ls: ls[:12], 12, "unexpected end of file"),
    (lambda ls: ls[:3] + ["2 Ni"] + ls[4:], 4, "expected 'N el_1"),
    (lambda ls: ls[:4] + ["6 0.5 6 1.0"] + ls[5:], 5, "Nrho drho Nr dr cutoff"),
    (lambda ls: ls[:4] + ["3 0.5 6 1.0 5.0"] + ls[5:], 5, "at least 5"),
    (lambda ls: ls[:5] + ["28"] + ls[6:], 6, "'Z mass a0 lattice'"),
    (lambda ls: ls[:6] + [ls[6].replace(" ", " 1.0x ", 1)] + ls[7:], 7, "bad number '1.0x'"),
    (lambda ls: ls[:7] + [ls[7] + " 0.0"] + ls[8:], 8, "values more than"),
    (lambda ls: ls + ["1.0"], 17, "after the last w table"),
])
def test_malformed_files_name_path_and_line(tmp_path, edit, line, message):
    path = tmp_path / "good.adp"
    write_adp_tables(path, _small_tables())
    assert read_adp_file(path).same_as(_small_tables())
    lines = path.read_text().splitlines()
    assert len(lines) == 16  # 5 header, 1 + 2 + 2 (element), 3 × 2 (pair tables)
    bad = tmp_path / "bad.adp"
    bad.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(ValueError, match=message) as info:
        read_adp_file(bad)
    assert str(info.value).startswith(f"{bad}:{line}:"), str(info.value)
