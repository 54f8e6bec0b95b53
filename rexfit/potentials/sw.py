"""Stillinger–Weber potential, multi-element, exactly as LAMMPS ``pair_style sw``.

E = Σ_{i<j} φ2(r_ij) + Σ_i Σ_{j<k} φ3(r_ij, r_ik, θ_jik) with, for element triplet entries
(LAMMPS's assignment; s_x = the element of atom x):

    φ2(r_ij) = A ε [B (σ/r)^p − (σ/r)^q] exp(σ / (r − aσ))            entry (s_i, s_j, s_j)
    φ3 = λε_ijk (cos θ_jik − cosθ0_ijk)² exp(γσ_ij / (r_ij − aσ_ij))
                                          · exp(γσ_ik / (r_ik − aσ_ik))

where λ, ε, cosθ0 of φ3 come from the (s_i, s_j, s_k) entry and σ, a, γ of each leg from that
leg's two-body entry: (s_i, s_j, s_j) for i→j, (s_i, s_k, s_k) for i→k.  Every pair term and
leg is cut at r_c = aσ of its ijj entry, or, with tol > 0, at aσ + γ'σ / ln(min(tol, 0.01))
(γ' = min(γ, 1)), where LAMMPS stops evaluating (the functions are not shifted).

LAMMPS evaluates each pair once with the ijj entry of whichever atom it treats as i, and each
angle once with the ijk entry for whichever neighbour it meets first; rexfit uses
½[φ2_ijj + φ2_jii] and ½[φ3_ijk + φ3_ikj], which is the same energy whenever the file is
symmetric in those entries (every published file is) and otherwise the order-independent
average.  Energy only: forces and stress come from autodiff (rexfit.physics.properties).

params: {tag: {"epsilon", "sigma", "a", "lambda", "gamma", "costheta0", "A", "B", "p", "q",
"tol"}} for every element triplet, tag = "".join(triplet) (e.g. "SiSiSi", "GaNN"); float64
scalars.  tol enters only through the cutoff (a discrete choice: its gradient is zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params
from rexfit.potentials.manybody_files import (
    SW_PARAMETERS,
    check_tags,
    entries_from_params,
    params_from_entries,
    read_sw_file,
    stack_params,
)
from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System
from rexfit.structures.triplets import (
    TripletNeighborList,
    build_triplet_neighbor_list,
    require_triplets,
)

#: exp(x) for x below this is 0 in float64, as in LAMMPS; clamping keeps gradients finite.
_EXP_FLOOR = -800.0


def leg_cutoff(sigma, a, gamma, tol, xp=jnp):
    """LAMMPS's cutoff (Å) of an ``sw`` leg: aσ, shortened by min(γ, 1)·σ / ln(min(tol, 0.01))
    when tol > 0; elementwise, with ``xp`` NumPy (host) or jax.numpy (traced values)."""
    tol_safe = xp.where(tol > 0.0, xp.minimum(tol, 0.01), 0.5)
    shortening = xp.where(gamma < 1.0, gamma, 1.0) * sigma / xp.log(tol_safe)
    return sigma * a + xp.where(tol > 0.0, shortening, 0.0)


def sw_pair_cutoff(entry) -> float:
    """LAMMPS's pair cutoff (Å) of one ``sw`` entry (:func:`leg_cutoff`)."""
    return float(leg_cutoff(entry["sigma"], entry["a"], entry["gamma"], entry["tol"], np))


