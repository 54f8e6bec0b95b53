"""SO(3) power spectrum of a Gaussian-smeared neighbour density (Bartók et al. 2013), as in
PyXtal_FF's ``SO3`` descriptor.

The neighbour density of atom i is ρ_i(r) = Σ_j w_{s_j} f_c(r_ij) exp(−α |r − r_ij|²) over the
other atoms j closer than r_c (the centre atom itself is not part of it), with the cosine
cutoff f_c(r) = ½[cos(π r / r_c) + 1] and a weight w per neighbour species.  Its expansion
coefficients on g_n(r) Y_lm(r̂) (n = 1..nmax, l = 0..lmax) are

    c_nlm = Σ_j 4π w_{s_j} f_c(r_ij) Y_lm(r̂_ij) ∫_0^{r_c} r² g_n(r) e^{−α (r − r_ij)²}
                                                      [e^{−x} i_l(x)]_{x = 2α r r_ij} dr,

(i_l the modified spherical Bessel function of the first kind; the integral by Gauss–Legendre
quadrature), with the radial basis of Bartók et al.: φ_a(r) = (r_c − r)^{a+2} / N_a,
a = 1..nmax, orthonormalised with r² weight on [0, r_c] through the overlap matrix S,
g_n = Σ_a (S^{−1/2})_{na} φ_a.  Real spherical harmonics are used (the power spectrum is the
same as with complex ones).  The features are

    p_{n n' l} = π √(8 / (2l + 1)) Σ_m c_nlm c_n'lm        for n ≤ n', l = 0..lmax,

ordered with n slowest, then n', then l fastest: K = nmax (nmax + 1) / 2 · (lmax + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System


def cosine_cutoff(r: jax.Array, rcut: float) -> jax.Array:
    """½[cos(π r / r_c) + 1] for r < r_c, else 0."""
    return jnp.where(r < rcut, 0.5 * (jnp.cos(jnp.pi * r / rcut) + 1.0), 0.0)


def neighbour_geometry(system: System, nbrs: NeighborList, rcut: float, n_species: int):
    """Per pair slot of a full list: displacement (E, 3), distance (E,), mask of real pairs
    closer than ``rcut`` between species < ``n_species``, neighbour species (E,, clipped)."""
    if nbrs.half:
        raise ValueError("descriptors need a full neighbour list (half=False)")
    d = pair_displacements(system, nbrs)
    r2 = jnp.sum(d * d, axis=1)
    si, sj = system.species[nbrs.i], system.species[nbrs.j]
    use = nbrs.mask & (r2 < rcut * rcut) & (si >= 0) & (si < n_species) & (sj >= 0)
    use = use & (sj < n_species)
    far = jnp.asarray([0.5 * rcut, 0.0, 0.0], dtype=d.dtype)
    d = jnp.where(use[:, None], d, far[None, :])  # finite, non-zero: no NaN gradients
    r = jnp.sqrt(jnp.sum(d * d, axis=1))
    return d, r, use, jnp.clip(sj, 0, n_species - 1)


def atom_rows(system: System, n_species: int) -> jax.Array:
    """(N,) bool: real atoms of a species that has a weight (their rows are not zeroed)."""
    return system.mask & (system.species >= 0) & (system.species < n_species)


# --------------------------------------------------------------------------- radial basis

def radial_overlap(nmax: int) -> np.ndarray:
    """Overlap S_ab = ∫ r² φ_a φ_b dr of the normalised (r_c − r)^{a+2}, a, b = 1..nmax."""
    a = np.arange(1, nmax + 1, dtype=np.float64)
    norm = np.sqrt((2 * a + 5) * (2 * a + 6) * (2 * a + 7))
    s = a[:, None] + a[None, :]
    return norm[:, None] * norm[None, :] / ((s + 5) * (s + 6) * (s + 7))


def radial_basis(r: np.ndarray, nmax: int, rcut: float) -> np.ndarray:
    """g_n(r), (nmax, len(r)) on the host: orthonormal with weight r² on [0, r_c]."""
    evals, evecs = np.linalg.eigh(radial_overlap(nmax))
    w = (evecs / np.sqrt(evals)[None, :]) @ evecs.T  # S^{-1/2}
    a = np.arange(1, nmax + 1, dtype=np.float64)
    norm = np.sqrt(2.0 * rcut ** (2 * a + 7) / ((2 * a + 5) * (2 * a + 6) * (2 * a + 7)))
    phi = (rcut - np.asarray(r)[None, :]) ** (a[:, None] + 2) / norm[:, None]
    return w @ phi


# --------------------------------------------------------------------------- special functions

def scaled_spherical_in(x: jax.Array, lmax: int) -> jax.Array:
    """e^{−x} i_l(x) for l = 0..lmax, shape x.shape + (lmax + 1,), x ≥ 0 (relative error
    ~1e-14): power series below x₀ = max(12, 1.5 lmax), upward recurrence above."""
    x0 = max(12.0, 1.5 * lmax)
    xs = jnp.clip(x, 0.0, x0)[..., None]
    ls = np.arange(lmax + 1, dtype=np.float64).reshape((1,) * x.ndim + (lmax + 1,))
    # series: i_l(x) = x^l/(2l+1)!! Σ_k (x²/2)^k / (k! (2l+3)(2l+5)···(2l+2k+1))
    half_x2 = 0.5 * xs * xs
    ones = jnp.ones(xs.shape[:-1] + (lmax + 1,), dtype=xs.dtype)

    def add_term(carry, k):  # a scan keeps the compiled program small
        term, total = carry
        term = term * half_x2 / (k * (2.0 * ls + 2.0 * k + 1.0))
        return (term, total + term), None

    ks = jnp.arange(1, int(2 * x0) + 12, dtype=xs.dtype)
    (_, total), _ = jax.lax.scan(add_term, (ones, ones), ks)
    double_fact = np.array([math.prod(range(1, 2 * l + 2, 2)) for l in range(lmax + 1)],
                           dtype=np.float64).reshape(ls.shape)
    series = xs ** ls / double_fact * total * jnp.exp(-xs)
    # upward recurrence of the scaled functions (stable enough for x ≥ x₀)
    xr = jnp.maximum(x, x0)
    e2 = jnp.exp(-2.0 * xr)
    values = [-jnp.expm1(-2.0 * xr) / (2.0 * xr)]
    values.append((1.0 + e2) / (2.0 * xr) - (1.0 - e2) / (2.0 * xr * xr))
    for l in range(1, lmax):
        values.append(values[l - 1] - (2 * l + 1) / xr * values[l])
    upward = jnp.stack(values[: lmax + 1], axis=-1)
    return jnp.where((x < x0)[..., None], series, upward)


def real_spherical_harmonics(u: jax.Array, lmax: int) -> jax.Array:
    """Orthonormal real spherical harmonics of unit vectors u (E, 3) → (E, (lmax+1)²), index
    l² + l + m for m = −l..l (m > 0: √2·Re Y_lm-like, m < 0: √2·Im, m = 0: Y_l0)."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    # (x + i y)^m as real and imaginary parts
    cos_m, sin_m = [jnp.ones_like(x)], [jnp.zeros_like(x)]
    for _ in range(lmax):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(c * x - s * y)
        sin_m.append(c * y + s * x)
    # Q_l^m(z) = P_l^m(z) / sin^m θ with the Condon–Shortley phase
    q = {}
    for m in range(lmax + 1):
        q[(m, m)] = (-1.0) ** m * math.prod(range(1, 2 * m, 2)) * jnp.ones_like(z)
        if m + 1 <= lmax:
            q[(m + 1, m)] = (2 * m + 1) * z * q[(m, m)]
        for l in range(m + 2, lmax + 1):
            q[(l, m)] = ((2 * l - 1) * z * q[(l - 1, m)] - (l + m - 1) * q[(l - 2, m)]) / (l - m)
    out = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am)
                             / math.factorial(l + am))
            if m == 0:
                out.append(norm * q[(l, 0)])
            elif m > 0:
                out.append(math.sqrt(2.0) * norm * q[(l, am)] * cos_m[am])
            else:
                out.append(math.sqrt(2.0) * norm * q[(l, am)] * sin_m[am])
    return jnp.stack(out, axis=1)


