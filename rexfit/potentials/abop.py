"""Analytic bond-order potential (ABOP) in the Albe–Erhart form, run as a LAMMPS Tersoff.

The ABOP (Albe, Nordlund, Averback, PRB 65, 195124 (2002); Erhart & Albe, PRB 71, 035211
(2005)) writes the pair terms with the dimer energy D0, bond length r0, stiffness β and
Pauling slope S, and the bond order b_ij = (1 + χ_ij)^(−1/2) with
χ_ij = Σ_k f_C(r_ik) g(θ_jik) exp[2μ (r_ij − r_ik)],  g(θ) = γ [1 + c²/d² − c²/(d² + (h + cos θ)²)].
It is the LAMMPS ``tersoff`` form with (SPEC §3)

    λ1 = β√(2S),  λ2 = β√(2/S),  A = D0/(S−1)·e^{λ1 r0},  B = S·D0/(S−1)·e^{λ2 r0},
    costheta0 = −h,  λ3 = 2μ,  and Tersoff's β, n taken from ``beta2``, ``powern``
    (1 and 1 for the original form),

so rexfit evaluates it with :class:`~rexfit.potentials.tersoff.Tersoff` after converting the
parameters (differentiably: fitting D0, r0, β, S moves A, B, λ1, λ2 together).

params: {tag: {"D0", "S", "r0", "beta", "beta2", "powern", "gamma", "c", "d", "h", "twomu",
"m", "bigr", "bigd"}} for every element triplet.  Two-body values (D0, S, r0, beta, beta2,
powern) are used from the pair entries ijj only, as LAMMPS uses A, B, λ1, λ2, β, n; on the other
entries they are carried but unused (the written file has zeros there).  ``classic``: the
three-body parameters of the triplet ijk (γ, c, d, h, 2μ, m and the k-leg cutoff R, D) are
those of the i–k pair, i.e. of entry ikk (Albe et al.'s form), instead of entry ijk's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params
from rexfit.potentials.manybody_files import (
    TERSOFF_PARAMETERS,
    entries_from_params,
    params_from_entries,
    read_tersoff_file,
    triplet_tag,
)
from rexfit.potentials.tersoff import Tersoff

ABOP_PARAMETERS = ("D0", "S", "r0", "beta", "beta2", "powern", "gamma", "c", "d", "h", "twomu",
                   "m", "bigr", "bigd")
#: ABOP parameters that belong to the pair entries (ijj); the rest are three-body parameters.
TWO_BODY = ("D0", "S", "r0", "beta", "beta2", "powern")
THREE_BODY = ("gamma", "c", "d", "h", "twomu", "m", "bigr", "bigd")


def to_tersoff(params: Params, elements: tuple[str, ...], classic: bool = False,
               xp=jnp) -> dict:
    """Tersoff params {tag: {LAMMPS name: value}} of ABOP ``params`` (differentiable);
    ``xp=numpy`` for concrete values on the host (no program per operation)."""
    out = {}
    for i, j, k in product(elements, repeat=3):
        own = params[triplet_tag(i, j, k)]
        three = params[triplet_tag(i, k, k)] if classic else own
        entry = {
            "m": three["m"], "gamma": three["gamma"], "lambda3": three["twomu"],
            "c": three["c"], "d": three["d"], "costheta0": -three["h"],
            "R": three["bigr"], "D": three["bigd"],
            "n": own["powern"], "beta": own["beta2"],
        }
        if j == k:
            d0, s, r0, beta = own["D0"], own["S"], own["r0"], own["beta"]
            lam1 = beta * xp.sqrt(2.0 * s)
            lam2 = beta * xp.sqrt(2.0 / s)
            entry.update(lambda1=lam1, lambda2=lam2,
                         A=d0 / (s - 1.0) * xp.exp(lam1 * r0),
                         B=s * d0 / (s - 1.0) * xp.exp(lam2 * r0))
        else:
            zero = xp.zeros_like(xp.asarray(own["D0"], dtype=xp.float64))
            entry.update(lambda1=zero, lambda2=zero, A=zero, B=zero)
        out[triplet_tag(i, j, k)] = entry
    return out


def from_tersoff(params: Params, elements: tuple[str, ...], where: str = "") -> dict:
    """ABOP params of Tersoff ``params`` (host-side; the inverse of :func:`to_tersoff` with
    ``classic=False``).  A pair entry that has no ABOP form (A or B not positive, λ1 ≤ λ2)
    raises ``ValueError``."""
    out = {}
    for i, j, k in product(elements, repeat=3):
        t = {n: float(np.asarray(v)) for n, v in params[triplet_tag(i, j, k)].items()}
        entry = {"m": t["m"], "gamma": t["gamma"], "twomu": t["lambda3"], "c": t["c"],
                 "d": t["d"], "h": -t["costheta0"], "bigr": t["R"], "bigd": t["D"],
                 "powern": t["n"], "beta2": t["beta"]}
        if j == k:
            lam1, lam2, a, b = t["lambda1"], t["lambda2"], t["A"], t["B"]
            if not (a > 0.0 and b > 0.0 and lam1 > lam2 > 0.0):
                raise ValueError(
                    f"{where}entry {i} {j} {k} has no ABOP form (it needs A > 0, B > 0 and "
                    f"lambda1 > lambda2 > 0; it has A={a:g}, B={b:g}, lambda1={lam1:g}, "
                    f"lambda2={lam2:g})")
            s = lam1 / lam2
            r0 = math.log(b / (s * a)) / (lam2 - lam1)
            entry.update(S=s, beta=math.sqrt(lam1 * lam2 / 2.0), r0=r0,
                         D0=a * (s - 1.0) * math.exp(-lam1 * r0))
        else:
            entry.update(S=0.0, beta=0.0, r0=0.0, D0=0.0)
        # put on the device as they are (jnp.float64 would compile a conversion program)
        out[triplet_tag(i, j, k)] = {n: jax.device_put(np.float64(entry[n]))
                                     for n in ABOP_PARAMETERS}
    return out


@dataclass(frozen=True)
class ABOP:
    """ABOP over ``tersoff.elements``, evaluated as the equivalent Tersoff potential."""

    tersoff: Tersoff
    classic: bool = False

    @staticmethod
    def create(elements: Iterable[str], params: Params, classic: bool = False,
               margin: float = 0.0) -> ABOP:
        """Potential for ABOP ``params``; lists reach R + D (+ ``margin``, Å) of every entry."""
        elements = tuple(elements)
        # the reach takes R and D alone: the rest on the host, values as given
        host = jax.tree_util.tree_map(np.asarray, params)
        t = to_tersoff(host, elements, classic, xp=np)
        return ABOP(Tersoff.create(elements, t, margin), bool(classic))

    @staticmethod
    def from_file(path, elements: Iterable[str], classic: bool = False, margin: float = 0.0):
        """(potential, ABOP params) from a LAMMPS ``.tersoff`` file (converted per SPEC §3)."""
        elements = tuple(elements)
        t = params_from_entries(read_tersoff_file(path), elements, TERSOFF_PARAMETERS)
        params = from_tersoff(t, elements, f"{path}: ")
        return ABOP.create(elements, params, classic, margin), params

    @property
    def elements(self) -> tuple[str, ...]:
        return self.tersoff.elements

    @property
    def cutoff(self) -> float:
        return self.tersoff.cutoff

    def triplet_cutoffs(self):
        """Neighbour needs (see :mod:`rexfit.potentials.lists`): those of the Tersoff form."""
        return self.tersoff.triplet_cutoffs()

    def neighbor_list(self, system, skin: float = 0.5, **kw):
        return self.tersoff.neighbor_list(system, skin, **kw)

    def energy(self, params: Params, system, nbrs):
        """Total energy (eV) of ABOP ``params``."""
        return self.tersoff.energy(to_tersoff(params, self.elements, self.classic), system, nbrs)


def tersoff_entries(potential: ABOP, params: Params):
    """{(e1, e2, e3): {LAMMPS name: float}} of ABOP ``params`` (for reports and tests)."""
    t = to_tersoff(params, potential.elements, potential.classic)
    return entries_from_params(t, potential.elements, TERSOFF_PARAMETERS)
