"""SO(4) bispectrum components of every atom, exactly as LAMMPS ``compute sna/atom``.

Each neighbour j of atom i (distance r < r_c = rcutfac·(R_{s_i} + R_{s_j})) is mapped to a point
on the 3-sphere by θ0 = rfac0·π·(r − rmin0)/(r_c − rmin0) and contributes its Wigner matrices
U_j(θ0, θ, φ) (j = 0, ½, …, twojmax/2; stored with doubled indices 2j) weighted by
w_{s_j}·f_c(r) (f_c = ½[cos(π(r − rmin0)/(r_c − rmin0)) + 1] with switchflag, else 1).  The
atom's density U_tot = identity (self term, weight 1) + Σ_j w f_c U_j, and

    B_{j1 j2 j} = Σ Re[ conj(U_tot,j[m',m]) Σ C^{j m}_{j1 m1 j2 m2} C^{j m'}_{j1 m1' j2 m2'}
                         U_tot,j1[m1',m1] U_tot,j2[m2',m2] ]

over 0 ≤ j2 ≤ j1 ≤ j ≤ twojmax (j1 + j2 − j even), in LAMMPS's column order (j1, then j2,
then j ascending).  bzeroflag subtracts the value of an isolated atom, (j + 1); bnormflag
divides by (j + 1) instead (its B0 is then 1).  quadratic appends ½B_k² and B_k B_l (l > k),
row by row, as ``compute sna/atom ... quadraticflag 1``.

Implementation: per pair the rows mb ≤ j/2 of the U's come from the standard recursion in
(a, b) Cayley–Klein parameters (real arithmetic, chunks of pairs, a zero-padded layout so
that the recursion needs only slices); they are summed per atom (O(pairs)) and the other rows
follow by symmetry.  That per-pair part has a custom VJP: nothing per pair is kept, the
backward pass recomputes a chunk and runs the recursion backwards with the per-atom adjoint
∂E/∂U gathered to the pair's centre (∂E/∂r per pair, as SNAP codes do); it is plain JAX, so
it can be differentiated again with respect to that adjoint (forward-over-reverse and
reverse-over-reverse in the model coefficients work; forward mode in the positions does not).
The cubic form works per atom chunk with the atoms on the last (vector) axis: each
Z_{j1 j2 j} (rows mb ≤ j/2) is a sum of shifted slices of the zero-padded U_j1 times
U_j2[p, q] and Clebsch–Gordan weights (no gathers), B = Σ Re(conj U_j · Z) with LAMMPS's half
sum.  Its custom VJP computes in the forward pass also the Z of the permuted triples and keeps
all Z; the adjoint is then Y_j = Σ κ(g) Z per atom (as LAMMPS's compute_yi: B_{j1 j2 j}/(j + 1)
is symmetric in (j1, j2, j), Wood & Thompson 2018), linear in the cotangent g.
Only ``chemflag``/``wselfallflag``/``switchinnerflag`` are not supported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System

#: atoms per chunk of the cubic form (atoms on the last, vector axis)
_CHUNK = 256

#: weight of an atom's own contribution to its density (LAMMPS ``wself``)
WSELF = 1.0


# --------------------------------------------------------------------------- index tables

def u_offsets(twojmax: int) -> np.ndarray:
    """Offset of the (j+1)² block of U_j in the flat U vector, j = 0..twojmax (+ total)."""
    return np.concatenate([[0], np.cumsum([(j + 1) ** 2 for j in range(twojmax + 1)])])


def bispectrum_indices(twojmax: int) -> list[tuple[int, int, int]]:
    """(2j1, 2j2, 2j) of every component, in LAMMPS order."""
    out = []
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    out.append((j1, j2, j))
    return out


def clebsch_gordan(j1: int, m1: int, j2: int, m2: int, j: int, m: int) -> float:
    """<j1/2 m1/2, j2/2 m2/2 | j/2 m/2> (all arguments doubled), Racah's formula, exact."""
    if m1 + m2 != m or abs(m1) > j1 or abs(m2) > j2 or abs(m) > j:
        return 0.0
    f = math.factorial
    a, b, c = (j1 + j2 - j) // 2, (j1 - j2 + j) // 2, (-j1 + j2 + j) // 2
    if min(a, b, c) < 0:
        return 0.0
    pre = Fraction((j + 1) * f(a) * f(b) * f(c), f((j1 + j2 + j) // 2 + 1))
    pre *= f((j1 + m1) // 2) * f((j1 - m1) // 2) * f((j2 + m2) // 2) * f((j2 - m2) // 2)
    pre *= f((j + m) // 2) * f((j - m) // 2)
    total = Fraction(0)
    for k in range(0, a + 1):
        args = (k, a - k, (j1 - m1) // 2 - k, (j2 + m2) // 2 - k,
                (j - j2 + m1) // 2 + k, (j - j1 - m2) // 2 + k)
        if min(args) < 0:
            continue
        den = 1
        for x in args:
            den *= f(x)
        total += Fraction((-1) ** k, den)
    return float(total) * math.sqrt(float(pre)) if total else 0.0


def _coupling(ja: int, jb: int, j: int) -> np.ndarray:
    """H[p, m] = C^{j m}_{ja (m + c − p); jb p}, c = (ja + jb − j)/2, p = 0..jb, m = 0..j
    (indices counted from −j/2 etc.; zero where ma + c − p is outside 0..ja): the coupling
    Z[mb, ma] = Σ_{p,q} H[p, mb] H[q, ma] U_jb[p, q] U_ja[mb + c − p, ma + c − q]."""
    c = (ja + jb - j) // 2
    out = np.zeros((jb + 1, j + 1))
    for p in range(jb + 1):
        for m in range(j + 1):
            m1 = m + c - p
            if 0 <= m1 <= ja:
                out[p, m] = clebsch_gordan(ja, 2 * m1 - ja, jb, 2 * p - jb, j, 2 * m - j)
    return out


@dataclass(frozen=True)
class _Cubic:
    """Static structure of the cubic form (NumPy).

    triples: (ja, jb, j) with ja ≥ jb of every Z_{ja jb j} (rows mb ≤ j/2) that is needed,
    first those of the components b (in order, ja = j1, jb = j2), then the permuted ones the
    adjoint needs.  terms[t]: (p, q, W (rows, j + 1)) with W = H[p, :rows] ⊗ H[q, :], the
    non-zero shifted products of triple t.  pad[j]: zero padding (low, high) of U_j on both
    axes so that every shifted slice is in range.  z_off: offsets of each triple's half Z in
    the flat layout.  weight[b]: LAMMPS's half-sum weights (rows, j + 1) of component b.
    kappa (n_t, n_b): the adjoint's Y_j = Σ_t [Σ_b kappa[t, b] g_b] Z_t over triples t with
    output j (Wood & Thompson's symmetry B_{j1 j2 j}/(j + 1) invariant under permutations).
    """

    triples: list[tuple[int, int, int]]
    terms: list[list[tuple[int, int, np.ndarray]]]
    pad: dict[int, tuple[int, int]]
    z_off: np.ndarray
    weight: list[np.ndarray]
    kappa: np.ndarray
    n_b: int
    n_u: int
    j_of_b: np.ndarray


def _key(a: int, b: int, j: int) -> tuple[int, int, int]:
    return (max(a, b), min(a, b), j)


@lru_cache(maxsize=None)
def _cubic_tables(twojmax: int) -> _Cubic:
    blist = bispectrum_indices(twojmax)
    triples = list(blist)
    index = {t: k for k, t in enumerate(triples)}
    slots = []  # (b, triple, factor): ∂B_b/∂U of each slot, as Z of a triple
    for b, (j1, j2, j) in enumerate(blist):
        for t, f in ((_key(j1, j2, j), 1.0), (_key(j, j2, j1), (j + 1) / (j1 + 1)),
                     (_key(j, j1, j2), (j + 1) / (j2 + 1))):
            if t not in index:
                index[t] = len(triples)
                triples.append(t)
            slots.append((b, index[t], f))
    kappa = np.zeros((len(triples), len(blist)))
    for b, t, f in slots:
        kappa[t, b] += f
    terms, pad = [], {}
    for ja, jb, j in triples:
        c, rows, n = (ja + jb - j) // 2, j // 2 + 1, j + 1
        h = _coupling(ja, jb, j)
        found = []
        for p in range(jb + 1):
            for q in range(jb + 1):
                w = np.outer(h[p, :rows], h[q])
                if np.any(w != 0.0):
                    found.append((p, q, w))
                    lo, hi = pad.get(ja, (0, 0))
                    lo = max(lo, p - c, q - c)
                    hi = max(hi, c - p + rows - (ja + 1), c - q + n - (ja + 1))
                    pad[ja] = (lo, hi)
        terms.append(found)
    sizes = [(j // 2 + 1) * (j + 1) for _, _, j in triples]
    weight = []
    for _, _, j in blist:
        w = np.full((j // 2 + 1, j + 1), 2.0)
        if j % 2 == 0:
            w[j // 2, j // 2] = 1.0
            w[j // 2, j // 2 + 1:] = 0.0
        weight.append(w)
    return _Cubic(triples, terms, pad, np.concatenate([[0], np.cumsum(sizes)]), weight, kappa,
                  len(blist), int(u_offsets(twojmax)[-1]), np.array([j for _, _, j in blist]))


def _z_values(tab: _Cubic, ur, ui, count: int):
    """Half Z (re, im) (rows, j + 1, C) of the first ``count`` triples, U (n_u, C) atoms last.

    Z = Σ_{p,q} H[p, mb] H[q, ma] U_jb[p, q] U_ja[mb + c − p, ma + c − q]: shifted slices of
    the zero-padded U_ja times U_jb[p, q], vectorised over the atoms; a loop over p per jb
    (the q terms unrolled) keeps the program small; each triple's update is a small fused
    loop that LLVM vectorises (one fused sum of more than about 60 shifted slices is not
    vectorised: too many runtime alias checks)."""
    size = ur.shape[-1]
    off = u_offsets(max(max(t[:2]) for t in tab.triples[:count]))
    blocks, padded = {}, {}

    def block(j):
        if j not in blocks:
            n = j + 1
            blocks[j] = (ur[off[j]:off[j] + n * n].reshape(n, n, size),
                         ui[off[j]:off[j] + n * n].reshape(n, n, size))
        return blocks[j]

    def padded_block(j):
        if j not in padded:
            lo, hi = tab.pad[j]
            widths = ((lo, hi), (lo, hi), (0, 0))
            padded[j] = tuple(jnp.pad(x, widths) for x in block(j))
        return padded[j]

    out = [None] * count
    by_jb = {}
    for t in range(count):
        by_jb.setdefault(tab.triples[t][1], []).append(t)
    for jb, group in sorted(by_jb.items()):
        br, bi = block(jb)
        info = []
        for t in group:
            ja, _, j = tab.triples[t]
            h = _coupling(ja, jb, j)
            info.append((t, ja, j, (ja + jb - j) // 2, h))
            padded_block(ja)

        def body(p, accs, br=br, bi=bi, info=info):
            xr = jax.lax.dynamic_index_in_dim(br, p, 0, keepdims=False)  # (nb, C)
            xi = jax.lax.dynamic_index_in_dim(bi, p, 0, keepdims=False)
            new = []
            for (t, ja, j, c, h), (zr, zi) in zip(info, accs):
                rows, n = j // 2 + 1, j + 1
                ar, ai = padded[ja]
                lo = tab.pad[ja][0]
                sr = jax.lax.dynamic_slice_in_dim(ar, c - p + lo, rows, 0)
                si = jax.lax.dynamic_slice_in_dim(ai, c - p + lo, rows, 0)
                hb = jax.lax.dynamic_index_in_dim(jnp.asarray(h[:, :rows]), p, 0,
                                                  keepdims=False)[:, None, None]
                sum_r = sum_i = 0.0
                for q in range(jb + 1):
                    if not np.any(h[q]):
                        continue
                    c0 = c - q + lo
                    tr, ti = sr[:, c0:c0 + n], si[:, c0:c0 + n]
                    w = h[q][None, :, None]
                    vr, vi = xr[q][None, None], xi[q][None, None]
                    sum_r = sum_r + w * (vr * tr - vi * ti)
                    sum_i = sum_i + w * (vr * ti + vi * tr)
                new.append((zr + hb * sum_r, zi + hb * sum_i))
            return new

        zero = [(jnp.zeros((j // 2 + 1, j + 1, size), ur.dtype),) * 2 for _, _, j, _, _ in info]
        res = jax.lax.fori_loop(0, jb + 1, body, zero)
        for (t, *_), z in zip(info, res):
            out[t] = z
    return out


def _b_values(tab: _Cubic, ur, ui, zs):
    """(n_b, C) B_b = Σ weight · Re(conj U_j Z_b) over the half rows (LAMMPS's half sum)."""
    size = ur.shape[-1]
    off = u_offsets(int(tab.j_of_b.max()))
    out = []
    for b, (_, _, j) in enumerate(tab.triples[:tab.n_b]):
        rows, n = j // 2 + 1, j + 1
        k = slice(int(off[j]), int(off[j]) + rows * n)
        zr, zi = zs[b]
        w = tab.weight[b][..., None]
        out.append(jnp.sum(w * (ur[k].reshape(rows, n, size) * zr
                                + ui[k].reshape(rows, n, size) * zi), axis=(0, 1)))
    return jnp.stack(out)


@lru_cache(maxsize=None)
def _sparse_terms(twojmax: int):
    """Every product of :func:`_z_values` as one list of terms, sorted by output:
    Z_flat[z] += c · U[x] · U[y] (complex; x, y index the flat full U, z the flat half Z of
    all triples in the order of ``z_off``)."""
    tab = _cubic_tables(twojmax)
    off = u_offsets(twojmax)
    xs, ys, zs, cs = [], [], [], []
    for t, (ja, jb, j) in enumerate(tab.triples):
        c, n = (ja + jb - j) // 2, j + 1
        for p, q, w in tab.terms[t]:
            mb, ma = np.nonzero(w)
            xs.append(np.full(len(mb), off[jb] + p * (jb + 1) + q))
            ys.append(off[ja] + (mb + c - p) * (ja + 1) + (ma + c - q))
            zs.append(tab.z_off[t] + mb * n + ma)
            cs.append(w[mb, ma])
    x, y, z, c = (np.concatenate(a) for a in (xs, ys, zs, cs))
    order = np.argsort(z, kind="stable")
    return x[order], y[order], z[order], c[order]


def _sparse_z_values(tab: _Cubic, twojmax: int, ur, ui, count: int):
    """As :func:`_z_values` (same numbers to round-off), from the term list of
    :func:`_sparse_terms`: a gather, a product and a sorted segment sum, a program of a few
    operations whatever 2J (quick to compile; memory ∝ terms × atoms of the chunk)."""
    x, y, z, c = _sparse_terms(twojmax)
    n_z = int(tab.z_off[count])
    keep = z < n_z
    x, y, z, c = x[keep], y[keep], z[keep], c[keep][:, None]
    xr, xi, yr, yi = ur[x], ui[x], ur[y], ui[y]
    zr = jax.ops.segment_sum(c * (xr * yr - xi * yi), z, num_segments=n_z,
                             indices_are_sorted=True)
    zi = jax.ops.segment_sum(c * (xr * yi + xi * yr), z, num_segments=n_z,
                             indices_are_sorted=True)
    size = ur.shape[-1]
    out = []
    for t in range(count):
        j = tab.triples[t][2]
        part = slice(int(tab.z_off[t]), int(tab.z_off[t + 1]))
        out.append((zr[part].reshape(j // 2 + 1, j + 1, size),
                    zi[part].reshape(j // 2 + 1, j + 1, size)))
    return out


#: atoms per chunk of the cubic form's term-list variant
_SPARSE_CHUNK = 32


def _chunked(fn, *arrays, chunk: int = _CHUNK):
    """fn over atom chunks of arrays (N, C) transposed to (C, chunk): bounded memory; the
    outputs stay in the chunked layout (chunks, C', chunk)."""
    n = arrays[0].shape[0]
    size = min(chunk, n)
    pad = (-n) % size
    stacked = [jnp.pad(a, ((0, pad), (0, 0))).reshape(-1, size, a.shape[1]).transpose(0, 2, 1)
               for a in arrays]
    return jax.lax.map(lambda xs: fn(*xs), stacked)


def _unchunk(x, n):
    return x.transpose(0, 2, 1).reshape(-1, x.shape[1])[:n]


@lru_cache(maxsize=None)
def _cubic(twojmax: int, sparse: bool = False):
    """B(U_r, U_i): (N, n_u)² → (N, n_b).  The forward pass of a VJP also computes the Z of
    the permuted triples and keeps all Z (about 2400 complex per atom at 2J = 8); the
    backward pass is then Y_j = Σ κ Z per atom (LAMMPS's compute_yi), expanded to all rows by
    the symmetry of U, linear in the cotangent (so it can be differentiated again).
    ``sparse``: Z from the term list (:func:`_sparse_z_values`), a much smaller program
    (compiles in a fraction of the time) that runs somewhat slower."""
    tab = _cubic_tables(twojmax)
    index, sr, si = _expansion(twojmax)
    hoff = half_offsets(twojmax)
    if sparse:
        def z_values(tab, ur, ui, count):
            return _sparse_z_values(tab, twojmax, ur, ui, count)
        chunk = _SPARSE_CHUNK
    else:
        z_values, chunk = _z_values, _CHUNK

    def primal(ur, ui):
        zs = z_values(tab, ur, ui, tab.n_b)
        return _b_values(tab, ur, ui, zs)

    def with_zs(ur, ui):
        zs = z_values(tab, ur, ui, len(tab.triples))
        size = ur.shape[-1]
        flat_r = jnp.concatenate([z[0].reshape(-1, size) for z in zs], axis=0)
        flat_i = jnp.concatenate([z[1].reshape(-1, size) for z in zs], axis=0)
        return _b_values(tab, ur, ui, zs), flat_r, flat_i

    def adjoint(zr, zi, g):
        size = g.shape[-1]
        kappa = jnp.asarray(tab.kappa) @ g  # (n_t, C)
        yr = [0.0] * (twojmax + 1)
        yi = [0.0] * (twojmax + 1)
        for t, (_, _, j) in enumerate(tab.triples):
            k = slice(int(tab.z_off[t]), int(tab.z_off[t + 1]))
            yr[j] = yr[j] + kappa[t][None] * zr[k]
            yi[j] = yi[j] + kappa[t][None] * zi[k]
        half_r = jnp.concatenate([jnp.broadcast_to(y, (int(hoff[j + 1] - hoff[j]), size))
                                  for j, y in enumerate(yr)], axis=0)
        half_i = jnp.concatenate([jnp.broadcast_to(y, (int(hoff[j + 1] - hoff[j]), size))
                                  for j, y in enumerate(yi)], axis=0)
        return half_r[index] * sr[:, None], half_i[index] * si[:, None]

    @jax.custom_vjp
    def cubic(ur, ui):
        return _unchunk(_chunked(primal, ur, ui, chunk=chunk), ur.shape[0])

    def fwd(ur, ui):
        b, zr, zi = _chunked(with_zs, ur, ui, chunk=chunk)
        return _unchunk(b, ur.shape[0]), (zr, zi, ur.shape[0])

    def bwd(res, gb):
        zr, zi, n = res
        size = zr.shape[-1]
        pad = zr.shape[0] * size - n
        g = jnp.pad(gb, ((0, pad), (0, 0))).reshape(-1, size, gb.shape[1]).transpose(0, 2, 1)
        gr, gi = jax.lax.map(lambda xs: adjoint(*xs), (zr, zi, g))
        return _unchunk(gr, n), _unchunk(gi, n)

    cubic.defvjp(fwd, bwd)
    return cubic


# --------------------------------------------------------------------------- Wigner matrices

@lru_cache(maxsize=None)
def _recursion_coefficients(twojmax: int):
    """Per level j ≥ 1: (c_a, c_b, sign) arrays of the computed rows mb ≤ j/2."""
    out = []
    for j in range(1, twojmax + 1):
        rows = j // 2 + 1
        ca = np.zeros((rows, j + 1))
        cb = np.zeros((rows, j + 1))
        for mb in range(rows):
            for ma in range(j + 1):
                if ma < j:
                    ca[mb, ma] = math.sqrt((j - ma) / (j - mb))
                if ma > 0:
                    cb[mb, ma] = math.sqrt(ma / (j - mb))
        mirrored = j + 1 - rows
        sign = np.array([[(-1.0) ** (ma + mb) for ma in range(j + 1)] for mb in range(mirrored)])
        out.append((ca, cb, sign))
    return out


def wigner_u(a, b, twojmax: int):
    """Flat U (P, n_u) complex128 of pairs with Cayley–Klein parameters a, b (P,) complex."""
    ac, bc = jnp.conj(a)[:, None, None], jnp.conj(b)[:, None, None]
    level = jnp.ones((a.shape[0], 1, 1), dtype=a.dtype)
    blocks = [level.reshape(-1, 1)]
    for j, (ca, cb, sign) in enumerate(_recursion_coefficients(twojmax), start=1):
        rows = ca.shape[0]
        prev = level[:, :rows, :]  # (P, rows, j)
        zero = jnp.zeros_like(prev[:, :, :1])
        left = jnp.concatenate([prev, zero], axis=2)  # U_{j-1}[mb, ma]
        right = jnp.concatenate([zero, prev], axis=2)  # U_{j-1}[mb, ma-1]
        top = ca[None] * ac * left - cb[None] * bc * right
        mirror = (sign[None] * jnp.conj(top[:, : j + 1 - rows, :]))[:, ::-1, ::-1]
        level = jnp.concatenate([top, mirror], axis=1)
        blocks.append(level.reshape(-1, (j + 1) ** 2))
    return jnp.concatenate(blocks, axis=1)


def half_offsets(twojmax: int) -> np.ndarray:
    """Offset of the computed rows mb ≤ j/2 ((j//2 + 1)(j + 1) values) of U_j (+ total)."""
    return np.concatenate([[0], np.cumsum([(j // 2 + 1) * (j + 1)
                                           for j in range(twojmax + 1)])])


def _materialize(tree, flag):
    """``tree`` as computed buffers: XLA CPU otherwise fuses the recursion's levels into
    their consumers and recomputes them per element.  ``flag`` is always true at run time
    but unknown to the compiler (an optimization barrier does not survive on CPU)."""
    return jax.lax.cond(flag, lambda t: t, lambda t: jax.tree.map(jnp.zeros_like, t), tree)


@lru_cache(maxsize=None)
def _level_coefficients(twojmax: int):
    """Per level j ≥ 1, in the padded layout of :func:`_levels`: (A, B) (rows, 2J+1−j) and,
    for even j, the signs s (2J+2−j,) of the mirrored row mb = j/2 of level j − 1."""
    big = twojmax
    out = []
    for j, (ca, cb, _) in enumerate(_recursion_coefficients(big), start=1):
        rows, width = ca.shape[0], 2 * big + 1 - j
        a, b = np.zeros((rows, width)), np.zeros((rows, width))
        a[:, big - j:big + 1], b[:, big - j:big + 1] = ca, cb
        s = None
        if j % 2 == 0:  # source element (j/2 − 1, ma) of level j − 1 sits at t = ma + J − j + 1
            s = np.array([(-1.0) ** ((width - t) - (big - j + 1) + j // 2 - 1)
                          for t in range(width + 1)])
        out.append((a, b, s))
    return out


def _with_mirrored_row(pr, pi, s):
    """Level j − 1 rows 0..j/2 − 1 plus row j/2 (the mirror of row j/2 − 1)."""
    xr, xi = (s[:, None] * pr[-1, ::-1])[None], (-s[:, None] * pi[-1, ::-1])[None]
    return jnp.concatenate([pr, xr], axis=0), jnp.concatenate([pi, xi], axis=0)


def _levels(ar, ai, br, bi, twojmax: int, flag):
    """Rows mb ≤ j/2 of U_j, j = 0..J, for pairs with Cayley–Klein a = ar + i·ai, b = br + i·bi
    (C,): [(re, im) (rows_j, 2J+1−j, C)] with U_j[mb, ma] at [mb, ma + J − j] and zeros
    around, so that the recursion

        U_j[mb, ma] = c_a conj(a) U_{j−1}[mb, ma] − c_b conj(b) U_{j−1}[mb, ma − 1]

    needs only slices; real arithmetic, pairs on the last (vector) axis.  The other rows
    follow from U_j[j−mb, j−ma] = (−1)^(ma+mb) conj U_j[mb, ma]."""
    big, size = twojmax, ar.shape[-1]
    ar, ai, br, bi = (x[None, None] for x in (ar, ai, br, bi))
    e = np.zeros((1, 2 * big + 1, 1))
    e[0, big, 0] = 1.0
    pr = jnp.asarray(e) * jnp.ones((1, 1, size), ar.dtype)
    pi = jnp.zeros_like(pr)
    levels = [(pr, pi)]
    for a, b, s in _level_coefficients(big):
        if s is not None:
            pr, pi = _with_mirrored_row(pr, pi, s)
        lr, li, rr, ri = pr[:, 1:], pi[:, 1:], pr[:, :-1], pi[:, :-1]
        a, b = a[..., None], b[..., None]
        tr = a * (ar * lr + ai * li) - b * (br * rr + bi * ri)
        ti = a * (ar * li - ai * lr) - b * (br * ri - bi * rr)
        pr, pi = _materialize((tr, ti), flag)
        levels.append((pr, pi))
    return levels


def _compact(levels, twojmax: int):
    """Padded levels → flat (n_half, C) re and im."""
    size = levels[0][0].shape[-1]
    out_r = [lr[:, twojmax - j:twojmax + 1].reshape(-1, size) for j, (lr, _) in enumerate(levels)]
    out_i = [li[:, twojmax - j:twojmax + 1].reshape(-1, size) for j, (_, li) in enumerate(levels)]
    return jnp.concatenate(out_r, axis=0), jnp.concatenate(out_i, axis=0)


def _levels_adjoint(levels, ar, ai, br, bi, yr, yi, twojmax: int, flag):
    """Reverse sweep of :func:`_levels`: (∂/∂ar, ∂/∂ai, ∂/∂br, ∂/∂bi) (C,) of
    Σ (yr·Re U + yi·Im U) over the computed rows, y flat (n_half, C)."""
    big, size = twojmax, ar.shape[-1]
    hoff = half_offsets(big)
    ar, ai, br, bi = (x[None, None] for x in (ar, ai, br, bi))
    coefs = _level_coefficients(big)
    gar = gai = gbr = gbi = 0.0
    carry = None
    for j in range(big, 0, -1):
        a, b, s = coefs[j - 1]
        rows = a.shape[0]
        part = slice(int(hoff[j]), int(hoff[j + 1]))
        widen = ((0, 0), (big - j, big - j), (0, 0))
        cr = jnp.pad(yr[part].reshape(rows, j + 1, size), widen)
        ci = jnp.pad(yi[part].reshape(rows, j + 1, size), widen)
        if carry is not None:
            cr, ci = cr + carry[0], ci + carry[1]
        pr, pi = levels[j - 1]
        if s is not None:
            pr, pi = _with_mirrored_row(pr, pi, s)
        lr, li, rr, ri = pr[:, 1:], pi[:, 1:], pr[:, :-1], pi[:, :-1]
        a, b = a[..., None], b[..., None]
        acr, aci, bcr, bci = a * cr, a * ci, b * cr, b * ci
        gar = gar + jnp.sum(lr * acr + li * aci, axis=(0, 1))
        gai = gai + jnp.sum(li * acr - lr * aci, axis=(0, 1))
        gbr = gbr - jnp.sum(rr * bcr + ri * bci, axis=(0, 1))
        gbi = gbi - jnp.sum(ri * bcr - rr * bci, axis=(0, 1))
        if j == 1:
            break
        left, right = ((0, 0), (1, 0), (0, 0)), ((0, 0), (0, 1), (0, 0))
        qr = jnp.pad(ar * acr - ai * aci, left) - jnp.pad(br * bcr - bi * bci, right)
        qi = jnp.pad(ai * acr + ar * aci, left) - jnp.pad(bi * bcr + br * bci, right)
        if s is not None:  # fold the mirrored row back onto row j/2 − 1
            qr = jnp.concatenate([qr[:-2], (qr[-2] + (s[:, None] * qr[-1])[::-1])[None]], axis=0)
            qi = jnp.concatenate([qi[:-2], (qi[-2] - (s[:, None] * qi[-1])[::-1])[None]], axis=0)
        carry = _materialize((qr, qi), flag)
    return gar, gai, gbr, gbi


@lru_cache(maxsize=None)
def _expansion(twojmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, sign_r, sign_i) with U[k] = sign · U_half[index[k]] (conj where mirrored)."""
    off, hoff = u_offsets(twojmax), half_offsets(twojmax)
    n_u = int(off[-1])
    index = np.zeros(n_u, np.int64)
    sr, si = np.ones(n_u), np.ones(n_u)
    for j in range(twojmax + 1):
        rows = j // 2 + 1
        for mb in range(j + 1):
            for ma in range(j + 1):
                k = off[j] + mb * (j + 1) + ma
                if mb < rows:
                    index[k] = hoff[j] + mb * (j + 1) + ma
                else:
                    index[k] = hoff[j] + (j - mb) * (j + 1) + (j - ma)
                    s = (-1.0) ** (ma + mb)  # sign of the source element (j−mb, j−ma)
                    sr[k], si[k] = s, -s
    return index, sr, si


#: pairs per chunk of the per-pair part
_PAIR_CHUNK = 512


def _pair_geometry(d, rcut, wj, rfac0: float, rmin0: float, switchflag: bool):
    """Cayley–Klein (a, b) as real parts and the weight w·f_c of pairs d (3, C)."""
    dx, dy, dz = d[0], d[1], d[2]
    r = jnp.sqrt(dx * dx + dy * dy + dz * dz)
    span = rcut - rmin0
    theta0 = (r - rmin0) * (rfac0 * math.pi) / span
    z0 = r / jnp.tan(theta0)
    inv = 1.0 / jnp.sqrt(r * r + z0 * z0)
    if switchflag:
        fc = 0.5 * (jnp.cos((r - rmin0) * math.pi / span) + 1.0)
        fc = jnp.where(r <= rmin0, 1.0, fc)
    else:
        fc = jnp.ones_like(r)
    return inv * z0, -inv * dz, inv * dy, -inv * dx, wj * fc


@lru_cache(maxsize=None)
def _pair_density(twojmax: int, rfac0: float, rmin0: float, switchflag: bool):
    """(d (3, P), rcut (P,), wj (P,), i (P,), n) ↦ per-atom Σ_pairs w U_half, (n, n_half) ×2.

    P a multiple of the chunk.  A custom VJP: the forward pass keeps no per-pair values, the
    backward pass recomputes each chunk and runs the recursion backwards with the per-atom
    adjoint gathered to the pair's centre atom, giving ∂E/∂r per pair (as SNAP codes do).
    Both passes are ordinary JAX, so the backward pass can itself be differentiated
    (forward or reverse mode in the adjoint, i.e. in the model coefficients).
    """

    def geometry(d, rcut, wj):
        return _pair_geometry(d, rcut, wj, rfac0, rmin0, switchflag)

    def chunks(d, rcut, wj, i):
        size = _PAIR_CHUNK
        return (d.reshape(3, -1, size).transpose(1, 0, 2), rcut.reshape(-1, size),
                wj.reshape(-1, size), i.reshape(-1, size))

    def forward(d, rcut, wj, i, n):
        n_half = int(half_offsets(twojmax)[-1])
        zero = jnp.zeros((n, n_half), d.dtype)

        def body(carry, xs):
            dc, rc, wc, ic = xs
            flag = ic[0] >= 0
            ar, ai, br, bi, w = _materialize(geometry(dc, rc, wc), flag)
            hr, hi = _compact(_levels(ar, ai, br, bi, twojmax, flag), twojmax)
            hr, hi = (hr * w[None]).T, (hi * w[None]).T
            return (carry[0].at[ic].add(hr), carry[1].at[ic].add(hi)), None

        out, _ = jax.lax.scan(body, (zero, zero), chunks(d, rcut, wj, i))
        return out

    @partial(jax.custom_vjp, nondiff_argnums=(4,))
    def density(d, rcut, wj, i, n):
        return forward(d, rcut, wj, i, n)

    def fwd(d, rcut, wj, i, n):
        return forward(d, rcut, wj, i, n), (d, rcut, wj, i)

    def bwd(n, res, g):
        d, rcut, wj, i = res
        gr, gi = g

        def body(xs):
            dc, rc, wc, ic = xs
            flag = ic[0] >= 0
            geo, geo_vjp = jax.vjp(geometry, dc, rc, wc)
            ar, ai, br, bi, w = _materialize(geo, flag)
            levels = _levels(ar, ai, br, bi, twojmax, flag)
            ur, ui = _compact(levels, twojmax)
            yr, yi = _materialize((gr[ic].T, gi[ic].T), flag)
            gw = jnp.sum(yr * ur + yi * ui, axis=0)
            yr, yi = yr * w[None], yi * w[None]
            gab = _levels_adjoint(levels, ar, ai, br, bi, yr, yi, twojmax, flag)
            return geo_vjp(gab + (gw,))

        gd, grc, gw = jax.lax.map(body, chunks(d, rcut, wj, i))
        return gd.transpose(1, 0, 2).reshape(3, -1), grc.reshape(-1), gw.reshape(-1), None

    density.defvjp(fwd, bwd)
    return density


# --------------------------------------------------------------------------- the descriptor

@dataclass(frozen=True)
class Bispectrum:
    """LAMMPS ``compute sna/atom`` bispectrum (species s ↦ radii[s], weights[s]).

    twojmax: band limit 2J.  rcutfac: pair cutoff factor (Å multiplier of R_i + R_j).
    radii, weights: per-element R_e (Å) and neighbour weight w_e.  rfac0, rmin0 (Å):
    distance-to-angle map.  switchflag: cosine switching.  bzeroflag: subtract an isolated
    atom's B.  quadratic: append the products (``quadraticflag 1``).  bnormflag: divide
    B_{j1 j2 j} by j + 1 (j doubled).  Species ≥ len(radii) are inert.
    """

    twojmax: int
    rcutfac: float
    radii: tuple[float, ...]
    weights: tuple[float, ...]
    rfac0: float = 0.99363
    rmin0: float = 0.0
    switchflag: bool = True
    bzeroflag: bool = True
    quadratic: bool = False
    bnormflag: bool = False
    chemflag: bool = False
    wselfallflag: bool = False
    switchinnerflag: bool = False

    def __post_init__(self):
        object.__setattr__(self, "radii", tuple(float(x) for x in self.radii))
        object.__setattr__(self, "weights", tuple(float(x) for x in self.weights))
        for name in ("switchflag", "bzeroflag", "quadratic", "bnormflag", "chemflag",
                     "wselfallflag", "switchinnerflag"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.chemflag or self.wselfallflag or self.switchinnerflag:
            raise NotImplementedError(
                "Bispectrum: chemflag, wselfallflag and switchinnerflag (explicit multi-element "
                "SNAP, inner switching) are not implemented; use the classic SNAP settings")
        if len(self.radii) != len(self.weights) or not self.radii:
            raise ValueError("Bispectrum: give one radius and one weight per element")
        if int(self.twojmax) != self.twojmax or self.twojmax < 0:
            raise ValueError(f"Bispectrum: twojmax must be a non-negative integer, "
                             f"not {self.twojmax}")
        if not 0.0 < self.rfac0 <= 1.0:
            raise ValueError(f"Bispectrum: rfac0 must be in (0, 1], not {self.rfac0}")

    @property
    def n_elements(self) -> int:
        return len(self.radii)

    @property
    def n_linear(self) -> int:
        """Number of bispectrum components (without quadratic products)."""
        return len(bispectrum_indices(self.twojmax))

    @property
    def n_features(self) -> int:
        n = self.n_linear
        return n + n * (n + 1) // 2 if self.quadratic else n

    @property
    def cutoff(self) -> float:
        """Largest pair cutoff rcutfac·2·max R (Å)."""
        return self.rcutfac * 2.0 * max(self.radii)

    def indices(self) -> list[tuple[int, int, int]]:
        """(2j1, 2j2, 2j) of the linear components in order."""
        return bispectrum_indices(self.twojmax)

    # ------------------------------------------------------------------ evaluation

    def density(self, system: System, nbrs: NeighborList):
        """Per-atom (U_r, U_i), each (N, n_u), neighbour sums without the self term."""
        d, rcut, wj, i = self._pair_inputs(system, nbrs)
        fn = _pair_density(self.twojmax, self.rfac0, self.rmin0, self.switchflag)
        return self._expand(*fn(d, rcut, wj, i, system.natoms))

    def _pair_inputs(self, system: System, nbrs: NeighborList):
        """Pair vectors (3, P) (unused pairs: a safe vector), cutoffs (P,), neighbour weights
        (P,) (0 where unused) and centres (P,), padded to whole pair chunks."""
        ne = self.n_elements
        d = pair_displacements(system, nbrs)
        r2 = jnp.sum(d * d, axis=1)
        si, sj = system.species[nbrs.i], system.species[nbrs.j]
        valid = nbrs.mask & (si >= 0) & (si < ne) & (sj >= 0) & (sj < ne)
        si, sj = jnp.clip(si, 0, ne - 1), jnp.clip(sj, 0, ne - 1)
        radii = jnp.asarray(self.radii)
        rcut = self.rcutfac * (radii[si] + radii[sj])
        use = valid & (r2 < rcut * rcut) & (r2 > 1e-20)
        safe = 0.5 * rcut[:, None] * jnp.asarray([[0.6, 0.64, 0.48]])  # |safe| = rcut/2
        d = jnp.where(use[:, None], d, safe)
        wj = jnp.where(use, jnp.asarray(self.weights)[sj], 0.0)
        # pad to whole chunks (weight 0), pairs on the last axis
        size = _PAIR_CHUNK
        pad = (-d.shape[0]) % size
        i = jnp.pad(nbrs.i, (0, pad))
        d = jnp.pad(d.T, ((0, 0), (0, pad)), constant_values=1.0)
        rcut = jnp.pad(rcut, (0, pad), constant_values=2.0 * math.sqrt(3.0))
        wj = jnp.pad(wj, (0, pad))
        return d, rcut, wj, i

    def _expand(self, hr, hi):
        """Per-atom half densities (N, n_half) → full (U_r, U_i) (N, n_u)."""
        index, sr, si = _expansion(self.twojmax)
        return jnp.take(hr, index, axis=1) * sr[None], jnp.take(hi, index, axis=1) * si[None]

    def linear(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, n_linear) bispectrum components (zero rows for inert/padding atoms)."""
        return self._linear_from_density(system, *self.density(system, nbrs))

    def _linear_from_density(self, system: System, ur, ui, sparse: bool = False):
        present = system.mask & (system.species >= 0) & (system.species < self.n_elements)
        return self._linear_of_present(present, ur, ui, sparse)

    def _linear_of_present(self, present, ur, ui, sparse: bool = False):
        bvals = _cubic(self.twojmax, sparse)(ur + _self_term(self.twojmax)[None], ui)
        return jnp.where(present[:, None], self._normalised(bvals), 0.0)

    def _normalised(self, bvals):
        """Raw B (A, n_b) with bnormflag (÷ (j + 1)) and bzeroflag (− isolated atom)."""
        jb = _cubic_tables(self.twojmax).j_of_b
        if self.bnormflag:
            bvals = bvals / (jb[None] + 1.0)
            if self.bzeroflag:
                bvals = bvals - WSELF ** 3
        elif self.bzeroflag:
            bvals = bvals - WSELF ** 3 * (jb[None] + 1.0)
        return bvals

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, n_features) as the columns of LAMMPS ``compute sna/atom``."""
        bvals = self.linear(system, nbrs)
        if not self.quadratic:
            return bvals
        return jnp.concatenate([bvals, quadratic_products(bvals)], axis=1)

    def features_and_neighbor_gradients(self, species, mask, neighbor_species, d, slot_mask):
        """(B (A, n_features) as :meth:`features`, ∂B_a/∂d_am (A, M, n_features, 3)) of atoms
        given with their neighbours in an atom-major layout: species (A,), mask (A,), and per
        atom M neighbour slots with the neighbour's species (A, M), pair vector d (A, M, 3) Å
        and slot mask (A, M).  Per chunk of whole atoms: U per pair, the per-level Jacobians
        ∂B/∂H per atom from one evaluation of every Z, and the derivatives of U from rotation
        generators (:mod:`rexfit.descriptors.bispectrum_rows`)."""
        from rexfit.descriptors.bispectrum_rows import neighbor_rows

        return neighbor_rows(self, species, mask, neighbor_species, d, slot_mask)


@lru_cache(maxsize=None)
def _self_term(twojmax: int) -> np.ndarray:
    """(n_u,) an atom's own contribution to its density: WSELF on the diagonals of U_j."""
    off = u_offsets(twojmax)
    diag = np.zeros(int(off[-1]))
    for j in range(twojmax + 1):
        diag[off[j] + np.arange(j + 1) * (j + 2)] = WSELF
    return diag


@lru_cache(maxsize=None)
def _jacobian_tables(twojmax: int):
    """(count (n_half,): full U elements each half element fills, per level j the triples
    with output j) for the level Jacobians of :mod:`rexfit.descriptors.bispectrum_rows`."""
    tab = _cubic_tables(twojmax)
    index, _, _ = _expansion(twojmax)
    count = np.bincount(index, minlength=int(half_offsets(twojmax)[-1])).astype(np.float64)
    levels = [[t for t, (_, _, jt) in enumerate(tab.triples) if jt == j]
              for j in range(twojmax + 1)]
    return count, levels


@lru_cache(maxsize=None)
def _pairs(n: int):
    k, l = np.triu_indices(n)
    return k, l, np.where(k == l, 0.5, 1.0)


def quadratic_products(bvals: jax.Array) -> jax.Array:
    """(N, K(K+1)/2): ½B_k² and B_k B_l (l > k), k-major, as LAMMPS quadraticflag."""
    k, l, f = _pairs(bvals.shape[1])
    return bvals[:, k] * bvals[:, l] * f[None]
