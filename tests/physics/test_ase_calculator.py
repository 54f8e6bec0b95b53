"""The ASE calculator: same numbers as ``evaluate`` (and LAMMPS), stress in ASE's convention
(checked by finite differences of the energy), one compilation per MD run, relaxations, and
clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from rexfit.ase import RexfitCalculator, UnknownSpecies
from rexfit.errors import InputErrors
from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.physics.properties import evaluate
from rexfit.potentials.lists import build_lists
from rexfit.export.parameters_xml import write_parameters_xml
from rexfit.structures.system import make_system
from tests.support.lammps_ref import lammps_compute, potentials_dir

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-10  # calculator vs evaluate: energy relative, forces eV/Å, stress eV/Å³ (absolute)
LAMMPS_E = 1e-9  # eV/atom
LAMMPS_F = 1e-9  # eV/Å
LAMMPS_S = 1e-9  # eV/Å³

LJ_JOB = """<job>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="ArAr" species-a="*" species-b="*">
      <sigma>3.40</sigma><epsilon>0.0104</epsilon><cutoff>8.5</cutoff>
      <fit-dof><sigma/><epsilon/></fit-dof>
    </lennard-jones>
  </potentials>
</job>
"""

SW_JOB = """<job>
  <atom-types><species>Si</species></atom-types>
  <potentials>
    <stillinger-weber id="Si" species-a="*" species-b="*">
      <param-file>Si.sw</param-file>
    </stillinger-weber>
  </potentials>
</job>
"""

SNAP_JOB = """<job>
  <atom-types><species>Mo</species></atom-types>
  <potentials>
    <snap id="Mo">
      <param-file>Mo_Zuo_JPCA2020.snapparam</param-file>
      <coeff-file>Mo_Zuo_JPCA2020.snapcoeff</coeff-file>
    </snap>
  </potentials>
