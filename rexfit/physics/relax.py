"""Relaxation of a structure's DOFs within their bounds, and its exact parameter derivative.

A :class:`RelaxProblem` maps a flat vector x = (lattice DOFs, cell strain, atomic displacements)
to a :class:`System`. :func:`relax` minimises E(x, θ) for fixed potential parameters θ:

* up to :data:`DENSE_LIMIT` DOFs, a jitted projected Newton iteration (dense Hessian,
  eigenvalues made positive, backtracking line search, rigid translations dropped as zero
  modes) inside one ``lax.while_loop``; it converges quadratically to far below the SPEC §4
  tolerances (forces 1e-6 eV/Å, lattice/strain gradients 1e-8);
* above it, SciPy's L-BFGS-B driven from the host with a jitted energy and gradient.

A DOF that ends on its ``min``/``max`` with the gradient pushing outward is *at its bound*: it
is held there. The neighbour list is rebuilt and the relaxation continued whenever the
geometry moved beyond the skin.

:func:`relaxed_coordinates` makes x*(θ) differentiable: ``jax.lax.custom_root`` applies the
implicit function theorem at the relaxed state, dx*/dθ = −H⁻¹ ∂²E/∂x∂θ, solving with the
Hessian–vector product and conjugate gradients. DOFs at a bound are fixed (zero derivative);
the three rigid translations are projected out. Nothing is differentiated through the
relaxation iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from rexfit.physics.strain import deform, voigt_to_strain
from rexfit.potentials.lists import build_lists
from rexfit.structures.neighbors import needs_rebuild
from rexfit.structures.system import System

LATTICE_DOFS = ("lattice-parameter", "ca-ratio", "atom-distance")
SKIN = 0.5
#: Relaxed-DOF count above which the host L-BFGS-B path replaces dense Newton.
DENSE_LIMIT = 768
#: SPEC §4 convergence: lattice/strain gradient (eV per unit DOF) and force (eV/Å).
LATTICE_TOLERANCE = 1e-8
FORCE_TOLERANCE = 1e-6
#: Largest Newton step component (Å for lengths, dimensionless for strains/ratios).
MAX_STEP = 0.3


class RelaxProblem:
    """The relaxed DOFs of one structure as a flat vector and the map x → System.

    Hashable by identity, so it can be a static argument of jitted functions: build one per
    structure and keep it.
    """

    def __init__(self, model, potential):
        self.model = model
        #: The potential whose neighbour data (pairs, and triplets for three-body terms) the
        #: lists carry; only its structure is used, never its parameters.
        self.potential = potential
        self.cutoff = float(potential.cutoff)
        self.names = tuple(n for n in LATTICE_DOFS if n in model.relax and n in model.dofs)
        self.cell_mode = ("cell-shape" if "cell-shape" in model.relax
                          else "cell-volume" if "cell-volume" in model.relax else None)
        base = model.make(model.dofs)
        self.natoms = base.natoms
        self.pbc = tuple(base.pbc)
        #: Real (non-padding) atoms, host-side.
        self.real = np.asarray(base.mask, bool)
        self.nreal = int(self.real.sum())
        self.n_lat = len(self.names)
        self.n_strain = {"cell-shape": 6, "cell-volume": 1, None: 0}[self.cell_mode]
        self.n_move = base.natoms if "atom-coordinates" in model.relax else 0
        self.size = self.n_lat + self.n_strain + 3 * self.n_move
        lo = [model.bounds.get(n, (None, None))[0] for n in self.names]
        hi = [model.bounds.get(n, (None, None))[1] for n in self.names]
        pad = [None] * (self.size - self.n_lat)
        self.lower = np.array([-np.inf if v is None else v for v in lo + pad], float)
        self.upper = np.array([np.inf if v is None else v for v in hi + pad], float)
        self.x0 = np.concatenate([np.array([model.dofs[n] for n in self.names], float),
                                  np.zeros(self.size - self.n_lat)])
        # Gradient tolerance per component: lattice and strain DOFs tighter than forces.
        self.tolerance = np.concatenate([np.full(self.n_lat + self.n_strain, LATTICE_TOLERANCE),
                                         np.full(3 * self.n_move, FORCE_TOLERANCE)])
        modes = np.zeros((self.size, 3))
        if self.n_move:
            real = self.real
            for k in range(3):
                block = np.zeros((self.n_move, 3))
                block[real, k] = 1.0
                modes[self.n_lat + self.n_strain:, k] = block.reshape(-1)
            modes /= np.sqrt(max(real.sum(), 1))
        #: Orthonormal rigid-translation modes (size, 3); zero if atoms do not move.
        self.translations = modes
        self._capacity = 0
        self._triplet_capacity = 0

    def system(self, x) -> System:
        """The structure at DOF vector ``x`` (differentiable)."""
        dofs = dict(self.model.dofs)
        for k, name in enumerate(self.names):
            dofs[name] = x[k]
        sys = self.model.make(dofs)
        if self.n_strain == 6:
            sys = deform(sys, voigt_to_strain(x[self.n_lat:self.n_lat + 6]))
        elif self.n_strain == 1:
            sys = deform(sys, jnp.eye(3) * x[self.n_lat])
        if self.n_move:
            u = x[self.n_lat + self.n_strain:].reshape(self.n_move, 3)
            sys = sys.replace(positions=sys.positions + u)
        return sys

    def lattice_values(self, x) -> dict:
        """{lattice DOF name: value} at ``x`` (relaxed ones from x, the others as given)."""
        out = {k: v for k, v in self.model.dofs.items()}
        for k, name in enumerate(self.names):
            out[name] = x[k]
        return out

    def neighbors(self, x):
        """A neighbour list at ``x`` (with triplets if the potential needs them). Its capacities
        never shrink below the largest ones this structure needed so far, so a fit does not
        recompile when a cell expands and shrinks."""
        system = self.system(jnp.asarray(x))

        def build(capacity, triplet_capacity):
            return build_lists(self.potential, system, SKIN, capacity=capacity or None,
                               triplet_capacity=triplet_capacity or None)

        try:
            nbrs = build(self._capacity, self._triplet_capacity)
        except ValueError:  # needs more room than before: grow, never shrink
            fresh = build(None, None)
            fresh_triplets = getattr(fresh, "triplets", None)
            nbrs = build(max(self._capacity, fresh.capacity),
                         max(self._triplet_capacity,
                             0 if fresh_triplets is None else fresh_triplets.capacity))
        self._capacity = max(self._capacity, nbrs.capacity)
        triplets = getattr(nbrs, "triplets", None)
        if triplets is not None:
            self._triplet_capacity = max(self._triplet_capacity, triplets.capacity)
        return nbrs


@dataclass
class Relaxed:
    """A relaxed structure: DOF vector, system, neighbour list and status."""

    problem: RelaxProblem
    x: np.ndarray
    system: System
    nbrs: object
    dofs: dict[str, float]
    free: np.ndarray  # bool per DOF: False where held at a bound
    converged: bool
    at_bound: list[str]
    message: str
    iterations: int
    saddle: bool = False


# ----------------------------------------------------------------------------- Newton


def _energy(problem, potential, params, nbrs, x):
    return potential.energy(params, problem.system(x), nbrs)


@partial(jax.jit, static_argnums=(0, 1, 6))
def _newton(problem, potential, params, x0, nbrs, scale, max_iter: int = 100):
    """Projected, eigenvalue-modified Newton with backtracking; returns
    (x, gradient, iterations, smallest relative curvature of the kept modes)."""
    lower = jnp.asarray(problem.lower)
    upper = jnp.asarray(problem.upper)
    tol = jnp.asarray(problem.tolerance) * 1e-3
    vg = jax.value_and_grad(partial(_energy, problem, potential, params, nbrs))
    hess = jax.hessian(partial(_energy, problem, potential, params, nbrs))

    def free_of(x, g):
        return ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)))

    def gmax(x, g):
        return jnp.max(jnp.abs(jnp.where(free_of(x, g), g, 0.0)) / tol)

    def step(state):
        k, x, e, g, _, _ = state
        fm = free_of(x, g).astype(x.dtype)
        h = hess(x) * jnp.outer(fm, fm) + jnp.diag(1.0 - fm)
        lam, q = jnp.linalg.eigh(h)
        big = jnp.max(jnp.abs(lam))
        keep = jnp.abs(lam) > 1e-10 * big
        denom = jnp.where(keep, jnp.maximum(jnp.abs(lam), 1e-8 * big), 1.0)
        gq = q.T @ (g * fm)
        p = -q @ jnp.where(keep, gq / denom, 0.0)
        p = p * jnp.minimum(1.0, MAX_STEP * scale / jnp.maximum(jnp.max(jnp.abs(p) / scale), 1e-300))
        slope = jnp.dot(g, p)
        g0 = gmax(x, g)

        def trial(alpha):
            xt = jnp.clip(x + alpha * p, lower, upper)
            et, gt = vg(xt)
            return xt, et, gt

        def accept(alpha, et, gt, xt):
            armijo = et <= e + 1e-4 * alpha * slope
            flat = (et <= e + 1e-12 * (1.0 + jnp.abs(e))) & (gmax(xt, gt) < g0)
            return armijo | flat

        def ls_cond(c):
            alpha, xt, et, gt, ok = c
            return (~ok) & (alpha > 1e-10)

        def ls_body(c):
            alpha = c[0] * 0.5
            xt, et, gt = trial(alpha)
            return alpha, xt, et, gt, accept(alpha, et, gt, xt)

        xt, et, gt = trial(1.0)
        alpha, xt, et, gt, ok = jax.lax.while_loop(
            ls_cond, ls_body, (1.0, xt, et, gt, accept(1.0, et, gt, xt)))
        curv = jnp.min(jnp.where(keep & (fm @ (q * q) > 0.5), lam / big, jnp.inf))
        x, e, g = (jnp.where(ok, xt, x), jnp.where(ok, et, e), jnp.where(ok, gt, g))
        return k + 1, x, e, g, ~ok, curv

    def cond(state):
        k, x, _, g, stalled, _ = state
        return (k < max_iter) & (~stalled) & (gmax(x, g) > 1.0)

    e0, g0 = vg(x0)
    k, x, _, g, _, curv = jax.lax.while_loop(
        cond, step, (0, x0, e0, g0, jnp.asarray(False), jnp.asarray(jnp.inf)))
    return x, g, k, curv


@partial(jax.jit, static_argnums=(0, 1))
def _value_and_grad(problem, potential, params, x, nbrs):
    return jax.value_and_grad(partial(_energy, problem, potential, params, nbrs))(x)


def _lbfgs(problem, potential, params, x, nbrs):
    """Host L-BFGS-B for problems too large for a dense Hessian."""
    bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
              for lo, hi in zip(problem.lower, problem.upper)]

    def fun(y):
        v, g = _value_and_grad(problem, potential, params, jnp.asarray(y), nbrs)
        return float(v), np.asarray(g, dtype=float)

    res = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(maxiter=5000, ftol=1e-16, gtol=1e-10, maxcor=30))
    _, g = _value_and_grad(problem, potential, params, jnp.asarray(res.x), nbrs)
    return res.x, np.asarray(g), int(res.nit), np.inf


def _length_scale(problem) -> np.ndarray:
    """Typical size of a unit change per DOF: Å for lengths, 0.1 for strains, ratios."""
    scale = np.ones(problem.size)
    for k, name in enumerate(problem.names):
        if name == "ca-ratio":
            scale[k] = 0.1
    scale[problem.n_lat:problem.n_lat + problem.n_strain] = 0.1
    return scale


def relax(problem: RelaxProblem, potential, params, x0=None, nbrs=None,
          max_rounds: int = 8) -> Relaxed:
    """Relax ``problem`` under ``potential`` with ``params``, starting from ``x0`` (default:
    the structure's own DOF values). ``nbrs`` may be a neighbour list to reuse if still valid."""
    x = np.array(problem.x0 if x0 is None else x0, dtype=float)
    if nbrs is None or bool(needs_rebuild(nbrs, problem.system(jnp.asarray(x)))):
        nbrs = problem.neighbors(x)
    if problem.size == 0:
        dofs = {k: float(v) for k, v in problem.model.dofs.items()}
        return Relaxed(problem, x, problem.system(jnp.asarray(x)), nbrs, dofs,
                       np.zeros(0, bool), True, [], "nothing to relax", 0)
    scale = jnp.asarray(_length_scale(problem))
    iterations, curv = 0, np.inf
    for _ in range(max_rounds):
        if problem.size <= DENSE_LIMIT:
            xn, g, k, curv = _newton(problem, potential, params, jnp.asarray(x), nbrs, scale)
            xn, g, k, curv = np.asarray(xn), np.asarray(g), int(k), float(curv)
        else:
            xn, g, k, curv = _lbfgs(problem, potential, params, x, nbrs)
        iterations += k
        x = xn
        if not bool(needs_rebuild(nbrs, problem.system(jnp.asarray(x)))):
            break
        nbrs = problem.neighbors(x)
    else:
        _, g = _value_and_grad(problem, potential, params, jnp.asarray(x), nbrs)
        g = np.asarray(g)
    return _finish(problem, x, g, nbrs, iterations, curv)


def _finish(problem, x, g, nbrs, iterations, curv) -> Relaxed:
    lo_hit = (x <= problem.lower) & (g > 0)
    hi_hit = (x >= problem.upper) & (g < 0)
    free = ~(lo_hit | hi_hit)
    at_bound = [n for k, n in enumerate(problem.names) if not free[k]]
    worst = np.max(np.where(free, np.abs(g) / problem.tolerance, 0.0))
    converged = bool(np.isfinite(worst) and worst <= 1.0)
    saddle = bool(np.isfinite(curv) and curv < -1e-8)
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(g)):
        message = "diverged (non-finite energy gradient)"
        converged = False
    elif not converged:
        k = int(np.argmax(np.where(free, np.abs(g) / problem.tolerance, 0.0)))
        message = (f"not converged: largest remaining gradient {abs(g[k]):.2e} "
                   f"(tolerance {problem.tolerance[k]:.0e})")
    elif saddle:
        message = "converged to a saddle point (negative curvature)"
    else:
        message = "converged"
    if at_bound:
        message += "; at bound: " + ", ".join(at_bound)
    dofs = {k: float(v) for k, v in problem.lattice_values(x).items()}
    return Relaxed(problem, x, problem.system(jnp.asarray(x)), nbrs, dofs, free, converged,
                   at_bound, message, iterations, saddle)


