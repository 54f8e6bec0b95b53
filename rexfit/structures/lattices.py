"""Crystal-lattice builders, differentiable in their lattice parameters.

Each builder maps lattice parameters (Å; c/a dimensionless) to a :class:`System` using only
JAX operations, so ``jax.grad`` through a builder gives derivatives with respect to lattice
DOFs.  Species arguments are integer indices into the job's atom-type list.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from rexfit.structures.system import System, make_system

#: Ideal c/a of hcp, sqrt(8/3).
HCP_IDEAL_CA = float(np.sqrt(8.0 / 3.0))
#: Ideal c/a of the omega phase derived from bcc, sqrt(3/8).
OMEGA_IDEAL_CA = float(np.sqrt(3.0 / 8.0))

_FCC_PRIMITIVE = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
_BCC_PRIMITIVE = np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])


def _crystal(cell, fractional, species) -> System:
    """Periodic system from a cell (3, 3), fractional coordinates (n, 3) and species (n,)."""
    cell = jnp.asarray(cell, dtype=jnp.float64)
    frac = jnp.asarray(np.asarray(fractional, dtype=np.float64))
    return make_system(frac @ cell, cell, np.asarray(species, dtype=np.int32))


def _hexagonal_cell(a, c):
    """Cell a1=(a,0,0), a2=(−a/2, a√3/2, 0), a3=(0,0,c)."""
    a = jnp.asarray(a, dtype=jnp.float64)
    zero = jnp.zeros_like(a)
    return jnp.stack(
        [
            jnp.stack([a, zero, zero]),
            jnp.stack([-0.5 * a, 0.5 * np.sqrt(3.0) * a, zero]),
            jnp.stack([zero, zero, jnp.asarray(c, dtype=jnp.float64)]),
        ]
    )


def fcc(a, species: int = 0) -> System:
    """fcc primitive 1-atom cell, cubic lattice parameter ``a`` (Å)."""
    return _crystal(a * _FCC_PRIMITIVE, [[0.0, 0.0, 0.0]], [species])


def bcc(a, species: int = 0) -> System:
    """bcc primitive 1-atom cell, cubic lattice parameter ``a`` (Å)."""
    return _crystal(a * _BCC_PRIMITIVE, [[0.0, 0.0, 0.0]], [species])


def sc(a, species: int = 0) -> System:
    """Simple-cubic 1-atom cell, lattice parameter ``a`` (Å)."""
    return _crystal(a * np.eye(3), [[0.0, 0.0, 0.0]], [species])


def diamond(a, species: int = 0) -> System:
    """Diamond: 2 atoms (0 and ¼,¼,¼ of the cube) on the fcc primitive cell, cubic ``a`` (Å)."""
    return _crystal(a * _FCC_PRIMITIVE, [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]], [species] * 2)


def hcp(a, ca_ratio=HCP_IDEAL_CA, species: int = 0) -> System:
    """hcp 2-atom cell a1=(a,0,0), a2=(−a/2, a√3/2, 0), a3=(0,0,c), c = ca_ratio·a.

    Ideal positions (0, 0, 0) and (⅓, ⅔, ½) (fractional), as ``ase.build.bulk('X', 'hcp')``.
    """
    cell = _hexagonal_cell(a, ca_ratio * a)
    return _crystal(cell, [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.5]], [species] * 2)


def omega(a, ca_ratio=OMEGA_IDEAL_CA, species: int = 0) -> System:
    """Omega phase, 3 atoms on the hexagonal cell of :func:`hcp` (c = ca_ratio·a).

    Positions (0, 0, 0), (⅓, ⅔, ½), (⅔, ⅓, ½) (fractional); ideal c/a = √(3/8).
    """
    cell = _hexagonal_cell(a, ca_ratio * a)
    frac = [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    return _crystal(cell, frac, [species] * 3)


def dimer(distance, species=(0, 0), box: float = 30.0) -> System:
    """Two atoms ``distance`` Å apart along x in a non-periodic cubic box of edge ``box`` Å."""
    d = jnp.asarray(distance, dtype=jnp.float64)
    zero = jnp.zeros_like(d)
    positions = jnp.stack([jnp.stack([zero, zero, zero]), jnp.stack([d, zero, zero])])
    return make_system(positions, box * np.eye(3), np.asarray(species), pbc=(False,) * 3)


def l12(a, species=(0, 1)) -> System:
    """L1₂ (Cu₃Au type) A₃B, 4-atom cubic cell ``a`` (Å): B=species[1] at the corner, A on faces."""
    a_, b_ = species
    frac = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
    return _crystal(a * np.eye(3), frac, [b_, a_, a_, a_])


def b1(a, species=(0, 1)) -> System:
    """B1 (NaCl type) AB, 2 atoms on the fcc primitive cell, cubic ``a`` (Å); B at (a/2, 0, 0)."""
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]) @ np.linalg.inv(_FCC_PRIMITIVE)
    return _crystal(a * _FCC_PRIMITIVE, frac, list(species))


def b2(a, species=(0, 1)) -> System:
    """B2 (CsCl type) AB, 2-atom cubic cell ``a`` (Å): A at the corner, B at the centre."""
    return _crystal(a * np.eye(3), [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], list(species))


def l10(a, ca_ratio=1.0, species=(0, 1)) -> System:
    """L1₀ (CuAu type) AB, 2-atom primitive tetragonal cell of the fcc-like cell (a, a, c=ca·a).

    Cell a1=(a/2, a/2, 0), a2=(−a/2, a/2, 0), a3=(0, 0, c); A at 0, B at (a/2, 0, c/2): A and B
    fill alternate (001) planes of the conventional cell.
    """
    a = jnp.asarray(a, dtype=jnp.float64)
    c = ca_ratio * a
    zero = jnp.zeros_like(a)
    cell = jnp.stack(
        [
            jnp.stack([0.5 * a, 0.5 * a, zero]),
            jnp.stack([-0.5 * a, 0.5 * a, zero]),
            jnp.stack([zero, zero, jnp.asarray(c, dtype=jnp.float64)]),
        ]
    )
    return _crystal(cell, [[0.0, 0.0, 0.0], [0.5, -0.5, 0.5]], list(species))


#: Builders by atomicrex/rexfit structure tag.
LATTICE_BUILDERS = {
    "fcc-lattice": fcc,
    "bcc-lattice": bcc,
    "sc-lattice": sc,
    "hcp-lattice": hcp,
    "diamond-lattice": diamond,
    "dimer-structure": dimer,
    "L12-lattice": l12,
    "B1-lattice": b1,
    "B2-lattice": b2,
    "L10-lattice": l10,
    "omega-lattice": omega,
}


# ----------------------------------------------------------------------------- as data

#: The lattice DOFs of a :class:`LatticeForm`, in the order of its ``values``.
FORM_DOFS = ("lattice-parameter", "ca-ratio", "atom-distance")


@dataclass(frozen=True, eq=False)
class LatticeForm:
    """Any lattice of :data:`LATTICE_BUILDERS` (and any fixed structure) as data, so lattices
    of different kinds share compiled programs when their atom counts match:

        cell = c0 + a·a0 + (ca·a)·a1,    positions = p0 + frac @ cell + d·p1

    with a the lattice parameter, ca the c/a ratio and d the atom distance.  Terms a builder
    does not have are exact zeros (a, ca default to 1, d to 0), so the cell and positions are
    the builder's to the last bit.  ``defaults``: values of the DOFs a builder defaults.
    """

    c0: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    p0: np.ndarray
    frac: np.ndarray
    p1: np.ndarray
    species: np.ndarray
    pbc: tuple[bool, bool, bool] = (True, True, True)
    defaults: dict = None

    @property
    def natoms(self) -> int:
        return len(self.species)

    def values(self, dofs: dict) -> np.ndarray:
        """(a, ca, d) from ``dofs``, missing ones from the builder's defaults (else 1, 1, 0)."""
        base = {"lattice-parameter": 1.0, "ca-ratio": 1.0, "atom-distance": 0.0}
        base.update(self.defaults or {})
        base.update({k: v for k, v in dofs.items() if k in base})
        return np.array([float(base[k]) for k in FORM_DOFS])

    def build(self, a, ca, d) -> System:
        cell, positions = place(self.c0, self.a0, self.a1, self.p0, self.frac, self.p1, a, ca, d)
        return System(positions=positions, cell=cell, species=self.species,
                      mask=jnp.ones(self.natoms, bool), pbc=self.pbc)


