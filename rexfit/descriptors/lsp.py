"""Local structural parameters (LSP) of Purja Pun, Batra, Ramprasad and Mishin, the inputs of
their physically informed neural network (PINN) potentials, Nat. Commun. 10, 2339 (2019).

With the radial functions

    f_n(r) = (1/r_n) exp(−(r − r_n)² / σ²) f_c(r),   f_c(r) = (r − r_c)⁴ / (d⁴ + (r − r_c)⁴)

(f_c = 0 for r ≥ r_c) the feature of atom i for (l, r_n) is

    g_i^{(l,n)} = asinh( Σ_j Σ_k w_{s_j} w_{s_k} P_l(cos θ_jik) f_n(r_ij) f_n(r_ik) )

over neighbours j, k ≠ i closer than r_c, j = k included (as in the paper: those terms have
cos θ = 1 and give the l-independent Σ_j f_n(r_ij)²), P_l the Legendre polynomial, and w a
weight per neighbour species (the paper has one element, w = 1).  The double sum is computed
in O(pairs) through the addition theorem: Σ_{j,k} P_l(cos θ_jik) a_j a_k
= 4π/(2l+1) Σ_m (Σ_j a_j Y_lm(r̂_ij))², with real spherical harmonics Y_lm; it is ≥ 0.

Feature order: l slowest (in the order of ``ls``), then r_n: index l_index · len(rn) + n,
K = len(ls) · len(rn).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.descriptors.acsf import real_harmonics
from rexfit.descriptors.power_spectrum import atom_rows, neighbour_geometry
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System


def lsp_cutoff(r: jax.Array, rcut: float, d: float) -> jax.Array:
    """(r − r_c)⁴ / (d⁴ + (r − r_c)⁴) for r < r_c, else 0."""
    x4 = (r - rcut) ** 4
    return jnp.where(r < rcut, x4 / (d ** 4 + x4), 0.0)


@dataclass(frozen=True)
class LSP:
    """Purja Pun–Mishin local structural parameters (see the module docstring).

    rn (Å, > 0): centres r_n of the Gaussians; sigma (Å): their width σ; rcut (Å): r_c;
    d (Å): range of the cutoff function; ls: Legendre orders l (distinct, ≥ 0);
    weights: species index ↦ neighbour weight (species ≥ len(weights) are invisible and get
    zero rows).  K = len(ls) · len(rn).
    """

    rn: tuple[float, ...]
    sigma: float
    rcut: float
    d: float
    ls: tuple[int, ...] = (0, 1, 2, 4, 6)
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        object.__setattr__(self, "rn", tuple(float(r) for r in self.rn))
        object.__setattr__(self, "sigma", float(self.sigma))
        object.__setattr__(self, "rcut", float(self.rcut))
        object.__setattr__(self, "d", float(self.d))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if any(int(l) != l or l < 0 for l in self.ls) or len(set(self.ls)) != len(self.ls):
            raise ValueError("LSP: ls must be distinct integers ≥ 0")
        object.__setattr__(self, "ls", tuple(int(l) for l in self.ls))
        if not self.rn or min(self.rn) <= 0.0 or not self.ls or not self.weights:
            raise ValueError("LSP needs rn (all > 0), ls and weights non-empty")
        if self.sigma <= 0.0 or self.rcut <= 0.0 or self.d <= 0.0:
            raise ValueError("LSP needs sigma, rcut and d > 0")

    @property
    def cutoff(self) -> float:
        """rcut (Å)."""
        return self.rcut

    @property
    def n_features(self) -> int:
        """len(ls) · len(rn)."""
        return len(self.ls) * len(self.rn)

    def feature_labels(self) -> list[tuple[int, float]]:
        """(l, r_n) of every feature column."""
        return [(l, r) for l in self.ls for r in self.rn]

    def radial(self, r: jax.Array) -> jax.Array:
        """f_n(r), (E, len(rn))."""
        rn = jnp.asarray(self.rn)[None, :]
        gauss = jnp.exp(-(((r[:, None] - rn) / self.sigma) ** 2)) / rn
        return gauss * lsp_cutoff(r, self.rcut, self.d)[:, None]

    def sums(self, system: System, nbrs: NeighborList) -> jax.Array:
        """The arguments of asinh, (N, len(ls), len(rn))."""
        n_species = len(self.weights)
        d, r, use, sj = neighbour_geometry(system, nbrs, self.rcut, n_species)
        weight = jnp.asarray(self.weights)[sj]
        amp = jnp.where(use, weight, 0.0)[:, None] * self.radial(r)  # (E, n)
        lmax = max(self.ls)
        ls = np.arange(lmax + 1)
        l_of = np.repeat(ls, 2 * ls + 1)
        keep = np.nonzero(np.isin(l_of, self.ls))[0]  # harmonics of the requested l only
        ylm = real_harmonics(d / r[:, None], lmax)[:, keep]  # (E, M')
        moments = jax.ops.segment_sum(amp[:, :, None] * ylm[:, None, :], nbrs.i,
                                      num_segments=system.natoms)  # (N, n, M')
        wanted = np.asarray(self.ls)
        blocks = (l_of[keep][:, None] == wanted[None, :]) * (4.0 * np.pi / (2 * wanted + 1))
        return jnp.einsum("inm,ml->iln", moments * moments, jnp.asarray(blocks))

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, K) LSP rows (zero for padding atoms and species ≥ len(weights))."""
        g = jnp.arcsinh(self.sums(system, nbrs)).reshape(system.natoms, self.n_features)
        return jnp.where(atom_rows(system, len(self.weights))[:, None], g, 0.0)
