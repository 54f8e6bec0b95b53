"""Mishin's angular-dependent potential (ADP): EAM plus dipole and quadrupole terms.

    E = ½ Σ_i Σ_{j≠i} φ_{s_i s_j}(r_ij) + Σ_i F_{s_i}(ρ_i)
        + ½ Σ_i Σ_α (μ_i^α)² + ½ Σ_i Σ_{α,β} (λ_i^{αβ})² − (1/6) Σ_i (ν_i)²,

    ρ_i = Σ_j ρ_{s_i s_j}(r_ij),   μ_i^α = Σ_j u_{s_i s_j}(r_ij) r_ij^α,
    λ_i^{αβ} = Σ_j w_{s_i s_j}(r_ij) r_ij^α r_ij^β,   ν_i = Σ_α λ_i^{αα},

with r_ij = x_j − x_i (Mishin, Mehl & Papaconstantopoulos, Acta Mater. 53 (2005) 4029; LAMMPS
``pair_style adp``, which sums x_i − x_j instead: μ only changes sign, E is the same).  φ, u
and w are symmetric in the species pair; ρ_{ab} is the density at an a-atom due to a
b-neighbour (an adp file has ρ_{ab} = ρ_b).  The EAM part is computed by
:class:`~rexfit.potentials.eam.EAM`; this module adds the angular part, which needs only pair
sums, over a half or a full neighbour list.

:func:`tabulated_adp` makes the potential of a LAMMPS adp file (:mod:`adp_files`) with the
interpolation of :mod:`~rexfit.potentials.tabulated`, i.e. what LAMMPS computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from rexfit.potentials.adp_files import ADPTables, read_adp_file
from rexfit.potentials.base import Params, pair_distances
from rexfit.potentials.eam import EAM
from rexfit.potentials.eam_files import EAMTables, tabulated_eam
from rexfit.potentials.tabulated import LammpsTable
from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System

Entry = tuple[str, Any]
"""A mapping entry: (params key, function object)."""


def _freeze(mapping: Mapping[Any, Entry]) -> tuple:
    return tuple(sorted(mapping.items(), key=lambda kv: kv[0]))


def _check_species(key: tuple, n_species: int, what: str) -> None:
    if any(not 0 <= int(s) < n_species for s in key):
        raise ValueError(f"{what} function for species {key}: index out of 0..{n_species - 1}")


def _symmetric(mapping: Mapping, n_species: int, what: str) -> dict:
    """{(a, b): entry} with keys (min, max); the same pair given twice differently is an error."""
    out: dict[tuple[int, int], Entry] = {}
    for (a, b), entry in mapping.items():
        key = (min(int(a), int(b)), max(int(a), int(b)))
        _check_species(key, n_species, what)
        if key in out and out[key] != entry:
            raise ValueError(f"{what} function for species {key} given twice")
        out[key] = entry
    return out


def _densities(mapping: Mapping, n_species: int) -> dict:
    """Density keys (a, b) kept; a bare b (alloy form, ρ_b for every centre) expanded."""
    out: dict[tuple[int, int], Entry] = {}
    for key, entry in mapping.items():
        keys = [tuple(int(s) for s in key)] if isinstance(key, tuple) else [
            (a, int(key)) for a in range(n_species)]
        for k in keys:
            _check_species(k, n_species, "density")
            if k in out and out[k] != entry:
                raise ValueError(f"density function for species {k} given twice")
            out[k] = entry
    return out


@dataclass(frozen=True)
class ADP:
    """ADP over species indices 0..n_species−1 (absent mapping entries: no term).

    pair, u, w: ((a, b), (key, f)) with a ≤ b; φ(r) in eV.
    density: ((a, b), (key, ρ)), density at an a-atom due to a b-neighbour.  embedding:
    (a, (key, F)), F(ρ) in eV.  cutoff: Å (pairs with r ≥ cutoff are ignored).
    Units: μ² and λ² are energies, so u is in √eV/Å and w in √eV/Å² (LAMMPS's files just
    tabulate the numbers).  Build with :meth:`create`, which accepts plain dicts; each function
    reads its parameters at ``params[key]``, and several entries may share a key.
    """

    n_species: int
    cutoff: float
    pair: tuple
    density: tuple
    embedding: tuple
    u: tuple
    w: tuple

    @staticmethod
    def create(n_species, cutoff, pair, density, embedding, u, w) -> ADP:
        """ADP from dicts {(a, b): (key, φ)}, {(a, b) or b: (key, ρ)}, {a: (key, F)},
        {(a, b): (key, u)}, {(a, b): (key, w)}.

        Pair, u and w keys are symmetrised (a, b) → (min, max).  A density key b (not a
        tuple) means the alloy form: ρ_b at every centre species.
        """
        n = int(n_species)
        emb = {}
        for a, entry in dict(embedding).items():
            _check_species((a,), n, "embedding")
            emb[int(a)] = entry
        return ADP(
            n,
            float(cutoff),
            _freeze(_symmetric(pair, n, "pair")),
            _freeze(_densities(density, n)),
            _freeze(emb),
            _freeze(_symmetric(u, n, "u")),
            _freeze(_symmetric(w, n, "w")),
        )

    @property
    def eam(self) -> EAM:
        """The EAM part (φ, ρ, F) as an :class:`~rexfit.potentials.eam.EAM`."""
        return EAM(self.n_species, self.cutoff, self.pair, self.density, self.embedding)

    # ------------------------------------------------------------------ evaluation

    def moments(self, params: Params, system: System, nbrs: NeighborList):
        """Dipoles μ (N, 3) and quadrupoles λ (N, 3, 3) of every atom slot (0 on padding)."""
        eam = self.eam
        d = pair_displacements(system, nbrs)
        r, use = pair_distances(system, nbrs, self.cutoff)
        si, sj = system.species[nbrs.i], system.species[nbrs.j]
        u_table = eam._slot_table(self.u, 2, symmetric=True)
        w_table = eam._slot_table(self.w, 2, symmetric=True)
        u = jnp.where(use, eam._select(self.u, u_table[si, sj], r, params), 0.0)
        w = jnp.where(use, eam._select(self.w, w_table[si, sj], r, params), 0.0)
        dipole = u[:, None] * d  # μ_i gets u r_ij; μ_j gets u r_ji = −u r_ij (u symmetric)
        quad = w[:, None, None] * d[:, :, None] * d[:, None, :]
        n = system.natoms
        mu = jax.ops.segment_sum(dipole, nbrs.i, num_segments=n)
        lam = jax.ops.segment_sum(quad, nbrs.i, num_segments=n)
        if nbrs.half:
            mu = mu - jax.ops.segment_sum(dipole, nbrs.j, num_segments=n)
            lam = lam + jax.ops.segment_sum(quad, nbrs.j, num_segments=n)
        real = system.mask
        return jnp.where(real[:, None], mu, 0.0), jnp.where(real[:, None, None], lam, 0.0)

    def angular_energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Σ_i [½ |μ_i|² + ½ λ_i:λ_i − ν_i²/6] in eV."""
        mu, lam = self.moments(params, system, nbrs)
        nu = jnp.trace(lam, axis1=1, axis2=2)
        return (0.5 * jnp.sum(mu * mu) + 0.5 * jnp.sum(lam * lam)
                - jnp.sum(nu * nu) / 6.0)

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total ADP energy (eV)."""
        return self.eam.energy(params, system, nbrs) + self.angular_energy(params, system,
                                                                           nbrs)


# ----------------------------------------------------------------------------- tables


def read_adp(path) -> ADPTables:
    """Read a LAMMPS adp file (:func:`rexfit.potentials.adp_files.read_adp_file`)."""
    return read_adp_file(path)


def tabulated_adp(tables: ADPTables, elements: Sequence[str | None]) -> tuple[ADP, dict]:
    """ADP over species 0..len(elements)−1 and its params tree, computing what LAMMPS
    ``pair_style adp`` computes with ``pair_coeff * * file el_1 ... el_n``.

    ``elements[s]`` is the file element of species s (``None``: not handled, LAMMPS's NULL).
    Params (each {"values": (n,)}): "F_<a>", "rho_<b>", "z2r_<a>_<b>", "u_<a>_<b>",
    "w_<a>_<b>" (pair tables named a ≥ b in file order, as in the file).  LAMMPS's adp, unlike
    eam/alloy, does not continue F linearly above the last ρ grid point: F stays at its last
    value there (its forces still use the slope there; so do ours).
    """
    eam_tables = EAMTables(
        "alloy", tables.elements, tables.masses, tables.nrho, tables.drho, tables.nr,
        tables.dr, tables.cutoff, None,  # rhomax None: no linear continuation of F
        dict(tables.F), {(a, b): tables.rho[b] for a in tables.elements for b in tables.elements},
        dict(tables.z2r),
    )
    eam, params = tabulated_eam(eam_tables, list(elements))
    r_table = LammpsTable(tables.nr, tables.dr)
    order = tables.elements.index
    index = {s: a for s, a in enumerate(elements) if a is not None}
    u, w = {}, {}
    for s, a in index.items():
        for t, b in index.items():
            if t > s:
                continue
            hi, lo = sorted((a, b), key=order, reverse=True)
            for name, store, table in (("u", u, tables.u2r), ("w", w, tables.w2r)):
                key = f"{name}_{hi}_{lo}"
                params[key] = {"values": jnp.asarray(table[(hi, lo)])}
                store[(t, s)] = (key, r_table)
    adp = ADP.create(len(elements), tables.cutoff, dict(eam.pair), dict(eam.density),
                     dict(eam.embedding), u, w)
    return adp, params
