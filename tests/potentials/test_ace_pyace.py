"""ACE against pyace (PyPI python-ace): bases built by pyace, random coefficients written by
rexfit's YAML writer and read by both, and the C-tilde .yace file rexfit writes read by pyace;
energies, forces and stress on small rattled/triclinic cells, a cell narrower than twice the
cutoff and a cluster."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pyace = pytest.importorskip("pyace")

from ase import Atoms  # noqa: E402

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate  # noqa: E402
from rexfit.potentials.ace.files import read_bbasis, write_bbasis  # noqa: E402
from rexfit.potentials.ace.model import ACE  # noqa: E402
from rexfit.potentials.ace.yace import write_yace  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402
from tests.support.structures import make_cases  # noqa: E402

E_TOL = 1e-10  # eV/atom
F_TOL = 1e-9  # eV/Å per eV/Å of the largest force (at least 1): same tabulation as pyace,
#               so only round-off differs (random coefficients can give forces of 10³ eV/Å)
S_TOL = 1e-8  # GPa, likewise per GPa of the largest stress component


def pyace_basis(tmp_path, elements, embeddings, bonds, functions, name="basis.yaml"):
    """Path of the B-basis YAML that pyace builds (all coefficients from pyace's defaults)."""
    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": list(elements), "embeddings": embeddings,
        "bonds": bonds, "functions": functions})
    path = tmp_path / name
    config.save(str(path))
    return path


def randomized(path, out, seed=0, scale=0.1):
    """``path`` with random radial and function coefficients, written by rexfit."""
    basis = read_bbasis(path)
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(seed)
    new = {"crad": {k: rng.normal(size=v.shape) for k, v in params["crad"].items()},
           "c": {k: scale * rng.normal(size=v.shape) for k, v in params["c"].items()}}
    write_bbasis(out, potential.to_bbasis(basis, new))
    return out


def compare(path, case, spline=True, reference=None):
    """(ΔE per atom, max ΔF / max(1, max |F|), max Δσ / max(1, max |σ|) (σ in GPa),
    max |F|) of rexfit (B-basis file ``path``) against pyace (file ``reference``, default
    ``path``)."""
    basis = read_bbasis(path)
    elements = basis.elements
    potential, params = ACE.from_bbasis(basis, spline=spline)
    periodic = any(case.pbc)
    atoms = Atoms([elements[s % len(elements)] for s in case.species], positions=case.positions,
                  cell=case.cell if periodic else None, pbc=case.pbc)
    atoms.calc = pyace.PyACECalculator(str(reference or path))
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    species = np.asarray(case.species) % len(elements)
    cell = case.cell if periodic else np.eye(3) * 50.0
    system = make_system(case.positions, cell, species, pbc=case.pbc)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    ours = evaluate(potential, params, system, nbrs)
    n = len(case.positions)
    ds = 0.0
    if all(case.pbc):
        s_ref = atoms.get_stress(voigt=True)
        ds = float(np.abs(np.asarray(ours.stress) - s_ref).max()
                   / max(1.0, np.abs(s_ref).max() * EV_PER_A3_TO_GPA) * EV_PER_A3_TO_GPA)
    fmax = float(np.abs(f_ref).max())
    return (abs(float(ours.energy) - e_ref) / n,
            float(np.abs(np.asarray(ours.forces) - f_ref).max()) / max(1.0, fmax), ds, fmax)


CASES = ("strained_triclinic", "two_atom_small", "cluster")


def cases(ntypes, seed=0):
    return [c for c in make_cases(4.0, ntypes, seed) if c.name in CASES]


ONE = dict(
    elements=["Al"],
    embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
                        "ndensity": 2}},
    bonds={"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.5, "dcut": 0.01}},
    functions={"ALL": {"nradmax_by_orders": [4, 2, 2, 1, 1], "lmax_by_orders": [0, 2, 2, 1, 1]}},
)


def test_yaml_round_trip(tmp_path):
    """pyace's file → rexfit → file → rexfit: the same basis; pyace reads rexfit's file."""
    path = pyace_basis(tmp_path, **ONE)
    basis = read_bbasis(path)
    assert [len(f.ns) for f in basis.block("Al").functions].count(5) > 0  # rank 5 present
    write_bbasis(tmp_path / "again.yaml", basis)
    assert read_bbasis(tmp_path / "again.yaml") == basis
    again = pyace.BBasisConfiguration(str(tmp_path / "again.yaml"))
    assert len(again.funcspecs_blocks[0].funcspecs) == len(basis.block("Al").functions)


