"""Which parameter-free terms the dataset engine keeps per chunk (analytic kernel): a family
kernel that declares ``fixed`` (ACE: per pair slot its radial basis and core repulsion with
their slopes, Y_lm and ∂Y_lm/∂d, per atom its sums G_klm, :func:`rexfit.potentials.
ace_dataset.fixed_terms`) has them computed once per chunk, since a dataset's structures
never move, and every later evaluation reads them.  Kept only while the whole dataset's
terms fit :data:`FIXED_TERMS_BYTES`; beyond that each evaluation computes them again."""

from __future__ import annotations

from functools import partial

import jax
import numpy as np

from rexfit.datasets.analytic import analytic_fixed
from rexfit.datasets.kernels import KERNELS

#: Most bytes of kept terms for one dataset (all its chunks, held in device memory beside
#: the chunks): 1 GiB.  Above it, no terms are kept.
FIXED_TERMS_BYTES = 2**30


def fixed_bytes(potential, chunk) -> int:
    """Bytes of the terms :func:`analytic_fixed` keeps for one chunk of this shape (0: none),
    from shapes alone."""
    shapes = jax.eval_shape(partial(analytic_fixed, potential), chunk)
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize
               for x in jax.tree_util.tree_leaves(shapes))


def keep_fixed_terms(spec, buckets) -> tuple[list | None, int]:
    """(per bucket, per chunk, the kept terms (device arrays, as ``Chunk.fixed``), their
    bytes in all), or (None, 0) when the kernel keeps none or they exceed
    :data:`FIXED_TERMS_BYTES`."""
    if spec.kernel != "analytic":
        return None, 0
    per_shape: dict = {}  # chunk shape → bytes (one trace per shape, not per bucket)
    total = 0
    for b in buckets:
        chunk = b.host_chunk(0)
        key = (chunk.shape, chunk.slots)
        if key not in per_shape:
            per_shape[key] = fixed_bytes(spec.potential, chunk)
        total += per_shape[key] * b.n_chunks
    if total == 0 or total > FIXED_TERMS_BYTES:
        return None, 0
    program = KERNELS["fixed"]
    kept = [[program(spec, b.chunk(k)) for k in range(b.n_chunks)] for b in buckets]
    return jax.block_until_ready(kept), total
