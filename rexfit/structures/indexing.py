"""Gathers and index sums of per-atom and per-pair values, written for the compiler.

``values[index]`` and ``jax.ops.segment_sum`` are the natural way to move values between atoms
and pairs, but XLA's CPU backend turns every scatter — each segment sum, and the transpose of
every gather that reverse mode takes — into a loop over the entries, a separate piece of code
that it optimises and compiles on its own.  A small structure's property program nests three
or four derivatives and holds dozens of them: about a quarter of its compile time went to
those loops.  For small tables the same numbers come from a one-hot mask instead (``index ==
k`` for every slot k, a select and a sum), whose derivatives are selects and sums again, which
XLA fuses with their neighbours.  Its cost is the table size times the number of entries, so
it is used only where that product is at most :data:`ONE_HOT_LIMIT`; larger ones (datasets,
big cells) keep the gather and the segment sum.

Both forms give the same values up to the order of a floating-point sum (a segment sum adds an
atom's pairs in list order; the masked sum in XLA's reduction order).  ``index`` must lie in
``[0, n)``: padding entries point at a real slot and carry zero values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

#: Largest (table rows × entries × trailing size) moved by a one-hot mask instead of a gather
#: or a segment sum.
ONE_HOT_LIMIT = 1 << 12


def _one_hot(index: jax.Array, n: int, trailing: int) -> jax.Array:
    """(E, n, 1, …) boolean mask index[e] == k, with ``trailing`` unit axes."""
    hot = index[:, None] == jnp.arange(n, dtype=index.dtype)[None, :]
    return hot.reshape(hot.shape + (1,) * trailing)


def _small(n: int, index: jax.Array, values: jax.Array, skip: int) -> bool:
    return n * index.shape[0] * math.prod(values.shape[skip:]) <= ONE_HOT_LIMIT


def take(values: jax.Array, index: jax.Array) -> jax.Array:
    """``values[index]`` along the first axis (``index`` one-dimensional)."""
    n = values.shape[0]
    if index.ndim != 1 or not _small(n, index, values, 1):
        return values[index]
    hot = _one_hot(index, n, values.ndim - 1)
    return jnp.sum(jnp.where(hot, values[None], jnp.zeros((), values.dtype)), axis=1)


def segment_sum(values: jax.Array, index: jax.Array, n: int) -> jax.Array:
    """``jax.ops.segment_sum(values, index, num_segments=n)`` (``index`` one-dimensional)."""
    if index.ndim != 1 or not _small(n, index, values, 1):
        return jax.ops.segment_sum(values, index, num_segments=n)
    hot = _one_hot(index, n, values.ndim - 1)
    return jnp.sum(jnp.where(hot, values[:, None], jnp.zeros((), values.dtype)), axis=0)
