"""Gathers and index sums of per-atom and per-pair values, written for the compiler.

``values[index]`` and ``jax.ops.segment_sum`` are the natural way to move values between atoms
and pairs, but XLA's CPU backend turns every scatter — each segment sum, and the transpose of
every gather that reverse mode takes — into a loop over the entries, a separate piece of code
that it optimises and compiles on its own.  A small structure's property program nests three
or four derivatives and holds dozens of them: about a quarter of its compile time went to
those loops.  For small tables the same numbers come from a one-hot matrix instead (1 where
``index == k``, 0 elsewhere): a gather is the product of that matrix with the table, a segment
sum the product of its transpose with the entries, and their derivatives are such products
again.  XLA compiles a matrix product as one call of its own, where the masked form (a select
of every entry against every slot, then a sum) was fused with the long chains of arithmetic
that produce its operands and so recomputed them once per slot: jobs/al-eam's
elastic-constant gradient compiled in 1.5 instead of 2.3 CPU-s and ran in 2.4 instead of 5 ms
with products.  The cost is the table size times the number of entries, so the matrix is used
only where that product is at most :data:`ONE_HOT_LIMIT`; larger ones (datasets, big cells)
keep the gather and the segment sum.

A gather by a product is exact for finite tables (x·1 + 0·y = x); a segment sum adds an
atom's entries in another order than ``jax.ops.segment_sum`` (round-off).  A non-finite value
in a table (a structure whose relaxation failed) spreads to every entry of the product
(0·nan = nan), where a gather leaves the entries that do not point at it finite; such a
structure's values are not finite either way.  Integer and boolean tables keep an exact
select.  ``index`` must lie in ``[0, n)``: padding entries point at a real slot and carry zero
values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

#: Largest (table rows × entries × trailing size) moved by a one-hot product instead of a
#: gather or a segment sum (callers may pass a larger ``limit``: Tersoff's triplets).
ONE_HOT_LIMIT = 1 << 12


def _one_hot(index: jax.Array, n: int, trailing: int) -> jax.Array:
    """(E, n, 1, …) boolean mask index[e] == k, with ``trailing`` unit axes."""
    hot = index[:, None] == jnp.arange(n, dtype=index.dtype)[None, :]
    return hot.reshape(hot.shape + (1,) * trailing)


def _small(n: int, index: jax.Array, values: jax.Array, skip: int,
           limit: int | None = None) -> bool:
    limit = ONE_HOT_LIMIT if limit is None else limit
    return n * index.shape[0] * math.prod(values.shape[skip:]) <= limit


def _matrix(index: jax.Array, n: int, dtype) -> jax.Array:
    """(E, n) one-hot matrix of ``dtype``: 1 where index[e] == k."""
    return (index[:, None] == jnp.arange(n, dtype=index.dtype)[None, :]).astype(dtype)


def take(values: jax.Array, index: jax.Array, limit: int | None = None) -> jax.Array:
    """``values[index]`` along the first axis (``index`` one-dimensional); by a product where
    table × entries × trailing size is at most ``limit`` (default :data:`ONE_HOT_LIMIT`)."""
    n = values.shape[0]
    if index.ndim != 1 or not _small(n, index, values, 1, limit):
        return values[index]
    if jnp.issubdtype(values.dtype, jnp.inexact):
        return jnp.tensordot(_matrix(index, n, values.dtype), values, axes=1)
    if not _small(n, index, values, 1):
        return values[index]
    hot = _one_hot(index, n, values.ndim - 1)
    return jnp.sum(jnp.where(hot, values[None], jnp.zeros((), values.dtype)), axis=1)


def segment_sum(values: jax.Array, index: jax.Array, n: int,
                limit: int | None = None) -> jax.Array:
    """``jax.ops.segment_sum(values, index, num_segments=n)`` (``index`` one-dimensional); by a
    product where table × entries × trailing size is at most ``limit`` (default
    :data:`ONE_HOT_LIMIT`)."""
    if index.ndim != 1 or not _small(n, index, values, 1, limit):
        return jax.ops.segment_sum(values, index, num_segments=n)
    if jnp.issubdtype(values.dtype, jnp.inexact):
        return jnp.tensordot(_matrix(index, n, values.dtype), values, axes=((0,), (0,)))
    if not _small(n, index, values, 1):
        return jax.ops.segment_sum(values, index, num_segments=n)
    hot = _one_hot(index, n, values.ndim - 1)
    return jnp.sum(jnp.where(hot, values[:, None], jnp.zeros((), values.dtype)), axis=0)
