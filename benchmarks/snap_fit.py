"""A linear SNAP fitted to a LAMMPS-generated molybdenum dataset: fit time, memory, and
coefficients recovered, for ``<linear-solve>`` (one SVD solve) against ``<least-squares>`` (trust
region) and ``<BFGS>`` on the same objective.

The dataset: ``--cells`` strained and rattled bcc Mo cells (2 to 16 atoms) with energies, forces
and stresses from LAMMPS ``pair_style snap`` with the shipped ``Mo_Zuo_JPCA2020`` files, stored
in an ASE database (full precision). The fit starts every coefficient at zero (β0 and the 30
linear coefficients; 2J = 6).

    python benchmarks/snap_fit.py [--cells 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEM = "Mo_Zuo_JPCA2020"

JOB = """<job><name>Mo SNAP benchmark</name><atom-types><species>Mo</species></atom-types>
  <potentials><snap id="Mo"><param-file>Mo.snapparam</param-file>
      <element species="Mo" radius="0.5" weight="1"/><fit-dof><beta0/><beta/></fit-dof></snap>
  </potentials>
  <structures><dataset id="mo"><file format="db">mo.db</file>
      <properties><atomic-energy tolerance="0.001"/><atomic-forces tolerance="0.01"/>
        <stress tolerance="0.001"/></properties></dataset></structures>
  <fitting>{solver}</fitting></job>"""

SOLVERS = {"linear-solve": "<linear-solve/>",
           "least-squares": '<least-squares method="trf" max-iter="50"/>',
           "BFGS": '<BFGS conv-threshold="1e-14" max-iter="2000"/>'}


def make_dataset(directory: Path, cells: int) -> int:
    sys.path.insert(0, str(ROOT))
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.db import connect

    from tests.support.lammps_ref import lammps_compute, potentials_dir
    from tests.support.structures import crystal

    files = f"{potentials_dir() / (STEM + '.snapcoeff')} {potentials_dir() / (STEM + '.snapparam')}"
    rng = np.random.default_rng(11)
    total = 0
    with connect(directory / "mo.db", append=False) as db:
        for k in range(cells):
            repeat = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)][k % 4]
            pos, cell, _ = crystal("Mo", 3.147 * (1 + rng.uniform(-0.03, 0.03)), seed=k,
                                   strain=0.03, rattle=0.12)
            shifts = np.array([[i, j, l] for i in range(repeat[0]) for j in range(repeat[1])
                               for l in range(repeat[2])], float)
            pos = (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
            cell = np.diag(repeat) @ cell
            ref = lammps_compute(pos, cell, np.zeros(len(pos), int), (True,) * 3, "snap",
                                 [f"* * {files} Mo"], 1)
            atoms = Atoms(f"Mo{len(pos)}", positions=pos, cell=cell, pbc=True)
            atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces,
                                               stress=ref.stress)
            db.write(atoms)
            total += len(pos)
    shutil.copy(potentials_dir() / (STEM + ".snapparam"), directory / "Mo.snapparam")
    return total


def fit(job_path: Path) -> tuple[float, float, float, dict, int]:
    """(seconds of the set-up, of a first fit including compilation, of a second fit after
    it; fitted coefficients; evaluations) in this process."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from rexfit.fit import run_fit
    from rexfit.job import load_job
    from rexfit.model.potentials import build_potentials
    from rexfit.objective.objective import Objective
    from rexfit.objective.parameters import ParameterSpace
    from rexfit.run import Log


    start = time.perf_counter()
    job, _ = load_job(str(job_path))
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)  # reads the dataset, precomputes descriptors
    setup = time.perf_counter() - start
    times = []
    for _ in range(2):  # the second fit reuses the first one's compiled programs
        start = time.perf_counter()
        result = run_fit(objective, job.fitting, Log(quiet=True), tty=False)
        times.append(time.perf_counter() - start)
    values = space.named_values(space.tree(result.u))
    return setup, times[0], times[1], values, result.evaluations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--solver", choices=sorted(SOLVERS), action="append")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one solver in a fresh process: its own compilation and peak memory
        setup, first, second, values, evals = fit(Path(args.child))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps([setup, first, second, values, evals, peak]))
        return
    directory = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="snapfit-"))
    directory.mkdir(parents=True, exist_ok=True)
    natoms = make_dataset(directory, args.cells)
    sys.path.insert(0, str(ROOT))
    from rexfit.potentials.snap_files import read_snapcoeff
    from tests.support.lammps_ref import potentials_dir

    truth = read_snapcoeff(potentials_dir() / (STEM + ".snapcoeff"))["Mo"].coefficients
    print(f"dataset: {args.cells} cells, {natoms} atoms, energies, forces and stresses from "
          f"LAMMPS snap ({STEM}); 31 coefficients fitted from zero")
    for name in args.solver or list(SOLVERS):
        job = directory / f"job-{name}.xml"
        job.write_text(JOB.format(solver=SOLVERS[name]))
        out = subprocess.run([sys.executable, __file__, "--child", str(job)], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        setup, first, second, values, evals, peak = json.loads(out)
        fitted = [values["Mo[SNAP].beta0[Mo]"]] + [values[f"Mo[SNAP].beta{k}[Mo]"]
                                                     for k in range(1, len(truth))]
        worst = float(np.max(np.abs(np.asarray(fitted) - truth)) / np.max(np.abs(truth)))
        print(f"  {name:14s} set-up {setup:5.1f} s, fit {second:7.3f} s after compilation "
              f"({first:6.2f} s with it), "
              f"{evals:4d} evaluations, largest coefficient error {worst:.1e} (of max |β|), "
              f"peak memory {peak:.0f} MB")
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
