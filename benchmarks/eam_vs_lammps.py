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
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_timing import potentials_dir, time_lammps  # noqa: E402
from rexfit.potentials.eam_files import read_eam_file, tabulated_eam  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402




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




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10, 3],
                        help="cubic cells per edge (4n³ atoms); several sizes allowed")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    potential_file = potentials_dir() / "Cu_mishin1.eam.alloy"
    import resource

    for cells in args.cells:
        positions, cell = _structure(cells)
        print(f"{len(positions)} atoms, Cu_mishin1.eam.alloy, device {jax.devices()[0].platform}")
        t_rex, e_rex, npairs, first = time_rexfit(potential_file, positions, cell, args.repeat)
        t_lmp, e_lmp, _ = time_lammps("eam/alloy", f"* * {potential_file} Cu", positions, cell,
                                      args.steps, args.repeat, mass=63.546)
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
