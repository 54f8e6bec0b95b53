"""ACE extrapolation grade γ against pyace: the function order of the projections, the B and
dE/dc projections, γ from the same .asi file (pyace's PyACECalculator gives
``results["gamma"]``), MaxVol selecting the same atoms as pyace's, and .asi files written by
either code read by the other; a linear and a two-density basis on small Al–Cu cells."""

from __future__ import annotations

import re

import numpy as np
import pytest

pyace = pytest.importorskip("pyace")

from ase.build import bulk  # noqa: E402
from pyace.activelearning import (compute_A_active_inverse, compute_active_set,  # noqa: E402
                                  compute_B_projections, save_active_inverse_set)
from pyace.basis import ACEBBasisSet  # noqa: E402

from rexfit.potentials.ace import active_set as AS  # noqa: E402
from rexfit.potentials.ace.files import read_bbasis, write_bbasis  # noqa: E402
from rexfit.potentials.ace.model import ACE  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402

G_TOL = 1e-8  # relative to max(1, γ)

LINEAR = {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}
TWO = {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}


def basis(tmp_path, embedding, nrad=(2, 1), lmax=(0, 1), name="basis.yaml", seed=0):
    """An Al–Cu basis pyace builds, with random coefficients written by rexfit."""
    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Al", "Cu"], "embeddings": {"ALL": embedding},
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.2,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": list(nrad), "lmax_by_orders": list(lmax)}}})
    config.save(str(tmp_path / "pyace.yaml"))
    b = read_bbasis(tmp_path / "pyace.yaml")
    potential, params = ACE.from_bbasis(b)
    rng = np.random.default_rng(seed)
    new = {"crad": {k: rng.normal(size=v.shape) for k, v in params["crad"].items()},
           "c": {k: 0.5 * rng.normal(size=v.shape) for k, v in params["c"].items()}}
    write_bbasis(tmp_path / name, potential.to_bbasis(b, new))
    return tmp_path / name


