"""Tersoff potential, multi-element, exactly as LAMMPS ``pair_style tersoff`` (no ``shift``).

E = ½ Σ_i Σ_{j≠i} f_C(r_ij) [f_R(r_ij) + b_ij f_A(r_ij)] with, per element triplet entry
(s_x = the element of atom x; "ijj" = the entry (s_i, s_j, s_j), "ijk" = (s_i, s_j, s_k)):

    f_R = A e^{−λ1 r},  f_A = −B e^{−λ2 r},  f_C(r; R, D) = 1 (r < R−D),
          ½ − ½ sin(π/2 (r − R)/D) (|r − R| ≤ D), 0 (r > R+D)           A, B, λ1, λ2, R, D: ijj
    b_ij = (1 + (β ζ_ij)^n)^(−1/2n)                                     β, n: ijj
    ζ_ij = Σ_{k≠i,j} f_C(r_ik; R_ijk, D_ijk) g_ijk(θ_jik) exp[(λ3_ijk (r_ij − r_ik))^m_ijk]
    g(θ) = γ_ijk [1 + c²/d² − c²/(d² + (h − cos θ)²)]                   γ, c, d, h: ijk

LAMMPS details reproduced: the cutoff of the k leg is R+D of the *ijk* entry (not of the ik
pair's entry); m is used as an integer, 3 or 1 (λ3 is cubed together with r_ij − r_ik for
m = 3); the exponential is clamped (1e30 above argument 69.0776, 0 below −69.0776); b_ij
uses LAMMPS's asymptotic branches (β ζ beyond c1 = (2n·1e−16)^(−1/n) or c2, or below 1/c1 or
1/c2); pairs are cut at r² < (R+D)².  LAMMPS adds each repulsive pair term once, with the ijj
entry of whichever atom it treats as i; rexfit uses ½[f_R,ijj + f_R,jii], the same for every
well-formed file.  Energy only: forces and stress come from autodiff.

params: {tag: {"m", "gamma", "lambda3", "c", "d", "costheta0", "n", "beta", "lambda2", "B",
"R", "D", "lambda1", "A"}} for every element triplet, tag = "".join(triplet) (e.g. "SiSiC");
float64 scalars; ``costheta0`` is h.  m is discrete (its gradient is zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params
from rexfit.potentials.manybody_files import (
    TERSOFF_PARAMETERS,
    check_tags,
    entries_from_params,
    params_from_entries,
    read_tersoff_file,
    stack_params,
)
from rexfit.structures.indexing import segment_sum, take
from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System
from rexfit.structures.triplets import (
    TripletNeighborList,
    build_triplet_neighbor_list,
    require_triplets,
)

_EXP_LIMIT = 69.0776  # LAMMPS's clamp of the ζ exponential
#: ijk values a ζ term reads (gathered together per triplet when there are several elements)
_THREE_BODY = ("R", "D", "lambda3", "m", "c", "d", "costheta0", "gamma")

#: Pair slots × triplets × trailing size up to which a one-element Tersoff moves pair values
#: to its triplets (and ζ back to the pairs) by one-hot products instead of gathers and
#: segment sums (rexfit.structures.indexing): XLA's CPU backend compiles each scatter of
#: the reverse passes as a loop of its own (jobs/fe-abop and si-tersoff: 10–20 % less
#: CPU cold). The 0/1 matrix takes at most 8 × this many bytes.
TRIPLET_LIMIT = 1 << 17


def _cutoff_function(r, big_r, big_d):
    """f_C(r) with LAMMPS's branches; finite gradients for D = 0 entries."""
    d_safe = jnp.where(big_d > 0.0, big_d, 1.0)
    inner = 0.5 * (1.0 - jnp.sin(0.5 * jnp.pi * (r - big_r) / d_safe))
    return jnp.where(r < big_r - big_d, 1.0, jnp.where(r > big_r + big_d, 0.0, inner))


def _bond_order(zeta, beta, n):
    """b_ij = (1 + (βζ)^n)^(−1/2n) with LAMMPS's asymptotic branches (ters_bij)."""
    n_safe = jnp.where(n > 0.0, n, 1.0)
    tmp = beta * zeta
    c1 = (2.0 * n_safe * 1.0e-16) ** (-1.0 / n_safe)
    c2 = (2.0 * n_safe * 1.0e-8) ** (-1.0 / n_safe)
    c3, c4 = 1.0 / c2, 1.0 / c1
    t = jnp.where(tmp > c4, tmp, 1.0)  # every branch below is evaluated at a positive t
    # the branches other than b1 only at t ≤ c1: t^n would overflow for huge ζ (clamped ζ
    # exponentials), and an infinite slope in an unselected branch makes the gradient NaN
    t_n = jnp.where(tmp > c1, 1.0, t) ** n_safe
    b1 = 1.0 / jnp.sqrt(t)
    b2 = (1.0 - 1.0 / (t_n * 2.0 * n_safe)) / jnp.sqrt(t)
    b4 = 1.0 - t_n / (2.0 * n_safe)
    b5 = (1.0 + t_n) ** (-1.0 / (2.0 * n_safe))
    return jnp.where(tmp > c1, b1, jnp.where(tmp > c2, b2, jnp.where(
        tmp < c4, 1.0, jnp.where(tmp < c3, b4, b5))))