def place(c0, a0, a1, p0, frac, p1, a, ca, d):
    """(cell, positions) of a :class:`LatticeForm`'s arrays at DOF values a, ca, d."""
    cell = c0 + a * a0 + (ca * a) * a1
    return cell, p0 + frac @ cell + d * p1


def _form(a0, frac, species, a1=None, ca=None) -> LatticeForm:
    frac = np.asarray(frac, dtype=np.float64).reshape(-1, 3)
    n = len(frac)
    zero = np.zeros((n, 3))
    return LatticeForm(c0=np.zeros((3, 3)), a0=np.asarray(a0, np.float64),
                       a1=np.zeros((3, 3)) if a1 is None else np.asarray(a1, np.float64),
                       p0=zero, frac=frac, p1=zero,
                       species=np.asarray(species, np.int32).reshape(n),
                       defaults={} if ca is None else {"ca-ratio": ca})


_C_AXIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
_HEXAGONAL_A = np.array([[1.0, 0.0, 0.0], [-0.5, 0.5 * np.sqrt(3.0), 0.0], [0.0, 0.0, 0.0]])


def lattice_form(kind: str, species) -> LatticeForm:
    """The :class:`LatticeForm` of builder ``kind`` called with ``species`` (as the builder
    takes it: an index, or a tuple for the compounds and the dimer)."""
    if kind in ("fcc-lattice", "bcc-lattice", "sc-lattice"):
        a0 = {"fcc-lattice": _FCC_PRIMITIVE, "bcc-lattice": _BCC_PRIMITIVE,
              "sc-lattice": np.eye(3)}[kind]
        return _form(a0, [[0.0, 0.0, 0.0]], [species])
    if kind == "diamond-lattice":
        return _form(_FCC_PRIMITIVE, [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]], [species] * 2)
    if kind == "hcp-lattice":
        return _form(_HEXAGONAL_A, [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.5]], [species] * 2,
                     _C_AXIS, HCP_IDEAL_CA)
    if kind == "omega-lattice":
        frac = [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
        return _form(_HEXAGONAL_A, frac, [species] * 3, _C_AXIS, OMEGA_IDEAL_CA)
    if kind == "dimer-structure":
        species = np.asarray(species, np.int32).reshape(2)
        p1 = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        return LatticeForm(c0=30.0 * np.eye(3), a0=np.zeros((3, 3)), a1=np.zeros((3, 3)),
                           p0=np.zeros((2, 3)), frac=np.zeros((2, 3)), p1=p1, species=species,
                           pbc=(False,) * 3, defaults={})
    if kind == "L12-lattice":
        a_, b_ = species
        frac = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
        return _form(np.eye(3), frac, [b_, a_, a_, a_])
    if kind == "B1-lattice":
        frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]) @ np.linalg.inv(_FCC_PRIMITIVE)
        return _form(_FCC_PRIMITIVE, frac, list(species))
    if kind == "B2-lattice":
        return _form(np.eye(3), [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], list(species))
    if kind == "L10-lattice":
        a0 = np.array([[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
        return _form(a0, [[0.0, 0.0, 0.0], [0.5, -0.5, 0.5]], list(species), _C_AXIS, 1.0)
    raise KeyError(kind)


def fixed_form(system: System) -> LatticeForm:
    """A structure that does not move with lattice DOFs (a user structure) as a form."""
    n = system.natoms
    zero3 = np.zeros((3, 3))
    return LatticeForm(c0=np.asarray(system.cell, np.float64), a0=zero3, a1=zero3,
                       p0=np.asarray(system.positions, np.float64), frac=np.zeros((n, 3)),
                       p1=np.zeros((n, 3)), species=np.asarray(system.species, np.int32),
                       pbc=tuple(system.pbc), defaults={})
