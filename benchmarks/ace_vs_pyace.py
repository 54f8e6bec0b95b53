"""Time rexfit's ACE energy + forces against pyace's on the same potential, per atom.

The potential: a B-basis YAML given with ``--potential`` (e.g. a pacemaker
``output_potential.yaml``), or by default one built by pyace for Cu (SBessel, r_c 5 Å, ranks
1–4, two densities, random coefficients written by rexfit).  Rattled fcc Cu cells of 32 …
``--max-atoms`` atoms.  For each size: rexfit's first call (compilation included), its best
of ``--repeat`` calls after that (µs/atom), pyace's best of ``--repeat`` calls (µs/atom, a
changed position each time so that the ASE calculator recomputes), and the largest
differences of energy per atom and forces between them.  Usage:

    python benchmarks/ace_vs_pyace.py [--potential file.yaml] [--max-atoms 4000] [--repeat 3]

``--dataset`` times instead the loss and its gradient on a dataset of about ``--atoms``
(10,000) atoms, as a job's ``<dataset>`` is evaluated (:class:`rexfit.datasets.engine.
DatasetObjective`, kernel chosen by the engine): rattled, strained Cu cells of 32–256 atoms
whose energies and forces a fixed pyace potential (the same basis, other coefficients)
labelled.  Two cases: ``linear`` (one density, F = ρ, radial coefficients fixed: the
descriptor kernel on precomputed rows) and ``nonlinear`` (radial and function coefficients
fitted, FinnisSinclairShiftedScaled with two densities: the analytic kernel).  For each: the
set-up (neighbour lists, stacking, descriptor rows), the first value-and-gradient call
(tracing, compiling and the first evaluation) with the programs traced and compiled, and
the best of ``--repeat`` later calls in µs/atom, against pyace's energy + forces on the same
structures (µs/atom, best of ``--repeat`` passes).  CPU seconds of this process are given
next to wall seconds (XLA runs on every core)::

    python benchmarks/ace_vs_pyace.py --dataset [--atoms 10000] [--case linear|nonlinear]
                                      [--max-bucket-atoms N] [--cache-dir DIR] [--zbl]
                                      [--no-flat-chunks] [--kernel analytic|autodiff]

``--no-flat-chunks``: the autodiff kernel's buckets by size instead of its flat chunks (the
engine's ``flat_chunks=False``, the layout before flat chunks), for comparison.
``--kernel``: the engine's kernel instead of its own choice (the non-linear case takes the
analytic kernel by default; ``autodiff`` for comparison).  ``--zbl``: the bases with the
``zbl`` inner cutoff (ZBL with prefactor 1, r_in = 2.5 Å, δ_in = 0.5 Å, so that most atoms of
the rattled cells are inside the switch); ``--kernel autodiff`` then times the autodiff
kernel these bases took before the analytic and descriptor kernels covered the zbl mode.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)


def default_potential(directory: Path) -> Path:
    """A Cu basis built by pyace, with random coefficients written by rexfit."""
    import pyace

    from rexfit.potentials.ace.files import read_bbasis, write_bbasis
    from rexfit.potentials.ace.model import ACE

    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [8, 3, 2, 1],
                              "lmax_by_orders": [0, 2, 2, 1]}}})
    path = directory / "basis.yaml"
    config.save(str(path))
    basis = read_bbasis(path)
    _, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(0)
    new = jax.tree_util.tree_map(lambda v: 0.1 * rng.normal(size=np.shape(v)), params)
    new["crad"] = jax.tree_util.tree_map(lambda v: rng.normal(size=np.shape(v)), params["crad"])
    potential, _ = ACE.from_bbasis(basis)
    write_bbasis(directory / "random.yaml", potential.to_bbasis(basis, new))
    return directory / "random.yaml"


#: fcc Cu supercells (cubic 4-atom cell repeated) of the dataset: 32 … 256 atoms
DATASET_REPEATS = ((2, 2, 2), (2, 2, 3), (2, 3, 3), (3, 3, 3), (3, 3, 4), (3, 4, 4), (4, 4, 4))


def dataset_basis(directory: Path, linear: bool, seed: int, zbl: bool = False) -> Path:
    """A Cu basis built by pyace (ChebExpCos, r_c 5 Å, ranks 1–4) with random coefficients:
    one linear density (``linear``) or two densities (F = ρ and √ρ-like); ``zbl``: with the
    ``zbl`` inner cutoff (module docstring)."""
    import pyace

    from rexfit.potentials.ace.files import read_bbasis, write_bbasis
    from rexfit.potentials.ace.model import ACE

    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1] if linear else [1, 1, 1, 0.5],
                               "ndensity": 1 if linear else 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0,
                          "dcut": 0.01,
                          **({"core-repulsion": [1.0, 0.0], "r_in": 2.5, "delta_in": 0.5,
                              "inner_cutoff_type": "zbl"} if zbl else {})}},
        "functions": {"ALL": {"nradmax_by_orders": [8, 3, 2, 1],
                              "lmax_by_orders": [0, 2, 2, 1]}}})
    path = directory / f"basis-{int(linear)}-{seed}-{int(zbl)}.yaml"
    config.save(str(path))
    basis = read_bbasis(path)
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(seed)
    new = {"c": {k: 0.1 * rng.normal(size=np.shape(v)) for k, v in params["c"].items()},
           "crad": {k: np.asarray(v) + 0.1 * rng.normal(size=np.shape(v))
                    for k, v in params["crad"].items()}}
    write_bbasis(path, potential.to_bbasis(basis, new))
    return path


def dataset_cells(atoms_total: int, seed: int = 7):
    """Rattled (0.08 Å), strained (2 %) fcc Cu cells of 32–256 atoms, about atoms_total."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    frames, count = [], 0
    while count < atoms_total:
        rep = DATASET_REPEATS[len(frames) % len(DATASET_REPEATS)]
        atoms = bulk("Cu", "fcc", 3.61, cubic=True).repeat(rep)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))),
                       scale_atoms=True)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        frames.append(atoms)
        count += len(atoms)
    return frames


