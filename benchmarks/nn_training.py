"""Neural-network potentials trained on a LAMMPS-generated silicon dataset: validation errors,
training time, training throughput (atoms per second for loss + gradient) and inference time.

The dataset: ``--cells`` strained and rattled diamond-silicon cells of 8, 16, 32 and 64 atoms
with energies and forces from LAMMPS ``pair_style sw`` (``Si.sw``), 15 % held out for
validation. Models: ACSF network (G2 + G5, 2×30 tanh), LSP network (2×30 tanh) and PINN
(LSP, 2×20 tanh, BOP with r_c = 3.5 Å), full-batch L-BFGS. The PINN is trained in two jobs:
its base BOP alone (least squares, 40 iterations), then networks and base together; its time
is that of both.

    python benchmarks/nn_training.py [--cells 320] [--iterations 3000]
        [--only acsf|lsp|pinn] [--l2 1e-5]
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
    "lsp": """<lsp rn="1.5 2.0 2.5 3.0 3.5" sigma="0.8" rcut="4.2" d="1.5" ls="0 1 2 3 4 5 6"/>""",
    "pinn": """<lsp rn="2.0 2.3 2.6 2.9" sigma="0.5" rcut="4.0" d="1.0" ls="0 1 2 3 4 6"/>""",
}

NETWORK = """<neural-network id="Si" hidden="30 30" activation="tanh" seed="1" l2="{l2}">
      {descriptor}
      <element species="Si"/>
      <fit-dof><weights/><bias/></fit-dof>
      <export-potential>Si_nn.json</export-potential>
    </neural-network>"""

#: The PINN: r_c = 3.5 Å covers the first shell, where Si.sw acts (its cutoff is 3.77 Å).
PINN = """<pinn id="Si" rc="3.5" d="1.2" hidden="20 20" activation="tanh" seed="1" l2="{l2}">
      {descriptor}
      <element species="Si"/>
      <base species="Si" {base}/>
      <fit-dof>{fit}</fit-dof>
      <export-potential>Si_nn.json</export-potential>
    </pinn>"""

#: Starting base of the BOP fit (stage 1 of the PINN): Tersoff-like Si values.
BOP_START = dict(A=7.5, B=6.15, alpha=2.48, beta=1.73, a=0.3, h=-0.33, **{"lambda": 1.5},
                 sigma=1.0)

JOB = """<job><name>Si NN benchmark</name><atom-types><species>Si</species></atom-types>
  <potentials>
    {potential}
  </potentials>
  <structures>
    <dataset id="si" validation-fraction="0.15" seed="2"><file>si.xyz</file>
      <properties><atomic-energy tolerance="0.002"/><atomic-forces tolerance="0.05"/>
      </properties></dataset>
  </structures>
  <fitting output-interval="500">{minimizer}</fitting></job>"""

LBFGS = '<BFGS conv-threshold="1e-14" max-iter="{iterations}"/>'


def jobs(name: str, iterations: int, l2: float, base: dict | None = None) -> str:
    """The job of model ``name``; for the PINN, stage 1 (``base`` None: the BOP base alone,
    least squares) or stage 2 (the network and the base from stage 1's ``base``)."""
    if name != "pinn":
        potential = NETWORK.format(descriptor=DESCRIPTORS[name], l2=l2)
        return JOB.format(potential=potential, minimizer=LBFGS.format(iterations=iterations))
    stage1 = base is None
    values = " ".join(f'{k}="{v!r}"' for k, v in (BOP_START if stage1 else base).items())
    potential = PINN.format(descriptor=DESCRIPTORS[name], l2=0.0 if stage1 else l2,
                            base=values, fit="<base/>" if stage1 else
                            "<weights/><bias/><base/>")
    minimizer = '<least-squares max-iter="40"/>' if stage1 else \
        LBFGS.format(iterations=iterations)
    return JOB.format(potential=potential, minimizer=minimizer)


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


def child(job_path: Path, measure: bool) -> dict:
    """Train in this process; if ``measure``, also time a loss+gradient evaluation and
    ASE-free inference."""
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
    model, params = read_model(job_path.parent / "out" / "Si_nn.json")
    out = {"seconds": total, "fit_seconds": result["fit"]["seconds"],
           "iterations": result["fit"]["iterations"],
           "energy_rmse": metrics["energy_per_atom"]["rmse"],
           "force_rmse": metrics["forces"]["rmse"]}
    if "base" in params["Si"]:
        out["base"] = dict(zip(BOP_START, map(float, params["Si"]["base"])))
    if not measure:
        return out

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
    return dict(out, step=step, atoms=atoms, inference_per_atom=inference / len(cell))


def run_child(work: Path, job: str, measure: bool) -> dict:
    work.mkdir()
    shutil.copy(work.parent / "si.xyz", work)
    (work / "job.xml").write_text(job)
    command = [sys.executable, __file__, "--child", str(work / "job.xml")]
    out = subprocess.run(command + (["--measure"] if measure else []), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=320)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--only", choices=sorted(DESCRIPTORS), action="append",
                    help="train only these models (repeatable)")
    ap.add_argument("--l2", type=float, default=1e-5, help="L2 regularisation of the weights")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.measure)))
        return
    directory = Path(tempfile.mkdtemp(prefix="nnbench-"))
    natoms = make_dataset(directory, args.cells)
    print(f"dataset: {args.cells} cells, {natoms} atoms (LAMMPS Si.sw), 15 % validation")
    for name in args.only or list(DESCRIPTORS):
        before = ""
        seconds = 0.0
        if name == "pinn":  # stage 1: the base BOP alone
            r = run_child(directory / "bop", jobs(name, 0, args.l2), False)
            seconds = r["seconds"]
            before = (f"(stage 1, base BOP: {1000 * r['energy_rmse']:.2f} meV/atom, "
                      f"{r['force_rmse']:.3f} eV/Å, {r['seconds']:.0f} s) ")
            job = jobs(name, args.iterations, args.l2, base=r["base"])
        else:
            job = jobs(name, args.iterations, args.l2)
        r = run_child(directory / name, job, True)
        seconds += r["seconds"]
        print(f"  {name}: {before}validation RMSE {1000 * r['energy_rmse']:.2f} meV/atom, "
              f"{r['force_rmse']:.3f} eV/Å; {r['iterations']} L-BFGS iterations in "
              f"{r['fit_seconds']:.0f} s (whole run {seconds:.0f} s); loss+gradient "
              f"{r['atoms'] / r['step']:.3g} atoms/s; inference E+F "
              f"{1e6 * r['inference_per_atom']:.1f} µs/atom", flush=True)
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
