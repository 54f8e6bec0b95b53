"""One structure's contribution to the objective: Σ_P w_abs · r(P(x*(θ), θ)) over its fitted
properties, with P computed at the relaxed DOFs x*(θ) (implicitly differentiated). A structure
enters the jitted programs as data (:class:`TermData`) under a static :class:`TermKey`, so
structures with equal keys and array shapes share one program. Residual styles and vector
averaging follow SPEC §4.
"""

from __future__ import annotations

from dataclasses import dataclass
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rexfit.physics.named import (CLAMPED_IONS, ELASTIC, LATTICE, check_wanted,
                                  property_values)
from rexfit.physics.relax import (QUICK_COMPILE_ATOMS, Program, dense_implicit, device_array,
                                  relaxed_coordinates, relaxed_coordinates_vjp)


@dataclass(frozen=True)
class FittedProperty:
    """A property entering the objective: absolute weight, tolerance δ, style, target."""

    name: str
    weight: float
    tolerance: float
    style: str
    target: np.ndarray


def residual(style: str, value, target, tol, xp=jnp):
    """Unweighted residual; vectors average their per-component residuals.  ``xp``: jax.numpy
    (in programs) or numpy (host values: reports, no program per shape)."""
    a = xp.asarray(value)
    t = xp.asarray(target, dtype=a.dtype)
    if style == "squared":
        r = ((a - t) / tol) ** 2
    elif style == "squared-relative":
        r = ((a - t) / t) ** 2
    elif style == "absolute-diff":
        r = xp.abs(a - t) / tol
    else:
        raise ValueError(f"unknown residual style {style!r}")
    return xp.sum(r) / r.size


#: Properties of periodic structures only.
PERIODIC_ONLY = frozenset({"total-volume", "atomic-volume", "stress", "pressure"})


def program_wanted(wanted) -> frozenset:
    """The part of a wanted-property set that changes what :func:`property_values` computes
    (atomic forces; elastic constants, all of them for any one): structures that differ only
    in other wanted properties share their programs."""
    wanted = frozenset(wanted)
    return (wanted & {"atomic-forces"}) | (frozenset({"C11"}) if wanted & ELASTIC else frozenset())


class TermKey:
    """The static part of a structure's term programs: potential (by identity), layout,
    wanted property names and fitted (name, residual style) pairs. Compared by value, so
    structures that agree on these share one compiled program (their DOF values, bounds,
    targets, weights and tolerances are data: :class:`TermData`)."""

    def __init__(self, potential, layout, wanted: frozenset, fitted: tuple):
        self.potential = potential
        self.layout = layout
        self.wanted = frozenset(wanted)
        self.fitted = tuple(fitted)
        self._id = (id(potential), layout, self.wanted, self.fitted)

    def __eq__(self, other):
        return (isinstance(other, TermKey) and self.potential is other.potential
                and self._id == other._id)

    def __hash__(self):
        return hash(self._id)

    def __fingerprint__(self):
        """What identifies the key from one run to the next (rexfit.programs): the
        potential by value, not by identity."""
        return (self.potential, self.layout, self.wanted, self.fitted)


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class TermData:
    """The data of a structure's term: its geometry and, per fitted property, weight,
    tolerance and target."""

    geometry: object
    weights: jax.Array
    tolerances: jax.Array
    targets: tuple


class StructureTerm:
    """A structure ready for the objective: :attr:`key` (static) and :attr:`data`."""

    def __init__(self, spec, problem, potential, wanted: frozenset, fitted: tuple):
        self.spec = spec
        self.problem = problem
        self.potential = potential
        self.wanted = frozenset(wanted)
        self.fitted: tuple[FittedProperty, ...] = tuple(fitted)
        self.share(program_wanted(self.wanted), tuple((fp.name, fp.style)
                                                      for fp in self.fitted))
        #: why the wanted properties cannot be computed, or None
        self.error = check_wanted(problem, self.wanted, spec.id)
        #: property names this structure reports: all but the lattice DOFs it does not have
        #: (and the elastic constants a shared program computes for it unasked)
        self._drop = frozenset(LATTICE) - frozenset(problem.model.dofs)
        if not self.wanted & ELASTIC:
            self._drop |= ELASTIC
        if not all(problem.pbc):  # a shared periodic program computes them all the same
            self._drop |= PERIODIC_ONLY

    def share(self, wanted: frozenset, fitted: tuple, sizes: dict | None = None) -> None:
        """Build :attr:`key` and :attr:`data` for a program computing ``wanted`` (a superset
        of this structure's :func:`program_wanted`) and the residuals of ``fitted`` ((name,
        style) pairs, a superset of this structure's): those it does not fit get weight 0.
        ``sizes``: residual rows per entry of ``fitted`` (for :attr:`rows`)."""
        own = {(fp.name, fp.style): fp for fp in self.fitted}
        #: this structure's rows of the program's residual vector, in the order of its own
        #: fitted properties (None: all of them, in order)
        self.rows = None
        if tuple(fitted) != tuple((fp.name, fp.style) for fp in self.fitted):
            start = np.cumsum([0] + [sizes[f] for f in fitted])
            at = {f: k for k, f in enumerate(fitted)}
            self.rows = np.concatenate(
                [np.arange(start[at[f]], start[at[f] + 1]) for f in
                 ((fp.name, fp.style) for fp in self.fitted)] or [np.zeros(0, int)])
        weights, tolerances, targets = [], [], []
        for name, style in fitted:
            fp = own.get((name, style))
            weights.append(0.0 if fp is None else fp.weight)
            tolerances.append(1.0 if fp is None else fp.tolerance)
            targets.append(np.ones(()) if fp is None else np.asarray(fp.target, np.float64))
        self.key = TermKey(self.potential, self.problem.layout, frozenset(wanted),
                           tuple(fitted))
        self.data = TermData(self.problem.geometry, device_array(np.asarray(weights, float)),
                             device_array(np.asarray(tolerances, float)),
                             tuple(device_array(t) for t in targets))

    @property
    def id(self) -> str:
        return self.spec.id

    def own(self, props: dict) -> dict:
        """``props`` without the lattice DOFs this structure does not have."""
        return {k: v for k, v in props.items() if k not in self._drop}