def pyace_pass(frames, path: Path, repeat: int):
    """(energies, forces, best wall seconds, best CPU seconds of ``repeat`` passes) of pyace
    over ``frames``."""
    import pyace

    calc = pyace.PyACECalculator(str(path))
    best, best_cpu, energies, forces = np.inf, np.inf, [], []
    for k in range(repeat):
        seconds = cpu = 0.0
        energies, forces = [], []
        for atoms in frames:
            atoms.calc = calc
            atoms.positions[0, 0] += 1e-9 * (-1) ** k  # a change: pyace recomputes
            start, start_cpu = time.perf_counter(), time.process_time()
            forces.append(atoms.get_forces())
            seconds += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            energies.append(atoms.get_potential_energy())
        best, best_cpu = min(best, seconds), min(best_cpu, cpu)
    return energies, forces, best, best_cpu


def dataset_case(case: str, frames, directory: Path, repeat: int, engine_options=None,
                 zbl: bool = False) -> None:
    """One line of timings of the loss and its gradient (module docstring)."""
    from rexfit import timing
    from rexfit.datasets.engine import DatasetObjective
    from rexfit.datasets.items import Item
    from rexfit.potentials.ace.files import read_bbasis
    from rexfit.potentials.ace.linear import LinearACE
    from rexfit.potentials.ace.model import ACE

    linear = case == "linear"
    model_file = dataset_basis(directory, linear, seed=1, zbl=zbl)
    truth_file = dataset_basis(directory, linear, seed=2, zbl=zbl)
    energies, forces, pyace_seconds, pyace_cpu = pyace_pass(frames, truth_file, repeat)
    natoms = sum(len(a) for a in frames)
    items = [Item(a.positions.copy(), a.cell.array.copy(), np.zeros(len(a), int), energy=e,
                  forces=f, weight_energy=1.0 / len(frames), weight_forces=1.0 / len(frames),
                  tol_energy=0.001, tol_forces=0.05)
             for a, e, f in zip(frames, energies, forces)]
    potential, params = ACE.from_bbasis(read_bbasis(model_file))
    if linear:  # as the job's family builds it when <crad/> is not fitted
        potential = LinearACE.freeze(potential, params["crad"])
    counters = timing.install()
    before = counters.copy()
    wall, cpu = time.perf_counter(), time.process_time()
    engine = DatasetObjective(potential, items, **(engine_options or {}))
    setup = (time.perf_counter() - wall, time.process_time() - cpu)
    wall, cpu = time.perf_counter(), time.process_time()
    value, grad = engine.value_and_grad(params)
    first = (time.perf_counter() - wall, time.process_time() - cpu)
    after = counters.copy()
    steady = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        engine.value_and_grad(params)
        steady.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall_best = min(w for w, _ in steady)
    cpu_best = min(c for _, c in steady)
    kept = getattr(engine, "fixed_bytes", 0)
    print(f"{case + (' zbl' if zbl else ''):9s} {len(frames)} cells, {natoms} atoms, kernel {engine.kernel}, "
          f"{engine.n_chunks} chunks of shapes {sorted(set(engine.bucket_shapes))}, "
          f"kept terms {kept / 2**20:.0f} MiB, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    print(f"  set-up {setup[0]:.1f} s (CPU {setup[1]:.1f} s); first value+gradient "
          f"{first[0]:.1f} s (CPU {first[1]:.1f} s), {after.traces - before.traces} traces, "
          f"{after.compiled - before.compiled} compilations "
          f"({after.cache_hits - before.cache_hits} read from the cache), "
          f"{after.seconds - before.seconds:.1f} s tracing+compiling")
    print(f"  value+gradient {wall_best / natoms * 1e6:.1f} µs/atom "
          f"(CPU {cpu_best / natoms * 1e6:.1f}); pyace energy+forces "
          f"{pyace_seconds / natoms * 1e6:.1f} µs/atom (CPU {pyace_cpu / natoms * 1e6:.1f}): "
          f"ratio {wall_best / pyace_seconds:.2f} (CPU {cpu_best / pyace_cpu:.2f}); "
          f"loss {value:.6g}")


