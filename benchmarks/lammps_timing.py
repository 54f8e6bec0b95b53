"""Serial LAMMPS timing shared by the ``*_vs_lammps`` benchmarks: one orthorhombic periodic box
of one atom type, a pair style, ``run 0`` for the reference energy and forces, then the best
time per force evaluation over ``repeat`` runs of ``steps`` zero-length steps."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.lammps_ref import lammps_module, potentials_dir  # noqa: E402,F401


def time_lammps(pair_style: str, pair_coeff: str, positions, cell, steps: int, repeat: int,
                mass: float = 1.0):
    """(seconds per force evaluation, energy eV, forces (N, 3) eV/Å) of serial LAMMPS for
    ``pair_style`` with the single line ``pair_coeff`` (without the command name)."""
    lmp = lammps_module().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    n = len(positions)
    lx, ly, lz = (float(v) for v in np.diag(cell))
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        atom_modify map array
        boundary p p p
        region box block 0 {lx!r} 0 {ly!r} 0 {lz!r} units box
        create_box 1 box
        mass 1 {mass!r}
        """)
    wrapped = positions - np.floor(positions / np.diag(cell)) * np.diag(cell)
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, wrapped.reshape(-1).tolist())
    lmp.commands_string(f"""
        pair_style {pair_style}
        pair_coeff {pair_coeff}
        neighbor 1.0 bin
        neigh_modify every 1 delay 0 check yes
        fix 1 all nve
        timestep 0.0
        thermo_style custom step pe
        run 0
        """)
    energy = float(lmp.get_thermo("pe"))
    forces = np.array(lmp.gather_atoms("f", 1, 3), dtype=np.float64).reshape(n, 3)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        best = min(best, (time.perf_counter() - start) / steps)
    lmp.close()
    return best, energy, forces