</job>
"""

#: name -> (job text or path, copied potential files, symbol, lattice, lattice parameter Å,
#:          LAMMPS pair_style and pair_coeff line or None)
CASES = {
    "lj": (LJ_JOB, (), "Ar", "fcc", 5.26, None),
    "al-eam": (ROOT / "jobs" / "al-eam" / "job.xml", (), "Al", "fcc", 4.05, None),
    "sw": (SW_JOB, ("Si.sw",), "Si", "diamond", 5.431, ("sw", "* * {dir}/Si.sw Si")),
    "snap": (SNAP_JOB, ("Mo_Zuo_JPCA2020.snapparam", "Mo_Zuo_JPCA2020.snapcoeff"), "Mo",
             "bcc", 3.16, ("snap", "* * {dir}/Mo_Zuo_JPCA2020.snapcoeff "
                                   "{dir}/Mo_Zuo_JPCA2020.snapparam Mo")),
}


def job_file(name: str, directory: Path) -> Path:
    """The job of case ``name``: the flagship job itself, or a small job written next to copies
    of the LAMMPS potential files it names."""
    job, files, *_ = CASES[name]
    if isinstance(job, Path):
        return job
    for fname in files:
        shutil.copy(potentials_dir() / fname, directory / fname)
    path = directory / "job.xml"
    path.write_text(job)
    return path


@pytest.fixture(scope="module")
def calculators(tmp_path_factory):
    """name -> (calculator, its job file) for every case (built once per module)."""
    out = {}
    for name in CASES:
        path = job_file(name, tmp_path_factory.mktemp(name))
        out[name] = (RexfitCalculator.from_job(path), path)
    return out


def structures(symbol: str, lattice: str, a: float, seed: int = 0) -> dict[str, Atoms]:
    """A strained triclinic rattled bulk cell (some atoms outside it), a slab whose
    non-periodic cell vector is zero, and a cluster without a cell."""
    rng = np.random.default_rng(seed)
    out = {}
    atoms = bulk(symbol, lattice, a, cubic=True).repeat(2)
    deformation = np.eye(3) + rng.normal(0.0, 0.02, (3, 3))
    cell = atoms.cell.array @ deformation
    pos = atoms.get_scaled_positions() @ cell + rng.normal(0.0, 0.08, (len(atoms), 3))
    pos += rng.integers(-1, 2, (len(atoms), 1)) * cell[0]
    out["bulk"] = Atoms(atoms.get_chemical_symbols(), positions=pos, cell=cell, pbc=True)

    slab = bulk(symbol, lattice, a, cubic=True).repeat((2, 2, 1))
    cell = slab.cell.array.copy()
    cell[2] = 0.0
    out["slab"] = Atoms(slab.get_chemical_symbols(),
                        positions=slab.positions + rng.normal(0.0, 0.08, (len(slab), 3)),
                        cell=cell, pbc=(True, True, False))

    big = bulk(symbol, lattice, a, cubic=True).repeat(2)
    centre = big.positions.mean(axis=0)
    pick = np.argsort(np.linalg.norm(big.positions - centre, axis=1))[:11]
    out["cluster"] = Atoms([symbol] * 11,
                           positions=big.positions[pick] + rng.normal(0.0, 0.08, (11, 3)),
                           pbc=False)
    return out


def reference(calc: RexfitCalculator, atoms: Atoms):
    """``evaluate`` on the unpadded structure with a freshly built neighbour list."""
    system = make_system(atoms.positions, atoms.cell.array, calc.species_indices(atoms),
                         atoms.pbc)
    nbrs = build_lists(calc.potential, system, 0.3, n_species=len(calc.species))
    return evaluate(calc.potential, calc.params, system, nbrs)


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("name", list(CASES))
def test_matches_evaluate_and_lammps(name, calculators):
    calc, path = calculators[name]
    _, _, symbol, lattice, a, lammps = CASES[name]
    cases = structures(symbol, lattice, a)
    if name == "snap":  # each shape costs SNAP seconds of compilation: the bulk cell only
        cases = {"bulk": cases["bulk"]}
    for kind, atoms in cases.items():
        atoms.calc = calc
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        ref = reference(calc, atoms)
        assert abs(energy - float(ref.energy)) <= TOL * max(1.0, abs(energy)), kind
        assert atoms.get_potential_energy(force_consistent=True) == energy
        assert np.abs(forces - np.asarray(ref.forces)).max() <= TOL, kind
        if kind == "bulk":
            stress = atoms.get_stress()
            assert np.abs(stress - np.asarray(ref.stress)).max() <= TOL, kind
        else:  # zero cell vectors: no volume, so ASE reports stress as not available
            with pytest.raises(PropertyNotImplementedError):
                atoms.get_stress()
        if lammps is None or kind == "slab":
            continue
        style, coeff = lammps
        lmp = lammps_compute(atoms.positions, atoms.cell.array, np.zeros(len(atoms), int),
                             atoms.pbc, style, [coeff.format(dir=path.parent)], 1)
        assert abs(energy - lmp.energy) / len(atoms) <= LAMMPS_E, kind
        assert np.abs(forces - lmp.forces).max() <= LAMMPS_F, kind
        if kind == "bulk":
            assert np.abs(atoms.get_stress() - lmp.stress).max() <= LAMMPS_S, kind


def test_stress_is_ase_convention(calculators):
    """σ_ij = (1/V) ∂E/∂ε_ij, checked by central differences of strained copies' energies."""
    calc, _ = calculators["sw"]
    atoms = structures("Si", "diamond", 5.431, seed=3)["bulk"]
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    h = 1e-5
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[i, j] += sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                strained.calc = calc
                e.append(strained.get_potential_energy())
            fd[i, j] = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
    fd = 0.5 * (fd + fd.T)
    assert np.abs(stress - fd).max() < 1e-7, (stress, fd)


def test_slab_with_vacuum_vector_has_stress(calculators):
    """A non-periodic direction with a non-zero cell vector: stress = virial / cell volume."""
    calc, _ = calculators["lj"]
    atoms = structures("Ar", "fcc", 5.26)["slab"]
    atoms.cell[2] = [0.0, 0.0, 30.0]
    atoms.calc = calc
    ref = reference(calc, atoms)
    assert np.abs(atoms.get_stress() - np.asarray(ref.stress)).max() <= TOL