# ----------------------------------------------------------------------------- implicit


def relaxed_coordinates(problem: RelaxProblem, potential, params, x_star, free, nbrs):
    """x*(θ) = ``x_star`` with the exact derivative dx*/dθ by implicit differentiation.

    ``x_star`` must be a relaxed state of ``params`` (from :func:`relax`); ``free`` marks the
    DOFs not held at a bound. The optimality condition handed to ``custom_root`` is
    f(x) = ∂E/∂x (free DOFs, fixed ones frozen at x*) + T Tᵀ (x − x*) (translations T) on the
    free DOFs and x − x* on the fixed ones: its Jacobian is symmetric and, at a minimum,
    positive definite, so conjugate gradients solve the tangent systems.
    """
    if problem.size == 0:
        return x_star
    x_star = jax.lax.stop_gradient(x_star)
    fm = jnp.asarray(free, x_star.dtype)
    t = jnp.asarray(problem.translations)

    def optimality(x):
        xf = jnp.where(free, x, x_star)
        g = jax.grad(partial(_energy, problem, potential, params, nbrs))(xf)
        d = x - x_star
        return jnp.where(free, g + t @ (t.T @ d), d)

    def solve(f, x0):
        return x_star

    def tangent_solve(g, y):
        # Translation components of y are zero for translation-invariant objectives; drop
        # any round-off there so CG stays in the range of the Hessian.
        y = y - t @ (t.T @ (y * fm))
        cg = partial(conjugate_gradient, maxiter=10 * problem.size + 50)
        return jax.lax.custom_linear_solve(g, y, solve=cg, symmetric=True)

    return jax.lax.custom_root(optimality, x_star, solve, tangent_solve)


def conjugate_gradient(apply, b, *, rtol: float = 1e-13, maxiter: int = 1000):
    """Solve A x = b for symmetric positive-definite A given as ``apply`` (plain CG in a
    ``lax.while_loop``; no custom linear solve inside, so it nests in ``custom_root``)."""
    bnorm = jnp.sqrt(jnp.vdot(b, b))
    stop = (rtol * bnorm) ** 2

    def cond(c):
        k, _, _, _, rr = c
        return (k < maxiter) & (rr > stop)

    def body(c):
        k, x, r, p, rr = c
        ap = apply(p)
        alpha = rr / jnp.vdot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = jnp.vdot(r, r)
        p = r + (rr_new / rr) * p
        return k + 1, x, r, p, rr_new

    x0 = jnp.zeros_like(b)
    _, x, _, _, _ = jax.lax.while_loop(cond, body, (0, x0, b, b, jnp.vdot(b, b)))
    return x
