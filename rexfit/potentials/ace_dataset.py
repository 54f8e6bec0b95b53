"""The analytic dataset kernel of :class:`rexfit.potentials.ace.model.ACE` (non-linear ACE:
fitted radial coefficients crad, several densities, any embedding), on the full neighbour list
of a flat chunk with atom-major pair slots (:class:`rexfit.datasets.chunks.Chunk` ``slots``),
where pair (i, j) adds to E_i only.

The standard ACE force algorithm.  Per pair p = (i, j), d = x_j − x_i, r = |d|, u = d / r: the
radial basis g_k(r) and core repulsion V(r) with their r-derivatives (the model's splines, one
coefficient lookup each) and Y_lm(u) (real arithmetic), all free of parameters.  Per atom i and neighbour element μ (sums over the atom's neighbour slots, batched
products): Σ_j g_k, Σ_j V and G_klm = Σ_j g_k Y_lm; then, R_nl = Σ_k crad[μ_i μ, n, l, k] g_k
being linear in crad, the model's A-basis A_nlm = Σ_k crad_nlk G_klm per atom, its product
basis (:meth:`~rexfit.potentials.ace.model.ACE.basis_from_sums`), densities, embedding and
``density`` inner cutoff, and the adjoint w_i = ∂E_i/∂(sums) by a ``jax.vjp`` of that per-atom
map.  Per pair, with w̄ = w_Re − i w_Im of the pair's centre and neighbour element,

    ∂E_i/∂d_p = u (w_g·g′ + w_V V′ + Σ_k g′_k Re Σ_lm w̄_klm Y_lm)
                + Re Σ_lm (Σ_k w̄_klm g_k) ∂Y_lm/∂d,

the last sum as the pull-back of q_lm = Σ_k w̄_klm g_k through Y_lm(d/|d|) (a ``jax.vjp``:
no ∂Y_lm/∂d arrays are formed).

Everything is JAX, so the parameter gradient of a loss is one reverse pass over this forward
computation; it meets the per-pair terms only in these last contractions.  :func:`prepare`
runs once per evaluation, :func:`terms` once per chunk (looked up by
:mod:`rexfit.datasets.analytic`).

Kept terms: in a dataset the structures never move, so everything above that is free of
parameters — per pair u, g_k Y00, g′_k, V′, Y_lm and ∂Y_lm/∂d (three forward tangents), per
atom the sums Σ g_k, Σ V, G_klm (:class:`Fixed`) — is computed once per chunk by
:func:`fixed_terms` and kept by the engine (:mod:`rexfit.datasets.kept_terms`, within its
memory budget); :func:`terms` given them does per evaluation only the per-atom work (crad
contraction, product basis, embedding, adjoint) and the per-pair contractions, Σ_lm w̄ Y
and Σ_lm w̄ ∂Y/∂d as one batched product with the kept [Y, ∂Y/∂d].  Without them (over the
budget) it computes them as above.

The ``zbl`` inner cutoff: E_i = f_i F_i + (1 − f_i) ρ_core,i with ρ_core the sum of the ZBL
pair terms (the core-repulsion spline above) and f_i the quintic step in the distance of the
atom's nearest neighbour (:meth:`~rexfit.potentials.ace.model.ACE.zbl_switch`), which
depends on the geometry only: f_i and ∂f_i/∂r_p per pair slot (zero but for the nearest
neighbour; JAX's mean over tied nearest neighbours, as the model's derivative) are kept
with the other parameter-free terms, f_i enters the per-atom map as an input, and the
adjoint w_f,i = ∂E_i/∂f_i = F_i − ρ_core,i adds w_f,i ∂f_i/∂r_p u to the pair's dE/dd.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.ace.harmonics import spherical_harmonics_parts
from rexfit.potentials.ace.model import ACE, Y00
from rexfit.potentials.ace.radial import spline_value_and_slope


def supported(ace: ACE) -> bool:
    """Whether :func:`terms` covers ``ace``: every basis the model reads (the ``distance``,
    ``density`` and ``zbl`` inner cutoffs, any embedding and radial basis)."""
    return isinstance(ace, ACE)


def prepare(ace: ACE, params):
    """(crad (T, N, L, K) per ordered pair type, c (F, P) in the tables' column order)."""
    return ace._crad(params), ace._coefficients(params)


def _radial_and_slopes(ace: ACE, r, t):
    """((g (E, K), V (E,)), their r-derivatives) of pairs at r (E,) of pair types t: the
    model's splines with one coefficient lookup each, exact functions by forward mode."""
    if not ace.spline:
        return jax.jvp(lambda x: ace._radial(x, t), (r,), (jnp.ones_like(r),))
    tab = ace.tables
    scale, nodes = jnp.asarray(tab.scale)[t], jnp.asarray(tab.nodes)[t]
    g, dg = spline_value_and_slope(tab.g_spline, t, scale, nodes, r)
    hc, dhc = spline_value_and_slope(tab.hc_spline, t, scale, nodes, r)
    return (g, hc[:, 0]), (dg, dhc[:, 0])


def _harmonics(ace: ACE, d):
    """(Re, Im) of Y_lm (E, LM) of the unit vectors of d (E, 3)."""
    return spherical_harmonics_parts(d / jnp.sqrt(jnp.sum(d * d, axis=-1))[:, None], ace.lmax)


def _over_m(values, lmax: int, axis: int):
    """``values`` with its l axis (at ``axis``, lmax + 1 long) expanded to (l, m) (LM long),
    each l repeated for its 2l + 1 values of m, by broadcasts (a gather is several times
    slower on XLA's CPU backend, above all in the reverse pass)."""
    pieces = []
    for l in range(lmax + 1):
        x = jnp.expand_dims(jnp.take(values, l, axis=axis), axis)
        shape = list(x.shape)
        shape[axis] = 2 * l + 1
        pieces.append(jnp.broadcast_to(x, shape))
    return jnp.concatenate(pieces, axis=axis)


def _radial_sums(ace: ACE, crad, element, g_re, g_im):
    """Re, Im of the A-basis Σ_j R_nl(r_ij) Y_lm(r̂_ij) per atom and neighbour element
    (A, S, N·LM) from the parameter-free sums G = Σ_j g_k(r_ij) Y_lm(r̂_ij) (A, S, K, LM):
    R_nl = Σ_k crad[μ_i μ_j, n, l, k] g_k is linear in crad, so A = Σ_k crad G per atom."""
    n_el = len(ace.elements)
    if crad.shape[0] == 1:
        c = _over_m(crad[0], ace.lmax, axis=1)  # (N, LM, K)
        return tuple(jnp.einsum("nmk,askm->asnm", c, x).reshape(x.shape[0], n_el, -1)
                     for x in (g_re, g_im))
    types = element[:, None] * n_el + jnp.arange(n_el)[None, :]  # (A, S) pair types
    c = _over_m(crad, ace.lmax, axis=2)[types]  # (A, S, N, LM, K)
    return tuple(jnp.einsum("asnmk,askm->asnm", c, x).reshape(x.shape[0], n_el, -1)
                 for x in (g_re, g_im))


class Fixed(NamedTuple):
    """The parameter-free terms of one flat chunk (A atom slots, M pair slots each, S
    elements, K radial functions, LM harmonics): what :func:`fixed_terms` keeps per chunk of
    a dataset (the structures never move).  live (A,), element (A,) (atoms), valid (E,),
    u (3, E) (pairs), summed (A, S, P0) the per-atom sums [Σ g_k Y00, Σ V, Re, Im of
    G_klm = Σ_j g_k Y_lm] (P0 = K + 1 + 2·K·LM), gs, dgs (A, M, S·K) g_k Y00 and g′_k spread
    over the neighbour's element, dhs (A, M, S) V′ spread; without product functions y and
    dy are None, else y (A, M, 2·LM) Re, Im of Y_lm and dy None on a per-evaluation path
    (the pull-back through Y_lm serves for the derivatives), and on a kept one y None and
    dy (A, M, 4, 2·LM) Re, Im of Y_lm with their derivatives ∂/∂d_a (a = x, y, z), in one
    array for one batched product per evaluation; the ``zbl`` inner cutoff's weight f (A,)
    and its derivative ∂f_a/∂r_am (A, M) (None in the other modes)."""

    live: Any
    element: Any
    valid: Any
    u: Any
    summed: Any
    gs: Any
    dgs: Any
    dhs: Any
    y: Any
    dy: Any
    zbl: Any = None
    dzbl: Any = None


def _fixed(ace: ACE, c, slopes: bool):
    """(:class:`Fixed` of chunk ``c``, the pull-back of (Re, Im) cotangents (E, LM) through
    Y_lm(d/|d|) or None): with ``slopes``, ``dy`` by three forward tangents (for keeping),
    else the pull-back (per evaluation)."""
    if not c.slots:
        raise ValueError("the ACE dataset kernel reads flat chunks with atom-major pair slots "
                         "(Chunk.slots)")
    tab = ace.tables
    n_el = len(ace.elements)
    n_atoms, slots = c.mask.size, c.slots
    element, known = ace._elements_of(c.species.reshape(-1))
    live = c.mask.reshape(-1) & known
    ei, ki = ace._elements_of(c.si.reshape(-1))
    ej, kj = ace._elements_of(c.sj.reshape(-1))
    t = ei * n_el + ej
    d = jnp.stack([c.d[a].reshape(-1) for a in range(3)], axis=-1)  # (E, 3)
    r = jnp.sqrt(jnp.sum(d * d, axis=-1))
    valid = c.pair_mask.reshape(-1) & ki & kj & (r < jnp.asarray(tab.rcut)[t])
    r = jnp.where(valid, r, 2.0 * ace.cutoff + 1.0)
    u = d / r[:, None]
    zbl = dzbl = None
    if ace.zbl_inner:  # the weight of ACE against ZBL: the atom's nearest neighbour
        centre = jnp.repeat(jnp.arange(n_atoms), slots, total_repeat_length=n_atoms * slots)
        zbl, dzbl = ace.zbl_switch_and_slope(r, t, valid, centre, n_atoms)
        dzbl = jnp.where(valid, dzbl, 0.0).reshape(n_atoms, slots)
    # the pair terms and their derivatives: parameter-free (no reverse pass runs through them)
    (g, hc), (dg, dhc) = _radial_and_slopes(ace, r, t)
    keep = valid[:, None]
    g, dg = jnp.where(keep, g, 0.0), jnp.where(keep, dg, 0.0)
    hc, dhc = jnp.where(valid, hc, 0.0), jnp.where(valid, dhc, 0.0)
    # per atom slot a and neighbour slot m; with several elements the radial terms are
    # spread over the neighbour's element (zero for the others): (A, M, S·K)
    am = (n_atoms, slots)
    which = (ej.reshape(am + (1,)) == jnp.arange(n_el)[None, None, :]).astype(d.dtype)

    def spread(x):
        if n_el == 1:
            return x.reshape(am + x.shape[1:])
        return (x.reshape(am + (1, -1)) * which[..., None]).reshape(am + (-1,))

    gs, dgs = spread(g * Y00), spread(dg)
    hs, dhs = spread(hc[:, None]), spread(dhc[:, None])
    sums = [gs.sum(axis=1), hs.sum(axis=1)]  # (A, S·K), (A, S)
    y = dy = y_pullback = None
    if tab.products:
        safe = jnp.where(keep, d, jnp.asarray([1.0, 0.0, 0.0], d.dtype))  # no 0/0 anywhere
        if slopes:
            y, dy = zip(*(jax.jvp(lambda v: _harmonics(ace, v), (safe,),
                                  (jnp.zeros_like(safe).at[:, a].set(1.0),))
                          for a in range(3)))
            y = y[0]
            dy = jnp.stack([jnp.concatenate(x, axis=1).reshape(am + (-1,)) for x in dy], axis=2)
        else:
            y, y_pullback = jax.vjp(lambda v: _harmonics(ace, v), safe)
        lm = y[0].shape[1]
        y = [x.reshape(am + (lm,)) for x in y]
        # G = Σ_j g_k Y_lm per atom (and neighbour element): batched products over the slots
        sums += [jnp.einsum("amj,aml->ajl", gs, x).reshape(n_atoms, -1) for x in y]
        y = jnp.concatenate(y, axis=2)
        if slopes:  # kept: Y_lm and its three derivatives as one array
            y, dy = None, jnp.concatenate([y[:, :, None], dy], axis=2)
    summed = jnp.concatenate([x.reshape(n_atoms, n_el, -1) for x in sums], axis=2)
    return (Fixed(live, element, valid, u.T, summed, gs, dgs, dhs, y, dy, zbl, dzbl),
            y_pullback)


def fixed_terms(ace: ACE, c) -> Fixed:
    """The parameter-free terms of chunk ``c`` to keep for every later evaluation (with the
    harmonics' derivatives ``dy``): about 8·(2·S·K + S + 8·LM + 3) bytes per pair slot (and
    8 more with the ``zbl`` inner cutoff)."""
    return _fixed(ace, c, True)[0]


def _atom_terms(ace: ACE, prepared, c, f: Fixed, y_pullback):
    """:func:`atom_terms` from the chunk's parameter-free terms ``f``; the angular slope by
    ``y_pullback`` if given, else by the kept ``f.dy``."""
    crad, coeff = prepared
    n_el, k = len(ace.elements), ace.nradbase
    n_atoms = c.mask.size
    kept = f.dy is not None
    products = kept or f.y is not None
    lm = (f.dy.shape[3] if kept else f.y.shape[2]) // 2 if products else 0

    def energies(s, weight):
        if products:  # the model's sums: g, V, then Re, Im of Σ_j R_nl Y_lm
            g_sums = [s[:, :, k + 1 + h * k * lm:k + 1 + (h + 1) * k * lm].reshape(
                n_atoms, n_el, k, lm) for h in (0, 1)]
            s = jnp.concatenate([s[:, :, :k + 1],
                                 *_radial_sums(ace, crad, f.element, *g_sums)], axis=2)
        b, rho_core = ace.basis_from_sums(s)
        fcut = ace.core_weight(rho_core, f.element) if weight is None else weight
        return jnp.where(f.live, ace.embedding_energies(coeff, b, rho_core, f.element, fcut),
                         0.0)

    if f.zbl is None:
        e_atoms, pullback = jax.vjp(lambda s: energies(s, None), f.summed)
        w = pullback(jnp.ones_like(e_atoms))[0]  # ∂E_i/∂(sums) (A, S, P)
    else:  # and w_f = ∂E_i/∂f_i of the zbl weight
        e_atoms, pullback = jax.vjp(energies, f.summed, f.zbl)
        w, w_f = pullback(jnp.ones_like(e_atoms))
    w_g = w[:, :, :k].reshape(n_atoms, -1)  # (A, S·K)
    along = (jnp.einsum("aj,amj->am", w_g, f.dgs)
             + jnp.einsum("aj,amj->am", w[:, :, k], f.dhs))  # ∂E/∂r (A, M)
    if f.zbl is not None:
        along = along + w_f[:, None] * f.dzbl
    grad = [0.0, 0.0, 0.0]
    if products:  # real arithmetic throughout, contractions as batched products (dots)
        # Re and Im side by side (A, S·K, 2·LM), as y: one product each for z and q, not two
        w_y = w[:, :, k + 1:].reshape(n_atoms, n_el, 2, k, lm).transpose(0, 1, 3, 2, 4).reshape(
            n_atoms, n_el * k, 2 * lm)
        if kept:
            # zy_c = Σ_lm w̄_klm (Y, ∂Y/∂d_x, ∂Y/∂d_y, ∂Y/∂d_z)_lm per pair and k: one batched
            # product with the kept array (read once forward, once in reverse); then
            # z = zy_0 against g′ and Σ_lm q_lm ∂Y_lm/∂d_a = Σ_k g_k zy_a, both taken over
            # every c and sliced after, behind a barrier: without it XLA fuses the reverse
            # pass's per-pair chain into the (transposing) producer of zy's cotangent and
            # recomputes it per k (about 7 CPU-µs/atom instead of 1.5 on the benchmark)
            zy = jnp.einsum("ajl,amcl->amcj", w_y, f.dy)  # (A, M, 4, S·K)
            both = jax.lax.optimization_barrier(
                jnp.stack([jnp.einsum("amj,amcj->amc", f.dgs, zy),
                           jnp.einsum("amj,amcj->amc", f.gs, zy)]))
            along = along + both[0, :, :, 0]
            grad = list(jnp.moveaxis(both[1, :, :, 1:], 2, 0))
        else:
            z = jnp.einsum("ajl,aml->amj", w_y, f.y)  # (A, M, S·K)
            along = along + jnp.einsum("amj,amj->am", f.dgs, z)
            q = jnp.einsum("ajl,amj->aml", w_y, f.gs)  # (A, M, 2·LM)
            # Σ_lm q_lm ∂Y_lm/∂d: the pull-back of q through Y (no ∂Y/∂d arrays formed)
            slope = y_pullback((q[:, :, :lm].reshape(-1, lm),
                                q[:, :, lm:].reshape(-1, lm)))[0]  # (E, 3)
            grad = [slope[:, a] for a in range(3)]
    along = jnp.where(f.valid, along.reshape(-1), 0.0)
    grad = tuple(jnp.where(f.valid, along * f.u[a] + jnp.reshape(grad[a], -1), 0.0).reshape(
        c.pair_mask.shape) for a in range(3))
    return e_atoms.reshape(c.mask.shape), grad


def atom_terms(ace: ACE, prepared, c, fixed: Fixed | None = None):
    """(energies (n,) of the atom slots, dE/dd (3 × (E,)) of the pair slots) of one flat
    chunk with atom-major pair slots (``c.slots`` per atom slot, E = n·slots) on the full
    list: mask, species, owner, pair_mask, gj, si, sj, d; from the kept ``fixed`` terms of
    :func:`fixed_terms` if given, else computed here."""
    if fixed is not None:
        return _atom_terms(ace, prepared, c, fixed, None)
    return _atom_terms(ace, prepared, c, *_fixed(ace, c, False))


def terms(ace: ACE, prepared, c, fixed: Fixed | None = None):
    """(energy (B,) of the chunk's structure slots, dE/dd (3 × (E,))) of one ACE term (from
    its kept ``fixed`` terms if given)."""
    e_atoms, grad = atom_terms(ace, prepared, c, fixed)
    return jax.ops.segment_sum(e_atoms, c.owner, num_segments=c.e_ref.shape[0]), grad
