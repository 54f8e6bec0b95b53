"""The silicon neural-network training set and jobs shared by the accuracy tests
(tests/accuracy) and benchmarks/nn_training.py.

The dataset: strained and rattled diamond-silicon cells of 8, 16, 32 and 64 atoms with
energies and forces from LAMMPS ``pair_style sw`` (``Si.sw``); the jobs hold 15 % out for
validation.  Models: an ACSF network (G2 + G5, 2×30 tanh), an LSP network (2×30 tanh) and a
PINN (LSP, 2×20 tanh, BOP with r_c = 3.5 Å and d = 0.6 Å: the first shell, where Si.sw acts,
at nearly full strength; Si.sw's cutoff is 3.77 Å).  The PINN trains in two jobs: its base
BOP alone (least squares, 40 iterations), then networks and base together from the fitted
base.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DESCRIPTORS = {
    "acsf": """<acsf rcut="4.0"><g2 eta="0.01 0.1 0.3 1.0 3.0" rs="0"/><g2 eta="3.0" rs="2.3 2.8 3.3"/>
        <g5 eta="0.01 0.1 0.5" zeta="1 2 4 8" lambda="1 -1"/></acsf>""",
    "lsp": """<lsp rn="1.5 2.0 2.5 3.0 3.5" sigma="0.8" rcut="4.2" d="1.5" ls="0 1 2 3 4 5 6"/>""",
    "pinn": """<lsp rn="1.5 2.0 2.5 3.0 3.5" sigma="0.8" rcut="4.2" d="1.5" ls="0 1 2 3 4 5 6"/>""",
}

NETWORK = """<neural-network id="Si" hidden="30 30" activation="tanh" seed="1" l2="{l2}">
      {descriptor}
      <element species="Si"/>
      <fit-dof><weights/><bias/></fit-dof>
      <export-potential>Si_nn.json</export-potential>
    </neural-network>"""

#: The PINN: r_c = 3.5 Å covers the first shell, where Si.sw acts (its cutoff is 3.77 Å);
#: d = 0.6 Å keeps f_c near 1 over that shell (f_c(2.35 Å) = 0.93; with d = 1.2 Å it is 0.46,
#: and the base BOP alone fits the set 4× worse: 32 instead of 9 meV/atom).
PINN = """<pinn id="Si" rc="3.5" d="0.6" hidden="20 20" activation="tanh" seed="1" l2="{l2}">
      {descriptor}
      <element species="Si"/>
      <base species="Si" {base}/>
      <fit-dof>{fit}</fit-dof>
      <export-potential>Si_nn.json</export-potential>
    </pinn>"""

#: Starting base of the BOP fit (stage 1 of the PINN): Tersoff-like Si values.
BOP_START = dict(A=7.5, B=6.15, alpha=2.48, beta=1.73, a=0.3, h=-0.33, **{"lambda": 1.5},
                 sigma=1.0)

JOB = """<job><name>Si neural-network training</name><atom-types><species>Si</species></atom-types>
  <potentials>
    {potential}
  </potentials>
  <structures>
    <dataset id="si" validation-fraction="0.15" seed="2"><file>{data}</file>
      <properties><atomic-energy tolerance="0.002"/><atomic-forces tolerance="0.05"/>
      </properties></dataset>
  </structures>
  <fitting output-interval="500">{minimizer}</fitting></job>"""

LBFGS = '<BFGS conv-threshold="1e-14" max-iter="{iterations}"/>'


def job(name: str, iterations: int, l2: float = 1e-5, base: dict | None = None,
        data: str = "si.xyz") -> str:
    """The job text of model ``name`` ("acsf", "lsp", "pinn") on the dataset file ``data``;
    for the PINN, stage 1 (``base`` None: the BOP base alone, least squares) or stage 2 (the
    networks and the base, from stage 1's fitted ``base``).  The model is exported to
    ``Si_nn.json``."""
    if name != "pinn":
        potential = NETWORK.format(descriptor=DESCRIPTORS[name], l2=l2)
        return JOB.format(potential=potential, minimizer=LBFGS.format(iterations=iterations),
                          data=data)
    stage1 = base is None
    values = " ".join(f'{k}="{v!r}"' for k, v in (BOP_START if stage1 else base).items())
    potential = PINN.format(descriptor=DESCRIPTORS[name], l2=0.0 if stage1 else l2,
                            base=values, fit="<base/>" if stage1 else
                            "<weights/><bias/><base/>")
    minimizer = '<least-squares max-iter="40"/>' if stage1 else \
        LBFGS.format(iterations=iterations)
    return JOB.format(potential=potential, minimizer=minimizer, data=data)


def fitted_base(results: dict) -> dict:
    """The base BOP values fitted by PINN stage 1, by name, from its ``results.json`` dict."""
    from rexfit.potentials.pinn import BOP_PARAMETERS

    values = results["parameters"]
    return {name: values[f"Si[PINN].base.{k}[Si]"]["value"]
            for k, name in enumerate(BOP_PARAMETERS)}


def make_dataset(path: Path, cells: int) -> int:
    """Write ``cells`` LAMMPS-labelled Si cells to ``path`` (extended XYZ); returns the number
    of atoms."""
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
        shifts = np.array([[i, j, m] for i in range(rep[0]) for j in range(rep[1])
                           for m in range(rep[2])], float)
        pos = (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
        cell = np.diag(rep) @ cell
        ref = lammps_compute(pos, cell, np.zeros(len(pos), int), (True,) * 3, "sw", [coeff], 1)
        atoms = Atoms(f"Si{len(pos)}", positions=pos, cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=ref.energy, forces=ref.forces)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return sum(len(f) for f in frames)
