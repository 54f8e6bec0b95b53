"""Bases generated from pacemaker's basis description (rexfit.potentials.ace.basis) against
pyace (PyPI python-ace): the coupled (ls, LS) lists against the tabulated list pyace builds
its functions from (ranks 1-6), whole bases against ``create_multispecies_basis_config`` (the
same blocks, functions in the same order, radial and function coefficients, every setting),
and energies of generated bases with random coefficients against ``PyACECalculator`` given
the same coefficients through pyace's own basis objects."""

from __future__ import annotations

import copy
import pickle

import jax
import numpy as np
import pytest

pyace = pytest.importorskip("pyace")

from ase import Atoms  # noqa: E402
from pyace import multispecies_basisextension as mbe  # noqa: E402

from rexfit.potentials.ace.basis import (LMAX_GENERATED, BasisError,  # noqa: E402
                                         check_description, coupled_momenta, generate_basis)
from rexfit.potentials.ace.files import read_bbasis, with_coefficients  # noqa: E402
from rexfit.potentials.ace.model import ACE  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402

E_TOL = 1e-10  # eV/atom, as tests/potentials/test_ace_pyace.py


@pytest.fixture(scope="module")
def tabulated():
    """pyace's list: {pattern of identical (element, n) factors: [(ls, LS), ...]}."""
    with open(mbe.default_mus_ns_uni_to_rawlsLS_np_rank_filename, "rb") as fh:
        table = pickle.load(fh)
    return {k: [(tuple(ls), tuple(LS)) for ls, LS in v] for k, v in table.items()}


def test_coupled_momenta_equal_pyaces_list_up_to_rank_4(tabulated):
    """Every pattern of ranks 1-4, the whole l range: the same (ls, LS), in the same order."""
    patterns = [k for k in tabulated if len(k) <= 4]
    assert len(patterns) == 15
    for pattern in patterns:
        ours = list(coupled_momenta(pattern, LMAX_GENERATED[len(pattern)]))
        assert ours == tabulated[pattern], pattern


@pytest.mark.parametrize("pattern", [(0, 0, 0, 0, 0), (0, 0, 0, 1, 1), (0, 1, 2, 3, 4)])
def test_coupled_momenta_equal_pyaces_list_rank_5(tabulated, pattern):
    """Rank 5 up to l = 2 (all identical, two groups, all different factors)."""
    ours = list(coupled_momenta(pattern, 2))
    assert ours == [f for f in tabulated[pattern] if max(f[0]) <= 2]
    assert len(ours) > 10


@pytest.mark.parametrize("pattern", [(0, 0, 0, 0, 0, 0), (0, 0, 0, 1, 1, 1)])
def test_coupled_momenta_equal_pyaces_list_rank_6(tabulated, pattern):
    """Rank 6, l up to 2, the whole list (pyace's table has rank 6 only for two groups of
    identical factors at most, and so has rexfit)."""
    ours = list(coupled_momenta(pattern, 2))
    assert ours == tabulated[pattern]
    assert len(ours) > 20
    with pytest.raises(BasisError, match="at most 2 distinct"):
        coupled_momenta((0, 0, 0, 0, 1, 2), 1)


@pytest.mark.long
def test_coupled_momenta_equal_pyaces_list_ranks_5_and_6_whole(tabulated):
    """Every pattern of ranks 5 and 6 over their whole l range (about 40 s)."""
    for pattern in (k for k in tabulated if len(k) in (5, 6)):
        ours = list(coupled_momenta(pattern, LMAX_GENERATED[len(pattern)]))
        assert ours == tabulated[pattern], pattern


EMB = {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
               "ndensity": 2}}
BOND = {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.5, "dcut": 0.01}}
MIXED_EMB = {"ALL": {"npot": "FinnisSinclair", "fs_parameters": [1, 1], "ndensity": 1,
                     "rho_core_cut": 200000, "drho_core_cut": 300},
             "Al": {"npot": "FinnisSinclairShiftedScaled",
                    "fs_parameters": [1, 1, 1, 0.5, 2, 0.25], "ndensity": 3}}
MIXED_BOND = {"ALL": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 3.9, "dcut": 0.01,
                      "NameOfCutoffFunction": "cos", "core-repulsion": [10000.0, 5.0],
                      "r_in": 0.5, "delta_in": 0.2},
              "BINARY": {"radbase": "ChebExpCos", "radparameters": [3.0], "rcut": 4.5,
                         "dcut": 0.1, "r_in": 1.0, "delta_in": 0.5},
              "(Al, H)": {"rcut": 3.5, "r_in": 0.8},
              "H": {"rcut": 3.0}}