def dataset_main(args) -> None:
    frames = dataset_cells(args.atoms)
    cases = ("linear", "nonlinear") if args.case is None else (args.case,)
    options = {} if args.max_bucket_atoms is None else {
        "max_bucket_atoms": args.max_bucket_atoms}
    if args.no_flat_chunks:
        options["flat_chunks"] = False
    if args.kernel != "auto":
        options["kernel"] = args.kernel
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            dataset_case(case, frames, Path(tmp), args.repeat, options, zbl=args.zbl)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--potential", type=Path)
    parser.add_argument("--max-atoms", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dataset", action="store_true",
                        help="loss + gradient on a dataset instead (module docstring)")
    parser.add_argument("--atoms", type=int, default=10000)
    parser.add_argument("--case", choices=("linear", "nonlinear"))
    parser.add_argument("--max-bucket-atoms", type=int,
                        help="the engine's atom slots per chunk (default: its own choice)")
    parser.add_argument("--kernel", choices=("auto", "analytic", "autodiff"), default="auto",
                        help="the engine's kernel (default: its own choice)")
    parser.add_argument("--zbl", action="store_true",
                        help="the bases with the zbl inner cutoff (module docstring)")
    parser.add_argument("--no-flat-chunks", action="store_true",
                        help="autodiff kernel: buckets by size instead of flat chunks")
    parser.add_argument("--cache-dir", type=Path,
                        help="JAX's persistent compilation cache (as rexfit runs keep one): a "
                             "second run with the same directory compiles nothing")
    args = parser.parse_args(argv)
    if args.cache_dir is not None:
        jax.config.update("jax_compilation_cache_dir", str(args.cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if args.dataset:
        dataset_main(args)
        return

    import pyace
    from ase.build import bulk

    from rexfit.potentials.ace.files import read_bbasis
    from rexfit.potentials.ace.model import ACE
    from rexfit.structures.neighbors import build_neighbor_list
    from rexfit.structures.system import make_system

    with tempfile.TemporaryDirectory() as tmp:
        path = args.potential or default_potential(Path(tmp))
        basis = read_bbasis(path)
        potential, params = ACE.from_bbasis(basis)
        element = basis.elements[0]

        @jax.jit
        def energy_forces(params, system, nbrs):
            def energy(x):
                return potential.energy(params, system.replace(positions=x), nbrs)

            e, g = jax.value_and_grad(energy)(system.positions)
            return e, -g

        print(f"{path}: {sum(len(f) for _, f in potential.functions)} functions, "
              f"cutoff {potential.cutoff} Å")
        for repeat in (2, 3, 4, 6, 8, 10, 14):
            atoms = bulk(element, "fcc", 3.6, cubic=True).repeat(repeat)
            n = len(atoms)
            if n > args.max_atoms:
                break
            rng = np.random.default_rng(repeat)
            atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
            system = make_system(atoms.positions, atoms.cell.array, np.zeros(n, int))
            nbrs = build_neighbor_list(system, potential.cutoff, 0.0, half=False)
            start = time.perf_counter()
            e, f = jax.block_until_ready(energy_forces(params, system, nbrs))
            first = time.perf_counter() - start
            ours = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                jax.block_until_ready(energy_forces(params, system, nbrs))
                ours.append(time.perf_counter() - start)
            atoms.calc = pyace.PyACECalculator(str(path))
            e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
            theirs = []
            for k in range(args.repeat):
                atoms.positions[0, 0] += 1e-9 * (-1) ** k  # a change: pyace recomputes
                start = time.perf_counter()
                atoms.get_forces()
                theirs.append(time.perf_counter() - start)
            print(f"{n:6d} atoms: rexfit first call {first:6.2f} s, then "
                  f"{min(ours) / n * 1e6:8.1f} µs/atom; pyace {min(theirs) / n * 1e6:8.1f} µs/atom;"
                  f" |ΔE|/atom {abs(float(e) - e_ref) / n:.1e} eV, "
                  f"max |ΔF| {np.abs(np.asarray(f) - f_ref).max():.1e} eV/Å "
                  f"(max |F| {np.abs(f_ref).max():.1e})")


if __name__ == "__main__":
    main()