@pytest.mark.parametrize("radbase,lam", [("SBessel", 5.25), ("ChebExpCos", 5.25),
                                         ("ChebPow", 2.0)])
def test_one_element_rank5_matches_pyace(tmp_path, radbase, lam):
    spec = dict(ONE, bonds={"ALL": {"radbase": radbase, "radparameters": [lam], "rcut": 4.5,
                                    "dcut": 0.1}})
    path = randomized(pyace_basis(tmp_path, **spec), tmp_path / "random.yaml")
    potential, params = ACE.from_bbasis(read_bbasis(path))
    write_yace(tmp_path / "random.yace", potential, params)
    for case in cases(1):
        for reference in (path, tmp_path / "random.yace"):
            de, df, ds, fmax = compare(path, case, reference=reference)
            assert de < E_TOL and df < F_TOL and ds < S_TOL, (case.name, reference, de, df, ds)
            assert fmax > 1e-2  # the test sees real forces


def test_two_elements_matches_pyace(tmp_path):
    """Al–Cu: FinnisSinclair for Al, shifted-scaled with three densities for Cu, a ChebPow
    Al–Cu bond with its own cutoff, SBessel otherwise."""
    path = pyace_basis(
        tmp_path, elements=["Cu", "Al"],
        embeddings={"ALL": {"npot": "FinnisSinclair", "fs_parameters": [1, 1, 1, 0.5],
                            "ndensity": 2},
                    "Cu": {"npot": "FinnisSinclairShiftedScaled",
                           "fs_parameters": [1, 1, 1, 0.5, 0.5, 0.75], "ndensity": 3}},
        bonds={"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.5,
                       "dcut": 0.01},
               ("Al", "Cu"): {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 4.0,
                              "dcut": 0.01}},
        functions={"ALL": {"nradmax_by_orders": [3, 2, 1, 1], "lmax_by_orders": [0, 1, 1, 1]}})
    path = randomized(path, tmp_path / "random.yaml", seed=3)
    assert read_bbasis(path).elements == ("Al", "Cu")
    potential, params = ACE.from_bbasis(read_bbasis(path))
    write_yace(tmp_path / "random.yace", potential, params)  # C-tilde file: pyace reads it
    for case in cases(2, seed=1):
        for reference in (path, tmp_path / "random.yace"):
            de, df, ds, fmax = compare(path, case, reference=reference)
            assert de < E_TOL and df < F_TOL and ds < S_TOL, (case.name, reference, de, df, ds)


def compressed(a, seed=0):
    """A rattled, strained fcc cell of lattice parameter ``a`` (Å), as a test case."""
    case = next(c for c in make_cases(a, 1, seed) if c.name == "strained_triclinic")
    return case


@pytest.mark.parametrize("mode", ["distance", "density"])
def test_core_repulsion_and_inner_cutoff_match_pyace(tmp_path, mode):
    """Core repulsion [pre, λ] with the ``distance`` inner cutoff (r_in, δ_in on the radial
    basis and the repulsion) or the ``density`` one (ρ_core_cut, Δρ_core_cut on the
    embedding), from a relaxed to a strongly compressed cell where ρ_core crosses the cut."""
    path = pyace_basis(
        tmp_path, elements=["Al"],
        embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled",
                            "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2,
                            "rho_core_cut": 3.0, "drho_core_cut": 2.0}},
        bonds={"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.5,
                       "dcut": 0.01, "core-repulsion": [50.0, 1.0], "r_in": 2.3,
                       "delta_in": 0.5, "inner_cutoff_type": mode}},
        functions={"ALL": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]}})
    path = randomized(path, tmp_path / "random.yaml", seed=5)
    potential, params = ACE.from_bbasis(read_bbasis(path))
    write_yace(tmp_path / "random.yace", potential, params)
    for a in (4.0, 3.0, 2.8):
        for reference in (path, tmp_path / "random.yace"):
            de, df, ds, fmax = compare(path, compressed(a), reference=reference)
            assert de < E_TOL and df < F_TOL and ds < S_TOL, (a, reference, de, df, ds)