# --------------------------------------------------------------------------- MD, relaxation


def run_md(calc, timestep_fs: float, steps: int) -> np.ndarray:
    """Total energies (eV) along a velocity-Verlet run of 64 Si atoms started at 600 K."""
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(2)
    atoms.rattle(0.02, seed=1)
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(2))
    Stationary(atoms)
    atoms.calc = calc
    energies = []
    md = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    md.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    md.run(steps)
    return np.array(energies)


def test_md_conserves_energy_and_compiles_once(calculators):
    """20 velocity-Verlet steps (0.5 fs) of Si at 600 K: one compilation; total energy
    constant to 2e-5 eV/atom (kT = 0.05 eV), its spread shrinking as dt² (so it is the
    integrator's, not an inconsistency of forces and energy).  With a tiny skin the lists
    are rebuilt on the way, without recompiling and without changing the trajectory."""
    _, path = calculators["sw"]
    calc = RexfitCalculator.from_job(path, skin=1.0)
    energies = run_md(calc, 0.5, 20)
    assert len(energies) == 21
    spread = np.ptp(energies) / 64
    assert spread < 2e-5, spread
    assert calc.compilations == 1 and calc.list_builds == 1

    finer = run_md(calc, 0.25, 40)
    assert np.ptp(finer) / 64 < 0.35 * spread, (np.ptp(finer) / 64, spread)
    assert calc.compilations == 1

    tight = RexfitCalculator.from_job(path, skin=0.05)
    rebuilt = run_md(tight, 0.5, 20)
    assert tight.list_builds > 1 and tight.compilations == 1
    np.testing.assert_allclose(rebuilt, energies, rtol=0, atol=1e-10)


def test_bfgs_relaxation(calculators):
    calc = RexfitCalculator.from_job(calculators["al-eam"][1])
    atoms = bulk("Al", "fcc", 4.05, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=4)
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=5e-4, steps=200)
    assert np.abs(atoms.get_forces()).max() < 1e-3
    assert calc.compilations == 1


# --------------------------------------------------------------------------- jobs and errors


def test_fitted_parameters_xml(tmp_path):
    """A parameters.xml as rexfit writes it: through a job that includes it, and bare."""
    job_path = tmp_path / "job.xml"
    job_path.write_text(LJ_JOB)
    job, _ = load_job(str(job_path))
    model = build_potentials(job)
    out = tmp_path / "job.rexfit"
    out.mkdir()
    fitted = {"sigma": 3.3, "epsilon": 0.012}
    values = {f"ArAr[LJ].{k}": v for k, v in fitted.items()}
    write_parameters_xml(job, model.entries, values, str(out / "parameters.xml"))
    restart = tmp_path / "restart.xml"
    restart.write_text(LJ_JOB.split("<potentials>")[0]
                       + '<xi:include href="job.rexfit/parameters.xml" '
                       'xmlns:xi="http://www.w3.org/2003/XInclude"/>\n</job>\n')
    atoms = bulk("Ar", "fcc", 5.26, cubic=True)
    atoms.rattle(0.05, seed=0)
    for calc in (RexfitCalculator.from_job(restart),
                 RexfitCalculator.from_job(out / "parameters.xml", species=["Ar"])):
        assert {k: float(v) for k, v in calc.params["ArAr"].items()} == fitted
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        assert abs(energy - float(reference(calc, atoms).energy)) <= TOL * abs(energy)
    with pytest.raises(ValueError, match="species"):
        RexfitCalculator.from_job(out / "parameters.xml")


def test_unknown_symbol(calculators):
    calc, _ = calculators["lj"]
    atoms = bulk("Ar", "fcc", 5.26, cubic=True)
    atoms.symbols[1] = "Kr"
    atoms.calc = calc
    with pytest.raises(UnknownSpecies, match="no species Kr .*knows Ar"):
        atoms.get_potential_energy()


def test_job_without_potentials(tmp_path):
    path = tmp_path / "job.xml"
    path.write_text("<job><atom-types><species>Ar</species></atom-types></job>")
    with pytest.raises(InputErrors, match="no potential"):
        RexfitCalculator.from_job(path)
