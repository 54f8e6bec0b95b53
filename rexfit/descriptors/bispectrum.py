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
The cubic form over the per-atom U_tot is a fused gather-reduce over a static table of
non-zero terms, with a hand-written adjoint (also gathers, no scatters).
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

#: atoms per chunk of the cubic form (bounds the gathered temporaries)
_CHUNK = 128

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


def _bucket(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


@dataclass(frozen=True)
class _Group:
    """Rows of equal padded length of a gather-reduce table (NumPy, static)."""

    rows: np.ndarray  # (G,) output index of each row
    idx: tuple[np.ndarray, ...]  # index arrays (G, L)
    coef: np.ndarray  # (G, L) float64, 0 on padding


def _groups(rows_terms: dict[int, list[tuple]], width: int) -> list[_Group]:
    """Group rows by padded term count; each term is (coef, idx_1, …, idx_width)."""
    by_size: dict[int, list[int]] = {}
    for row, terms in rows_terms.items():
        by_size.setdefault(_bucket(max(len(terms), 1)), []).append(row)
    out = []
    for size, rows in sorted(by_size.items()):
        coef = np.zeros((len(rows), size))
        idx = [np.zeros((len(rows), size), np.int32) for _ in range(width)]
        for g, row in enumerate(rows):
            for t, term in enumerate(rows_terms[row]):
                coef[g, t] = term[0]
                for w in range(width):
                    idx[w][g, t] = term[1 + w]
        out.append(_Group(np.asarray(rows), tuple(idx), coef))
    return out


@dataclass(frozen=True)
class _Tables:
    forward: list[_Group]  # B_b = Σ c Re(U[k1] U[k2] conj U[k3]); idx (k1, k2, k3)
    adjoint: list[_Group]  # Y_k = Σ c g_b (conj? U[p]) U[q]; idx (b, p, q, conj)
    n_b: int
    n_u: int
    j_of_b: np.ndarray


@lru_cache(maxsize=None)
def _tables(twojmax: int) -> _Tables:
    """The non-zero terms of every B (LAMMPS's half sum) and their transposes for the adjoint."""
    off = u_offsets(twojmax)
    blist = bispectrum_indices(twojmax)
    forward: dict[int, list[tuple]] = {}
    adjoint: dict[int, list[tuple]] = {k: [] for k in range(int(off[-1]))}
    for b, (j1, j2, j) in enumerate(blist):
        c = (j1 + j2 - j) // 2
        terms = []
        for mb in range(j // 2 + 1):
            for ma in range(j + 1):
                if 2 * mb == j and 2 * ma > j:
                    continue
                half = 0.5 if 2 * mb == j and 2 * ma == j else 1.0
                k3 = off[j] + mb * (j + 1) + ma
                for mb1 in range(max(0, mb + c - j2), min(j1, mb + c) + 1):
                    mb2 = mb + c - mb1
                    cb = clebsch_gordan(j1, 2 * mb1 - j1, j2, 2 * mb2 - j2, j, 2 * mb - j)
                    for ma1 in range(max(0, ma + c - j2), min(j1, ma + c) + 1):
                        ma2 = ma + c - ma1
                        ca = clebsch_gordan(j1, 2 * ma1 - j1, j2, 2 * ma2 - j2, j, 2 * ma - j)
                        coef = 2.0 * half * ca * cb
                        if coef == 0.0:
                            continue
                        k1 = off[j1] + mb1 * (j1 + 1) + ma1
                        k2 = off[j2] + mb2 * (j2 + 1) + ma2
                        terms.append((coef, k1, k2, k3))
                        adjoint[k3].append((coef, b, k1, k2, 0))  # ∂/∂U3: U1 U2
                        adjoint[k1].append((coef, b, k2, k3, 1))  # ∂/∂U1: conj(U2) U3
                        adjoint[k2].append((coef, b, k1, k3, 1))  # ∂/∂U2: conj(U1) U3
        forward[b] = terms
    return _Tables(_groups(forward, 3), _groups(adjoint, 4), len(blist), int(off[-1]),
                   np.array([j for _, _, j in blist]))


# --------------------------------------------------------------------------- the cubic form

def _take(x, idx):
    return jnp.take(x, jnp.asarray(idx), axis=0)  # x (n, C) with atoms last → (G, L, C)


def _assemble(parts, groups):
    """Concatenate per-group outputs and put each row back at its index."""
    order = np.argsort(np.concatenate([g.rows for g in groups]))
    out = jnp.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    return out if np.all(order == np.arange(len(order))) else out[order]


def _forward(tables: _Tables, ur, ui):
    parts = []
    for g in tables.forward:
        k1, k2, k3 = g.idx
        r1, i1, r2, i2 = _take(ur, k1), _take(ui, k1), _take(ur, k2), _take(ui, k2)
        pr, pi = r1 * r2 - i1 * i2, r1 * i2 + i1 * r2
        parts.append(jnp.sum(g.coef[..., None] * (pr * _take(ur, k3) + pi * _take(ui, k3)), axis=1))
    return _assemble(parts, tables.forward)


def _adjoint(tables: _Tables, ur, ui, gb):
    """(Y_r, Y_i) = (∂/∂U_r, ∂/∂U_i) of Σ_b g_b B_b, (N, n_u) each."""
    yr, yi = [], []
    for g in tables.adjoint:
        b, p, q, cj = g.idx
        sign = jnp.asarray(1.0 - 2.0 * cj)[..., None]  # conj of U[p] where cj = 1
        w = g.coef[..., None] * _take(gb, b)
        rp, ip, rq, iq = _take(ur, p), sign * _take(ui, p), _take(ur, q), _take(ui, q)
        yr.append(jnp.sum(w * (rp * rq - ip * iq), axis=1))
        yi.append(jnp.sum(w * (rp * iq + ip * rq), axis=1))
    return _assemble(yr, tables.adjoint), _assemble(yi, tables.adjoint)


@lru_cache(maxsize=None)
def _cubic(twojmax: int):
    """B(U_r, U_i): (N, n_u)² → (N, n_b) with a gather-only adjoint."""
    tables = _tables(twojmax)

    def chunked(fn, *arrays):
        """fn over atom chunks of arrays (N, C) transposed to (C, chunk): bounded memory."""
        n = arrays[0].shape[0]
        size = min(_CHUNK, n)
        pad = (-n) % size
        stacked = [jnp.pad(a, ((0, pad), (0, 0))).reshape(-1, size, a.shape[1])
                   .transpose(0, 2, 1) for a in arrays]
        out = jax.lax.map(lambda xs: fn(*xs), stacked)
        out = out if isinstance(out, tuple) else (out,)
        res = tuple(o.transpose(0, 2, 1).reshape(-1, o.shape[1])[:n] for o in out)
        return res if len(res) > 1 else res[0]

    @jax.custom_vjp
    def cubic(ur, ui):
        return chunked(lambda a, b: _forward(tables, a, b), ur, ui)

    def fwd(ur, ui):
        return cubic(ur, ui), (ur, ui)

    def bwd(res, gb):
        ur, ui = res
        return chunked(lambda a, b, g: _adjoint(tables, a, b, g), ur, ui, gb)

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
        fn = _pair_density(self.twojmax, self.rfac0, self.rmin0, self.switchflag)
        hr, hi = fn(d, rcut, wj, i, system.natoms)
        index, sr, si = _expansion(self.twojmax)
        return jnp.take(hr, index, axis=1) * sr[None], jnp.take(hi, index, axis=1) * si[None]

    def linear(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, n_linear) bispectrum components (zero rows for inert/padding atoms)."""
        ur, ui = self.density(system, nbrs)
        off = u_offsets(self.twojmax)
        diag = np.zeros(int(off[-1]))
        for j in range(self.twojmax + 1):
            diag[off[j] + np.arange(j + 1) * (j + 2)] = WSELF
        ur = ur + diag[None]
        bvals = _cubic(self.twojmax)(ur, ui)
        jb = _tables(self.twojmax).j_of_b
        if self.bnormflag:
            bvals = bvals / (jb[None] + 1.0)
            if self.bzeroflag:
                bvals = bvals - WSELF ** 3
        elif self.bzeroflag:
            bvals = bvals - WSELF ** 3 * (jb[None] + 1.0)
        present = system.mask & (system.species >= 0) & (system.species < self.n_elements)
        return jnp.where(present[:, None], bvals, 0.0)

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, n_features) as the columns of LAMMPS ``compute sna/atom``."""
        bvals = self.linear(system, nbrs)
        if not self.quadratic:
            return bvals
        return jnp.concatenate([bvals, quadratic_products(bvals)], axis=1)


@lru_cache(maxsize=None)
def _pairs(n: int):
    k, l = np.triu_indices(n)
    return k, l, np.where(k == l, 0.5, 1.0)


def quadratic_products(bvals: jax.Array) -> jax.Array:
    """(N, K(K+1)/2): ½B_k² and B_k B_l (l > k), k-major, as LAMMPS quadraticflag."""
    k, l, f = _pairs(bvals.shape[1])
    return bvals[:, k] * bvals[:, l] * f[None]
