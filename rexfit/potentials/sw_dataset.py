"""The analytic dataset kernel of :class:`rexfit.potentials.sw.StillingerWeber`: on the half
neighbour list of a chunk, each pair as two legs (i → j with the ijj entry, j → i with the jii
entry), the three-body energy from per-atom moments of the legs and its derivative carried back
to the legs by hand.  Looked up by :mod:`rexfit.datasets.analytic`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.analytic_dataset import distances, materialise
from rexfit.potentials.manybody_files import SW_PARAMETERS, stack_params
from rexfit.potentials.sw import _EXP_FLOOR, StillingerWeber, leg_cutoff


def prepare(sw: StillingerWeber, params) -> dict:
    """{name: (S³,) values of every element triplet entry}."""
    return stack_params(params, sw.elements, SW_PARAMETERS)


def _leg(p, slot, n: int, r, r2, use):
    """One direction of a Stillinger–Weber pair, centre i → neighbour j, with the values of
    entry ``slot`` (the ijj entry, as :meth:`StillingerWeber._pair_terms`): φ2, dφ2/dr, the
    leg factor g = exp(γσ/(r − aσ)) and dg/dr (B, E), all 0 where the leg is not used."""

    def entry(name):
        return p[name][0] if n == 1 else p[name][slot]

    eps, sigma, a, gamma = (entry(k) for k in ("epsilon", "sigma", "a", "gamma"))
    big_a, big_b, pp, qq, tol = (entry(k) for k in ("A", "B", "p", "q", "tol"))
    cut = sigma * a
    r_cut = leg_cutoff(sigma, a, gamma, tol)
    use = use & (r2 < r_cut * r_cut)
    sigma_s = jnp.where(use, sigma, 1.0)
    x = jnp.where(use, r - cut, -1.0)  # < 0 where used
    log_ratio = jnp.log(sigma_s / r)
    power_p, power_q = jnp.exp(pp * log_ratio), jnp.exp(qq * log_ratio)
    radial = big_a * eps * (big_b * power_p - power_q)
    d_radial = big_a * eps * (qq * power_q - big_b * pp * power_p) / r
    inv_x = sigma_s / x
    e1 = jnp.exp(jnp.maximum(inv_x, _EXP_FLOOR))
    de1 = jnp.where(inv_x > _EXP_FLOOR, -e1 * inv_x / x, 0.0)
    g = jnp.exp(jnp.maximum(gamma * inv_x, _EXP_FLOOR))
    dg = jnp.where(gamma * inv_x > _EXP_FLOOR, -g * gamma * inv_x / x, 0.0)

    def masked(v):
        return jnp.where(use, v, 0.0)

    return (masked(radial * e1), masked(d_radial * e1 + radial * de1), masked(g), masked(dg))


# Channels of the per-atom three-body moments (see StillingerWeber.energy): the symmetric
# tensor T (xx yy zz xy xz yz), the vector v, G = Σ g and Q = Σ g².
_CHANNELS = 11
_TENSOR_WEIGHT = np.array([[[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]]])  # T:T' over six components


def _channels(g, u):
    """Channels (B, E, 11) of legs with factor g (B, E) and unit vectors u (3 × (B, E))."""
    ux, uy, uz = u
    return jnp.stack([g * ux * ux, g * uy * uy, g * uz * uz, g * ux * uy, g * ux * uz,
                      g * uy * uz, g * ux, g * uy, g * uz, g, g * g], axis=-1)


def _leg_gradient(cot, g, dg, u, r):
    """dE/d(leg vector) (3 × (B, E)) of a leg with factor g, slope dg, unit vector u, length
    r, from its centre's moment cotangents ``cot`` (B, E, 11): with A = ∂E/∂T, b = ∂E/∂v,
    α = ∂E/∂G, β = ∂E/∂Q, the leg enters E through g uu, g u, g and g², so

        dE/dd = (uᵀAu + b·u + α + 2βg) g′ u + g [2(Au − (uᵀAu) u) + b − (b·u) u] / r."""
    ux, uy, uz = u
    a = [cot[..., k] for k in range(6)]  # xx yy zz xy xz yz
    au = (a[0] * ux + a[3] * uy + a[4] * uz, a[3] * ux + a[1] * uy + a[5] * uz,
          a[4] * ux + a[5] * uy + a[2] * uz)
    uau = ux * au[0] + uy * au[1] + uz * au[2]
    b = (cot[..., 6], cot[..., 7], cot[..., 8])
    bu = ux * b[0] + uy * b[1] + uz * b[2]
    radial = (uau + bu + cot[..., 9] + 2.0 * cot[..., 10] * g) * dg
    tangential = g / r
    return tuple(radial * uk + tangential * (2.0 * (auk - uau * uk) + bk - bu * uk)
                 for uk, auk, bk in zip(u, au, b))


def terms(sw: StillingerWeber, p: dict, c):
    """(energy (B,), dE/dd (3 × (B, E))) of one Stillinger–Weber term on the half list.

    Each half-list pair is two legs: i → j with the ijj entry and j → i with the jii entry;
    the pair energy is ½(φ2_ijj + φ2_jii) as in :class:`StillingerWeber`.  The three-body
    energy is that of the per-atom moments of :meth:`StillingerWeber.energy`; its derivative
    with respect to each atom's moments is formed per atom and carried back to the legs by
    :func:`_leg_gradient`."""
    n = len(sw.elements)
    b_structures, n_atoms = c.mask.shape
    r2, r = distances(c)
    valid = c.pair_mask & (c.si < n) & (c.sj < n)
    si, sj = jnp.minimum(c.si, n - 1), jnp.minimum(c.sj, n - 1)
    reach2 = np.asarray(sw.reach, dtype=np.float64) ** 2
    r = jnp.where(valid, r, 1.0)
    if n == 1:
        use_ij = use_ji = valid & (r2 < reach2[0, 0])
        slot_ij = slot_ji = None
    else:
        table = jnp.asarray(reach2)
        use_ij, use_ji = valid & (r2 < table[si, sj]), valid & (r2 < table[sj, si])
        slot_ij, slot_ji = (si * n + sj) * n + sj, (sj * n + si) * n + si
    phi_ij, dphi_ij, g_ij, dg_ij = _leg(p, slot_ij, n, r, r2, use_ij)
    if n == 1:  # one entry: both legs of a pair are equal
        phi_ji, dphi_ji, g_ji, dg_ji = phi_ij, dphi_ij, g_ij, dg_ij
    else:
        phi_ji, dphi_ji, g_ji, dg_ji = _leg(p, slot_ji, n, r, r2, use_ji)
    u = tuple(c.d[k] / r for k in range(3))
    minus_u = tuple(-uk for uk in u)

    # moments per (atom slot, neighbour species): segment gi·n + s_j (i → j), gj·n + s_i
    live = jnp.any(c.mask)
    segments = b_structures * n_atoms * n
    seg_ij, seg_ji = (c.gi, c.gj) if n == 1 else (c.gi * n + sj, c.gj * n + si)
    channels = jnp.concatenate([_channels(g_ij, u), _channels(g_ji, minus_u)], axis=1)
    index = jnp.concatenate([seg_ij, seg_ji], axis=1)
    moments = jax.ops.segment_sum(channels.reshape(-1, _CHANNELS), index.reshape(-1),
                                  num_segments=segments)
    moments = materialise(moments, live).reshape(b_structures * n_atoms, n, _CHANNELS)
    tensor, vector, big_g, big_q = (moments[..., :6], moments[..., 6:9], moments[..., 9],
                                    moments[..., 10])

    shape = (n, n, n)
    strength = (p["lambda"] * p["epsilon"]).reshape(shape)
    c0 = p["costheta0"].reshape(shape)
    centre = jnp.minimum(c.species.reshape(-1), n - 1)
    strength, c0 = strength[centre], c0[centre]  # (atoms, n, n)

    def symmetric(m):
        return 0.5 * (m + jnp.swapaxes(m, -1, -2))

    s_t, s_v, s_g = symmetric(strength), symmetric(strength * c0), symmetric(strength * c0 * c0)
    diagonal = jnp.diagonal(strength * (1.0 - c0) ** 2, axis1=-2, axis2=-1)  # (atoms, n)
    # E3_i = ½ Σ_st S_st [T^s:T^t − 2c v^s·v^t + c² G^s G^t] − ½ Σ_s S_ss (1 − c_ss)² Q^s
    d_tensor = jnp.einsum("ast,atk->ask", s_t, tensor)
    d_vector = -2.0 * jnp.einsum("ast,atk->ask", s_v, vector)
    d_g = jnp.einsum("ast,at->as", s_g, big_g)
    d_q = -0.5 * diagonal
    e3 = (0.5 * jnp.sum(d_tensor * tensor * _TENSOR_WEIGHT, axis=(1, 2))
          + 0.5 * jnp.sum(d_vector * vector, axis=(1, 2))
          + 0.5 * jnp.sum(d_g * big_g, axis=1) + jnp.sum(d_q * big_q, axis=1))
    e3 = jnp.where(c.mask.reshape(-1), e3, 0.0).reshape(b_structures, n_atoms)
    cotangents = jnp.concatenate([d_tensor, d_vector, d_g[..., None], d_q[..., None]],
                                 axis=-1).reshape(-1, _CHANNELS)
    cotangents = materialise(cotangents, live)
    cot_ij, cot_ji = cotangents[seg_ij], cotangents[seg_ji]

    leg_ij = _leg_gradient(cot_ij, g_ij, dg_ij, u, r)
    leg_ji = _leg_gradient(cot_ji, g_ji, dg_ji, minus_u, r)
    pair_slope = 0.5 * (dphi_ij + dphi_ji)
    grad = tuple(pair_slope * uk + a - b for uk, a, b in zip(u, leg_ij, leg_ji))
    energy = 0.5 * jnp.sum(phi_ij + phi_ji, axis=1) + jnp.sum(e3, axis=1)
    return energy, grad
