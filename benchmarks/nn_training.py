"""Neural-network potentials trained on a LAMMPS-generated silicon dataset: validation errors,
training time, training throughput (atoms per second for loss + gradient) and inference time.

The dataset: ``--cells`` strained and rattled diamond-silicon cells of 8, 16, 32 and 64 atoms
with energies and forces from LAMMPS ``pair_style sw`` (``Si.sw``), 15 % held out for
validation. Models: ACSF network (G2 + G5, 2×30 tanh), LSP network (2×30 tanh) and PINN
(LSP, 2×20 tanh, BOP with r_c = 3.5 Å and d = 0.6 Å), full-batch L-BFGS. The PINN is
trained in two jobs: its base BOP alone (least squares, 40 iterations), then networks and
base together; its time is that of both.

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
sys.path.insert(0, str(ROOT))

from tests.support import si_nn  # noqa: E402  (the dataset and jobs, shared with the tests)


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
        out["base"] = si_nn.fitted_base(result)
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
    ap.add_argument("--only", choices=sorted(si_nn.DESCRIPTORS), action="append",
                    help="train only these models (repeatable)")
    ap.add_argument("--l2", type=float, default=1e-5, help="L2 regularisation of the weights")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.measure)))
        return
    directory = Path(tempfile.mkdtemp(prefix="nnbench-"))
    natoms = si_nn.make_dataset(directory / "si.xyz", args.cells)
    print(f"dataset: {args.cells} cells, {natoms} atoms (LAMMPS Si.sw), 15 % validation")
    for name in args.only or list(si_nn.DESCRIPTORS):
        before = ""
        seconds = 0.0
        if name == "pinn":  # stage 1: the base BOP alone
            r = run_child(directory / "bop", si_nn.job(name, 0, args.l2), False)
            seconds = r["seconds"]
            before = (f"(stage 1, base BOP: {1000 * r['energy_rmse']:.2f} meV/atom, "
                      f"{r['force_rmse']:.3f} eV/Å, {r['seconds']:.0f} s) ")
            job = si_nn.job(name, args.iterations, args.l2, base=r["base"])
        else:
            job = si_nn.job(name, args.iterations, args.l2)
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
