"""Atom-centred symmetry functions: Behler's ACSF (J. Chem. Phys. 134, 074106 (2011)) with one
channel per neighbour element (pair), and Gastegger's element-weighted wACSF (J. Chem. Phys.
148, 241709 (2018)).

With f_c the cutoff function (``"cosine"``: ½[cos(π r/r_c) + 1]; ``"polynomial"``:
1 − 10x³ + 15x⁴ − 6x⁵, x = r/r_c, n2p2's "poly2" without inner cutoff), both 0 for r ≥ r_c,
and neighbours j, k ≠ i of atom i (periodic images are distinct neighbours):

    G2_i = Σ_j        c_j      exp(−η (r_ij − Rs)²) f_c(r_ij)
    G4_i = 2^{1−ζ} Σ_{j<k} c_jk (1 + λ cos θ_ijk)^ζ
               · exp(−η [(r_ij − Rs)² + (r_ik − Rs)² + (r_jk − Rs)²]) f_c(r_ij) f_c(r_ik) f_c(r_jk)
    G5_i = 2^{1−ζ} Σ_{j<k} c_jk (1 + λ cos θ_ijk)^ζ
               · exp(−η [(r_ij − Rs)² + (r_ik − Rs)²]) f_c(r_ij) f_c(r_ik)

Σ_{j<k} runs over unordered pairs of distinct neighbours (each angle once, as RuNNer, n2p2
and DScribe count it; a sum over ordered pairs j ≠ k would double G4 and G5).  Rs = 0 in the angular terms gives Behler's form.
ACSF: c_j selects a neighbour element (c_j = [s_j = a]) and c_jk an unordered element pair
(c_jk = [{s_j, s_k} = {a, b}]); wACSF: c_j = w_{s_j}, c_jk = w_{s_j} w_{s_k}.

G2 and G5 are sums over pairs: G5 expands (1 + λ c)^ζ (integer ζ) in Legendre polynomials and
uses the addition theorem Σ_m Y_lm(û) Y_lm(v̂) = (2l+1)/(4π) P_l(û·v̂), so Σ_{j,k} becomes
per-atom sums of Y_lm; the j = k terms are subtracted.  G4 reads r_jk and needs the neighbour
triplets of :mod:`rexfit.structures.triplets` (``nbrs.triplets``; build the list with
:meth:`ACSF.neighbor_list` or ``build_lists``, which reads :meth:`ACSF.triplet_cutoffs`).

Feature order: all G2, then all G4, then all G5; within each, the channel (element a, or
element pair a ≤ b in the order (0,0), (0,1), …, (0,S−1), (1,1), …; one channel for wACSF) is
slowest and the settings follow in the given order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.descriptors.power_spectrum import atom_rows, neighbour_geometry
from rexfit.structures.neighbors import NeighborList, build_neighbor_list
from rexfit.structures.system import System
from rexfit.structures.triplets import build_triplet_neighbor_list

CUTOFF_FUNCTIONS = ("cosine", "polynomial")


def cutoff_function(r: jax.Array, rcut: float, kind: str = "cosine") -> jax.Array:
    """f_c(r) (see the module docstring) for r < rcut, else 0."""
    x = r / rcut
    if kind == "cosine":
        value = 0.5 * (jnp.cos(jnp.pi * x) + 1.0)
    elif kind == "polynomial":
        value = 1.0 + x * x * x * (-10.0 + x * (15.0 - 6.0 * x))
    else:
        raise ValueError(f"cutoff_function must be one of {CUTOFF_FUNCTIONS}, got {kind!r}")
    return jnp.where(r < rcut, value, 0.0)


def real_harmonics(u: jax.Array, lmax: int) -> jax.Array:
    """Orthonormal real spherical harmonics of unit vectors u (E, 3) → (E, (lmax+1)²), index
    l² + l + m, the same functions as ``power_spectrum.real_spherical_harmonics`` but from
    normalised recursions vectorised over m (a small program even for lmax ≈ 30)."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    size = lmax + 1
    # Re and Im of (x + i y)^m, m = 0..lmax: (E, L)
    cos_m, sin_m = [jnp.ones_like(x)], [jnp.zeros_like(x)]
    for _ in range(lmax):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(c * x - s * y)
        sin_m.append(c * y + s * x)
    cos_m, sin_m = jnp.stack(cos_m, axis=1), jnp.stack(sin_m, axis=1)
    # normalised Q̄_l^m(z) = N_lm P_l^m / sin^m θ: Q̄_l^m = a z Q̄_{l−1}^m − b Q̄_{l−2}^m (m ≤ l−1),
    # Q̄_m^m a constant (Condon–Shortley phase included)
    a, b, seed = np.zeros((size, size)), np.zeros((size, size)), np.zeros((size, size))
    for m in range(size):
        q = (-1.0) ** m * math.sqrt((2 * m + 1) / (4 * math.pi))
        for k in range(1, m + 1):  # (2m−1)!! / sqrt((2m)!) built up stably
            q *= math.sqrt((2 * k - 1) / (2 * k))
        seed[m, m] = q
        for l in range(m + 1, size):
            a[l, m] = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b[l, m] = math.sqrt(((l - 1) ** 2 - m * m) * (2 * l + 1)
                                / ((2 * l - 3) * (l * l - m * m))) if l >= m + 2 else 0.0
    zc = z[:, None]
    prev2 = jnp.zeros((z.shape[0], size), dtype=z.dtype)
    prev1 = jnp.broadcast_to(jnp.asarray(seed[0])[None, :], prev2.shape)
    rows = [prev1]
    for l in range(1, size):
        new = (jnp.asarray(a[l])[None, :] * zc * prev1 - jnp.asarray(b[l])[None, :] * prev2
               + jnp.asarray(seed[l])[None, :])
        prev2, prev1 = prev1, new
        rows.append(new)
    qbar = jnp.stack(rows, axis=1).reshape(z.shape[0], size * size)  # [l, m] flattened
    ls = np.repeat(np.arange(size), 2 * np.arange(size) + 1)
    ms = np.concatenate([np.arange(-l, l + 1) for l in range(size)])
    trig = jnp.concatenate([cos_m, sin_m], axis=1)  # m ≥ 0 → cos_m, m < 0 → sin_|m|
    pick = np.where(ms >= 0, np.abs(ms), size + np.abs(ms))
    scale = np.where(ms == 0, 1.0, math.sqrt(2.0))
    return qbar[:, ls * size + np.abs(ms)] * trig[:, pick] * jnp.asarray(scale)[None, :]


