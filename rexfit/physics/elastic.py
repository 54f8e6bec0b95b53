"""Elastic constants C_ij = ∂σ_i/∂ε_j of the current structure, by forward-mode autodiff.

σ(ε) is the virial stress (Voigt, tensile +) of the structure homogeneously deformed by the
Voigt strain ε (engineering shears: ε4 = 2e_yz, ε5 = 2e_xz, ε6 = 2e_xy), so at finite stress
C is ∂σ/∂ε as atomicrex reports, not (1/V)∂²E/∂ε².  Clamped-ion C⁰ keeps the atoms on the
strained lattice; relaxed-ion C = C⁰ − (1/V) Ξᵀ H⁺ Ξ (H = ∂²E/∂x², Ξ = ∂²E/∂x∂ε) lets them
relax, exactly, assuming zero forces.  Results in eV/Å³ (× EV_PER_A3_TO_GPA for GPa).
The dense Hessian is (3N)², meant for the small cells that fits use.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.physics.properties import strained_energy, virial_from_strain_gradient
from rexfit.physics.strain import deform, tensor_to_voigt, voigt_to_strain
from rexfit.potentials.base import Params, Potential
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System


def stress_at_strain(
    potential: Potential, params: Params, system: System, nbrs: NeighborList, voigt: jax.Array
) -> jax.Array:
    """Voigt stress (6,) eV/Å³ of ``system`` deformed by the Voigt strain ``voigt`` (6,)."""
    strained = deform(system, voigt_to_strain(voigt))
    grad = jax.grad(partial(strained_energy, potential, params, strained, nbrs))(
        jnp.zeros((3, 3))
    )
    return tensor_to_voigt(virial_from_strain_gradient(grad)) / strained.volume


def _require_periodic(system: System) -> None:
    if not all(system.pbc):
        raise ValueError("elastic constants need a cell periodic in all three directions")


@partial(jax.jit, static_argnums=0)
def clamped_ion_elastic_constants(
    potential: Potential, params: Params, system: System, nbrs: NeighborList
) -> jax.Array:
    """Clamped-ion C⁰_ij = ∂σ_i/∂ε_j, (6, 6) eV/Å³ (atoms follow the strain affinely)."""
    _require_periodic(system)
    return jax.jacfwd(partial(stress_at_strain, potential, params, system, nbrs))(jnp.zeros(6))


def _internal_strain(potential, params, system, nbrs) -> jax.Array:
    """Ξ = ∂(∂E/∂x)/∂ε, (3N, 6) eV/Å: force response to a Voigt strain."""

    def grad_x(voigt):
        strained = deform(system, voigt_to_strain(voigt))
        g = jax.grad(lambda x: potential.energy(params, strained.replace(positions=x), nbrs))
        return g(strained.positions).reshape(-1)

    return jax.jacfwd(grad_x)(jnp.zeros(6))


def _hessian(potential, params, system, nbrs) -> jax.Array:
    """H = ∂²E/∂x², (3N, 3N) eV/Å²."""
    n = system.natoms

    def e(flat):
        return potential.energy(params, system.replace(positions=flat.reshape(n, 3)), nbrs)

    return jax.jacfwd(jax.grad(e))(system.positions.reshape(-1))


def internal_relaxation_correction(
    potential: Potential, params: Params, system: System, nbrs: NeighborList
) -> jax.Array:
    """(1/V) Ξᵀ H⁺ Ξ, (6, 6) eV/Å³, with the three rigid translations projected out.

    Padding atoms are decoupled (unit diagonal); H⁺ is applied by solving the regularised
    system (H + T Tᵀ) X = Ξ, T the orthonormal translation modes of the real atoms.
    """
    h = _hessian(potential, params, system, nbrs)
    xi = _internal_strain(potential, params, system, nbrs)
    return relaxation_correction(h, xi, system)


@partial(jax.jit, static_argnums=0)
def relaxed_ion_elastic_constants(
    potential: Potential, params: Params, system: System, nbrs: NeighborList
) -> jax.Array:
    """Relaxed-ion C = C⁰ − (1/V) Ξᵀ H⁺ Ξ, (6, 6) eV/Å³; atoms must be relaxed (zero forces)."""
    _require_periodic(system)
    c0 = clamped_ion_elastic_constants(potential, params, system, nbrs)
    return c0 - internal_relaxation_correction(potential, params, system, nbrs)


def relaxation_correction(h: jax.Array, xi: jax.Array, system: System) -> jax.Array:
    """(1/V) Ξᵀ H⁺ Ξ from the Hessian H (3N, 3N) and internal strain Ξ (3N, 6), as
    :func:`internal_relaxation_correction` computes it."""
    n = system.natoms
    real = jnp.repeat(system.mask, 3).astype(h.dtype)
    count = jnp.sum(system.mask)
    modes = (jnp.tile(jnp.eye(3), (n, 1)) * real[:, None]) / jnp.sqrt(count)  # (3N, 3)
    scale = jnp.maximum(jnp.max(jnp.abs(jnp.diagonal(h))), 1.0)
    h = h * jnp.outer(real, real) + jnp.diag(1.0 - real)
    h = h + scale * modes @ modes.T
    xi = xi * real[:, None]
    xi = xi - modes @ (modes.T @ xi)
    x = jnp.linalg.solve(h, xi)
    return (xi.T @ x) / system.volume


def evaluate_with_elastic_constants(potential: Potential, params: Params, system: System,
                                    nbrs: NeighborList, relaxed_ions, ions: bool | None = None):
    """(:class:`~rexfit.physics.properties.Evaluation`, C (6, 6) eV/Å³) from one
    forward-over-reverse pass: energy, forces and stress are its primal outputs, and its
    tangents along the 6 Voigt strains (and, for relaxed-ion C, the 3N atomic displacements)
    give C⁰, Ξ and H. The same values as :func:`rexfit.physics.properties.evaluate` with
    :func:`clamped_ion_elastic_constants` or :func:`relaxed_ion_elastic_constants`, in a
    program about a third the size of those three passes.

    ``relaxed_ions`` may be a traced flag (structures sharing a program): then ``ions``
    (static) says whether the displacement tangents are taken at all, and the internal
    relaxation correction is applied where the flag is set.
    """
    from rexfit.physics.properties import Evaluation

    _require_periodic(system)
    n = system.natoms

    def response(voigt, u):
        strained = deform(system, voigt_to_strain(voigt))
        moved = strained.replace(positions=strained.positions + u.reshape(n, 3))

        def e(positions, strain):
            return strained_energy(potential, params, moved.replace(positions=positions), nbrs,
                                   strain)

        value, (g_x, g_eps) = jax.value_and_grad(e, argnums=(0, 1))(moved.positions,
                                                                    jnp.zeros((3, 3)))
        w = virial_from_strain_gradient(g_eps)
        return value, g_x, w, tensor_to_voigt(w) / moved.volume

    if ions is None:
        if not isinstance(relaxed_ions, (bool, np.bool_)):
            raise ValueError("a traced relaxed_ions flag needs the static 'ions'")
        ions = bool(relaxed_ions)
    zero_v, zero_u = jnp.zeros(6), jnp.zeros(3 * n)
    width = 6 + (3 * n if ions else 0)

    def push(t):
        if ions:
            return jax.jvp(response, (zero_v, zero_u), (t[:6], t[6:]))
        return jax.jvp(lambda v: response(v, zero_u), (zero_v,), (t,))

    (value, g_x, w, sigma), (_, dg, _, dsigma) = jax.vmap(
        push, out_axes=((None,) * 4, (-1,) * 4))(jnp.eye(width))
    ev = Evaluation(energy=value, forces=-g_x, virial=w, stress=sigma)
    c0 = dsigma[:, :6]
    if not ions:
        return ev, c0
    dg = dg.reshape(3 * n, width)
    h, xi = dg[:, 6:], dg[:, :6]
    # a structure whose atoms are not relaxed gets no correction: exact zeros from a
    # regular system (a clamped structure's Hessian may be singular)
    on = jnp.asarray(relaxed_ions, bool)
    h = jnp.where(on, h, jnp.eye(3 * n, dtype=h.dtype))
    xi = jnp.where(on, xi, 0.0)
    return ev, c0 - relaxation_correction(h, xi, system)


def bulk_modulus(c: jax.Array) -> jax.Array:
    """Voigt-average bulk modulus [(C11+C22+C33) + 2(C12+C13+C23)]/9; (C11+2C12)/3 if cubic."""
    return (c[0, 0] + c[1, 1] + c[2, 2] + 2.0 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9.0


def shear_modulus(c: jax.Array) -> jax.Array:
    """Voigt-average shear modulus [(C11+C22+C33) − (C12+C13+C23) + 3(C44+C55+C66)]/15."""
    diag = c[0, 0] + c[1, 1] + c[2, 2]
    off = c[0, 1] + c[0, 2] + c[1, 2]
    shear = c[3, 3] + c[4, 4] + c[5, 5]
    return (diag - off + 3.0 * shear) / 15.0