def _term(key: TermKey, data: TermData, params, x_star, free, nbrs, implicit=True):
    """(value, property values); ``implicit=False`` (no derivatives wanted) leaves out the
    implicit differentiation of x*, whose tracing costs time but whose value is x*;
    ``implicit="vjp"`` (reverse mode only) takes it in dense form where that is small
    (:func:`~rexfit.physics.relax.relaxed_coordinates_vjp`)."""
    if implicit == "vjp" and dense_implicit(data.geometry, params):
        x = relaxed_coordinates_vjp(data.geometry, key.potential, params, x_star, free, nbrs)
    elif implicit:
        x = relaxed_coordinates(data.geometry, key.potential, params, x_star, free, nbrs)
    else:
        x = x_star
    props = property_values(data.geometry, key.potential, params, x, nbrs, key.wanted)
    total = jnp.zeros(())
    for k, (name, style) in enumerate(key.fitted):
        total = total + data.weights[k] * residual(style, _fitted_value(data, k, props[name]),
                                                   data.targets[k], data.tolerances[k])
    return total, props


def _fitted_value(data: TermData, k: int, value):
    """The value of fitted property ``k``; for a structure that shares the program but does
    not fit it (weight 0), its target, so that its residual is an exact zero."""
    target = jnp.broadcast_to(jnp.asarray(data.targets[k], jnp.float64), jnp.shape(value))
    return jnp.where(data.weights[k] > 0, value, target)


def _term_only(key: TermKey, data: TermData, params, x_star, free, nbrs):
    return _term(key, data, params, x_star, free, nbrs, implicit=False)


def _term_reverse(key: TermKey, data: TermData, params, x_star, free, nbrs):
    return _term(key, data, params, x_star, free, nbrs, implicit="vjp")


_term_value = Program(_term_only, static_argnums=0)
_term_value_and_grad = Program(jax.value_and_grad(_term_reverse, argnums=2, has_aux=True),
                               static_argnums=0)


def _check(term: StructureTerm) -> None:
    if term.error is not None:
        raise ValueError(term.error)


def term_value(term: StructureTerm, params, x_star, free, nbrs):
    """(value, property values) of one structure at a relaxed state."""
    _check(term)
    value, props = _term_value.build(term.problem.natoms)(term.key, term.data, params, x_star,
                                                          free, nbrs)
    return value, term.own(props)


def term_value_and_grad(term: StructureTerm, params, x_star, free, nbrs):
    """((value, property values), ∂value/∂params) of one structure at a relaxed state."""
    _check(term)
    program = _term_value_and_grad.build(term.problem.natoms)
    (value, props), g = program(term.key, term.data, params, x_star, free, nbrs)
    return (value, term.own(props)), g


#: Residual styles whose residual is a square, so a structure's term is Σ r² of a vector.
SQUARED_STYLES = ("squared", "squared-relative")


def residual_vector(style: str, value, target, tol, weight):
    """r (flattened) with Σ r² = weight · residual(style, value, target, tol)."""
    a = jnp.ravel(jnp.asarray(value))
    t = jnp.ravel(jnp.asarray(target, dtype=a.dtype))
    if style == "squared":
        d = (a - t) / tol
    elif style == "squared-relative":
        d = (a - t) / t
    else:
        raise ValueError(f"residual style {style!r} is not a square")
    return jnp.sqrt(weight / d.size) * d


