"""The analytic dataset kernel of :class:`rexfit.potentials.ace.model.ACE` (non-linear ACE:
fitted radial coefficients crad, several densities, any embedding), on the full neighbour list
of a chunk, where pair (i, j) adds to E_i only.

The standard ACE force algorithm: per pair p = (i, j), d = x_j − x_i, r = |d|, u = d / r, in one
forward sweep the radial basis g_k(r) and core repulsion V(r) with their r-derivatives (the
spline's cubic, as the model's), R_nl = Σ_k crad[μ_i μ_j, n, l, k] g_k and R′_nl likewise,
Y_lm(u) and ∂Y_lm/∂d (forward mode, three tangents); the pair terms
φ_p = [g, V, Re R_nl Y_lm, Im R_nl Y_lm] summed per atom and neighbour element (the model's
:meth:`~rexfit.potentials.ace.model.ACE.pair_terms` and the same scatter); per atom its energy
from those sums (:meth:`~rexfit.potentials.ace.model.ACE.basis_from_sums`, the embedding and
the ``density`` inner cutoff) and the adjoint w_i = ∂E_i/∂(sums) by a ``jax.vjp`` of that
per-atom map; then per pair

    ∂E_i/∂d_p = u (w_g·g′ + w_V V′ + Σ_nl R′_nl Re Σ_m w̄_nlm Y_lm)
                + Re Σ_lm (Σ_n w̄_nlm R_nl) ∂Y_lm/∂d,        w̄ = w_Re − i w_Im,

w gathered from the pair's centre and neighbour element.  Everything is JAX, so the
parameter gradient of a loss is one reverse pass over this forward computation (crad enters
R and R′ linearly, c the per-atom map).  :func:`prepare` runs once per evaluation,
:func:`terms` once per chunk (looked up by :mod:`rexfit.datasets.analytic`).

Not covered (:func:`supported` is False; the engine then takes the autodiff kernel): the
``zbl`` inner cutoff, whose weight depends on each atom's nearest neighbour.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.ace.harmonics import spherical_harmonics
from rexfit.potentials.ace.model import ACE, Y00
from rexfit.potentials.ace.radial import ZBL_INNER


def supported(ace: ACE) -> bool:
    """Whether :func:`terms` covers ``ace``: every inner cutoff but ``zbl``."""
    return all(b.inner != ZBL_INNER for row in ace.bonds for b in row)


def prepare(ace: ACE, params):
    """(crad (T, N, L, K) per ordered pair type, c (F, P) in the tables' column order)."""
    return ace._crad(params), ace._coefficients(params)


def _harmonics_and_slopes(ace: ACE, d):
    """(Re, Im) of Y_lm (E, LM) of the unit vectors of d (E, 3) and of ∂Y_lm/∂d_a
    (3 × (Re, Im)), forward mode."""

    def ylm(v):
        y = spherical_harmonics(v / jnp.sqrt(jnp.sum(v * v, axis=-1))[:, None], ace.lmax)
        return jnp.real(y), jnp.imag(y)

    y, linear = jax.linearize(ylm, d)
    unit = jnp.eye(3, dtype=d.dtype)
    return y, [linear(jnp.broadcast_to(unit[a], d.shape)) for a in range(3)]


def _over_m(values, lmax: int):
    """(E, N, L) → (E, N, LM), each l repeated for its 2l + 1 values of m, by broadcasts (a
    gather is several times slower on XLA's CPU backend, above all in the reverse pass)."""
    e, n, _ = values.shape
    return jnp.concatenate([jnp.broadcast_to(values[:, :, l, None], (e, n, 2 * l + 1))
                            for l in range(lmax + 1)], axis=2)


def _radial_types(values, crad, t):
    """Σ_k values[e, k] crad[t_e, n, l, k] → (E, N, L), as the model combines them."""
    if crad.shape[0] == 1:
        return jnp.einsum("ek,nlk->enl", values, crad[0])
    pick = (t[:, None] == jnp.arange(crad.shape[0])[None, :]).astype(values.dtype)
    return jnp.einsum("et,etnl->enl", pick, jnp.einsum("ek,tnlk->etnl", values, crad))


def _sums(parts: list, c, ej, n_atoms: int, n_el: int):
    """(Σ of the pair rows ``parts`` (a list of (E, P_k)) per atom slot and neighbour element,
    concatenated (A, S, Σ P_k); the map from such a per-atom array back to the pairs, as the
    list of (E, P_k)).  Reshapes and sums on an atom-major chunk (``c.slots``), else a scatter
    and gathers.  Piece by piece, not one concatenated (E, Σ P_k) array: XLA's CPU backend
    fuses the pads of the concatenation's transpose into slow loops (a third of the gradient)."""
    sizes = np.cumsum([p.shape[1] for p in parts])[:-1]
    if c.slots:
        shape = (n_atoms, c.slots)
        if n_el == 1:
            summed = [p.reshape(shape + p.shape[1:]).sum(axis=1) for p in parts]

            def gather(w):
                return [jnp.broadcast_to(x[:, None, :], shape + x.shape[1:]).reshape(
                    -1, x.shape[1]) for x in jnp.split(w[:, 0], sizes, axis=1)]
        else:
            which = (ej.reshape(shape + (1,)) == jnp.arange(n_el)).astype(parts[0].dtype)
            summed = [jnp.einsum("amp,ams->asp", p.reshape(shape + p.shape[1:]), which)
                      for p in parts]

            def gather(w):
                return [jnp.einsum("asp,ams->amp", x, which).reshape(-1, x.shape[2])
                        for x in jnp.split(w, sizes, axis=2)]
    else:
        slot = c.gi.reshape(-1) * n_el + ej
        summed = [jax.ops.segment_sum(p, slot, num_segments=n_atoms * n_el).reshape(
            n_atoms, n_el, -1) for p in parts]

        def gather(w):
            w = w.reshape(n_atoms * n_el, -1)
            return [x[slot] for x in jnp.split(w, sizes, axis=1)]
    if n_el == 1 and c.slots:
        summed = [x[:, None, :] for x in summed]
    return jnp.concatenate(summed, axis=2), gather


def atom_terms(ace: ACE, prepared, c):
    """(energies (B, n) of the atom slots, dE/dd (3 × (B, E)) of the pair slots) of one
    chunk with analytic fields on the full list (mask, species, pair_mask, gi, si, sj, d)."""
    crad, coeff = prepared
    tab = ace.tables
    n_el = len(ace.elements)
    atoms = c.mask.shape
    n_atoms = atoms[0] * atoms[1]
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
    (g, hc), (dg, dhc) = jax.jvp(lambda x: ace._radial(x, t), (r,), (jnp.ones_like(r),))
    keep = valid[:, None]
    g, dg = jnp.where(keep, g, 0.0), jnp.where(keep, dg, 0.0)
    hc, dhc = jnp.where(valid, hc, 0.0), jnp.where(valid, dhc, 0.0)
    parts = [g * Y00, hc[:, None]]
    products = bool(tab.products)
    if products:
        radial = _over_m(_radial_types(g, crad, t), ace.lmax)  # (E, N, LM)
        slope = _over_m(_radial_types(dg, crad, t), ace.lmax)
        safe = jnp.where(keep, d, jnp.asarray([1.0, 0.0, 0.0], d.dtype))  # no 0/0 anywhere
        (y_re, y_im), dy = _harmonics_and_slopes(ace, safe)
        parts += [(radial * y_re[:, None, :]).reshape(r.shape[0], -1),
                  (radial * y_im[:, None, :]).reshape(r.shape[0], -1)]
    summed, gather = _sums(parts, c, ej, n_atoms, n_el)

    def energies(s):
        b, rho_core = ace.basis_from_sums(s)
        fcut = ace.core_weight(rho_core, element)
        return jnp.where(live, ace.embedding_energies(coeff, b, rho_core, element, fcut), 0.0)

    e_atoms, pullback = jax.vjp(energies, summed)
    w = gather(pullback(jnp.ones_like(e_atoms))[0])  # the pieces of parts, per pair
    along = jnp.sum(w[0] * dg, axis=1) + w[1][:, 0] * dhc  # ∂E/∂r
    grad = [0.0, 0.0, 0.0]
    if products:  # real arithmetic throughout (XLA's CPU code for complex is slower)
        shape = (r.shape[0], -1, y_re.shape[1])
        w_re, w_im = w[2].reshape(shape), w[3].reshape(shape)
        along = along + jnp.sum(slope * (w_re * y_re[:, None, :] + w_im * y_im[:, None, :]),
                                axis=(1, 2))
        q_re, q_im = jnp.sum(w_re * radial, axis=1), jnp.sum(w_im * radial, axis=1)
        grad = [jnp.sum(q_re * dy_re + q_im * dy_im, axis=1) for dy_re, dy_im in dy]
    along = jnp.where(valid, along, 0.0)
    grad = tuple(jnp.where(valid, along * u[:, a] + grad[a], 0.0).reshape(c.pair_mask.shape)
                 for a in range(3))
    return e_atoms.reshape(atoms), grad


def terms(ace: ACE, prepared, c):
    """(energy (B,), dE/dd (3 × (B, E))) of one ACE term."""
    e_atoms, grad = atom_terms(ace, prepared, c)
    return jnp.sum(e_atoms, axis=1), grad
