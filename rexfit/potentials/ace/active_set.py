"""The extrapolation grade γ of ACE (pacemaker's active set, D-optimality by MaxVol).

Every atom i of element μ has a projection vector b_i (:func:`projections`): its B-basis values
(``full=False``, the *linear* grade) or the derivatives of its energy by the function
coefficients, dE_i/dc_{f,p} = w_p F'(ρ_p) B_f (``full=True``, pyace's "full" grade; density
slowest, p·n + f; without the core cutoff factor, as the evaluator has it).  Columns are in
the order the ACE evaluator keeps an element's functions: rank 1 first, then rank ≥ 2, each
sorted by (rank, neighbour elements, n, l, number of m combinations of the half basis, then
the intermediate momenta); functions marked ``skip`` are left out.

From the projections of every training atom of μ, MaxVol (:func:`maxvol`) picks n atoms
whose n × n matrix A_μ has a (locally) maximal |det|: every training row is then a combination
of A_μ's rows with coefficients at most ``tol`` in size.  The active set is stored inverted,
A_μ⁻¹ (pseudo-inverse, as pyace), and γ_i = max_k |(b_i A_μ⁻¹)_k|: γ ≤ 1 (up to ``tol``)
inside the training set's hull, γ > 1 outside.

Files: pyace's ``.asi`` (``.asi.nonlinear`` for the full grade) is a NumPy ``.npz`` archive,
one C-ordered float64 (n, n) array per element named by its symbol, holding A_μ⁻¹
(:func:`write_asi`, :func:`read_asi`); whether the grade is linear or full follows from n, as
in pyace.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from rexfit.potentials.ace.coupling import ms_combinations
from rexfit.potentials.ace.embedding import embedding

#: pyace's MaxVol defaults (``pace_activeset``): stop when no coefficient exceeds 1.01, or
#: after 300 row swaps
GAMMA_TOLERANCE, MAXVOL_ITERATIONS = 1.01, 300
#: what a constant projection column gets on a diagonal so that MaxVol can start (pyace's way;
#: the pseudo-inverse then ignores that direction)
CONSTANT_COLUMN_EPSILON = 1e-16


class ActiveSetError(ValueError):
    """An active set that cannot be built or does not fit the potential."""


# ---------------------------------------------------------------------- function order

def _half_ms_count(ls, LS) -> int:
    """How many m combinations (non-zero coupling, Σm = 0) the half basis of (ls, LS) keeps:
    those whose first non-zero m is positive, and all-zero."""
    ms, _ = ms_combinations(tuple(ls), tuple(LS))
    count = 0
    for row in ms:
        nonzero = row[row != 0]
        count += 1 if nonzero.size == 0 or nonzero[0] > 0 else 0
    return count


@lru_cache(maxsize=16)
def function_order(potential) -> dict[str, np.ndarray]:
    """{element: indices into :meth:`ACE.features` columns (file order over all blocks)} of
    that element's evaluated functions in the evaluator's order (module docstring; cached
    per potential, do not modify)."""
    index = {e: s for s, e in enumerate(potential.elements)}
    keys: dict[str, list] = {e: [] for e in potential.elements}
    column = 0
    for _, funcs in potential.functions:
        for elements, ns, ls, LS, skip in funcs:
            if not skip:
                rank = len(ns)
                count = 1 if rank == 1 else _half_ms_count(ls, LS)
                key = (rank > 1, rank, tuple(index[e] for e in elements[1:]), tuple(ns),
                       tuple(ls), count, tuple(LS))
                keys[elements[0]].append((key, column))
            column += 1
    return {e: np.array([c for _, c in sorted(k, key=lambda kc: kc[0])], dtype=np.int64)
            for e, k in keys.items()}


def projection_sizes(potential, full: bool) -> dict[str, int]:
    """{element: length of its projection vectors}."""
    order = function_order(potential)
    return {e: len(order[e]) * (emb.ndensity if full else 1)
            for e, emb in zip(potential.elements, potential.embeddings)}


# ---------------------------------------------------------------------- projections

def projections(potential, params, system, nbrs, full: bool = False):
    """(N, P) projection vector of every atom (module docstring), P the longest of any
    element, zero-padded; zero rows for padding and atoms of elements the potential does not
    know.  JAX; ``potential`` an :class:`~rexfit.potentials.ace.model.ACE`."""
    order = function_order(potential)
    sizes = projection_sizes(potential, full)
    width = max(sizes.values())
    b = potential.features(params, system, nbrs)  # (N, F) file order
    element, known = potential._elements_of(system.species)
    keep = known & system.mask
    c = None
    if full:
        shaped = potential.shaped(params)
        p = max(e.ndensity for e in potential.embeddings)
        c = jnp.concatenate([jnp.pad(jnp.asarray(shaped["c"][name], dtype=jnp.float64),
                                     ((0, 0), (0, p - potential.c_shape(name)[1])))
                             for name, _ in potential.functions])  # (F, P) file order
    out = jnp.zeros((system.natoms, width))
    for s, (e, emb) in enumerate(zip(potential.elements, potential.embeddings)):
        cols = order[e]
        if cols.size == 0:
            continue
        bs = b[:, cols]
        if full:
            rho = bs @ c[cols, :emb.ndensity]  # (N, ndensity)
            slopes = []
            for q, (w, m) in enumerate(zip(emb.weights, emb.exponents)):
                r = rho[:, q]
                slopes.append(w * jax.jvp(lambda x, m=m: embedding(emb.kind, x, m), (r,),
                                          (jnp.ones_like(r),))[1])
            bs = (jnp.stack(slopes, axis=1)[:, :, None] * bs[:, None, :]).reshape(
                system.natoms, -1)
        bs = jnp.pad(bs, ((0, 0), (0, width - bs.shape[1])))
        out = jnp.where(((element == s) & keep)[:, None], bs, out)
    return out


#: :func:`projections` compiled (potential and ``full`` static), made once
compiled_projections = jax.jit(projections, static_argnums=(0, 4))


def element_rows(potential, proj, system, full: bool = False) -> dict[str, np.ndarray]:
    """{element: (its atoms, n_e) rows of ``proj``} (host NumPy) of one structure's
    projections (:func:`projections`); padding and unknown atoms left out."""
    sizes = projection_sizes(potential, full)
    proj = np.asarray(proj)
    element, known = (np.asarray(x) for x in potential._elements_of(system.species))
    real = known & np.asarray(system.mask)
    return {e: proj[real & (element == s), :sizes[e]] for s, e in enumerate(potential.elements)}


def per_element(potential, params, structures, full: bool = False) -> dict[str, np.ndarray]:
    """{element: (atoms of that element over all ``structures``, n_e) projections} of
    ``structures``, an iterable of (system, full neighbour list) pairs (host arrays)."""
    rows: dict[str, list] = {e: [] for e in potential.elements}
    for system, nbrs in structures:
        proj = compiled_projections(potential, params, system, nbrs, full)
        for e, r in element_rows(potential, proj, system, full).items():
            rows[e].append(r)
    sizes = projection_sizes(potential, full)
    return {e: np.concatenate(r) if r else np.zeros((0, sizes[e])) for e, r in rows.items()}


def max_gamma(active_set: ActiveSet, rows: dict) -> float:
    """The largest γ of the atoms whose projections are ``rows`` {element: (N_e, n_e)}
    (:func:`element_rows`; host NumPy), 0 without atoms."""
    worst = 0.0
    for e, r in rows.items():
        if len(r):
            worst = max(worst, float(np.abs(r @ active_set.inverse[e]).max()))
    return worst


# ---------------------------------------------------------------------- active set

@dataclass(frozen=True, eq=False)
class ActiveSet:
    """Inverted active sets of a potential: ``inverse[e]`` the (n, n) A_e⁻¹ of element e
    (elements alphabetical, as the potential's), ``full`` whether the projections are
    dE/dc (True) or B (False)."""

    elements: tuple[str, ...]
    inverse: dict
    full: bool = False

    def check(self, potential) -> None:
        """Raise :class:`ActiveSetError` unless it fits ``potential``."""
        if tuple(self.elements) != tuple(potential.elements):
            raise ActiveSetError(f"the active set is for {', '.join(self.elements)}, the "
                                 f"potential has {', '.join(potential.elements)}")
        sizes = projection_sizes(potential, self.full)
        for e in self.elements:
            shape = np.shape(self.inverse[e])
            if shape != (sizes[e], sizes[e]):
                raise ActiveSetError(
                    f"the active set of {e} is {shape[0]} × {shape[1]}, the potential needs "
                    f"{sizes[e]} × {sizes[e]} ({'full' if self.full else 'linear'} grade)")


def gamma(potential, active_set: ActiveSet, proj, system):
    """(N,) extrapolation grade of every atom from its projections ``proj`` (N, P) (JAX);
    0 for padding and atoms of unknown elements."""
    element, known = potential._elements_of(system.species)
    out = jnp.zeros(system.natoms)
    for s, e in enumerate(potential.elements):
        inv = jnp.asarray(active_set.inverse[e])
        n = inv.shape[0]
        if n == 0:
            continue
        g = jnp.max(jnp.abs(proj[:, :n] @ inv), axis=1)
        out = jnp.where(element == s, g, out)
    return jnp.where(known & system.mask, out, 0.0)


def maxvol(a, tol: float = GAMMA_TOLERANCE, max_iters: int = MAXVOL_ITERATIONS):
    """(rows (n,), coefficients (N, n)) of the MaxVol algorithm (Goreinov, Oseledets,
    Savostyanov, Tyrtyshnikov, Zamarashkin 2010) on a tall (N, n) matrix: start from the rows
    LU with partial pivoting chooses, then swap in the row with the largest |coefficient|
    C = a a[rows]⁻¹ while it exceeds ``tol`` (≥ 1), at most ``max_iters`` times."""
    a = np.asarray(a, dtype=np.float64)
    N, n = a.shape
    if N < n:
        raise ActiveSetError(f"MaxVol needs at least as many rows as columns, not {N} < {n}")
    tol = max(float(tol), 1.0)
    with warnings.catch_warnings():  # a singular or ill-conditioned start is handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        lu, piv = scipy.linalg.lu_factor(a, check_finite=True)
    perm = np.arange(N)
    for k, p in enumerate(piv):  # LAPACK's row interchanges, in order
        perm[k], perm[p] = perm[p], perm[k]
    rows = perm[:n].copy()
    u = np.triu(lu[:n])
    if np.any(np.abs(np.diag(u)) == 0.0):
        raise ActiveSetError("the projections do not span every direction (the matrix has "
                             "rank below its number of columns)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        coeff = scipy.linalg.solve(a[rows].T, a.T).T  # (N, n): a = coeff @ a[rows]
    for _ in range(int(max_iters)):
        flat = int(np.argmax(np.abs(coeff)))
        j, i = divmod(flat, n)
        pivot = coeff[j, i]
        if abs(pivot) <= tol:
            break
        update = coeff[j].copy()
        update[i] -= 1.0
        coeff -= np.outer(coeff[:, i] / pivot, update)
        rows[i] = j
    return rows, coeff


def select(proj: np.ndarray, tol: float = GAMMA_TOLERANCE,
           max_iters: int = MAXVOL_ITERATIONS, what: str = "") -> np.ndarray:
    """The (n, n) active-set matrix A of the projections ``proj`` (N, n) of one element's
    training atoms (MaxVol; constant columns get a tiny diagonal first, as in pyace)."""
    proj = np.array(proj, dtype=np.float64)
    N, n = proj.shape
    if N < n:
        raise ActiveSetError(f"{what}{N} atomic environments for {n} projections: the active "
                             "set needs at least as many atoms of the element as it has "
                             "basis functions (add structures or use a smaller basis)")
    constant = np.flatnonzero(np.std(proj, axis=0) == 0.0)
    for k, col in enumerate(constant):
        proj[k, col] += CONSTANT_COLUMN_EPSILON
    try:
        rows, _ = maxvol(proj, tol, max_iters)
    except (ActiveSetError, np.linalg.LinAlgError, ValueError) as exc:
        raise ActiveSetError(f"{what}no active set: {exc}") from None
    return proj[rows]


def build(potential, per_element: dict, full: bool = False, tol: float = GAMMA_TOLERANCE,
          max_iters: int = MAXVOL_ITERATIONS) -> ActiveSet:
    """The :class:`ActiveSet` of ``potential`` from ``per_element`` {element: (N_e, n_e)
    projections of every training atom of that element} (elements without atoms: error)."""
    sizes = projection_sizes(potential, full)
    inverse = {}
    for e in potential.elements:
        proj = per_element.get(e)
        if proj is None or len(proj) == 0:
            raise ActiveSetError(f"no training atom of element {e}: the active set needs "
                                 f"at least {sizes[e]} of them")
        proj = np.asarray(proj, dtype=np.float64)[:, :sizes[e]]
        inverse[e] = np.ascontiguousarray(np.linalg.pinv(select(proj, tol, max_iters,
                                                                f"element {e}: ")))
    return ActiveSet(tuple(potential.elements), inverse, full)


# ---------------------------------------------------------------------- files

def write_asi(path, active_set: ActiveSet) -> None:
    """pyace's ``.asi`` file (``np.savez``: one C-ordered (n, n) A⁻¹ per element symbol)."""
    arrays = {e: np.ascontiguousarray(active_set.inverse[e], dtype=np.float64)
              for e in active_set.elements}
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def read_asi(path, potential) -> ActiveSet:
    """The active set in the ``.asi`` file ``path`` for ``potential`` (linear or full grade
    from the matrices' size, as pyace decides); :class:`ActiveSetError` when it does not fit."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            arrays = {k: np.array(data[k], dtype=np.float64) for k in data.files}
    except (OSError, ValueError) as exc:
        raise ActiveSetError(f"{path}: not an active-set (.asi) file: {exc}") from None
    elements = tuple(potential.elements)
    if sorted(arrays) != sorted(elements):
        raise ActiveSetError(f"{path}: active sets for {', '.join(sorted(arrays)) or 'nothing'}"
                             f", the potential has {', '.join(elements)}")
    kinds = set()
    linear, full = projection_sizes(potential, False), projection_sizes(potential, True)
    for e in elements:
        shape = arrays[e].shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ActiveSetError(f"{path}: the active set of {e} is not square: {shape}")
        if shape[0] == linear[e]:
            kinds.add(False)
        elif shape[0] == full[e]:
            kinds.add(True)
        else:
            raise ActiveSetError(f"{path}: the active set of {e} is {shape[0]} × {shape[1]}; "
                                 f"the potential needs {linear[e]} (linear) or {full[e]} "
                                 "(full) projections")
    if len(kinds) != 1:
        raise ActiveSetError(f"{path}: some elements have linear and some full active sets")
    return ActiveSet(elements, arrays, kinds.pop())
