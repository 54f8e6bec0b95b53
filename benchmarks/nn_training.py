"""Neural-network potentials trained on a LAMMPS-generated silicon dataset: validation errors,
training time, training throughput (atoms per second for loss + gradient) and inference time.

The dataset: ``--cells`` strained and rattled diamond-silicon cells of 8, 16, 32 and 64 atoms
with energies and forces from LAMMPS ``pair_style sw`` (``Si.sw``), 15 % held out for
validation. Networks: ACSF (G2 + G5, 2×30 tanh) and LSP (2×30 tanh), full-batch L-BFGS.

    python benchmarks/nn_training.py [--cells 240] [--iterations 3000] [--only acsf|lsp]
        [--l2 LAMBDA]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

DESCRIPTORS = {
    "acsf": """<acsf rcut="4.0"><g2 eta="0.01 0.1 0.3 1.0 3.0" rs="0"/><g2 eta="3.0" rs="2.3 2.8 3.3"/>
        <g5 eta="0.01 0.1 0.5" zeta="1 2 4 8" lambda="1 -1"/></acsf>""",
    "lsp": """<lsp rn="2.0 2.3 2.6 2.9 3.2 3.5 3.8" sigma="0.35" rcut="4.2" d="1.0"
        ls="0 1 2 3 4 6"/>""",
}

JOB = """<job><name>Si NN benchmark</name><atom-types><species>Si</species></atom-types>
  <potentials>
    <neural-network id="Si" hidden="30 30" activation="tanh" seed="1" l2="{l2}">
      {descriptor}
      <element species="Si"/>
      <fit-dof><weights/><bias/></fit-dof>
      <export-potential>Si_nn.json</export-potential>
    </neural-network>
  </potentials>
  <structures>
    <dataset id="si" validation-fraction="0.15" seed="2"><file>si.xyz</file>
      <properties><atomic-energy tolerance="0.002"/><atomic-forces tolerance="0.05"/>
      </properties></dataset>
  </structures>
  <fitting output-interval="500"><BFGS conv-threshold="1e-14" max-iter="{iterations}"/>
  </fitting></job>"""


def make_dataset(directory: Path, cells: int) -> int:
    sys.path.insert(0, str(ROOT))
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from tests.support.lammps_ref import lammps_compute, potentials_dir
    from tests.support.structures import crystal

    coeff = f"* * {potentials_dir() / 'Si.sw'} Si"
    rng = np.random.default_rng(1)
    frames = []
    repeats = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)]
    for k in range(cells):
        rep = repeats[k % 4]
        pos, cell, _ = crystal("Si", 5.43 * (1 + rng.uniform(-0.04, 0.04)), seed=k,
                               strain=0.03, rattle=rng.uniform(0.05, 0.2))
        shifts = np.array([[i, j, l] for i in range(rep[0]) for j in range(rep[1])
                           for l in range(rep[2])], float)
        pos = (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
        cell = np.diag(rep) @ cell
        ref = lammps_compute(pos, cell, np.zeros(len(pos), int), (True,) * 3, "sw", [coeff], 1)
        atoms = Atoms(f"Si{len(pos)}", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces)
        frames.append(atoms)
    write(directory / "si.xyz", frames, format="extxyz")
    return sum(len(f) for f in frames)


def child(job_path: Path) -> dict:
    """Train in this process; time a loss+gradient evaluation and ASE-free inference."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from rexfit.physics.properties import evaluate
    from rexfit.potentials.lists import build_lists
    from rexfit.potentials.nn_files import read_model
    from rexfit.run import run_job

    from rexfit.job import load_job

    start = time.perf_counter()
    job, _ = load_job(str(job_path))
    result = run_job(job, output_dir=str(job_path.parent / "out"), quiet=True, plots=False,
                     tty=False)
    total = time.perf_counter() - start
    metrics = result["metrics"]["validation"]["all"]

    # throughput: loss + gradient of the training objective
    from rexfit.model.potentials import build_potentials
    from rexfit.objective.objective import Objective
    from rexfit.objective.parameters import ParameterSpace

    job, _ = load_job(str(job_path))
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    u = space.u0()
    objective.evaluate(u, grad=True)
    n = 5
    start = time.perf_counter()
    for _ in range(n):
        objective.evaluate(u, grad=True)
    step = (time.perf_counter() - start) / n
    atoms = sum(len(t.engine.items[k].positions) for (_, s), t in objective.datasets.items()
                if s == "training" for k in range(len(t.engine.items)))

    # inference: energy + forces of a 512-atom cell
    from ase.build import bulk

    from rexfit.structures.system import make_system

    model, params = read_model(job_path.parent / "out" / "Si_nn.json")
    cell = bulk("Si", "diamond", 5.43, cubic=True).repeat(4)
    cell.rattle(0.05, seed=1)
    system = make_system(cell.positions, cell.cell.array, np.zeros(len(cell), int))
    nbrs = build_lists(model, system, 0.0)
    f = jax.jit(lambda p: evaluate(model, p, system, nbrs))
    jax.block_until_ready(f(params))
    start = time.perf_counter()
    for _ in range(5):
        jax.block_until_ready(f(params))
    inference = (time.perf_counter() - start) / 5
    return {"seconds": total, "fit_seconds": result["fit"]["seconds"],
            "iterations": result["fit"]["iterations"],
            "energy_rmse": metrics["energy_per_atom"]["rmse"],
            "force_rmse": metrics["forces"]["rmse"], "step": step, "atoms": atoms,
            "inference_per_atom": inference / len(cell)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=240)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--only", choices=sorted(DESCRIPTORS), action="append")
    ap.add_argument("--l2", type=float, default=0.0, help="L2 regularisation of the weights")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child))))
        return
    directory = Path(tempfile.mkdtemp(prefix="nnbench-"))
    natoms = make_dataset(directory, args.cells)
    print(f"dataset: {args.cells} cells, {natoms} atoms (LAMMPS Si.sw), 15 % validation")
    for name in args.only or list(DESCRIPTORS):
        work = directory / name
        work.mkdir()
        shutil.copy(directory / "si.xyz", work)
        (work / "job.xml").write_text(JOB.format(descriptor=DESCRIPTORS[name],
                                                 iterations=args.iterations, l2=args.l2))
        out = subprocess.run([sys.executable, __file__, "--child", str(work / "job.xml")],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"  {name}: validation RMSE {1000 * r['energy_rmse']:.2f} meV/atom, "
              f"{r['force_rmse']:.3f} eV/Å; {r['iterations']} L-BFGS iterations in "
              f"{r['fit_seconds']:.0f} s (whole run {r['seconds']:.0f} s); loss+gradient "
              f"{r['atoms'] / r['step']:.3g} atoms/s; inference E+F "
              f"{1e6 * r['inference_per_atom']:.1f} µs/atom")
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
