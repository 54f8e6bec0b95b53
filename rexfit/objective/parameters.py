"""The fit vector: fitted DOFs scaled to order one, their bounds, and the map back to the named
parameter tree (with ``<parameter-constraints>`` applied).

A fitted parameter p with initial value p₀ is moved by the minimizer as u = p / s with
s = |p₀| (1 when p₀ = 0), so a parameter of size 500 and one of size 1 both take steps of
order one (SPEC §5); a DOF may set its own s (network weights: 1, whatever their random
initial values). Bounds are scaled the same way. Dependent DOFs (constraints) are
never fitted: they are recomputed from the others, differentiably, every time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rexfit import expr as ex
from rexfit.errors import InputError, InputErrors
from rexfit.model.potentials import PotentialModel, get_path, set_path


class ParameterSpace:
    """Scaled fit vector u ↔ parameter tree of a :class:`PotentialModel`."""

    def __init__(self, pm: PotentialModel, constraints=()):
        self.pm = pm
        by_name = {e.name: e for e in pm.entries}
        dependent = {c.dependent_dof for c in constraints}
        self.fitted = [e for e in pm.entries if e.fit and e.name not in dependent]
        self.scale = np.array([e.scale if e.scale is not None else
                               abs(e.initial) if e.initial not in (0.0, None) else 1.0
                               for e in self.fitted], float)
        self.initial = np.array([e.initial for e in self.fitted], float)
        #: L2 regularisation λ of each fitted DOF: the training objective adds Σ λ p²
        self.l2 = np.array([e.l2 for e in self.fitted], float)
        #: L1 regularisation λ of each fitted DOF: the training objective adds Σ λ |p|
        self.l1 = np.array([e.l1 for e in self.fitted], float)
        self.regularised = bool(np.any(self.l2 > 0.0))
        self.lower = np.array([-np.inf if e.min is None else e.min for e in self.fitted]) / self.scale
        self.upper = np.array([np.inf if e.max is None else e.max for e in self.fitted]) / self.scale
        self._groups = None  # scalar and array-element DOFs (built on first use)
        self.constraints = []
        errors = []
        for c in constraints:
            tree, aliases = c.expression
            aliases = dict(aliases)
            names = sorted(ex.free_names(tree))
            fn = ex.compile_expr(tree, names)
            paths = [by_name[aliases.get(n, n)].path for n in names]
            target = by_name.get(c.dependent_dof)
            if target is None:
                errors.append(InputError(f"<constraint>: unknown dependent DOF "
                                         f"'{c.dependent_dof}'", c.origin))
                continue
            self.constraints.append((target.path, fn, paths, c))
        if errors:
            raise InputErrors(errors)

    def set_initial(self, path: tuple, value: float) -> None:
        """Start the fitted DOF at ``path`` from ``value`` (its fit scale is kept)."""
        for k, e in enumerate(self.fitted):
            if tuple(e.path) == tuple(path):
                self.initial[k] = float(value)
                return
        raise KeyError(f"no fitted parameter at {path}")

    @property
    def size(self) -> int:
        return len(self.fitted)

    def u0(self) -> np.ndarray:
        """The given parameters as a fit vector (clipped into the bounds)."""
        return np.clip(self.initial / self.scale, self.lower, self.upper)

    def values(self, u) -> np.ndarray:
        """Unscaled parameter values of the fitted DOFs."""
        return np.asarray(u, float) * self.scale

    def tree(self, u, base=None):
        """Parameter tree at fit vector ``u`` (jnp-traceable), constraints applied.  DOFs
        that are elements of one array leaf (path ending in an integer index, e.g. SNAP
        coefficients) are written with one indexed update per array."""
        tree = self.pm.params if base is None else base
        if self._groups is None:
            self._groups = _array_groups([e.path for e in self.fitted])
        scalars, arrays = self._groups
        u = jnp.asarray(u)
        for k in scalars:
            tree = set_path(tree, self.fitted[k].path, u[k] * self.scale[k])
        for prefix, index, positions in arrays:
            # one slice (or gather) of u and one update per array: a program whose size does
            # not grow with the number of fitted elements (network weights: thousands)
            update = u[_span(positions)] * self.scale[positions]
            leaf = jnp.asarray(get_path(tree, prefix))
            tree = set_path(tree, prefix, leaf.at[_span(index)].set(update))
        for path, fn, args, _ in self.constraints:
            tree = set_path(tree, path, fn(*[get_path(tree, p) for p in args]))
        return tree

    @property
    def linear(self) -> bool:
        """True if the tree depends on u through the scaling alone (no constraints): then
        :meth:`host_tree`, :meth:`host_pullback` and :meth:`host_directions` give the
        tree and its derivatives on the host, with no program to trace or compile."""
        return not self.constraints

    def host_tree(self, u):
        """:meth:`tree` at ``u`` in NumPy (the same products u_k · s_k), for a
        :attr:`linear` space; the leaves it sets are device arrays, the others as given."""
        import jax

        if not self.linear:
            raise ValueError("a space with constraints maps u through expressions: use tree()")
        if self._groups is None:
            self._groups = _array_groups([e.path for e in self.fitted])
        scalars, arrays = self._groups
        u = np.asarray(u, np.float64)
        tree = self.pm.params
        for k in scalars:
            tree = _set(tree, self.fitted[k].path, jax.device_put(u[k] * self.scale[k]))
        for prefix, index, positions in arrays:
            leaf = np.array(get_path(tree, prefix))
            leaf[_span(index)] = u[_span(positions)] * self.scale[positions]
            tree = _set(tree, prefix, jax.device_put(leaf))
        return tree

    def host_pullback(self, grad) -> np.ndarray:
        """∂/∂u from ∂/∂tree (a tree like :meth:`tree`'s) for a :attr:`linear` space: the
        vector-Jacobian product of :meth:`tree`, on the host."""
        if self._groups is None:
            self._groups = _array_groups([e.path for e in self.fitted])
        scalars, arrays = self._groups
        out = np.zeros(self.size)
        for k in scalars:
            out[k] = np.asarray(get_path(grad, self.fitted[k].path), np.float64) * self.scale[k]
        for prefix, index, positions in arrays:
            g = np.asarray(get_path(grad, prefix), np.float64)
            out[positions] = g[index] * self.scale[positions]
        return out

    def host_directions(self) -> np.ndarray:
        """∂ ravel(tree) / ∂u (rows in ``jax.flatten_util.ravel_pytree`` order) of a
        :attr:`linear` space: s_k at the row of fitted DOF k's leaf element."""
        import jax

        sizes, starts, offset = {}, {}, 0
        leaves = jax.tree_util.tree_flatten_with_path(self.pm.params)[0]
        for keypath, leaf in leaves:
            key = tuple(getattr(k, "key", getattr(k, "idx", None)) for k in keypath)
            starts[key] = offset
            sizes[key] = int(np.size(leaf))
            offset += sizes[key]
        out = np.zeros((offset, self.size))
        for k, e in enumerate(self.fitted):
            path = tuple(e.path)
            if path in starts:
                out[starts[path], k] = self.scale[k]
            else:  # an element of an array leaf
                out[starts[path[:-1]] + int(path[-1]), k] = self.scale[k]
        return out

    def named_values(self, tree) -> dict[str, float]:
        """{DOF name: value} of every parameter of the model in ``tree``."""
        # the leaves on the host first: an element of a device array taken by index is a
        # program of its own (traced and compiled in every run)
        host = jax.tree.map(np.asarray, tree)
        return {e.name: float(get_path(host, e.path)) for e in self.pm.entries}


def _array_groups(paths):
    """(positions of scalar DOFs, [(array path, element indices, positions)]) of ``paths``."""
    scalars, arrays = [], {}
    for k, path in enumerate(paths):
        if path and isinstance(path[-1], (int, np.integer)):
            index, positions = arrays.setdefault(tuple(path[:-1]), ([], []))
            index.append(int(path[-1]))
            positions.append(k)
        else:
            scalars.append(k)
    return scalars, [(prefix, np.asarray(index), np.asarray(positions))
                     for prefix, (index, positions) in arrays.items()]


def _set(tree: dict, path: tuple, value) -> dict:
    """A copy of ``tree`` (nested dicts) with the leaf at ``path`` replaced."""
    out = dict(tree)
    out[path[0]] = value if len(path) == 1 else _set(tree[path[0]], path[1:], value)
    return out


def _span(index: np.ndarray):
    """``index`` as a slice when it is a run of consecutive integers, else as it is."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index