@dataclass(frozen=True)
class Tersoff:
    """Tersoff over ``elements`` (species index s ↦ elements[s]).

    reach: (S, S, S) nested tuple, Å, indexed like the entries: reach[s_i][s_j][s_j] bounds
    the pair i–j, reach[s_i][s_j][s_k] the k leg of ζ_ij; normally R + D of each entry (plus
    the ``margin`` of :meth:`create`, room for a fit to lengthen R + D).  Neighbour and
    triplet lists are built for these distances.  Build with :meth:`create` or
    :meth:`from_file`; hashable (a static ``jit`` argument).  Species ≥ len(elements) do not
    interact.
    """

    elements: tuple[str, ...]
    reach: tuple[tuple[tuple[float, ...], ...], ...]

    # ------------------------------------------------------------------ construction

    @staticmethod
    def create(elements: Iterable[str], params: Params, margin: float = 0.0) -> Tersoff:
        """Potential whose reach is R + D of every entry of ``params`` plus ``margin`` (Å)."""
        elements = tuple(elements)
        check_tags(elements)
        e = entries_from_params(params, elements, TERSOFF_PARAMETERS)
        reach = tuple(tuple(tuple(e[(a, b, c)]["R"] + e[(a, b, c)]["D"] + float(margin)
                                  for c in elements) for b in elements) for a in elements)
        return Tersoff(elements, reach)

    @staticmethod
    def from_file(path, elements: Iterable[str], margin: float = 0.0):
        """(potential, params) from a LAMMPS ``.tersoff`` file for ``elements`` (like
        ``pair_coeff * * path e1 e2 ...``); entries of other elements are ignored."""
        elements = tuple(elements)
        params = params_from_entries(read_tersoff_file(path), elements, TERSOFF_PARAMETERS)
        return Tersoff.create(elements, params, margin), params

    @property
    def cutoff(self) -> float:
        """Largest reach (Å), LAMMPS's cutmax: the neighbour list must extend this far."""
        return max(x for plane in self.reach for row in plane for x in row)

    def pair_reach(self) -> np.ndarray:
        """(S, S) reach of the pair i–j (the ijj entries), Å."""
        reach = np.asarray(self.reach, dtype=np.float64)
        s = np.arange(len(self.elements))
        return reach[s[:, None], s[None, :], s[None, :]]

    def triplet_cutoffs(self):
        """Neighbour needs (see :mod:`rexfit.potentials.lists`): the i→j leg within the ijj
        reach, the i→k leg within the ijk reach, each pair of legs once."""
        return self.pair_reach(), np.asarray(self.reach, dtype=np.float64), False

    def neighbor_list(self, system: System, skin: float = 0.5, *, capacity: int | None = None,
                      triplet_capacity: int | None = None,
                      ordered: bool = False) -> TripletNeighborList:
        """Full neighbour list with triplets pruned to the ij (ijj) and ik (ijk) reaches.

        ``ordered=False`` (default) stores each pair of legs once and evaluates both angles'
        ζ contributions from it (half the triplet memory).
        """
        return build_triplet_neighbor_list(system, self.cutoff, skin, self.pair_reach(),
                                           np.asarray(self.reach, dtype=np.float64),
                                           ordered=ordered, capacity=capacity,
                                           triplet_capacity=triplet_capacity)

    # ------------------------------------------------------------------ evaluation

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` must carry triplets (:meth:`neighbor_list`).

        Per pair slot: r, the unit vector, f_C, f_R, f_A; per triplet only cos θ (a dot product
        of two unit vectors), g(θ), the ζ exponential and the k-leg cutoff; ζ is summed per
        pair slot with ``segment_sum``.  With one element every triplet uses the same entry, so
        no parameter is gathered per triplet, the k-leg f_C is the pair's own, g(θ) serves
        both ζ_ij and ζ_ik of an unordered triplet, and the ζ_ik exponential is the
        reciprocal of the ζ_ij one (its argument changes sign: m is odd).
        """
        triplets = require_triplets(nbrs)
        n = len(self.elements)
        p = stack_params(params, self.elements, TERSOFF_PARAMETERS)
        reach = np.asarray(self.reach, dtype=np.float64).reshape(-1)

        d = pair_displacements(system, nbrs)
        r2 = jnp.sum(d * d, axis=1)
        si, sj = system.species[nbrs.i], system.species[nbrs.j]
        valid = nbrs.mask & (si >= 0) & (si < n) & (sj >= 0) & (sj < n)
        si, sj = jnp.clip(si, 0, n - 1), jnp.clip(sj, 0, n - 1)
        r_all = jnp.where(nbrs.mask, jnp.sqrt(r2), 1.0)
        unit = d / r_all[:, None]

        # pair terms, ijj entry
        slot = (si * n + sj) * n + sj

        def pair_entry(name):  # a scalar for one element: no gather
            return p[name][0] if n == 1 else p[name][slot]

        big_r, big_d = pair_entry("R"), pair_entry("D")
        cut = big_r + big_d
        pair_reach = reach[0] if n == 1 else jnp.asarray(reach)[slot]
        use = valid & (r2 < cut * cut) & (r2 < pair_reach * pair_reach)
        r = jnp.where(use, r_all, 0.5 * big_r)
        fc = _cutoff_function(r, big_r, big_d)
        repulsive = fc * pair_entry("A") * jnp.exp(-pair_entry("lambda1") * r)
        attractive = -pair_entry("B") * jnp.exp(-pair_entry("lambda2") * r) * fc

        # ζ_ij: k legs with the ijk entry's cutoff and angular parameters
        a, b = triplets.ij, triplets.ik
        cos = jnp.sum(take(unit, a, TRIPLET_LIMIT) * take(unit, b, TRIPLET_LIMIT), axis=1)

        def exp_term(lam3, m, dr):
            """LAMMPS's clamped exp[(λ3 Δr)^m], m = 3 or (anything else) 1."""
            lam = lam3 * dr
            arg = jnp.where(jnp.floor(m) == 3.0, lam * lam * lam, lam)
            ex = jnp.exp(jnp.clip(arg, -_EXP_LIMIT, _EXP_LIMIT))
            return arg, jnp.where(arg > _EXP_LIMIT, 1.0e30, jnp.where(arg < -_EXP_LIMIT, 0.0, ex))

        def angular(entry, ok, cos):
            c2, d2 = entry("c") ** 2, jnp.where(ok, entry("d") ** 2, 1.0)
            hcth = entry("costheta0") - cos
            return entry("gamma") * (1.0 + c2 / d2 - c2 / (d2 + hcth * hcth))

        capacity = nbrs.capacity
        if n == 1:
            entry = pair_entry  # every triplet uses the single entry
            ok = triplets.mask & use[a] & use[b]
            g = angular(entry, ok, cos)
            r_a, r_b = take(r, a, TRIPLET_LIMIT), take(r, b, TRIPLET_LIMIT)
            arg, ex = exp_term(entry("lambda3"), entry("m"), r_a - r_b)
            term = jnp.where(ok, take(fc, b, TRIPLET_LIMIT) * g * ex, 0.0)  # ζ of a from leg b
            zeta = segment_sum(term, a, capacity, TRIPLET_LIMIT)
            if not triplets.ordered:
                # leg a in ζ of slot b: argument −arg, so the exponential is 1/ex when unclamped
                ex_rev = jnp.where(arg < -_EXP_LIMIT, 1.0e30,
                                   jnp.where(arg > _EXP_LIMIT, 0.0, 1.0 / jnp.where(
                                       jnp.abs(arg) > _EXP_LIMIT, 1.0, ex)))
                term_rev = jnp.where(ok, take(fc, a, TRIPLET_LIMIT) * g * ex_rev, 0.0)
                zeta = zeta + segment_sum(term_rev, b, capacity, TRIPLET_LIMIT)
        else:
            table = jnp.stack([p[k] for k in _THREE_BODY], axis=1)  # (S³, 8)
            reach_k = jnp.asarray(reach)

            def zeta_term(first, second):
                """Contribution to ζ of pair slot ``first`` from the k leg ``second``."""
                k = (si[first] * n + sj[first]) * n + sj[second]
                values = table[k]  # one gather for all the ijk values

                def entry(name):
                    return values[:, _THREE_BODY.index(name)]

                r_ik2 = r2[second]
                cut_k = entry("R") + entry("D")
                ok = (triplets.mask & use[first] & valid[second] & (r_ik2 < cut_k * cut_k)
                      & (r_ik2 < reach_k[k] ** 2))
                r_ik = jnp.where(ok, r_all[second], 0.5 * entry("R"))
                _, ex = exp_term(entry("lambda3"), entry("m"), r_all[first] - r_ik)
                g = angular(entry, ok, cos)
                term = _cutoff_function(r_ik, entry("R"), entry("D")) * g * ex
                return jnp.where(ok, term, 0.0)

            zeta = jax.ops.segment_sum(zeta_term(a, b), a, num_segments=capacity)
            if not triplets.ordered:
                zeta = zeta + jax.ops.segment_sum(zeta_term(b, a), b, num_segments=capacity)
        bij = _bond_order(zeta, pair_entry("beta"), pair_entry("n"))
        return 0.5 * jnp.sum(jnp.where(use, repulsive + bij * attractive, 0.0))
