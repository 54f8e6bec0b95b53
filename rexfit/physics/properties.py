"""Energy, forces, virial stress and pressure of a structure, all by autodiff of the energy.

Conventions (SPEC §4): forces F = −∂E/∂x (eV/Å); stress σ = (1/V) ∂E/∂ε (eV/Å³, Voigt order
xx yy zz yz xz xy, positive = tensile, as ASE), ε a homogeneous strain x → x(I + ε);
pressure = −tr σ / 3.  GPa only at the edges: multiply by :data:`EV_PER_A3_TO_GPA`.
Every function takes the potential as its first, static argument and is jitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from rexfit.physics.strain import deform, tensor_to_voigt
from rexfit.potentials.base import Params, Potential
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System

#: 1 eV/Å³ in GPa.
EV_PER_A3_TO_GPA = 160.21766208


def strained_energy(
    potential: Potential, params: Params, system: System, nbrs: NeighborList, strain: jax.Array
) -> jax.Array:
    """E (eV) of ``system`` deformed by the (3, 3) ``strain`` (x → x(I + strain))."""
    return potential.energy(params, deform(system, strain), nbrs)


def virial_from_strain_gradient(grad_strain: jax.Array) -> jax.Array:
    """Symmetric virial W = sym(∂E/∂ε) (3, 3) eV from the gradient w.r.t. a full 3×3 strain."""
    return 0.5 * (grad_strain + grad_strain.T)


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class Evaluation:
    """energy: eV.  forces: (N, 3) eV/Å (0 on padding).  virial: (3, 3) eV, W = ∂E/∂ε.
    stress: (6,) eV/Å³ Voigt, tensile + (W/V; meaningless without periodicity)."""

    energy: jax.Array
    forces: jax.Array
    virial: jax.Array
    stress: jax.Array


@partial(jax.jit, static_argnums=0)
def energy(potential: Potential, params: Params, system: System, nbrs: NeighborList):
    """Total energy (eV)."""
    return potential.energy(params, system, nbrs)


@partial(jax.jit, static_argnums=0)
def forces(potential: Potential, params: Params, system: System, nbrs: NeighborList):
    """Forces −∂E/∂x, (N, 3) eV/Å."""
    grad = jax.grad(lambda x: potential.energy(params, system.replace(positions=x), nbrs))
    return -grad(system.positions)


@partial(jax.jit, static_argnums=0)
def virial(potential: Potential, params: Params, system: System, nbrs: NeighborList):
    """Virial W = ∂E/∂ε (symmetric), (3, 3) eV; defined with or without periodicity."""
    grad = jax.grad(partial(strained_energy, potential, params, system, nbrs))(jnp.zeros((3, 3)))
    return virial_from_strain_gradient(grad)


@partial(jax.jit, static_argnums=0)
def stress(potential: Potential, params: Params, system: System, nbrs: NeighborList):
    """Virial stress σ = (1/V) ∂E/∂ε, (6,) Voigt eV/Å³, positive = tensile."""
    return tensor_to_voigt(virial(potential, params, system, nbrs)) / system.volume


@partial(jax.jit, static_argnums=0)
def pressure(potential: Potential, params: Params, system: System, nbrs: NeighborList):
    """Pressure −tr(σ)/3 in eV/Å³ (positive = compressed)."""
    return -jnp.sum(stress(potential, params, system, nbrs)[:3]) / 3.0


@partial(jax.jit, static_argnums=0)
def evaluate(potential: Potential, params: Params, system: System, nbrs: NeighborList):
    """Energy, forces and stress from one reverse pass → :class:`Evaluation`."""

    def e(positions, strain):
        return strained_energy(potential, params, system.replace(positions=positions), nbrs,
                               strain)

    value, (g_x, g_eps) = jax.value_and_grad(e, argnums=(0, 1))(
        system.positions, jnp.zeros((3, 3))
    )
    w = virial_from_strain_gradient(g_eps)
    sigma = tensor_to_voigt(w) / system.volume
    return Evaluation(energy=value, forces=-g_x, virial=w, stress=sigma)