def legendre_coefficients(zeta: int, lam: float, lmax: int) -> np.ndarray:
    """b_l with (1 + λ c)^ζ = Σ_l b_l P_l(c), l = 0..lmax (zero beyond ζ)."""
    power = np.array([math.comb(zeta, n) * lam ** n for n in range(zeta + 1)])
    out = np.zeros(lmax + 1)
    out[: zeta + 1] = np.polynomial.legendre.poly2leg(power)
    return out


def _radial(entries) -> tuple[tuple[float, float], ...]:
    out = []
    for e in entries:
        eta, rs = (float(x) for x in e)
        if eta < 0.0:
            raise ValueError(f"G2 entry {e}: eta must be ≥ 0")
        out.append((eta, rs))
    return tuple(out)


def _angular(entries, name: str, integer_zeta: bool) -> tuple[tuple[float, ...], ...]:
    out = []
    for e in entries:
        if len(e) not in (3, 4):
            raise ValueError(f"{name} entry {e}: expected (eta, zeta, lambda[, Rs])")
        eta, zeta, lam, rs = (float(x) for x in (*e, 0.0)[:4])
        if eta < 0.0 or zeta < 1.0 or abs(lam) > 1.0:
            raise ValueError(f"{name} entry {e}: needs eta ≥ 0, zeta ≥ 1, |lambda| ≤ 1")
        if integer_zeta and not zeta.is_integer():
            raise ValueError(f"{name} entry {e}: zeta must be an integer for G5")
        out.append((eta, zeta, lam, rs))
    return tuple(out)