# --------------------------------------------------------------------------- descriptor

@dataclass(frozen=True)
class PowerSpectrum:
    """SO(3) power spectrum (see the module docstring).

    nmax ≥ 1 radial functions, lmax ≥ 0, rcut (Å), weights: species index ↦ neighbour weight
    (species ≥ len(weights) are ignored and get zero rows), alpha (1/Å²): width parameter of
    the Gaussians (PyXtal_FF's default 2.0), n_quad: Gauss–Legendre points of the radial
    integral on [0, rcut] (converged to ~1e-12 relative for the defaults).
    """

    nmax: int
    lmax: int
    rcut: float
    weights: tuple[float, ...] = (1.0,)
    alpha: float = 2.0
    n_quad: int = 64

    def __post_init__(self):
        object.__setattr__(self, "rcut", float(self.rcut))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.nmax < 1 or self.lmax < 0 or self.rcut <= 0.0 or self.alpha <= 0.0:
            raise ValueError("PowerSpectrum needs nmax ≥ 1, lmax ≥ 0, rcut > 0, alpha > 0")
        if not self.weights:
            raise ValueError("PowerSpectrum needs at least one species weight")

    @property
    def cutoff(self) -> float:
        """rcut (Å)."""
        return self.rcut

    @property
    def n_features(self) -> int:
        """nmax (nmax + 1) / 2 · (lmax + 1)."""
        return self.nmax * (self.nmax + 1) // 2 * (self.lmax + 1)

    def feature_labels(self) -> list[tuple[int, int, int]]:
        """(n, n', l) of every feature column, n and n' 1-based."""
        return [(n + 1, k + 1, l) for n in range(self.nmax) for k in range(n, self.nmax)
                for l in range(self.lmax + 1)]

    def _quadrature(self):
        nodes, w = np.polynomial.legendre.leggauss(self.n_quad)
        r = 0.5 * self.rcut * (nodes + 1.0)
        g = radial_basis(r, self.nmax, self.rcut) * (0.5 * self.rcut * w * r * r)[None, :]
        return r, g  # (Q,), (nmax, Q)

    def radial_integrals(self, r: jax.Array) -> jax.Array:
        """(E, nmax, lmax+1): ∫ r'² g_n(r') e^{−α(r'−r)²} e^{−x} i_l(x) dr', x = 2α r' r."""
        rq, g = self._quadrature()
        rq = jnp.asarray(rq)
        gauss = jnp.exp(-self.alpha * (rq[None, :] - r[:, None]) ** 2)  # (E, Q)
        bessel = scaled_spherical_in(2.0 * self.alpha * r[:, None] * rq[None, :], self.lmax)
        return jnp.einsum("nq,eq,eql->enl", jnp.asarray(g), gauss, bessel)

    def coefficients(self, system: System, nbrs: NeighborList) -> jax.Array:
        """c_nlm, (N, nmax, (lmax+1)²) with real harmonics (index l² + l + m)."""
        n_species = len(self.weights)
        d, r, use, sj = neighbour_geometry(system, nbrs, self.rcut, n_species)
        weight = jnp.asarray(self.weights)[sj] if n_species > 1 else self.weights[0]
        amp = jnp.where(use, 4.0 * jnp.pi * weight * cosine_cutoff(r, self.rcut), 0.0)
        ylm = real_spherical_harmonics(d / r[:, None], self.lmax)  # (E, M)
        l_of = np.repeat(np.arange(self.lmax + 1), 2 * np.arange(self.lmax + 1) + 1)
        radial = self.radial_integrals(r)[:, :, l_of]  # (E, nmax, M)
        per_pair = amp[:, None, None] * radial * ylm[:, None, :]
        return jax.ops.segment_sum(per_pair, nbrs.i, num_segments=system.natoms)

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, K) power spectrum rows (zero for padding atoms and unweighted species)."""
        c = self.coefficients(system, nbrs)
        ls = np.arange(self.lmax + 1)
        l_of = np.repeat(ls, 2 * ls + 1)
        blocks = (l_of[:, None] == ls[None, :]) * (np.pi * np.sqrt(8.0 / (2 * ls + 1)))[None, :]
        prod = c[:, :, None, :] * c[:, None, :, :]  # (N, nmax, nmax, M)
        p = jnp.einsum("iabm,ml->iabl", prod, jnp.asarray(blocks))
        first, second = np.triu_indices(self.nmax)
        p = p[:, first, second, :].reshape(system.natoms, self.n_features)
        return jnp.where(atom_rows(system, len(self.weights))[:, None], p, 0.0)