def _term_residuals(key: TermKey, data: TermData, params, x_star, free, nbrs):
    x = relaxed_coordinates(data.geometry, key.potential, params, x_star, free, nbrs)
    props = property_values(data.geometry, key.potential, params, x, nbrs, key.wanted)
    return jnp.concatenate([residual_vector(style, _fitted_value(data, k, props[name]),
                                            data.targets[k], data.tolerances[k],
                                            data.weights[k])
                            for k, (name, style) in enumerate(key.fitted)])


#: Parameter trees of at most this many scalars get their residual Jacobian in forward mode
#: (one batched tangent per parameter) rather than reverse mode (one pullback per residual
#: row). Both give the same numbers; forward mode compiles far faster where the residuals
#: already nest derivatives (elastic constants are forward-over-reverse derivatives of the
#: energy, through the implicit relaxation): the reverse pass over that nest made a SNAP
#: lattice's program seven times the size of its residuals and took minutes to compile.
FORWARD_JACOBIAN_LIMIT = 64


def _residuals_and_jacobian(key: TermKey, data: TermData, params, x_star, free, nbrs):
    def fun(p):
        return _term_residuals(key, data, p, x_star, free, nbrs)

    flat, unravel = ravel_pytree(params)
    if not 0 < flat.size <= FORWARD_JACOBIAN_LIMIT:
        return fun(params), jax.jacrev(fun)(params)
    # r and ∂r/∂params from one batched forward pass, laid out as jax.jacrev lays it out
    # (per leaf: the row axis, then the leaf's shape)
    basis = jnp.eye(flat.size, dtype=flat.dtype)
    r, cols = jax.vmap(lambda t: jax.jvp(fun, (params,), (unravel(t),)),
                       out_axes=(None, -1))(basis)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out, start = [], 0
    for leaf in leaves:
        size = int(np.size(leaf))
        out.append(cols[:, start:start + size].reshape((r.shape[0],) + np.shape(leaf)))
        start += size
    return r, jax.tree_util.tree_unflatten(treedef, out)


_term_residuals_and_jacobian = Program(_residuals_and_jacobian, static_argnums=0)


def term_residuals_and_jacobian(term: StructureTerm, params, x_star, free, nbrs):
    """(residual vector r, ∂r/∂params as a pytree with a leading row axis) of one structure."""
    _check(term)
    program = _term_residuals_and_jacobian.build(term.problem.natoms)
    r, jac = program(term.key, term.data, params, x_star, free, nbrs)
    if term.rows is None:
        return r, jac
    return r[term.rows], jax.tree.map(lambda leaf: leaf[term.rows], jac)


def share_programs(terms, limit: int = QUICK_COMPILE_ATOMS) -> None:
    """Give the small structures of a job common programs: those of one potential, with at
    most ``limit`` atoms and no fitted per-atom forces, get one layout
    (x and the atom slots padded to the largest of them; :meth:`RelaxProblem.set_layout`),
    one set of computed properties and one list of fitted residuals (weight 0 where a
    structure does not fit one), so their relaxation and term programs are compiled once.
    Values and derivatives are each structure's own."""
    groups: dict = {}
    for term in terms:
        p = term.problem
        if p.natoms > limit or "atomic-forces" in term.wanted or term.error is not None:
            continue
        groups.setdefault(id(term.potential), []).append(term)
    for group in groups.values():
        if len(group) < 2:
            continue
        problems = [t.problem for t in group]
        size = max(p.ndof for p in problems)
        natoms = max(p.natoms for p in problems)
        strain = any(p.n_strain == 6 for p in problems)
        volume = any(p.n_strain == 1 for p in problems)
        move = any(p.n_move for p in problems)
        # periodic programs when any member is periodic: the others' volume and stress are
        # computed (of their bounding cell) but not reported (:meth:`StructureTerm.own`)
        pbc = (any(all(p.pbc) for p in problems),) * 3
        for p in problems:
            p.set_layout(size, natoms, strain, volume, move, forces=False, pbc=pbc)
        # one term program for all: the elastic constants some of them need are computed
        # for the others too (in reverse mode that costs less than compiling a second
        # program: jobs/al-eam and si-tersoff measured both ways); clamped-ion ones where
        # no structure wanting them relaxes its atoms (no tangents along the atoms: jobs/al-eam's
        # fcc fits C_ij, its hcp and diamond relax atoms but fit none)
        wanted = frozenset().union(*(t.key.wanted for t in group))
        elastic = [t for t in group if t.wanted & ELASTIC]
        if elastic and not any(t.problem.relaxed_ions for t in elastic):
            wanted |= {CLAMPED_IONS}
        fitted = tuple(sorted(set().union(*(t.key.fitted for t in group))))
        sizes = {(fp.name, fp.style): int(np.size(fp.target)) for t in group for fp in t.fitted}
        for t in group:
            t.share(wanted, fitted, sizes)
