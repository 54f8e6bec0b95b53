"""Array operations shared by the per-family analytic dataset kernels (``eam_dataset``,
``pair_dataset``, ``sw_dataset``): pair distances of a chunk, per-atom values gathered onto
pairs and pair values summed onto atoms (flattened B·n atom slots), and the energy and dE/dd of
a radial term.  ``c`` is a chunk of the dataset engine (:class:`rexfit.datasets.chunks.Chunk`)
with its analytic fields: mask (B, n), pair_mask, gi, gj, si, sj (B, E), d (3, B, E) Å."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Per-atom arrays are gathered onto pairs (F′(ρ_i) onto i–j pairs, and in the reverse pass the
# cotangent of ρ_i).  XLA's CPU backend fuses the computation of the gathered array into the
# per-pair consumer and so recomputes it for every pair, in the reverse pass once per spline
# coefficient too (measured: 40 % of the objective's gradient).  jax.lax.optimization_barrier
# does not prevent this on the CPU backend; a conditional does (its operands and results are
# buffers), and autodiff turns it into another conditional for the cotangents.  The predicate
# is "the chunk has a real atom", always true (structures have atoms); the other branch
# returns zeros, which would also be right for a chunk of padding only.


def materialise(values, live):
    """``values`` as a buffer of its own (see above); ``live``: the chunk has a real atom."""
    return jax.lax.cond(live, lambda v: v, jnp.zeros_like, values)


def gather_atoms(values, index, live):
    """values (B, n) at the flattened atom slots ``index`` (B, E)."""
    return materialise(values, live).reshape(-1)[index]


def scatter_atoms(values, index, shape, live):
    """Σ of pair values (B, E) onto their atom slots ``index`` → (B, n)."""
    summed = jax.ops.segment_sum(values.reshape(-1), index.reshape(-1),
                                 num_segments=shape[0] * shape[1])
    return materialise(summed.reshape(shape), live)


def distances(c):
    """r² and r (B, E) of the pair vectors, as ``pair_distances`` computes them."""
    r2 = c.d[0] * c.d[0] + c.d[1] * c.d[1] + c.d[2] * c.d[2]
    return r2, jnp.sqrt(r2)


def radial_terms(v, f, dedr, c):
    """(energy (B,), dE/dd (3 × (B, E))) of a radial term from its pair energies v (B, E),
    atom energies f (B, n) or None and dE/dr (B, E)."""
    energy = jnp.sum(v, axis=1) + (0.0 if f is None else jnp.sum(f, axis=1))
    w = dedr / jnp.where(c.pair_mask, distances(c)[1], 1.0)  # dE/dr / r, 0 if unused
    return energy, tuple(w * c.d[k] for k in range(3))
