"""How the dataset engine groups and holds its structures: a :class:`Bucket` of structures that
share one padded chunk shape (host arrays, streamed to the device chunk by chunk or kept
there), the global shape :func:`ladder` every padded size is a rung of, the merging of small
atom-count classes, the per-item host lists (:class:`Listed`) and :func:`pooled_rows`, which
lets the descriptor engines of a job compute their rows together."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import jax
import numpy as np

from rexfit.datasets.chunks import Chunk


@dataclass(eq=False)
class Bucket:
    """Structures sharing one chunk shape: host arrays padded to n_chunks · size rows."""

    members: np.ndarray  # (S,) item indices
    size: int  # structures per chunk B
    n_chunks: int
    host: Chunk  # NumPy leaves, leading structure axis n_chunks · size (f_ref, s_ref: axis 1)
    device: list | None = None  # resident device chunks, if kept
    take: list = field(default_factory=list)  # per chunk: residual-block entries used
    dest: list = field(default_factory=list)  # per chunk: their rows in the residual vector
    starts: np.ndarray | None = None  # flat chunk (one per bucket): each member's first slot

    def atom_layout(self) -> tuple[np.ndarray, int]:
        """(first atom slot of each structure slot of a chunk (B,), atom slots A of the
        chunk): the force rows of a residual block are B + c·A + slot."""
        if self.host.flat:
            return self.starts, self.host.mask.shape[0]
        n = self.host.mask.shape[1]
        return np.arange(self.size) * n, self.size * n

    def host_chunk(self, k: int) -> Chunk:
        if self.host.flat:  # one chunk
            return self.host
        lo, hi = k * self.size, (k + 1) * self.size
        sliced = {name: (None if getattr(self.host, name) is None
                         else (getattr(self.host, name)[:, lo:hi] if name in _SECOND_AXIS
                               else getattr(self.host, name)[lo:hi]))
                  for name in _ARRAY_FIELDS}
        for name in ("features", "feature_grads"):
            value = getattr(self.host, name)
            sliced[name] = None if value is None else jax.tree_util.tree_map(
                lambda x: x[lo:hi], value)
        base = self.host.base
        sliced["base"] = None if base is None else (base[0][lo:hi], base[1][:, lo:hi],
                                                    base[2][:, lo:hi])
        return Chunk(**sliced, pbc=self.host.pbc, cutoff=self.host.cutoff,
                     skin=self.host.skin, half=self.host.half, ordered=self.host.ordered,
                     packed=self.host.packed)

    def chunk(self, k: int) -> Chunk:
        return self.device[k] if self.device is not None else jax.device_put(self.host_chunk(k))


_ARRAY_FIELDS = ("species", "mask", "pair_mask", "e_ref", "f_ref", "s_ref", "ce", "cf", "cs",
                 "volume", "positions", "cell", "i", "j", "shifts", "tij", "tik", "tmask",
                 "gi", "gj", "si", "sj", "d", "owner")
_SECOND_AXIS = ("f_ref", "s_ref", "d")  # structure axis second (component first)


def merge_small_groups(groups: dict[tuple, list[int]], budget: float) -> dict:
    """Atom-count classes merged upwards, smallest first, while the padding atom slots this
    adds (members × (larger class − smaller class)) stay within ``budget`` in all."""
    out = dict(groups)
    for pbc in sorted({key[0] for key in out}):
        classes = sorted(key[1] for key in out if key[0] == pbc)
        for small, large in zip(classes, classes[1:]):
            cost = len(out[(pbc, small)]) * (large - small)
            if cost > budget:
                continue
            budget -= cost
            out[(pbc, large)] = out.pop((pbc, small)) + out[(pbc, large)]
    return out


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def ladder(n: int, multiple: int = 1) -> int:
    """The smallest rung ≥ n (and ≥ 1) of the global shape ladder 1, 2, …, 6, 8, 10, 12, 16,
    20, 24, 32, 40, 48, … (m·2^k, m = 4, 5, 6: consecutive rungs differ by at most a factor
    4/3), rounded up to a multiple of ``multiple``.

    Every padded size of a chunk (atom slots, pair slots, triplet slots, structures per
    chunk) is a rung: it depends on the size it pads and on nothing else, so that different
    datasets of a job, and the training and validation parts of one, land on the same chunk
    shapes and share every compiled program (at most 33 % padding per axis)."""
    n = max(int(n), 1)
    if n <= 6:
        return _round_up(n, multiple)
    scale = 1 << max(0, (n - 1).bit_length() - 3)  # n in (4·scale, 8·scale]
    for m in (4, 5, 6, 8):
        if m * scale >= n:
            return _round_up(m * scale, multiple)
    raise AssertionError(n)  # pragma: no cover


@dataclass(eq=False)
class Listed:
    """Host data of one item: geometry and its unpadded lists."""

    positions: np.ndarray
    cell: np.ndarray
    species: np.ndarray
    pbc: tuple
    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    triplets: tuple | None  # (ij, ik, ordered)
    meta: tuple  # the list's (cutoff, skin, half)
    pruned: bool = False  # triplets pruned for the fixed geometry (descriptor_kernel.prune_lists)

    @property
    def natoms(self) -> int:
        return len(self.positions)


#: Open :func:`pooled_rows` scopes, innermost last: engines waiting for their rows.
POOL: list[list] = []


@contextmanager
def pooled_rows():
    """Engines (descriptor kernel) made inside this scope compute their descriptor rows (and
    the fixed energies of their base) together when it ends: the structures of every dataset
    of a job, training and validation alike, packed into the same blocks (a job's data split
    into many datasets costs no more blocks than one). The engines are ready after the scope; nothing may use
    them inside it."""
    POOL.append([])
    try:
        yield
    except BaseException:
        POOL.pop()
        raise
    pending = POOL.pop()
    groups: dict = {}
    for entry in pending:
        engine, listed, _, geometries = entry
        key = (id(engine.potential), listed[0].meta, geometries[0].triplets is None)
        groups.setdefault(key, []).append(entry)
    for group in groups.values():
        geometries = [g for _, _, _, gs in group for g in gs]
        first, listed = group[0][0], group[0][1]
        base = first._base_predictions(geometries)  # (per pair: the same numbers)
        rows = first._descriptor_rows(geometries, listed[0].meta)
        start = 0
        for engine, listed, atom_minimum, gs in group:
            stop = start + len(gs)
            engine._base = None if base is None else base[start:stop]
            engine._rows = [per_model[start:stop] for per_model in rows]
            engine._complete(listed, atom_minimum)
            start = stop