@dataclass(frozen=True)
class _SymmetryFunctions:
    """Shared settings and evaluation of ACSF and wACSF (see the module docstring)."""

    rcut: float
    g2: tuple = ()
    g4: tuple = ()
    g5: tuple = ()
    cutoff_function: str = "cosine"

    def _check(self):
        object.__setattr__(self, "rcut", float(self.rcut))
        object.__setattr__(self, "g2", _radial(self.g2))
        object.__setattr__(self, "g4", _angular(self.g4, "G4", False))
        object.__setattr__(self, "g5", _angular(self.g5, "G5", True))
        if self.rcut <= 0.0:
            raise ValueError("symmetry functions need rcut > 0")
        if not (self.g2 or self.g4 or self.g5):
            raise ValueError("symmetry functions need at least one G2, G4 or G5 entry")
        if self.cutoff_function not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_function must be one of {CUTOFF_FUNCTIONS}")

    # subclasses: species ↦ channel and species ↦ weight tables, number of channels
    def _tables(self) -> tuple[np.ndarray, np.ndarray, int]:
        raise NotImplementedError

    @property
    def n_species(self) -> int:
        return len(self._tables()[0])

    @property
    def cutoff(self) -> float:
        """rcut (Å)."""
        return self.rcut

    def _n_pairs(self) -> int:
        c = self._tables()[2]
        return c * (c + 1) // 2

    @property
    def n_features(self) -> int:
        """C·len(g2) + C(C+1)/2·(len(g4) + len(g5)), C channels."""
        return self._tables()[2] * len(self.g2) + self._n_pairs() * (len(self.g4) + len(self.g5))

    def _channel_labels(self):
        raise NotImplementedError

    def feature_labels(self) -> list[tuple]:
        """(kind, channel, setting) of every column: kind "G2"/"G4"/"G5"; channel () for
        wACSF, (a,) for an ACSF G2, (a, b) with a ≤ b for an ACSF G4/G5; setting (η, Rs) or
        (η, ζ, λ, Rs)."""
        singles, pairs = self._channel_labels()
        return ([("G2", c, e) for c in singles for e in self.g2]
                + [("G4", c, e) for c in pairs for e in self.g4]
                + [("G5", c, e) for c in pairs for e in self.g5])

    def triplet_cutoffs(self):
        """``(first, second, ordered)`` reach tables (S, S) in Å for ``build_lists`` /
        ``build_triplets`` if there are G4 terms (unordered triplets suffice), else None."""
        if not self.g4:
            return None
        table = np.full((self.n_species, self.n_species), self.rcut)
        return table, table, False

    def neighbor_list(self, system: System, skin: float = 0.5, *, capacity: int | None = None,
                      triplet_capacity: int | None = None) -> NeighborList:
        """Full neighbour list reaching rcut + skin, with (unordered) triplets if G4 is used."""
        need = self.triplet_cutoffs()
        if need is None:
            return build_neighbor_list(system, self.rcut, skin, half=False, capacity=capacity)
        return build_triplet_neighbor_list(system, self.rcut, skin, need[0], need[1],
                                           ordered=False, capacity=capacity,
                                           triplet_capacity=triplet_capacity)

    # ----------------------------------------------------------------------- evaluation

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, K) symmetry functions (zero rows for padding atoms and species ≥ S)."""
        channel_of, weight_of, n_chan = self._tables()
        n_species = len(channel_of)
        d, r, use, sj = neighbour_geometry(system, nbrs, self.rcut, n_species)
        fc = jnp.where(use, cutoff_function(r, self.rcut, self.cutoff_function), 0.0)
        amp = fc * jnp.asarray(weight_of)[sj]  # (E,) c_j f_c(r_ij); 0 for unused slots
        chan = jnp.asarray(channel_of)[sj]
        n = system.natoms
        parts = []
        if self.g2:
            eta = jnp.asarray([e for e, _ in self.g2])[None, :]
            rs = jnp.asarray([s for _, s in self.g2])[None, :]
            vals = amp[:, None] * jnp.exp(-eta * (r[:, None] - rs) ** 2)  # (E, n2)
            g2 = jax.ops.segment_sum(vals, nbrs.i * n_chan + chan, num_segments=n * n_chan)
            parts.append(g2.reshape(n, n_chan * len(self.g2)))
        if self.g4:
            parts.append(self._g4(d, r, use, amp, chan, system, nbrs))
        if self.g5:
            parts.append(self._g5(d, r, amp, chan, system, nbrs))
        out = jnp.concatenate(parts, axis=1)
        return jnp.where(atom_rows(system, n_species)[:, None], out, 0.0)

    def _pair_table(self) -> np.ndarray:
        """(C, C) index of the unordered channel pair (a, b) in the a ≤ b order."""
        n_chan = self._tables()[2]
        table = np.zeros((n_chan, n_chan), dtype=np.int32)
        first, second = np.triu_indices(n_chan)
        table[first, second] = np.arange(len(first))
        table[second, first] = np.arange(len(first))
        return table

    def _g4(self, d, r, use, amp, chan, system, nbrs) -> jax.Array:
        triplets = getattr(nbrs, "triplets", None)
        if triplets is None:
            raise TypeError("G4 symmetry functions need a full neighbour list with triplets: "
                            "build it with descriptor.neighbor_list(system, skin) or "
                            "rexfit.potentials.lists.build_lists")
        a, b = triplets.ij, triplets.ik
        dij, dik = d[a], d[b]
        rij, rik = r[a], r[b]
        djk = dik - dij
        rjk2 = jnp.sum(djk * djk, axis=1)
        ok = triplets.mask & use[a] & use[b] & (rjk2 < self.rcut * self.rcut)
        rjk = jnp.sqrt(jnp.where(ok, rjk2, 0.25 * self.rcut * self.rcut))  # no NaN gradients
        cos = jnp.sum(dij * dik, axis=1) / (rij * rik)
        base = amp[a] * amp[b] * cutoff_function(rjk, self.rcut, self.cutoff_function)
        base = jnp.where(ok, base, 0.0)
        if triplets.ordered:  # both orders listed: each angle twice
            base = 0.5 * base
        cols = []
        for eta, zeta, lam, rs in self.g4:
            angle = 1.0 + lam * cos
            if zeta.is_integer():
                power = angle ** int(zeta)
            else:  # double where: no NaN derivatives at (1 + λ cos θ) = 0
                positive = angle > 0.0
                power = jnp.where(positive, jnp.where(positive, angle, 1.0) ** zeta, 0.0)
            radial = jnp.exp(-eta * ((rij - rs) ** 2 + (rik - rs) ** 2 + (rjk - rs) ** 2))
            cols.append(2.0 ** (1.0 - zeta) * power * radial)
        vals = base[:, None] * jnp.stack(cols, axis=1)  # (T, n4)
        n_pairs = self._n_pairs()
        seg = nbrs.i[a] * n_pairs + jnp.asarray(self._pair_table())[chan[a], chan[b]]
        g4 = jax.ops.segment_sum(vals, seg, num_segments=system.natoms * n_pairs)
        return g4.reshape(system.natoms, n_pairs * len(self.g4))

    def _g5(self, d, r, amp, chan, system, nbrs) -> jax.Array:
        n_chan = self._tables()[2]
        n = system.natoms
        lmax = int(max(z for _, z, _, _ in self.g5))
        radial_keys = sorted({(eta, rs) for eta, _, _, rs in self.g5})
        key_of = [radial_keys.index((eta, rs)) for eta, _, _, rs in self.g5]
        eta = jnp.asarray([e for e, _ in radial_keys])[None, :]
        rs = jnp.asarray([s for _, s in radial_keys])[None, :]
        g = amp[:, None] * jnp.exp(-eta * (r[:, None] - rs) ** 2)  # (E, U)
        ylm = real_harmonics(d / r[:, None], lmax)  # (E, M)
        seg = nbrs.i * n_chan + chan
        moments = jax.ops.segment_sum(g[:, :, None] * ylm[:, None, :], seg,
                                      num_segments=n * n_chan)
        moments = moments.reshape(n, n_chan, len(radial_keys), (lmax + 1) ** 2)
        ls = np.arange(lmax + 1)
        l_of = np.repeat(ls, 2 * ls + 1)
        blocks = (l_of[:, None] == ls[None, :]) * (4.0 * np.pi / (2 * ls + 1))[None, :]
        # Σ_{j∈a, k∈b} P_l(cos θ_jk) g_j g_k, j = k included: (N, C, C, U, L)
        legendre_sums = jnp.einsum("iaum,ibum,ml->iabul", moments, moments,
                                   jnp.asarray(blocks))
        diag = jax.ops.segment_sum(g * g, seg, num_segments=n * n_chan)
        diag = diag.reshape(n, n_chan, len(radial_keys))
        first, second = np.triu_indices(n_chan)
        same = jnp.asarray(first == second)[None, :]
        cols = []
        for t, (_, zeta, lam, _) in enumerate(self.g5):
            coef = jnp.asarray(legendre_coefficients(int(zeta), lam, lmax))
            full = legendre_sums[:, first, second, key_of[t], :] @ coef  # (N, P)
            self_terms = (1.0 + lam) ** int(zeta) * diag[:, first, key_of[t]]
            value = jnp.where(same, 0.5 * (full - self_terms), full)
            cols.append(2.0 ** (1.0 - zeta) * value)
        return jnp.stack(cols, axis=2).reshape(n, self._n_pairs() * len(self.g5))


@dataclass(frozen=True)
class ACSF(_SymmetryFunctions):
    """Behler's atom-centred symmetry functions with element channels (module docstring).

    rcut (Å); g2: (η [1/Å²], Rs [Å]) pairs; g4, g5: (η, ζ, λ) or (η, ζ, λ, Rs) entries
    (ζ ≥ 1, |λ| ≤ 1; integer ζ for G5); cutoff_function "cosine" or "polynomial";
    n_elements S (species ≥ S are invisible and get zero rows).
    K = S·len(g2) + S(S+1)/2·(len(g4) + len(g5)).
    """

    n_elements: int = 1

    def __post_init__(self):
        self._check()
        if self.n_elements < 1:
            raise ValueError("ACSF needs n_elements ≥ 1")

    def _tables(self):
        s = self.n_elements
        return np.arange(s, dtype=np.int32), np.ones(s), s

    def _channel_labels(self):
        s = self.n_elements
        pairs = [(int(a), int(b)) for a, b in zip(*np.triu_indices(s))]
        return [(a,) for a in range(s)], pairs


@dataclass(frozen=True)
class WACSF(_SymmetryFunctions):
    """Gastegger's element-weighted symmetry functions (module docstring): one channel,
    neighbour j weighted by weights[s_j] (e.g. atomic numbers), pairs by the product.

    Settings as :class:`ACSF`; weights: species index ↦ weight (species ≥ len(weights) are
    invisible and get zero rows).  K = len(g2) + len(g4) + len(g5).
    """

    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        self._check()
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if not self.weights:
            raise ValueError("WACSF needs at least one species weight")

    def _tables(self):
        s = len(self.weights)
        return np.zeros(s, dtype=np.int32), np.asarray(self.weights), 1

    def _channel_labels(self):
        return [()], [()]