def test_older_file_layouts_match_pyace(tmp_path):
    """What older pacemaker files do: flat radial coefficients (k slowest), a single number
    as ``c``, no inner-cutoff keys (meaning ``density``) and no core repulsion, a bond given
    only once (Al Cu, not Cu Al), and a function marked ``skip``."""
    yaml = pytest.importorskip("yaml")
    path = pyace_basis(
        tmp_path, elements=["Al", "Cu"],
        embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 0.8],
                            "ndensity": 1}},
        bonds={"ALL": {"radbase": "ChebExpCos", "radparameters": [3.0], "rcut": 4.5,
                       "dcut": 0.2}},
        functions={"ALL": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]}})
    path = randomized(path, tmp_path / "random.yaml", seed=7)
    data = yaml.safe_load(path.read_text())
    for block in data["species"]:
        for key in ("inner_cutoff_type", "r_in", "delta_in", "core-repulsion"):
            block.pop(key, None)
        if "radcoefficients" in block:
            block["radcoefficients"] = np.asarray(block["radcoefficients"]).transpose(
                2, 0, 1).ravel().tolist()
        if block["speciesblock"] == "Cu Al":
            block = {"speciesblock": "Cu Al", "nbody": block["nbody"]}
        for f in block["nbody"]:
            f["c"] = f["c"][0]
        block["nbody"][1]["skip"] = True
    data["species"] = [b if b["speciesblock"] != "Cu Al" else
                       {"speciesblock": "Cu Al", "nbody": b["nbody"]} for b in data["species"]]
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(data))
    basis = read_bbasis(old)
    assert basis.block("Cu", "Al").rcut is None and basis.block("Al").inner_cutoff_type is None
    assert sum(f.skip for b in basis.blocks for f in b.functions) == 4
    for case in cases(2, seed=2)[:1] + [compressed(3.0)]:
        de, df, ds, fmax = compare(old, case)
        assert de < E_TOL and df < F_TOL and ds < S_TOL, (case.name, de, df, ds, fmax)


def test_three_elements_random_alloy_matches_pyace(tmp_path):
    """Al–Cu–Ni (given out of order): ternary blocks, ChebExpCos, a random alloy."""
    path = pyace_basis(
        tmp_path, elements=["Ni", "Al", "Cu"],
        embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
                            "ndensity": 2}},
        bonds={"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.2,
                       "dcut": 0.1}},
        functions={"ALL": {"nradmax_by_orders": [2, 1, 1], "lmax_by_orders": [0, 1, 1]}})
    path = randomized(path, tmp_path / "random.yaml", seed=11)
    basis = read_bbasis(path)
    assert basis.elements == ("Al", "Cu", "Ni") and basis.block("Al", "Cu", "Ni") is not None
    case = next(c for c in make_cases(3.8, 1, 4) if c.name == "strained_triclinic")
    species = np.random.default_rng(4).integers(0, 3, case.natoms)
    species[:3] = (0, 1, 2)
    case = replace(case, species=species)
    de, df, ds, fmax = compare(path, case)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds, fmax)


def test_zbl_inner_cutoff_matches_pyace(tmp_path):
    """The ``zbl`` mode: ZBL between Al and Cu (prefactor 1) taking over from ACE as the
    nearest neighbour comes closer than r_in (over δ_in), from pure ACE to mostly ZBL."""
    path = pyace_basis(
        tmp_path, elements=["Al", "Cu"],
        embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled",
                            "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        bonds={"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.5,
                       "dcut": 0.5, "core-repulsion": [1.0, 0.0], "r_in": 2.4,
                       "delta_in": 0.6, "inner_cutoff_type": "zbl"}},
        functions={"ALL": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]}})
    path = randomized(path, tmp_path / "random.yaml", seed=13)
    potential, params = ACE.from_bbasis(read_bbasis(path))
    write_yace(tmp_path / "random.yace", potential, params)
    for a in (4.0, 3.0, 2.7):
        case = compressed(a)
        species = np.random.default_rng(5).integers(0, 2, case.natoms)
        species[:2] = (0, 1)
        case = replace(case, species=species)
        for reference in (path, tmp_path / "random.yace"):
            de, df, ds, fmax = compare(path, case, reference=reference)
            assert de < E_TOL and df < F_TOL and ds < S_TOL, (a, reference, de, df, ds)
