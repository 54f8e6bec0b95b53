"""The analytic dataset kernel of :class:`rexfit.potentials.pair.LennardJones`: pair energies
and dE/dr (forward mode) on the half neighbour list of a chunk, restricted to the species pairs
the term acts on.  Looked up by :mod:`rexfit.datasets.analytic`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.analytic_dataset import distances, radial_terms
from rexfit.potentials.pair import LennardJones


def prepare(lj: LennardJones, params):
    """The term's own params (nothing to precompute)."""
    return params


def pair_terms(lj: LennardJones, params, c):
    """(pair energies (B, E), None, dE/dr (B, E)) of one Lennard-Jones term."""
    r2, r = distances(c)
    use = c.pair_mask & (r2 < lj.cutoff * lj.cutoff)
    if lj.pairs is not None:
        n = 1 + max(max(p) for p in lj.pairs)
        table = np.zeros((n + 1, n + 1), dtype=bool)  # last row/column: species ≥ n
        for a, b in lj.pairs:
            table[a, b] = table[b, a] = True
        use = use & jnp.asarray(table)[jnp.minimum(c.si, n), jnp.minimum(c.sj, n)]
    r = jnp.where(c.pair_mask, r, 0.5 * lj.cutoff)
    v, dv = jax.jvp(lambda x: lj.pair_energy(params, x), (r,), (jnp.ones_like(r),))
    return jnp.where(use, v, 0.0), None, jnp.where(use, dv, 0.0)


def terms(lj: LennardJones, params, c):
    """(energy (B,), dE/dd (3 × (B, E))) of one Lennard-Jones term."""
    return radial_terms(*pair_terms(lj, params, c), c)
