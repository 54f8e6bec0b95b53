"""Generalised Clebsch–Gordan coupling of ACE product functions (NumPy, host side).

A product basis function of rank r couples r one-particle functions (l_1 m_1) … (l_r m_r) to
total angular momentum 0 along a fixed binary tree with intermediate momenta LS
(pacemaker's ``lint``): first neighbouring pairs (l_1 l_2) → L_1, (l_3 l_4) → L_2, …, then the
intermediate nodes in order, pairwise, and an unpaired last l (odd r) joins the final node.
Rank 2: (l_1 l_2) → 0.  Rank 3: (l_1 l_2) → L_1, (L_1 l_3) → 0, so L_1 = l_3.
Rank 4: (l_1 l_2) → L_1, (l_3 l_4) → L_2, (L_1 L_2) → 0.  Rank 5: as rank 4 with (L_1 L_2)
→ L_3 and (L_3 l_5) → 0.  The coefficient of the product Π A_{l_k m_k} is the product of the
ordinary Clebsch–Gordan coefficients along the tree (Drautz, PRB 99, 014104 (2019)).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from rexfit.descriptors.bispectrum import clebsch_gordan


def coupling_tree(rank: int) -> tuple[tuple[int, int, int], ...]:
    """The tree's nodes (a, b, c): momenta a and b couple to c.  Leaves are 0..rank−1,
    intermediate momenta rank, rank+1, … (LS in order); c = −1 is the final node (total 0)."""
    if rank < 2:
        return ()
    leaves = list(range(rank))
    inner = iter(range(rank, 2 * rank - 2))
    nodes, made = [], []
    while len(leaves) >= 2:  # neighbouring leaves, pairwise
        a, b = leaves.pop(0), leaves.pop(0)
        made.append(next(inner, -1))
        nodes.append((a, b, made[-1]))
    while len(made) >= 2 and made[-1] != -1:  # then the intermediate nodes, pairwise
        a, b = made.pop(0), made.pop(0)
        made.append(next(inner, -1))
        nodes.append((a, b, made[-1]))
    if made[-1] != -1:  # an unpaired leaf joins the last node
        nodes.append((made.pop(), leaves.pop(), -1))
    if len(nodes) != rank - 1:
        raise ValueError(f"no coupling tree for rank {rank}")
    return tuple(nodes)


def _cg(l1: int, m1: int, l2: int, m2: int, l: int, m: int) -> float:
    return clebsch_gordan(2 * l1, 2 * m1, 2 * l2, 2 * m2, 2 * l, 2 * m)


@lru_cache(maxsize=None)
def ms_combinations(ls: tuple[int, ...], LS: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(ms (P, rank) int, cg (P,) float): every m combination with Σm = 0 and a non-zero
    generalised Clebsch–Gordan coefficient, over the full m space (no half-basis folding)."""
    rank = len(ls)
    if rank == 1:
        return np.zeros((1, 1), np.int64), np.ones(1)
    if len(LS) != max(rank - 2, 0):
        raise ValueError(f"rank {rank} needs {max(rank - 2, 0)} intermediate momenta, got {LS}")
    momenta = list(ls) + list(LS) + [0]
    tree = coupling_tree(rank)
    out_ms, out_c = [], []
    for ms in itertools.product(*[range(-l, l + 1) for l in ls]):
        if sum(ms) != 0:
            continue
        m = list(ms) + [0] * (rank - 1)
        c = 1.0
        for a, b, t in tree:
            t = len(momenta) - 1 if t == -1 else t
            m[t] = m[a] + m[b]
            if abs(m[t]) > momenta[t]:
                c = 0.0
                break
            c *= _cg(momenta[a], m[a], momenta[b], m[b], momenta[t], m[t])
            if c == 0.0:
                break
        if c != 0.0:
            out_ms.append(ms)
            out_c.append(c)
    return np.asarray(out_ms, np.int64).reshape(-1, rank), np.asarray(out_c)


@lru_cache(maxsize=None)
def folded_ms_combinations(ls: tuple[int, ...],
                           LS: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(ms (P, rank) int, c (P,) float): the terms of :func:`ms_combinations` with each pair
    M, −M folded into one, the M whose first non-zero m is positive (M = 0 alone), with the
    coefficient c(M) + c(−M); pairs whose coefficients cancel are left out.

    Exact for B = Re Σ_M c(M) Π_t A_{l_t m_t} when A_{l,−m} = (−1)^m conj(A_{lm}) (the
    A-basis of real radial functions, :mod:`.harmonics`): Σ_t m_t = 0 makes
    Π_t A_{l_t,−m_t} = conj(Π_t A_{l_t m_t}), of the same real part, bit for bit (complex
    conjugation commutes with every rounded product).  About half the terms."""
    ms, cg = ms_combinations(ls, LS)
    coefficient = {tuple(m): c for m, c in zip(ms.tolist(), cg.tolist())}
    out_ms, out_c = [], []
    for m, c in coefficient.items():
        first = next((x for x in m if x), 0)
        if first < 0:
            continue
        if first > 0:
            c = c + coefficient.get(tuple(-x for x in m), 0.0)
        if c != 0.0:
            out_ms.append(m)
            out_c.append(c)
    return np.asarray(out_ms, np.int64).reshape(-1, len(ls)), np.asarray(out_c)
