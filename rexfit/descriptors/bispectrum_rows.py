"""Bispectrum rows B_i and their derivatives ∂B_i/∂d_p with respect to every pair vector, for
atoms given with their neighbour slots (the design-matrix rows of a SNAP fit).

Derivatives of the Wigner matrices by rotation generators.  The matrices U_j of a pair are
the spin-j representation of the SU(2) element g = [[ā, −b̄], [b, a]] of its Cayley–Klein
parameters (U_j(g h) = U_j(g) U_j(h)).  Moving the pair vector moves g along the sphere,
dg = g X with X = g† dg in su(2): X = [[iα, β], [−β̄, −iα]],

    α = Im(a dā + b̄ db),   β = p + i q = b̄ da − a db̄,

so dU_j = U_j ρ_j(X), where ρ_j is the representation of the Lie algebra: on a row of U_j
(doubled indices m = 0 … j)

    (U ρ(X))[mb, ma] = iα (j − 2ma) U[mb, ma] + β c⁺_ma U[mb, ma − 1] − β̄ c⁻_ma U[mb, ma + 1],
    c⁺_ma = √(ma (j − ma + 1)),  c⁻_ma = √((ma + 1)(j − ma)).

Each row mixes only with itself, so the computed half rows mb ≤ j/2 suffice, and

    dU = α T₁U + p T₂U + q T₃U,   T₁U = i(j − 2ma)U,  T₂U = S⁺U − S⁻U,  T₃U = i(S⁺U + S⁻U)

with S⁺U = c⁺ U[·, ma − 1], S⁻U = c⁻ U[·, ma + 1]: three fixed linear maps of the pair's U,
whatever the direction.  With the weight w (w·f_c) of the pair and the atom's Jacobian
J = ∂B/∂H (H = Σ_pairs w U), the derivative along a Cartesian direction x is

    ∂B/∂x = ẇ (J·U) + w (α (J·T₁U) + p (J·T₂U) + q (J·T₃U)),

four contractions per pair shared by the three directions (α, p, q, ẇ per direction are
scalars of the pair geometry).  No derivative of the recursion is needed: only U per pair.

The Jacobian per level: B_{j1 j2 j} depends on the levels j1, j2 and j only, so per level l
J_l = ∂B/∂H_l has the rows of the components that touch l (a third of K × n_half for 2J = 6);
J_l = count · Σ_t κ[t, b] Z_t over the triples t with output l (the adjoint symmetry of
:func:`rexfit.descriptors.bispectrum._cubic_tables`).  The maps T_n act on the atom's J
instead of every pair's U (J·T_n U = (J R_n)·U, R_n their real matrices: :func:`generator_rows`),
so the contractions are one batched matrix product per level, (4 K_l × 2 n_l) · (2 n_l × M)
per atom with the U of its M slots, and the levels' results are summed per component.
"""

from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.descriptors import bispectrum as bs

#: pair slots per chunk of atoms (whole atoms: chunk atoms = max(1, this // slots))
ROW_CHUNK_PAIRS = 512