MIXED_FUN = {"UNARY": {"nradmax_by_orders": [5, 2, 2], "lmax_by_orders": [0, 1, 1]},
             "BINARY": {"nradmax_by_orders": [5, 1, 1], "lmax_by_orders": [0, 1, 1]},
             "AlH": {"nradmax_by_orders": [3, 2, 2, 1], "lmax_by_orders": [0, 2, 1, 1]}}


def description(elements, functions, embeddings=EMB, bonds=BOND):
    return {"deltaSplineBins": 0.001, "elements": list(elements), "embeddings": embeddings,
            "bonds": bonds, "functions": functions}


CASES = {
    "one-rank5": description(["Cu"], {"ALL": {"nradmax_by_orders": [4, 2, 2, 1, 1],
                                              "lmax_by_orders": [0, 2, 2, 1, 1]}}),
    "one-rank6": description(["Cu"], {"ALL": {"nradmax_by_orders": [2, 1, 1, 1, 1, 2],
                                              "lmax_by_orders": [0, 1, 1, 1, 1, 1]}}),
    "one-rank5-truncated": description(
        ["Cu"], {"ALL": {"nradmax_by_orders": [6, 3, 2, 2, 1],
                         "lmax_by_orders": [0, 3, 2, 2, 1]},
                 "number_of_functions_per_element": 40}),
    "one-lmax-beyond-the-list": description(
        ["Cu"], {"ALL": {"nradmax_by_orders": [3, 2, 1, 1], "lmax_by_orders": [0, 12, 8, 5]}}),
    "two-pacemaker-template-rank6": description(
        ["Cu", "Al"], {"UNARY": {"nradmax_by_orders": [15, 6, 4, 3, 2, 2],
                                 "lmax_by_orders": [0, 3, 3, 2, 2, 1]},
                       "BINARY": {"nradmax_by_orders": [15, 6, 3, 2, 2, 1],
                                  "lmax_by_orders": [0, 3, 2, 1, 1, 0]},
                       "number_of_functions_per_element": 120}),
    "two": description(["Cu", "Al"], {"ALL": {"nradmax_by_orders": [3, 2, 1],
                                              "lmax_by_orders": [0, 1, 1]}}),
    "two-rank4-truncated": description(
        ["Cu", "Al"], {"UNARY": {"nradmax_by_orders": [5, 2, 2, 1],
                                 "lmax_by_orders": [0, 2, 1, 1]},
                       "BINARY": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]},
                       "number_of_functions_per_element": 20}),
    "two-mixed": description(["Al", "H"], MIXED_FUN, MIXED_EMB, MIXED_BOND),
    "three": description(["Cu", "Al", "Ni"], {"ALL": {"nradmax_by_orders": [2, 2, 1, 1],
                                                      "lmax_by_orders": [0, 1, 1, 0]}}),
    "three-truncated": description(
        ["Cu", "Al", "Ni"], {"ALL": {"nradmax_by_orders": [3, 2, 1, 1],
                                     "lmax_by_orders": [0, 1, 1, 0]},
                             "number_of_functions_per_element": 12}),
    "three-mixed-rank5": description(
        ["Al", "H", "Cu"], dict(MIXED_FUN, TERNARY={"nradmax_by_orders": [1, 1, 1, 1, 1],
                                                    "lmax_by_orders": [0, 1, 1, 1, 1]}),
        MIXED_EMB, MIXED_BOND),
}


def pyace_config(config):
    return pyace.create_multispecies_basis_config(copy.deepcopy(config))


@pytest.mark.parametrize("name", list(CASES))
def test_generated_basis_equals_pyaces(tmp_path, name):
    """The whole file pyace writes for the description, read by rexfit, equals the basis
    rexfit generates: blocks, functions (ns, ls, LS, order), crad, c and every setting."""
    config = CASES[name]
    ours = generate_basis(copy.deepcopy(config))
    pyace_config(config).save(str(tmp_path / "pyace.yaml"))
    theirs = read_bbasis(tmp_path / "pyace.yaml")
    assert [b.name for b in ours.blocks] == [b.name for b in theirs.blocks]
    for mine, ref in zip(ours.blocks, theirs.blocks):
        assert mine.functions == ref.functions, mine.name
        assert mine == ref, mine.name
    assert ours == theirs
    assert sum(len(b.functions) for b in ours.blocks) > 10