def cells(count, seed, rattle=0.15):
    """``count`` rattled, strained 8-atom fcc Al–Cu cells (random occupation, same shape)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = bulk("Al", "fcc", 3.9 + 0.3 * rng.random(), cubic=True).repeat((2, 1, 1))
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.03 * rng.normal(size=(3, 3))),
                       scale_atoms=True)
        atoms.symbols = list(rng.permutation(["Al"] * 4 + ["Cu"] * 4))
        atoms.positions += rattle * rng.normal(size=atoms.positions.shape)
        out.append(atoms)
    return out


def rexfit_structures(potential, atoms_list):
    """(system, full neighbour list) of each ASE structure (species alphabetical)."""
    out = []
    for atoms in atoms_list:
        species = np.array([potential.elements.index(s) for s in atoms.get_chemical_symbols()])
        system = make_system(atoms.positions, np.array(atoms.cell), species, pbc=(True,) * 3)
        out.append((system, build_neighbor_list(system, potential.cutoff, 0.3, half=False)))
    return out


def rexfit_gamma(potential, params, active_set, structures):
    return [np.asarray(AS.gamma(potential, active_set,
                                AS.compiled_projections(potential, params, s, n,
                                                        active_set.full), s))
            for s, n in structures]


def pyace_gamma(path, asi, atoms_list):
    calc = pyace.PyACECalculator(str(path))
    calc.set_active_set(str(asi))
    out = []
    for atoms in atoms_list:
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        out.append(np.array(calc.results["gamma"]))
    return out


def max_relative(ours, ref):
    return max(float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
               for a, b in zip(ours, ref))


def test_function_order_is_pyaces(tmp_path):
    """Rank 1 first, then (rank, elements, n, l, m combinations, LS), over a rank-5 basis
    with several intermediate momenta per (n, l) at ranks 4 and 5."""
    path = basis(tmp_path, LINEAR, nrad=(2, 2, 2, 1, 1), lmax=(0, 2, 2, 1, 1))
    potential, _ = ACE.from_bbasis(read_bbasis(path))
    ref = ACEBBasisSet(str(path))
    flat = [f for _, funcs in potential.functions for f in funcs]
    for s, e in enumerate(potential.elements):
        theirs = ([(1, tuple(g.mus), tuple(g.ns), tuple(g.ls), ()) for g in ref.basis_rank1[s]]
                  + [(g.rank, tuple(g.mus), tuple(g.ns), tuple(g.ls), tuple(g.LS))
                     for g in ref.basis[s]])
        ours = [(len(flat[c][1]), tuple(potential.elements.index(x) for x in flat[c][0][1:]),
                 tuple(flat[c][1]), tuple(flat[c][2]), tuple(flat[c][3]))
                for c in AS.function_order(potential)[e]]
        assert any(t[0] == 4 for t in theirs) and len(theirs) > 100
        assert ours == theirs


@pytest.mark.parametrize("embedding,full", [(LINEAR, False), (TWO, False), (TWO, True)])
def test_gamma_matches_pyace(tmp_path, embedding, full):
    """pyace's active set (its projections, MaxVol and pseudo-inverse, saved by pyace) read
    by rexfit gives pyace's γ on new structures; rexfit's own active set from the same
    training structures selects the same atoms, and its .asi, read by pyace, gives the same
    γ; the training atoms have γ ≤ the MaxVol tolerance."""
    path = basis(tmp_path, embedding)
    potential, params = ACE.from_bbasis(read_bbasis(path))
    training, validation = cells(8, seed=1), cells(3, seed=2, rattle=0.4)
    # pyace: B (or dE/dc) projections of the training atoms, MaxVol, .asi
    calc = pyace.PyACECalculator(str(path))
    if full:  # pyace fills dE/dc only when a full active set is loaded
        n = AS.projection_sizes(potential, True)
        with open(tmp_path / "dummy.asi", "wb") as fh:
            np.savez(fh, **{e: np.eye(n[e]) for e in potential.elements})
        calc.set_active_set(str(tmp_path / "dummy.asi"))
        proj = {s: [] for s in range(2)}
        for atoms in training:
            atoms = atoms.copy()
            atoms.calc = calc
            atoms.get_potential_energy()
            kinds = [potential.elements.index(x) for x in atoms.get_chemical_symbols()]
            for k, row in zip(kinds, np.asarray(calc.ace.dE_dc)):
                proj[k].append(row)
        proj = {s: np.array(v) for s, v in proj.items()}
    else:
        proj = compute_B_projections(calc, training)
    ours = AS.per_element(potential, params, rexfit_structures(potential, training), full)
    for s, e in enumerate(potential.elements):
        assert ours[e].shape == proj[s].shape
        assert np.abs(ours[e] - proj[s]).max() < 1e-10 * max(1.0, np.abs(proj[s]).max())
    chosen = compute_active_set({s: v.copy() for s, v in proj.items()}, tol=AS.GAMMA_TOLERANCE,
                                max_iters=AS.MAXVOL_ITERATIONS)
    asi = tmp_path / ("pyace.asi.nonlinear" if full else "pyace.asi")
    save_active_inverse_set(str(asi), compute_A_active_inverse(chosen),
                            elements_name=list(potential.elements))
    theirs = AS.read_asi(asi, potential)
    assert theirs.full == full
    structures = rexfit_structures(potential, validation)
    ref = pyace_gamma(path, asi, validation)
    assert max(g.max() for g in ref) > 1.5  # the validation cells extrapolate
    assert max_relative(rexfit_gamma(potential, params, theirs, structures), ref) < G_TOL
    # rexfit's own active set
    mine = AS.build(potential, ours, full=full)
    for s, e in enumerate(potential.elements):
        # the same rows (in any order), to round-off: each of pyace's active rows is one of
        # rexfit's and the counts agree
        rows = np.asarray(chosen[s])
        again = np.linalg.pinv(mine.inverse[e])
        assert rows.shape == again.shape, e
        scale = np.maximum(1.0, np.abs(rows).max(axis=1))
        distance = np.abs(rows[:, None, :] - again[None, :, :]).max(axis=2) / scale[:, None]
        assert distance.min(axis=1).max() < 1e-8, e
        assert len(set(distance.argmin(axis=1))) == len(rows), e  # one to one
    AS.write_asi(tmp_path / "rexfit.asi", mine)
    ours_g = rexfit_gamma(potential, params, mine, structures)
    assert max_relative(ours_g, pyace_gamma(path, tmp_path / "rexfit.asi", validation)) < G_TOL
    assert max_relative(ours_g, ref) < G_TOL  # two pseudo-inverses of the same rows
    train_g = rexfit_gamma(potential, params, mine, rexfit_structures(potential, training))
    assert max(g.max() for g in train_g) <= AS.GAMMA_TOLERANCE + 1e-9


def test_maxvol_selects_pyaces_rows():
    from pyace.maxvol import maxvol

    rng = np.random.default_rng(3)
    for rows, cols in ((120, 15), (300, 40)):
        a = rng.normal(size=(rows, cols)) @ rng.normal(size=(cols, cols))
        ours, coeff = AS.maxvol(a, 1.01, 300)
        theirs, _ = maxvol(a, tol=1.01, max_iters=300)
        assert sorted(ours.tolist()) == sorted(np.asarray(theirs).tolist())
        assert np.abs(coeff).max() <= 1.01 and np.allclose(coeff @ a[ours], a)


def test_errors(tmp_path):
    path = basis(tmp_path, LINEAR)
    potential, params = ACE.from_bbasis(read_bbasis(path))
    few = AS.per_element(potential, params, rexfit_structures(potential, cells(1, seed=4)))
    with pytest.raises(AS.ActiveSetError, match="4 atomic environments for 10 projections"):
        AS.build(potential, few)
    with open(tmp_path / "bad.asi", "wb") as fh:
        np.savez(fh, Al=np.eye(3), Cu=np.eye(3))
    with pytest.raises(AS.ActiveSetError, match="needs 10 .linear. or 10 .full."):
        AS.read_asi(tmp_path / "bad.asi", potential)
    with open(tmp_path / "other.asi", "wb") as fh:
        np.savez(fh, Ni=np.eye(10))
    with pytest.raises(AS.ActiveSetError, match="active sets for Ni, the potential has Al, Cu"):
        AS.read_asi(tmp_path / "other.asi", potential)
    (tmp_path / "text.asi").write_text("not numpy")
    with pytest.raises(AS.ActiveSetError, match="not an active-set"):
        AS.read_asi(tmp_path / "text.asi", potential)


def test_ase_calculator_reports_gamma(tmp_path):
    """RexfitCalculator with an active set (a job whose species are in another order than
    the file's): results["gamma"] per atom equals pyace's, one compilation for energy, forces,
    stress and γ; a wrong active set is a clear error."""
    from rexfit.ase import RexfitCalculator

    path = basis(tmp_path, TWO)
    potential, params = ACE.from_bbasis(read_bbasis(path))
    training, validation = cells(8, seed=1), cells(2, seed=2, rattle=0.4)
    mine = AS.build(potential, AS.per_element(potential, params,
                                              rexfit_structures(potential, training)))
    AS.write_asi(tmp_path / "p.asi", mine)
    ref = pyace_gamma(path, tmp_path / "p.asi", validation)
    job = tmp_path / "job.xml"
    job.write_text(f"""<job><atom-types><species>Cu</species><species>Al</species></atom-types>
      <potentials><ace id="AlCu"><param-file>{path}</param-file></ace></potentials></job>""")
    calc = RexfitCalculator.from_job(job, active_set=tmp_path / "p.asi")
    ours = []
    for atoms in validation:
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        ours.append(calc.results["gamma"])
        assert calc.get_property("gamma", atoms).shape == (len(atoms),)
    assert max_relative(ours, ref) < G_TOL
    assert calc.compilations == 1
    with pytest.raises(ValueError, match="the active set of Al is 3 × 3"):
        RexfitCalculator.from_job(job, active_set=AS.ActiveSet(
            ("Al", "Cu"), {"Al": np.eye(3), "Cu": np.eye(3)}))


# ---------------------------------------------------------------------- in a job

def _job(tmp_path, frames: int, grade: str = "linear"):
    """A Cu job: a linear ACE (10 functions) with <active-set>, a dataset of ``frames``
    rattled 4-atom cells (training) and a compressed fcc lattice (validation)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from tests.support.ace_cases import rattled_cell

    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.5,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 2], "lmax_by_orders": [0, 1]}}})
    config.save(str(tmp_path / "basis.yaml"))
    b = read_bbasis(tmp_path / "basis.yaml")
    potential, params = ACE.from_bbasis(b)
    rng = np.random.default_rng(4)
    write_bbasis(tmp_path / "cu.yaml", potential.to_bbasis(
        b, {"crad": params["crad"], "c": {"Cu": rng.normal(size=params["c"]["Cu"].shape)}}))
    atoms_list = []
    for k in range(frames):
        atoms = rattled_cell(k, rng)
        atoms.calc = SinglePointCalculator(atoms, energy=-3.0 * len(atoms))
        atoms_list.append(atoms)
    write(tmp_path / "cu.xyz", atoms_list, format="extxyz")
    job = tmp_path / "job.xml"
    job.write_text(f"""<job>
  <atom-types><species>Cu</species></atom-types>
  <potentials>
    <ace id="Cu">
      <param-file>cu.yaml</param-file>
      <active-set grade="{grade}"/>
    </ace>
  </potentials>
  <structures>
    <dataset id="cu"><file>cu.xyz</file><properties><atomic-energy/></properties></dataset>
    <fcc-lattice id="squeezed" fit="false">
      <atom-type>Cu</atom-type><lattice-parameter>3.0</lattice-parameter>
      <properties><atomic-energy/></properties>
    </fcc-lattice>
  </structures>
</job>
""")
    return job, atoms_list