@dataclass(frozen=True)
class StillingerWeber:
    """Stillinger–Weber over ``elements`` (species index s ↦ elements[s]).

    reach: (S, S) nested tuple, Å: pair (s_i, s_j) is never counted beyond reach[s_i][s_j],
    the distance neighbour and triplet lists are built for (normally the file's cutoffs; a
    ``margin`` in :meth:`create` leaves room for a fit to lengthen aσ).  Build with
    :meth:`create` or :meth:`from_file`; hashable, so it can be a static ``jit`` argument.
    Species ≥ len(elements) do not interact.
    """

    elements: tuple[str, ...]
    reach: tuple[tuple[float, ...], ...]

    # ------------------------------------------------------------------ construction

    @staticmethod
    def create(elements: Iterable[str], params: Params, margin: float = 0.0) -> StillingerWeber:
        """Potential whose reach is the pair cutoffs of ``params`` plus ``margin`` (Å)."""
        elements = tuple(elements)
        check_tags(elements)
        entries = entries_from_params(params, elements, SW_PARAMETERS)
        reach = tuple(
            tuple(sw_pair_cutoff(entries[(a, b, b)]) + float(margin) for b in elements)
            for a in elements
        )
        return StillingerWeber(elements, reach)

    @staticmethod
    def from_file(path, elements: Iterable[str], margin: float = 0.0):
        """(potential, params) from a LAMMPS ``.sw`` file for ``elements`` (like
        ``pair_coeff * * path e1 e2 ...``); entries of other elements are ignored."""
        elements = tuple(elements)
        params = params_from_entries(read_sw_file(path), elements, SW_PARAMETERS)
        return StillingerWeber.create(elements, params, margin), params

    @property
    def cutoff(self) -> float:
        """Largest reach (Å): the neighbour list must extend this far."""
        return max(max(row) for row in self.reach)

    def triplet_cutoffs(self):
        """Neighbour needs (see :mod:`rexfit.potentials.lists`): the full pair list but no
        triplets (the three-body sum comes from per-atom moments of the pair list; an empty
        triplet list is attached)."""
        none = np.full(np.shape(self.reach), -np.inf)
        return none, none, False

    def neighbor_list(self, system: System, skin: float = 0.5, *, capacity: int | None = None,
                      triplet_capacity: int | None = None) -> TripletNeighborList:
        """Full neighbour list with unordered triplets (j < k) pruned to the pair reaches."""
        reach = np.asarray(self.reach)
        return build_triplet_neighbor_list(system, self.cutoff, skin, reach, reach,
                                           ordered=False, capacity=capacity,
                                           triplet_capacity=triplet_capacity)

    # ------------------------------------------------------------------ evaluation

    def _pair_terms(self, params: Params, system: System, nbrs: NeighborList):
        """Per pair slot: displacement, r, use mask, φ2 and the leg factor exp(γσ/(r − aσ))."""
        n = len(self.elements)
        p = stack_params(params, self.elements, SW_PARAMETERS)
        d = pair_displacements(system, nbrs)
        r2 = jnp.sum(d * d, axis=1)
        si, sj = system.species[nbrs.i], system.species[nbrs.j]
        valid = nbrs.mask & (si >= 0) & (si < n) & (sj >= 0) & (sj < n)
        si, sj = jnp.clip(si, 0, n - 1), jnp.clip(sj, 0, n - 1)
        slot = (si * n + sj) * n + sj  # the ijj entry

        def entry(name):  # the ijj value per pair (a scalar for one element: no gather)
            return p[name][0] if n == 1 else p[name][slot]

        eps, sigma, a, gamma = (entry(k) for k in ("epsilon", "sigma", "a", "gamma"))
        big_a, big_b, pp, qq, tol = (entry(k) for k in ("A", "B", "p", "q", "tol"))
        cut = sigma * a
        r_cut = leg_cutoff(sigma, a, gamma, tol)
        reach = np.asarray(self.reach, dtype=np.float64)
        reach = reach[0, 0] if n == 1 else jnp.asarray(reach)[si, sj]
        use = valid & (r2 < r_cut * r_cut) & (r2 < reach * reach)
        r = jnp.where(use, jnp.sqrt(r2), 1.0)
        sigma_s = jnp.where(use, sigma, 1.0)
        x = jnp.where(use, r - cut, -1.0)  # < 0 where used
        log_ratio = jnp.log(sigma_s / r)  # (σ/r)^p = exp(p ln(σ/r)): one log for both powers
        radial = big_a * eps * (big_b * jnp.exp(pp * log_ratio) - jnp.exp(qq * log_ratio))
        inv_x = sigma_s / x
        phi2 = radial * jnp.exp(jnp.maximum(inv_x, _EXP_FLOOR))
        leg = jnp.exp(jnp.maximum(gamma * inv_x, _EXP_FLOOR))
        return p, d, r, use, jnp.where(use, phi2, 0.0), jnp.where(use, leg, 0.0), si, sj

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` must be a full list with triplets (:meth:`neighbor_list`).

        The three-body sum is evaluated from per-atom moments of the legs, O(pairs), not
        triplet by triplet.  With g_j = exp(γσ/(r_ij − aσ)) (0 beyond the cutoff), u_j the
        unit vector i→j and, per centre i and neighbour species s, the moments
        T^s = Σ_{j∈s} g_j u_j⊗u_j, v^s = Σ_{j∈s} g_j u_j, G^s = Σ_{j∈s} g_j, Q^s = Σ_{j∈s} g_j²:

            Σ_{j∈s, k∈t, k≠j} g_j g_k (u_j·u_k − c)² = T^s:T^t − 2c v^s·v^t + c² G^s G^t
                                                        − δ_st (1 − c)² Q^s,

        so E3_i = ½ Σ_{s,t} λε_{s_i s t} [that sum with c = cosθ0_{s_i s t}], which is
        Σ over unordered angles of ½(φ3_ijk + φ3_ikj) as documented above, exactly the
        triplet sum up to round-off.  The list's triplets are therefore not read (any complete
        triplet list gives the same energy); a full list is required all the same.
        """
        require_triplets(nbrs)
        n = len(self.elements)
        natoms = system.natoms
        p, d, r, use, phi2, leg, si, sj = self._pair_terms(params, system, nbrs)
        u, w = d / r[:, None], leg  # w = g_j, 0 where the leg is cut (or padding)
        ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
        wx, wy, wz = w * ux, w * uy, w * uz
        channels = jnp.stack([wx * ux, wy * uy, wz * uz, wx * uy, wx * uz, wy * uz,
                              wx, wy, wz, w, w * w], axis=1)
        segment = nbrs.i if n == 1 else nbrs.i * n + sj
        moments = jax.ops.segment_sum(channels, segment, num_segments=natoms * n)
        moments = moments.reshape(natoms, n, 11)
        tensor = moments[..., :6]  # xx, yy, zz, xy, xz, yz
        vector = moments[..., 6:9]
        g = moments[..., 9]
        q = moments[..., 10]
        double_off_diagonal = jnp.asarray([[[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]]])
        # contractions over the tensor (vector) components as broadcast products
        tt = jnp.sum((tensor * double_off_diagonal)[:, :, None, :] * tensor[:, None, :, :], -1)
        vv = jnp.sum(vector[:, :, None, :] * vector[:, None, :, :], axis=-1)
        gg = g[:, :, None] * g[:, None, :]

        shape = (n, n, n)
        strength = (p["lambda"] * p["epsilon"]).reshape(shape)
        c0 = p["costheta0"].reshape(shape)
        if n > 1:
            centre = jnp.clip(system.species, 0, n - 1)
            strength, c0 = strength[centre], c0[centre]  # (N, n, n)
        diagonal = jnp.eye(n)[None] * ((1.0 - c0) ** 2) * q[:, :, None]
        angles = tt - 2.0 * c0 * vv + c0 * c0 * gg - diagonal
        return 0.5 * jnp.sum(phi2) + 0.5 * jnp.sum(strength * angles)
