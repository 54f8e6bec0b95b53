"""Linear (and quadratic) models on a per-atom descriptor; SNAP as LAMMPS ``pair_style snap``.

E = Σ_i [β0_e + β_e·B_i + γ_e·q(B_i)], e the element of atom i, B_i its descriptor row
(:mod:`rexfit.descriptors`), q(B) = (½B_1², B_1B_2, …, B_1B_K, ½B_2², B_2B_3, …) — the
quadratic block of a LAMMPS ``.snapcoeff`` with quadraticflag 1 (the same columns as
``compute sna/atom ... quadraticflag 1``).  Energy only; forces and stress by autodiff.

params: {element: {"beta0": () float64, "beta": (K,), "gamma": (K(K+1)/2,) if quadratic}}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.descriptors.bispectrum import Bispectrum, quadratic_products
from rexfit.potentials.base import Params
from rexfit.potentials.snap_files import (
    SnapElement,
    read_snap_include,
    read_snapcoeff,
    read_snapparam,
)
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System


def coefficient_table(model, params: Params) -> dict:
    """{element: SnapElement} of a descriptor model's coefficients (β0, β, and γ for a
    quadratic model), with the descriptor's radii and weights (0 and 1 for descriptors
    without them): the content of a .snapcoeff file."""
    radii = getattr(model.descriptor, "radii", None)
    weights = getattr(model.descriptor, "weights", None)
    table = {}
    for s, e in enumerate(model.elements):
        parts = [np.atleast_1d(np.asarray(params[e]["beta0"], dtype=np.float64)),
                 np.asarray(params[e]["beta"], dtype=np.float64)]
        if model.quadratic:
            parts.append(np.asarray(params[e]["gamma"], dtype=np.float64))
        table[e] = SnapElement(0.0 if radii is None else radii[s],
                               1.0 if weights is None or s >= len(weights) else weights[s],
                               np.concatenate(parts))
    return table


@dataclass(frozen=True)
class DescriptorModel:
    """Per-atom linear/quadratic model on ``descriptor`` (species s ↦ elements[s]).

    descriptor: frozen descriptor (``cutoff``, ``n_features``, ``features``) whose features
    are the *linear* components (its own quadratic option must be off).  quadratic: add the
    γ·q(B) term.  Species ≥ len(elements) contribute nothing.  Needs a full neighbour list.
    """

    descriptor: object
    elements: tuple[str, ...]
    quadratic: bool = False

    full_list = True

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(self.elements))
        if getattr(self.descriptor, "quadratic", False):
            raise ValueError("DescriptorModel: give the descriptor without its quadratic "
                             "columns and set quadratic=True on the model instead")

    @property
    def cutoff(self) -> float:
        """Neighbour reach (Å) of the descriptor."""
        return self.descriptor.cutoff

    @property
    def n_linear(self) -> int:
        """K, the length of β."""
        return self.descriptor.n_features

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of one element's parameters."""
        k = self.n_linear
        shapes = {"beta0": (), "beta": (k,)}
        if self.quadratic:
            shapes["gamma"] = (k * (k + 1) // 2,)
        return shapes

    def _stack(self, params: Params, name: str):
        return jnp.stack([jnp.asarray(params[e][name], dtype=jnp.float64) for e in self.elements])

    def atom_energies(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """(N,) eV per atom slot (0 for padding and species outside ``elements``)."""
        b = self.descriptor.features(system, nbrs)
        return self.energies_from_features(params, b, system.species, system.mask)

    def energies_from_features(self, params: Params, b, species, mask) -> jax.Array:
        """Per-atom energies (...,) from descriptor rows ``b`` (..., K), the atoms' species and
        mask (0 for padding and species outside ``elements``); the model part of
        :meth:`atom_energies`, also used on precomputed features."""
        n = len(self.elements)
        s = jnp.clip(species, 0, n - 1)
        e = self._stack(params, "beta0")[s] + jnp.sum(self._stack(params, "beta")[s] * b,
                                                      axis=-1)
        if self.quadratic:
            e = e + jnp.sum(self._stack(params, "gamma")[s] * quadratic_products(b), axis=-1)
        present = mask & (species >= 0) & (species < n)
        return jnp.where(present, e, 0.0)

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` a full list reaching :attr:`cutoff`."""
        return jnp.sum(self.atom_energies(params, system, nbrs))


@dataclass(frozen=True)
class SNAP(DescriptorModel):
    """``pair_style snap``: a :class:`DescriptorModel` on a :class:`Bispectrum`."""

    @staticmethod
    def create(elements: Iterable[str], twojmax: int, rcutfac: float, radii, weights,
               quadratic: bool = False, **settings) -> SNAP:
        """SNAP over ``elements`` (radii/weights per element; settings: rfac0, rmin0,
        switchflag, bzeroflag as :class:`Bispectrum`)."""
        elements = tuple(elements)
        return SNAP(Bispectrum(twojmax, rcutfac, tuple(radii), tuple(weights), **settings),
                    elements, quadratic)

    @staticmethod
    def from_files(coeff_path, param_path, elements: Iterable[str] | None = None):
        """(potential, params) as ``pair_coeff * * coeff_path param_path e1 e2 ...``;
        ``elements`` default: all of the file, in file order."""
        table = read_snapcoeff(coeff_path)
        settings = read_snapparam(param_path)
        elements = tuple(table) if elements is None else tuple(elements)
        missing = [e for e in elements if e not in table]
        if missing:
            raise ValueError(f"{coeff_path}: element(s) {', '.join(missing)} missing")
        quadratic = bool(settings["quadraticflag"])
        descriptor = Bispectrum(
            settings["twojmax"], settings["rcutfac"],
            tuple(table[e].radius for e in elements), tuple(table[e].weight for e in elements),
            rfac0=settings["rfac0"], rmin0=settings["rmin0"],
            switchflag=settings["switchflag"], bzeroflag=settings["bzeroflag"],
            bnormflag=settings["bnormflag"], chemflag=settings["chemflag"],
            wselfallflag=settings["wselfallflag"], switchinnerflag=settings["switchinnerflag"])
        potential = SNAP(descriptor, elements, quadratic)
        k = descriptor.n_features
        expected = 1 + k + (k * (k + 1) // 2 if quadratic else 0)
        params = {}
        for e in elements:
            c = table[e].coefficients
            if len(c) != expected:
                raise ValueError(f"{coeff_path}: {len(c)} coefficients per element, but "
                                 f"twojmax {descriptor.twojmax} (quadraticflag "
                                 f"{int(quadratic)}) needs {expected}")
            params[e] = {"beta0": jnp.float64(c[0]), "beta": jnp.asarray(c[1:1 + k])}
            if quadratic:
                params[e]["gamma"] = jnp.asarray(c[1 + k:])
        return potential, params

    @staticmethod
    def from_include(path, elements: Iterable[str] | None = None):
        """(potential, params) from a LAMMPS ``.snap`` include file (its SNAP term only)."""
        coeff, param, names = read_snap_include(path)
        return SNAP.from_files(coeff, param, names if elements is None else elements)

    def settings(self) -> dict:
        """The .snapparam settings of this potential."""
        d = self.descriptor
        return {"rcutfac": d.rcutfac, "twojmax": d.twojmax, "rfac0": d.rfac0, "rmin0": d.rmin0,
                "switchflag": int(d.switchflag), "bzeroflag": int(d.bzeroflag),
                "quadraticflag": int(self.quadratic), "bnormflag": int(d.bnormflag)}
