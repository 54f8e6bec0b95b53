"""Embedded-atom density (EAD) descriptor of Zhang et al. (2019), as PyXtal_FF's ``EAD``.

With Gaussian-type orbitals of angular momentum L = lx + ly + lz,

    φ^{lx ly lz}_{η, Rs}(r_ij) = x^lx y^ly z^lz exp(−η (r_ij − Rs)²)      (x, y, z = r_j − r_i, Å)

the feature of atom i for (L, η, Rs) is

    ρ^L_{η,Rs,i} = Σ_{lx+ly+lz=L} L! / (lx! ly! lz!)
                   · [Σ_j w_{s_j} f_c(r_ij) φ^{lx ly lz}_{η,Rs}(r_ij)]²

over neighbours j ≠ i closer than r_c, f_c(r) = ½[cos(π r / r_c) + 1], w a weight per
neighbour species.  Features are ordered L slowest (0..Lmax), then η, then Rs fastest:
index (L · len(eta) + e) · len(rs) + s, K = (Lmax + 1) · len(eta) · len(rs).  No 1/r_c^{2L}
scaling and no accumulation over lower L (PyXtal_FF's implementation applies both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.descriptors.power_spectrum import atom_rows, cosine_cutoff, neighbour_geometry
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System


def cartesian_powers(lmax: int) -> list[tuple[int, int, int]]:
    """All (lx, ly, lz) with lx + ly + lz ≤ lmax, ordered by L, then lx, ly descending."""
    return [(lx, ly, big_l - lx - ly) for big_l in range(lmax + 1)
            for lx in range(big_l, -1, -1) for ly in range(big_l - lx, -1, -1)]


@dataclass(frozen=True)
class EAD:
    """Embedded-atom density descriptor (see the module docstring).

    lmax: largest angular momentum L (≥ 0).  eta (1/Å²) and rs (Å): the Gaussian widths and
    centres, every combination used.  rcut (Å).  weights: species index ↦ neighbour weight
    (species ≥ len(weights) are ignored and get zero rows).
    """

    lmax: int
    eta: tuple[float, ...]
    rs: tuple[float, ...]
    rcut: float
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        object.__setattr__(self, "eta", tuple(float(e) for e in self.eta))
        object.__setattr__(self, "rs", tuple(float(r) for r in self.rs))
        object.__setattr__(self, "rcut", float(self.rcut))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.lmax < 0 or not self.eta or not self.rs or self.rcut <= 0.0 or not self.weights:
            raise ValueError("EAD needs lmax ≥ 0, eta, rs and weights non-empty, rcut > 0")

    @property
    def cutoff(self) -> float:
        """rcut (Å)."""
        return self.rcut

    @property
    def n_features(self) -> int:
        """(lmax + 1) · len(eta) · len(rs)."""
        return (self.lmax + 1) * len(self.eta) * len(self.rs)

    def feature_labels(self) -> list[tuple[int, float, float]]:
        """(L, η, Rs) of every feature column."""
        return [(big_l, e, r) for big_l in range(self.lmax + 1) for e in self.eta
                for r in self.rs]

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, K) EAD rows (zero for padding atoms and unweighted species)."""
        n_species = len(self.weights)
        d, r, use, sj = neighbour_geometry(system, nbrs, self.rcut, n_species)
        weight = jnp.asarray(self.weights)[sj] if n_species > 1 else self.weights[0]
        amp = jnp.where(use, weight * cosine_cutoff(r, self.rcut), 0.0)  # (E,)
        eta = jnp.asarray(self.eta)[None, :, None]
        rs = jnp.asarray(self.rs)[None, None, :]
        radial = amp[:, None, None] * jnp.exp(-eta * (r[:, None, None] - rs) ** 2)  # (E, η, Rs)
        powers = cartesian_powers(self.lmax)
        comps = [[jnp.ones_like(r)] for _ in range(3)]
        for axis in range(3):
            for _ in range(self.lmax):
                comps[axis].append(comps[axis][-1] * d[:, axis])
        mono = jnp.stack([comps[0][a] * comps[1][b] * comps[2][c] for a, b, c in powers], 1)
        per_pair = mono[:, :, None, None] * radial[:, None, :, :]  # (E, P, η, Rs)
        sums = jax.ops.segment_sum(per_pair, nbrs.i, num_segments=system.natoms)
        # multinomial coefficients, summed within each L
        to_l = np.zeros((len(powers), self.lmax + 1))
        for k, (a, b, c) in enumerate(powers):
            to_l[k, a + b + c] = math.factorial(a + b + c) / (
                math.factorial(a) * math.factorial(b) * math.factorial(c))
        rho = jnp.einsum("ipes,pl->iles", sums * sums, jnp.asarray(to_l))
        rho = rho.reshape(system.natoms, self.n_features)
        return jnp.where(atom_rows(system, n_species)[:, None], rho, 0.0)