@pytest.mark.parametrize("grade", ["linear", pytest.param("full", marks=pytest.mark.long)])
def test_job_writes_active_set_and_reports_max_gamma(tmp_path, grade):
    """<active-set/>: ID.asi (ID.asi.nonlinear) next to parameters.xml, chosen from the
    training entries' atoms; pyace, given that file, finds the max γ rexfit reports per
    structure in results.json (≤ the MaxVol tolerance on the training entries, > 2 on the
    squeezed validation cell), and the log has the table."""
    import rexfit

    job, frames = _job(tmp_path, 12, grade)
    res = rexfit.run(job, tmp_path / "out", no_fit=True)
    name = "Cu.asi" + (".nonlinear" if grade == "full" else "")
    asi = tmp_path / "out" / name
    assert asi.is_file()
    recs = res.results["structures"]
    entries = [r for r in recs.values() if r.get("dataset") == "cu"]
    assert len(entries) == 12
    ours = [r["max_gamma"]["Cu"] for r in entries]
    assert max(ours) <= AS.GAMMA_TOLERANCE + 1e-9
    squeezed = recs["squeezed"]["max_gamma"]["Cu"]
    assert squeezed > 2.0
    ref = pyace_gamma(tmp_path / "cu.yaml", asi, frames)
    assert max_relative(ours, [g.max() for g in ref]) < G_TOL
    fcc = bulk("Cu", "fcc", 3.0)  # the primitive cell, as <fcc-lattice>
    assert abs(squeezed - pyace_gamma(tmp_path / "cu.yaml", asi, [fcc])[0].max()) \
        < G_TOL * squeezed
    log = (tmp_path / "out" / "log.txt").read_text()
    assert f"Extrapolation grade of <ace id='Cu'> ({grade}" in log
    assert "squeezed" in log.split("Extrapolation grade")[1]


def test_job_with_too_few_training_atoms_warns(tmp_path):
    """Fewer training atoms than projections: a warning naming the <active-set> line and
    the numbers; the rest of the run stands (results.json without max_gamma, no .asi)."""
    import rexfit

    job, _ = _job(tmp_path, 2)
    res = rexfit.run(job, tmp_path / "out", no_fit=True)
    log = (tmp_path / "out" / "log.txt").read_text()
    assert re.search(r"Warning: .*job\.xml:6: <ace id='Cu'> <active-set>: element Cu: 8 "
                     r"atomic environments for 10 projections", log), log
    assert not (tmp_path / "out" / "Cu.asi").exists()
    assert all("max_gamma" not in r for r in res.results["structures"].values())
