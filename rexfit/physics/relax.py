"""Relaxation of a structure's DOFs (lattice parameter, c/a, atom distance, atom positions,
cell strain) within their bounds, for the output phase.

The energy as a function of the relaxed DOFs is jitted; SciPy's bounded L-BFGS-B drives it on
the host, converged tightly (SPEC §4: forces below 1e-6 eV/Å, lattice-DOF gradients below
1e-8). The neighbour list is rebuilt and the relaxation continued whenever atoms or the cell
moved beyond the skin. (Exact parameter gradients through relaxations belong to the training
phase and are added there.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from rexfit.physics.strain import deform, voigt_to_strain
from rexfit.structures.neighbors import build_neighbor_list, needs_rebuild
from rexfit.structures.system import System

LATTICE_DOFS = ("lattice-parameter", "ca-ratio", "atom-distance")
SKIN = 0.5


@dataclass
class Relaxed:
    """A relaxed structure: its system, neighbour list, final DOF values and status."""

    system: System
    nbrs: object
    dofs: dict[str, float]
    converged: bool
    at_bound: list[str]
    message: str
    iterations: int


def _assemble(model, dofs0: dict, names: tuple[str, ...], n_atoms: int, cell_mode: str | None):
    """Build x → System, where x = (lattice DOFs, strain DOFs, displacements)."""
    n_lat = len(names)
    n_strain = {"cell-shape": 6, "cell-volume": 1, None: 0}[cell_mode]

    def system_of(x):
        dofs = dict(dofs0)
        for k, name in enumerate(names):
            dofs[name] = x[k]
        sys = model.make(dofs)
        if n_strain == 6:
            sys = deform(sys, voigt_to_strain(x[n_lat:n_lat + 6]))
        elif n_strain == 1:
            sys = deform(sys, jnp.eye(3) * x[n_lat])
        if n_atoms:
            u = x[n_lat + n_strain:].reshape(n_atoms, 3)
            sys = sys.replace(positions=sys.positions + u)
        return sys

    return system_of, n_lat, n_strain


@partial(jax.jit, static_argnums=(0, 1))
def _hessian(energy_fn, system_of, x, params, nbrs):
    return jax.hessian(lambda y: energy_fn(params, system_of(y), nbrs))(x)


def _newton_polish(energy_fn, system_of, x, params, nbrs, bounds, steps: int = 4,
                   max_dim: int = 300):
    """A few Newton steps on the free DOFs (pseudo-inverse: rigid translations are zero
    modes), kept only while they reduce the gradient. L-BFGS-B stalls a little above the
    tight tolerances the objective needs; Newton converges quadratically from there."""
    if len(x) > max_dim:
        return x
    for _ in range(steps):
        _, g = _value_and_grad(energy_fn, system_of, jnp.asarray(x), params, nbrs)
        g = np.asarray(g)
        free = np.array([not any(b is not None and abs(x[k] - b) < 1e-12 for b in bounds[k])
                         for k in range(len(x))], dtype=bool)
        if not free.any() or np.abs(g[free]).max() < 1e-12:
            break
        h = np.asarray(_hessian(energy_fn, system_of, jnp.asarray(x), params, nbrs))
        step = np.zeros_like(x)
        step[free] = -np.linalg.pinv(h[np.ix_(free, free)], rcond=1e-10) @ g[free]
        trial = x + step
        for k, (lo, hi) in enumerate(bounds):
            trial[k] = np.clip(trial[k], -np.inf if lo is None else lo, np.inf if hi is None else hi)
        _, g2 = _value_and_grad(energy_fn, system_of, jnp.asarray(trial), params, nbrs)
        if np.abs(np.asarray(g2)[free]).max() >= np.abs(g[free]).max():
            break
        x = trial
    return x


@partial(jax.jit, static_argnums=(0, 1))
def _value_and_grad(energy_fn, system_of, x, params, nbrs):
    return jax.value_and_grad(lambda y: energy_fn(params, system_of(y), nbrs))(x)


def relax(model, potential, params, *, max_rounds: int = 8) -> Relaxed:
    """Relax the structure ``model`` (a StructureModel) under ``potential`` with ``params``."""
    names = tuple(n for n in LATTICE_DOFS if n in model.relax and n in model.dofs)
    move_atoms = "atom-coordinates" in model.relax
    cell_mode = ("cell-shape" if "cell-shape" in model.relax
                 else "cell-volume" if "cell-volume" in model.relax else None)
    base = model.make(model.dofs)
    n_atoms = base.natoms if move_atoms else 0
    system_of, n_lat, n_strain = _assemble(model, model.dofs, names, n_atoms, cell_mode)
    x = np.concatenate([np.array([model.dofs[n] for n in names], float),
                        np.zeros(n_strain), np.zeros(3 * n_atoms)])
    bounds = [model.bounds.get(n, (None, None)) for n in names]
    bounds += [(None, None)] * (n_strain + 3 * n_atoms)
    nbrs = build_neighbor_list(base, potential.cutoff, SKIN)
    if x.size == 0:
        return Relaxed(base, nbrs, dict(model.dofs), True, [], "nothing to relax", 0)
    energy_fn = potential.energy
    iterations, result = 0, None
    for _ in range(max_rounds):
        nbrs = build_neighbor_list(system_of(jnp.asarray(x)), potential.cutoff, SKIN)

        def fun(y, nbrs=nbrs):
            v, g = _value_and_grad(energy_fn, system_of, jnp.asarray(y), params, nbrs)
            return float(v), np.asarray(g, dtype=float)

        result = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=bounds,
                          options=dict(maxiter=2000, ftol=1e-16, gtol=1e-10, maxcor=30))
        iterations += int(result.nit)
        moved = bool(needs_rebuild(nbrs, system_of(jnp.asarray(result.x))))
        x = result.x
        if not moved:
            break
    nbrs = build_neighbor_list(system_of(jnp.asarray(x)), potential.cutoff, SKIN)
    x = _newton_polish(energy_fn, system_of, x, params, nbrs, bounds)
    final = system_of(jnp.asarray(x))
    _, grad = _value_and_grad(energy_fn, system_of, jnp.asarray(x), params, nbrs)
    grad = np.asarray(grad)
    at_bound = [n for k, n in enumerate(names)
                if any(b is not None and abs(x[k] - b) < 1e-12 for b in bounds[k])]
    free = np.array([not any(b is not None and abs(x[k] - b) < 1e-12 for b in bounds[k])
                     for k in range(len(x))], dtype=bool)
    g_lat = np.abs(grad[:n_lat][free[:n_lat]]) if n_lat else np.zeros(0)
    g_rest = np.abs(grad[n_lat:])
    converged = bool((g_lat.max(initial=0.0) < 1e-8) and (g_rest.max(initial=0.0) < 1e-6))
    dofs = dict(model.dofs)
    dofs.update({n: float(x[k]) for k, n in enumerate(names)})
    msg = "converged" if converged else (
        f"not converged (largest remaining gradient {max(g_lat.max(initial=0), g_rest.max(initial=0)):.2e})")
    return Relaxed(final, nbrs, dofs, converged, at_bound, msg, iterations)