@lru_cache(maxsize=None)
def generator_tables(twojmax: int):
    """Per level l, on its flat half (n_l = (l//2 + 1)(l + 1) values, row-major [mb, ma]):
    (l − 2ma, c⁺[h + 1], c⁻[h − 1]) (zero where h ± 1 is in another row or outside)."""
    out = []
    for j in range(twojmax + 1):
        ma = np.tile(np.arange(j + 1), j // 2 + 1)
        cp = np.sqrt(ma * (j - ma + 1.0))
        cm = np.sqrt((ma + 1.0) * (j - ma))
        out.append(((j - 2.0 * ma), np.append(cp[1:], 0.0), np.append(0.0, cm[:-1])))
    return out


def generator_coordinates(ar, ai, br, bi, dar, dai, dbr, dbi):
    """(α, p, q) of X = g† dg for Cayley–Klein a = ar + i ai, b = br + i bi and their
    derivatives (any matching shapes)."""
    alpha = ai * dar - ar * dai + br * dbi - bi * dbr
    p = br * dar + bi * dai - ar * dbr - ai * dbi
    q = br * dai - bi * dar + ar * dbi - ai * dbr
    return alpha, p, q


def generator_rows(jac, diag, cp_next, cm_prev):
    """(A, 4, K_l, 2 n_l): rows J, J R₁, J R₂, J R₃ of a level Jacobian J = (Jr | Ji)
    (A, K_l, 2 n_l), with R_n the real matrices of T_n (module docstring), so that
    (J R_n)·u = J·(T_n u).  J R₁ = (D Ji | −D Jr), J R₂ = (Jr S | Ji S), J R₃ = (Ji P | −Jr P)
    with S = S⁺ − S⁻ and P = S⁺ + S⁻ acting on the row vector from the right:
    (x S⁺)[h] = c⁺[h + 1] x[h + 1], (x S⁻)[h] = c⁻[h − 1] x[h − 1] (``cp_next``, ``cm_prev``,
    zero across a row's end)."""
    n = jac.shape[-1] // 2
    jr, ji = jac[..., :n], jac[..., n:]
    diag, cp_next, cm_prev = (x[None, None, :] for x in (diag, cp_next, cm_prev))

    def plus(x):  # x S⁺
        return cp_next * jnp.concatenate([x[..., 1:], jnp.zeros_like(x[..., :1])], axis=-1)

    def minus(x):  # x S⁻
        return cm_prev * jnp.concatenate([jnp.zeros_like(x[..., :1]), x[..., :-1]], axis=-1)

    pr, mr, pi, mi = plus(jr), minus(jr), plus(ji), minus(ji)
    return jnp.stack([jac,
                      jnp.concatenate([diag * ji, -diag * jr], axis=-1),
                      jnp.concatenate([pr - mr, pi - mi], axis=-1),
                      jnp.concatenate([pi + mi, -(pr + mr)], axis=-1)], axis=1)


@lru_cache(maxsize=None)
def level_tables(twojmax: int):
    """Per level l: (components b touching l (K_l,), κ[t, b] (T_l, K_l) over the triples t
    with output l, flat Z index (T_l, n_l) of those triples, count (n_l,)); and for the
    assembly, per component its (up to 3) rows in the levels' concatenation (K, 3) and a
    mask (K, 3)."""
    tab = bs._cubic_tables(twojmax)
    count, _ = bs._jacobian_tables(twojmax)
    hoff = bs.half_offsets(twojmax)
    levels, row = [], 0
    where = [[] for _ in range(tab.n_b)]
    for l in range(twojmax + 1):
        triples = [t for t, (_, _, j) in enumerate(tab.triples) if j == l]
        kappa = tab.kappa[triples]
        comps = np.flatnonzero(np.any(kappa != 0.0, axis=0))
        n_l = int(hoff[l + 1] - hoff[l])
        zindex = np.stack([tab.z_off[t] + np.arange(n_l) for t in triples])
        levels.append((comps, kappa[:, comps], zindex, count[hoff[l]:hoff[l + 1]]))
        for k, b in enumerate(comps):
            where[b].append(row + k)
        row += len(comps)
    gather = np.zeros((tab.n_b, 3), np.int64)
    valid = np.zeros((tab.n_b, 3))
    for b, rows in enumerate(where):
        gather[b, :len(rows)], valid[b, :len(rows)] = rows, 1.0
    return levels, gather, valid


def flat_z_values(tab, twojmax: int, ur, ui):
    """Half Z (re, im) of every triple, flat (n_z, A) in the order of ``tab.z_off``, from the
    term list (:func:`rexfit.descriptors.bispectrum._sparse_terms`); U (n_u, A), atoms last."""
    x, y, z, c = bs._sparse_terms(twojmax)
    n_z = int(tab.z_off[-1])
    c = c[:, None]
    xr, xi, yr, yi = ur[x], ui[x], ur[y], ui[y]
    zr = jax.ops.segment_sum(c * (xr * yr - xi * yi), z, num_segments=n_z,
                             indices_are_sorted=True)
    zi = jax.ops.segment_sum(c * (xr * yi + xi * yr), z, num_segments=n_z,
                             indices_are_sorted=True)
    return zr, zi


def rows_and_level_jacobians(descriptor, present, hr, hi):
    """(B (A, K) as ``Bispectrum._linear_of_present``, per level l the Jacobian
    ∂B_{comps_l}/∂(Re H_l, Im H_l) (A, K_l, 2 n_l) of :func:`level_tables`) of atoms with
    half densities hr, hi (A, n_half), from one evaluation of every Z.  Without the
    bnormflag division (see :func:`neighbor_rows`)."""
    twojmax = descriptor.twojmax
    tab = bs._cubic_tables(twojmax)
    levels, _, _ = level_tables(twojmax)
    ur, ui = descriptor._expand(hr, hi)
    ur, ui = (ur + bs._self_term(twojmax)[None]).T, ui.T  # (n_u, A): atoms last
    zr, zi = flat_z_values(tab, twojmax, ur, ui)
    n_atoms = ur.shape[-1]
    zs = [(zr[int(tab.z_off[t]):int(tab.z_off[t + 1])].reshape(j // 2 + 1, j + 1, n_atoms),
           zi[int(tab.z_off[t]):int(tab.z_off[t + 1])].reshape(j // 2 + 1, j + 1, n_atoms))
          for t, (_, _, j) in enumerate(tab.triples[:tab.n_b])]
    bvals = bs._b_values(tab, ur, ui, zs).T  # (A, n_b)
    bvals = jnp.where(present[:, None], descriptor._normalised(bvals), 0.0)
    zr, zi = zr.T, zi.T  # (A, n_z)
    jacs = []
    for _, kappa, zindex, count in levels:
        scale = jnp.asarray(count)[None, None, :]
        kappa = jnp.asarray(kappa)
        jr = jnp.einsum("tk,atl->akl", kappa, zr[:, zindex]) * scale
        ji = jnp.einsum("tk,atl->akl", kappa, zi[:, zindex]) * scale
        jacs.append(jnp.where(present[:, None, None], jnp.concatenate([jr, ji], axis=2), 0.0))
    return bvals, jacs


def neighbor_rows(descriptor, species, mask, neighbor_species, d, slot_mask):
    """``Bispectrum.features_and_neighbor_gradients``: (B (A, n_features), ∂B_a/∂d_am
    (A, M, n_features, 3)) of atoms with M neighbour slots each (species (A,), mask (A,),
    neighbour species (A, M), pair vectors d (A, M, 3) Å, slot mask (A, M)).  Chunks of whole
    atoms: per pair U, per atom the level Jacobians and their generator rows, one batched
    product per level, then the three directions from the pair's (ẇ, wα, wp, wq)."""
    n_atoms, slots = neighbor_species.shape
    ne = descriptor.n_elements
    twojmax = descriptor.twojmax
    present = mask & (species >= 0) & (species < ne)
    si = jnp.clip(species, 0, ne - 1)
    sj = jnp.clip(neighbor_species, 0, ne - 1)
    valid = (slot_mask & present[:, None] & (neighbor_species >= 0)
             & (neighbor_species < ne))
    radii = jnp.asarray(descriptor.radii)
    rcut = descriptor.rcutfac * (radii[si][:, None] + radii[sj])
    r2 = jnp.sum(d * d, axis=-1)
    use = valid & (r2 < rcut * rcut) & (r2 > 1e-20)
    safe = 0.5 * rcut[..., None] * jnp.asarray([[[0.6, 0.64, 0.48]]])  # |safe| = rcut/2
    d = jnp.where(use[..., None], d, safe)
    wj = jnp.where(use, jnp.asarray(descriptor.weights)[sj], 0.0)
    per = max(1, ROW_CHUNK_PAIRS // slots)  # atoms per chunk
    pad = (-n_atoms) % per
    if pad:
        d = jnp.pad(d, ((0, pad), (0, 0), (0, 0)), constant_values=1.0)
        rcut = jnp.pad(rcut, ((0, pad), (0, 0)), constant_values=2.0 * math.sqrt(3.0))
        wj = jnp.pad(wj, ((0, pad), (0, 0)))
        present = jnp.pad(present, (0, pad))
    size = per * slots
    hoff = bs.half_offsets(twojmax)
    n_half = int(hoff[-1])
    _, gather, gvalid = level_tables(twojmax)
    tables = [tuple(jnp.asarray(x) for x in t) for t in generator_tables(twojmax)]
    n_b = gather.shape[0]
    tangents = jnp.broadcast_to(jnp.eye(3, dtype=d.dtype)[:, :, None], (3, 3, size))
    norm = (1.0 / (bs._cubic_tables(twojmax).j_of_b + 1.0) if descriptor.bnormflag
            else np.ones(n_b))
    factor = jnp.asarray(gvalid * norm[:, None])  # (K, 3)

    def chunk(xs):
        dc, rc, wc, pc = xs  # (per, M, 3), (per, M), (per, M), (per,)
        dc = dc.reshape(size, 3).T
        rc, wc = rc.reshape(size), wc.reshape(size)
        flag = rc[0] > 0.0  # always true; see bs._materialize

        def geometry(x):
            return bs._pair_geometry(x, rc, wc, descriptor.rfac0, descriptor.rmin0,
                                     descriptor.switchflag)

        geo = geometry(dc)
        slopes = jax.vmap(lambda t: jax.jvp(geometry, (dc,), (t,))[1])(tangents)  # (3, C)
        (ar, ai, br, bi, w), (dar, dai, dbr, dbi, dw) = bs._materialize((geo, slopes), flag)
        ur, ui = bs._compact(bs._levels(ar, ai, br, bi, twojmax, flag), twojmax)
        hr = jnp.sum((ur * w[None]).reshape(n_half, per, slots), axis=2).T  # (per, n_half)
        hi = jnp.sum((ui * w[None]).reshape(n_half, per, slots), axis=2).T
        bvals, jacs = rows_and_level_jacobians(descriptor, pc, hr, hi)
        parts = []
        for l, (jac, coefs) in enumerate(zip(jacs, tables)):
            n_l = int(hoff[l + 1] - hoff[l])
            k_l = jac.shape[1]
            rows = generator_rows(jac, *coefs).reshape(per, 4 * k_l, 2 * n_l)
            u = jnp.concatenate([ur[int(hoff[l]):int(hoff[l + 1])],
                                 ui[int(hoff[l]):int(hoff[l + 1])]]).reshape(2 * n_l, per, slots)
            u, rows = bs._materialize((jnp.transpose(u, (1, 0, 2)), rows), flag)
            parts.append(jnp.matmul(rows, u).reshape(per, 4, k_l, slots))
        g = jnp.concatenate(parts, axis=2)  # (per, 4, Σ K_l, M)
        # each component from its (up to 3) levels: a gather compiles in a second less than
        # 90 static slices and runs about as fast
        g = sum(g[:, :, gather[:, s]] * factor[None, None, :, s, None]
                for s in range(3))  # (per, 4, K, M)
        g = jnp.transpose(g, (0, 3, 2, 1))  # (per, M, K, 4)
        alpha, p, q = generator_coordinates(ar[None], ai[None], br[None], bi[None],
                                             dar, dai, dbr, dbi)  # (3, C)
        scal = jnp.stack([dw, w[None] * alpha, w[None] * p, w[None] * q], axis=2)  # (3, C, 4)
        scal = jnp.transpose(scal.reshape(3, per, slots, 4), (1, 2, 3, 0))  # (per, M, 4, 3)
        grads = sum(g[..., n, None] * scal[:, :, None, n, :] for n in range(4))
        return bvals, grads

    chunks = n_atoms + pad
    xs = (d.reshape(-1, per, slots, 3), rcut.reshape(-1, per, slots),
          wj.reshape(-1, per, slots), present.reshape(-1, per))
    bvals, grads = jax.lax.map(chunk, xs)
    bvals = bvals.reshape(chunks, n_b)[:n_atoms]
    grads = grads.reshape(chunks, slots, n_b, 3)[:n_atoms]
    if not descriptor.quadratic:
        return bvals, grads
    a, b, f = bs._pairs(n_b)
    quad = f[None, None, :, None] * (bvals[:, None, a, None] * grads[:, :, b]
                                     + bvals[:, None, b, None] * grads[:, :, a])
    return (jnp.concatenate([bvals, bs.quadratic_products(bvals)], axis=1),
            jnp.concatenate([grads, quad], axis=2))
