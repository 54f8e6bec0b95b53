"""Writes Cu.yaml, the small ACE basis of this example (and of `rexfit template ace`): pyace
builds the basis (Cu, ChebExpCos bonds, r_c = 5 Å, ranks 1-3, 32 functions, two densities
with the embedding F = ρ1 − √ρ2); the rank-1 coefficients of density 1 are fitted by least
squares to Rose's universal equation of state of fcc Cu (a0 = 3.615 Å, E_c = 3.54 eV,
B = 138 GPa) on 3.3-4.3 Å with density 2 fixed (c = 0.5 on g_0), and the rank-2 and rank-3
coefficients are small random numbers (a genuine many-body term, not a fit to anything).
Needs pyace (PyPI python-ace) and ase.  Run from this folder: python make_potential.py"""

import numpy as np
import pyace
from ase.build import bulk

from rexfit.physics.properties import evaluate
from rexfit.potentials.ace.files import read_bbasis, write_bbasis
from rexfit.potentials.ace.model import ACE
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system

config = pyace.create_multispecies_basis_config({
    "deltaSplineBins": 0.001, "elements": ["Cu"],
    "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                           "fs_parameters": [1, 1, -1, 0.5], "ndensity": 2}},
    "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0,
                      "dcut": 0.01}},
    "functions": {"ALL": {"nradmax_by_orders": [4, 3, 2], "lmax_by_orders": [0, 2, 1]}}})
config.save("Cu.yaml")
basis = read_bbasis("Cu.yaml")
potential, params = ACE.from_bbasis(basis)
c = np.zeros(params["c"]["Cu"].shape)
rank = np.array([len(f.ns) for f in basis.block("Cu").functions])
rng = np.random.default_rng(1)
c[rank > 1] = 0.002 * rng.normal(size=(int((rank > 1).sum()), 2))
c[0, 1] = 0.5  # density 2: 0.5 Σ_j g_0(r_ij)


def features(a):
    """(rank-1 features of density 1 summed per atom, energy per atom with those zero)."""
    atoms = bulk("Cu", "fcc", a)
    system = make_system(atoms.positions, atoms.cell[:], [0], pbc=(True,) * 3)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    f = np.asarray(potential.features(params, system, nbrs))[0]
    e = float(evaluate(potential, {"crad": params["crad"], "c": {"Cu": c}}, system, nbrs).energy)
    return f[rank == 1], e


a0, ec, bulk_modulus = 3.615, 3.54, 138.0 / 160.21766
omega = a0**3 / 4
grid = np.linspace(3.3, 4.3, 41)
rows, rest, target = [], [], []
for a in grid:
    f, e = features(a)
    astar = (a / a0 - 1) / np.sqrt(ec / (9 * bulk_modulus * omega))
    rows.append(f)
    rest.append(e)
    target.append(-ec * (1 + astar + 0.05 * astar**3) * np.exp(-astar))
weights = np.exp(-((grid - a0) / 0.3) ** 2)  # closest near the minimum
design = np.asarray(rows) * weights[:, None]
ridge = 1e-6 * np.eye(design.shape[1])  # keeps the coefficients of order 1
solution = np.linalg.solve(design.T @ design + ridge,
                           design.T @ ((np.asarray(target) - rest) * weights))
c[rank == 1, 0] = solution
write_bbasis("Cu.yaml", potential.to_bbasis(basis, {"crad": params["crad"], "c": {"Cu": c}}))
for a in (3.5, 3.615, 3.7):
    print(a, features(a)[1])
