"""Small test structures as plain NumPy (positions, cell, species, pbc), seeded and cheap.

Each is meant to stress one part of the machinery: triclinic strain, cells much smaller than
the cutoff (many periodic images), left-handed cells, slabs and clusters (non-periodic
directions), and several species.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.build import bulk


@dataclass(frozen=True)
class Case:
    """positions (N, 3) Å, cell (3, 3) rows, species (N,) 0-based, pbc (3,) bools."""

    name: str
    positions: np.ndarray
    cell: np.ndarray
    species: np.ndarray
    pbc: tuple[bool, bool, bool]

    @property
    def natoms(self) -> int:
        return len(self.positions)


def _species(rng, n, ntypes):
    s = rng.integers(0, ntypes, n)
    s[:ntypes] = np.arange(ntypes)  # every species present
    return s


def make_cases(a: float = 3.6, ntypes: int = 1, seed: int = 0) -> list[Case]:
    """The parity structures for an fcc-ish lattice parameter ``a`` (Å) and ``ntypes`` species."""
    rng = np.random.default_rng(seed)
    cases = []

    atoms = bulk("X", "fcc", a, cubic=True).repeat((2, 2, 2))
    strain = np.eye(3) + rng.normal(0.0, 0.03, (3, 3))
    cell = atoms.cell.array @ strain
    pos = atoms.positions @ strain + rng.normal(0.0, 0.12, (len(atoms), 3))
    pos += rng.integers(-1, 2, (len(atoms), 1)) * cell[0]  # some atoms outside the cell
    cases.append(Case("strained_triclinic", pos, cell, _species(rng, len(pos), ntypes),
                      (True,) * 3))

    prim = bulk("X", "fcc", a).cell.array
    shear = np.array([[1.0, 0.0, 0.0], [0.35, 1.0, 0.0], [-0.2, 0.25, 1.0]])
    cell = shear @ prim  # lattice-preserving skew: very oblique cell, same crystal
    pos = rng.normal(0.0, 0.05, (1, 3))
    cases.append(Case("one_atom_oblique", pos, cell, np.zeros(1, int), (True,) * 3))

    cell = bulk("X", "bcc", a * 0.8).cell.array @ (np.eye(3) + rng.normal(0, 0.02, (3, 3)))
    pos = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]) @ cell + rng.normal(0, 0.1, (2, 3))
    cases.append(Case("two_atom_small", pos, cell, _species(rng, 2, ntypes), (True,) * 3))

    atoms = bulk("X", "fcc", a, orthorhombic=True).repeat((1, 1, 2))
    cell = atoms.cell.array[::-1].copy()  # left-handed row order
    pos = atoms.positions + rng.normal(0.0, 0.1, (len(atoms), 3))
    cases.append(Case("left_handed", pos, cell, _species(rng, len(pos), ntypes), (True,) * 3))

    atoms = bulk("X", "fcc", a, cubic=True).repeat((2, 2, 2))
    pos = atoms.positions + rng.normal(0.0, 0.1, (len(atoms), 3))
    cell = atoms.cell.array.copy()
    cell[0, 1] = 0.4 * a  # triclinic in-plane
    cell[2, 2] = 3.0 * a  # vacuum along the non-periodic z
    cases.append(Case("slab", pos, cell, _species(rng, len(pos), ntypes), (True, True, False)))

    atoms = bulk("X", "fcc", a, cubic=True)
    shell = atoms.repeat((2, 2, 2)).positions
    centre = shell.mean(axis=0)
    pick = np.argsort(np.linalg.norm(shell - centre, axis=1))[:13]
    pos = shell[pick] + rng.normal(0.0, 0.1, (13, 3))
    cases.append(Case("cluster", pos, np.zeros((3, 3)), _species(rng, 13, ntypes),
                      (False,) * 3))
    return cases


def crystal(name, a, repeat=1, symbols=None, seed=0, strain=0.02, rattle=0.1, c=None,
            cubic=True, species=None):
    """(positions, cell, species) of a perturbed, triclinically strained ASE crystal;
    ``species`` overrides the crystal's own (e.g. a random alloy)."""
    kw = {"c": c} if c is not None else {}
    atoms = bulk(name, symbols, a, cubic=cubic, **kw).repeat((repeat,) * 3)
    rng = np.random.default_rng(seed)
    deformation = np.eye(3) + rng.normal(0.0, strain, (3, 3))
    cell = atoms.cell.array @ deformation
    pos = atoms.get_scaled_positions() @ cell + rng.normal(0.0, rattle, (len(atoms), 3))
    if species is None:
        kinds = list(dict.fromkeys(atoms.get_chemical_symbols()))
        species = np.array([kinds.index(s) for s in atoms.get_chemical_symbols()])
    return pos, cell, np.asarray(species)