def test_truncation_keeps_the_asked_number():
    """number_of_functions_per_element: N × elements / blocks per block (12·3/12, 20·2/4);
    the radial coefficients stay δ-like, crad[n, l, k] = δ_nk."""
    basis = generate_basis(copy.deepcopy(CASES["three-truncated"]))
    assert [len(b.functions) for b in basis.blocks] == [3] * 12
    basis = generate_basis(copy.deepcopy(CASES["two-rank4-truncated"]))
    assert [len(b.functions) for b in basis.blocks] == [10] * 4
    block = basis.block("Al")
    crad = np.asarray(block.radcoefficients)
    assert crad.shape == (block.nradmax, block.lmax + 1, block.nradbase) and crad.size > 0
    delta = np.eye(block.nradmax, block.nradbase)[:, None, :] * np.ones((1, block.lmax + 1, 1))
    assert np.array_equal(crad, delta)


def _random_both(config, seed):
    """(rexfit basis, pyace configuration) of ``config``, both with the same random radial and
    function coefficients (set into pyace's blocks with its own setters)."""
    ours = generate_basis(copy.deepcopy(config))
    theirs = pyace_config(config)
    rng = np.random.default_rng(seed)
    crad, c = {}, {}
    for mine, block in zip(ours.blocks, theirs.funcspecs_blocks):
        assert mine.name == block.block_name
        rows = rng.normal(scale=0.1, size=(len(mine.functions), len(mine.functions[0].c)))
        c[mine.name] = rows
        block.set_func_coeffs(rows.ravel())
        if mine.radcoefficients is not None:
            shape = np.shape(mine.radcoefficients)
            key = "-".join(sorted((mine.elements[0], mine.elements[-1])))
            crad.setdefault(key, rng.normal(size=shape))
            block.set_radial_coeffs(crad[key].ravel())
    return with_coefficients(ours, crad, c), theirs


@pytest.mark.parametrize("name", ["three", "two-mixed", "one-rank6"])
def test_energies_with_the_same_coefficients_equal_pyaces(name):
    """A random periodic cell (three elements; one, up to rank 6) and a cluster (two
    elements): rexfit's energy of the generated basis with
    random coefficients equals pyace's of its own basis with the same coefficients."""
    ours, theirs = _random_both(CASES[name], seed=1)
    potential, params = ACE.from_bbasis(ours)
    elements = ours.elements
    rng = np.random.default_rng(2)
    cell = np.array([[5.0, 0.3, 0.0], [0.2, 5.4, 0.1], [0.0, 0.4, 5.2]])
    frac = rng.random((10, 3))
    positions = frac @ cell
    species = rng.integers(0, len(elements), size=10)
    species[: len(elements)] = np.arange(len(elements))
    for pbc in ((False,) if name == "two-mixed" else (True,)):
        atoms = Atoms([elements[s] for s in species], positions=positions,
                      cell=cell if pbc else None, pbc=pbc)
        atoms.calc = pyace.PyACECalculator(theirs)
        e_ref = atoms.get_potential_energy()
        system = make_system(positions, cell if pbc else np.eye(3) * 50.0, species,
                             pbc=(pbc,) * 3)
        nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
        energy = float(jax.jit(potential.energy)(params, system, nbrs))
        assert abs(energy - e_ref) / len(positions) < E_TOL, (name, pbc, energy, e_ref)
        assert abs(e_ref) > 1e-3  # the test sees a real energy


@pytest.mark.parametrize("change,message", [
    (lambda d: d["bonds"].pop("ALL"), "no settings for the bond"),
    (lambda d: d["embeddings"]["ALL"].pop("ndensity"), "has no ndensity"),
    (lambda d: d["functions"]["ALL"].pop("lmax_by_orders"), "has no lmax_by_orders"),
    (lambda d: d["functions"].update(Zr={"nradmax_by_orders": [1],
                                         "lmax_by_orders": [0]}), "Zr, not among"),
    (lambda d: d["functions"]["ALL"].update(nradmax_by_orders=[1] * 7,
                                            lmax_by_orders=[0] * 7), "rank 7"),
    (lambda d: d["functions"]["ALL"].update(nradmax_by_orders=[1, 1, 1, 1, 1, 2],
                                            lmax_by_orders=[0] * 6), "rank 6 is generated"),
    (lambda d: d["functions"]["ALL"].update(lmax_by_orders=[0, 1.5, 1]), "whole numbers"),
    (lambda d: d["bonds"]["ALL"].update(rcut="far"), "not a number"),
    (lambda d: d["bonds"].update(Cu={"inner_cutoff_type": "density"}), "inner_cutoff_type"),
    (lambda d: d["functions"].update(number_of_functions_per_element=1), "leaves no function"),
    (lambda d: d["bonds"]["ALL"].update(rmin=1.0), "unknown setting"),
])
def test_descriptions_rexfit_cannot_generate_are_refused(change, message):
    config = copy.deepcopy(CASES["two"])
    change(config)
    with pytest.raises(BasisError, match=message):
        check_description(config)
