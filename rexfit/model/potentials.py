"""From the JobSpec's potentials to physics objects plus one named parameter tree.

The result is a :class:`PotentialModel`: a static sum of potentials, the parameter pytree
(``params[potential id][...]``) and one :class:`ParamEntry` per scalar DOF saying where it lives
in the tree, under its atomicrex name. Parameters are flattened only at the fit boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.errors import InputError, InputErrors, NotImplementedInRexfit, Origin
from rexfit.job import names
from rexfit.job import spec as s
from rexfit.potentials.base import SumPotential
from rexfit.potentials.functions import Analytic, Combination, Function, Poly, Spline, UserFunction
from rexfit.potentials import registry
from rexfit.potentials.family import Family


@dataclass(frozen=True)
class ParamEntry:
    """One scalar DOF: its atomicrex name, where it sits in the params tree, fit settings."""

    name: str
    path: tuple[str, ...]
    initial: float
    fit: bool
    min: float | None
    max: float | None
    reset: bool
    origin: Origin | None
    scale: float | None = None  # the fit vector's unit for this DOF (default |initial| or 1)
    l2: float = 0.0  # L2 regularisation λ: the training objective adds λ p²
    l1: float = 0.0  # L1 regularisation λ: the training objective adds λ |p|


@dataclass(frozen=True)
class Penalty:
    """A regularisation term of one potential's parameters that is not one per DOF (ACE's
    radial smoothness): the training objective adds ``fn(params[potential])`` (a JAX scalar
    function of that potential's params subtree).  ``squares``: False (it is not a sum of
    squares, so least-squares minimizers refuse it); ``name`` as reported."""

    name: str
    potential: str
    fn: Any
    origin: Origin | None = None


@dataclass(frozen=True)
class PotentialModel:
    potential: SumPotential
    params: dict
    entries: tuple[ParamEntry, ...]
    species: tuple[str, ...]
    penalties: tuple[Penalty, ...] = ()

    @property
    def cutoff(self) -> float:
        return self.potential.cutoff

    def fitted(self) -> list[ParamEntry]:
        return [e for e in self.entries if e.fit]


class _Builder:
    def __init__(self, species: tuple[str, ...]):
        self.species = species
        self.entries: list[ParamEntry] = []

    def add(self, name: str, path: tuple, p: s.ParamSpec, scale: float | None = None,
            l2: float = 0.0, l1: float = 0.0) -> jnp.ndarray:
        self.entries.append(ParamEntry(name, path, p.value, p.fit, p.min, p.max, p.reset,
                                       p.origin, scale, l2, l1))
        # put on the device as it is (jnp.float64 would trace and compile a conversion)
        return jax.device_put(np.float64(p.value))

    # ------------------------------------------------------------------ functions

    def function(self, fn: s.FunctionSpec, path: tuple[str, ...], prefix: str):
        """(function object, params subtree) for a function spec; DOFs recorded."""
        here = names.function_path(prefix, fn)
        params: dict[str, Any] = {}
        screening = None
        if fn.screening is not None:
            screening, params["screening"] = self.function(fn.screening, path + ("screening",), here)
        if isinstance(fn, s.UserFunctionSpec):
            for p in fn.params:
                params[p.name] = self.add(names.child(here, p.name), path + (p.name,), p)
            obj: Function = UserFunction(cutoff=fn.cutoff, screening=screening,
                                         expression=fn.expression, input_var=fn.input_var,
                                         param_names=tuple(p.name for p in fn.params))
        elif isinstance(fn, s.SplineSpec):
            for node in fn.nodes:
                key = names.spline_node(node.x)
                params[key] = self.add(names.child(here, key), path + (key,), node.y)
            for p in (fn.derivative_left, fn.derivative_right):
                params[p.name] = self.add(names.child(here, p.name), path + (p.name,), p)
            obj = Spline(cutoff=fn.cutoff, screening=screening,
                         knots=tuple(n.x for n in fn.nodes))
        elif isinstance(fn, s.CompositeFunctionSpec):
            parts = []
            for k, sub in enumerate(fn.functions):
                part, params[f"f{k}"] = self.function(sub, path + (f"f{k}",), here)
                parts.append(part)
            obj = Combination(cutoff=fn.cutoff, screening=screening, parts=tuple(parts),
                              product=fn.kind == "product")
        else:
            for p in fn.params:
                params[p.name] = self.add(names.child(here, p.name), path + (p.name,), p)
            if fn.kind == "poly":
                obj = Poly(cutoff=fn.cutoff, screening=screening,
                           powers=tuple(int(p.name[6:-1]) for p in fn.params))
            else:
                obj = Analytic(cutoff=fn.cutoff, screening=screening, kind=fn.kind)
        return obj, params

    # ------------------------------------------------------------------ potentials

    def species_of(self, name: str | None) -> list[int]:
        if name is None or name == "*":
            return list(range(len(self.species)))
        return [self.species.index(name)]

    def family(self, pot: s.PotentialSpec, family: Family):
        """(potential, params) of a family on the registry: its parameters registered under
        their atomicrex names at params[pot.id][path...], its potential from its record (or
        both from its ``build_model``: the parameter-file families; or from the mapped
        functions, when the family has ``build_mapped`` and the potential a ``<mapping>``)."""
        head = names.potential_head(pot)
        if family.build_mapped is not None and pot.mapping:
            params, roles, cutoff = self.mapped(pot, family.mapping_roles)
            return family.build_mapped(pot.family_spec, self.species, roles, cutoff), params
        if family.build_model is not None:
            return family.build_model(pot.family_spec, self.species, self.file_dofs(pot))
        params: dict = {}
        for path, p in family.parameter_specs(pot.family_spec):
            leaf = self.add(names.child(head, p.name), (pot.id, *path), p)
            node = params
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = leaf
        return family.build_potential(pot.family_spec, self.species), params

    def file_dofs(self, pot: s.PotentialSpec):
        """``register(dof, path, value)`` for the ``<fit-dof>`` entries of ``pot`` on the values
        of its parameter file: records the DOF ``id[Type].name[tag]`` at
        params[pot.id][path...], starting at ``value``, and returns its leaf; ``name`` and
        ``tag`` given: ``id[Type].name[tag]`` from them (a coefficient of a group), with the
        fit ``scale``, L2 ``l2`` and L1 ``l1`` of that DOF."""

        def register(dof: s.FitDofSpec, path: tuple, value: float, *, name: str | None = None,
                     tag: str | None = None, scale: float | None = None, l2: float = 0.0,
                     l1: float = 0.0):
            label = names.file_param_name(pot, *((dof.name, dof.tag) if name is None
                                                  else (name, tag)))
            spec = s.ParamSpec(name=label, value=value, origin=dof.origin, fit=dof.enabled,
                               min=dof.min, max=dof.max, reset=dof.reset)
            return self.add(label, (pot.id, *path), spec, scale, l2, l1)

        return register

    #: Mapping roles keyed by an unordered species pair (the others: centre, neighbour).
    SYMMETRIC_ROLES = ("pair-interaction", "g-function", "u-function", "w-function")
    #: Roles whose functions need not vanish at a distance (not radial).
    NON_RADIAL_ROLES = ("embedding-energy", "g-function")

    def mapped(self, pot: s.PotentialSpec, roles: tuple[str, ...]):
        """(params, {role: {species key: (params key, function)}}, cutoff) of a
        function-based potential: every <functions> entry built, every <mapping> line
        expanded over species.  Keys: a species for embedding-energy; (min, max) for the
        symmetric roles; (centre, neighbour) otherwise (electron-density with ``species``
        alone: that neighbour species, every centre).  The cutoff is the largest reach of the
        radial functions."""
        head = names.potential_head(pot)
        objects, params = {}, {}
        for fn in pot.functions:
            objects[fn.id], params[fn.id] = self.function(fn, (pot.id, fn.id), head)
        out: dict[str, dict] = {role: {} for role in roles}
        reach = []
        for m in pot.mapping:
            entry = (m.function, objects[m.function])
            if m.role == "embedding-energy":
                for a in self.species_of(m.species_a):
                    out[m.role][a] = entry
                continue
            if m.role not in self.NON_RADIAL_ROLES:
                fn_reach = objects[m.function].reach
                if fn_reach is None:
                    raise InputErrors([InputError(
                        f"function '{m.function}' used as {m.role} never reaches zero: give it "
                        f"a <cutoff> or a <screening> function", m.origin)])
                reach.append(fn_reach)
            if m.species_b is None:  # <electron-density species="X">: density of X everywhere
                centres, neighbours = self.species_of("*"), self.species_of(m.species_a)
            else:
                centres, neighbours = self.species_of(m.species_a), self.species_of(m.species_b)
            for a in centres:
                for b in neighbours:
                    key = (min(a, b), max(a, b)) if m.role in self.SYMMETRIC_ROLES else (a, b)
                    out[m.role][key] = entry
        if not reach:
            raise InputErrors([InputError(f"<{pot.kind} id='{pot.id}'> maps no function with "
                                          "a cutoff", pot.origin)])
        return params, out, max(reach)


def build_potentials(job: s.JobSpec) -> PotentialModel:
    """Physics objects and the named parameter tree for every potential of the job."""
    species = tuple(sp.symbol for sp in job.species)
    b = _Builder(species)
    terms, params, penalties = [], {}, []
    for pot in job.potentials:
        family = registry.family(pot.kind)
        if family is not None:
            obj, prm = b.family(pot, family)
            if family.penalties is not None:
                penalties += [Penalty(name, pot.id, fn, pot.origin)
                              for name, fn in family.penalties(pot.family_spec, obj)]
        else:
            raise NotImplementedInRexfit(
                f"{pot.origin}: <{pot.kind}> potentials are not computed by this version of "
                f"rexfit yet (available: {', '.join(registry.BY_ELEMENT)})")
        terms.append((pot.id, obj))
        params[pot.id] = prm
    if not terms:
        raise InputErrors([InputError("the job has no potential: add one inside <potentials>",
                                      job.origin)])
    return PotentialModel(SumPotential(tuple(terms)), params, tuple(b.entries), species,
                          tuple(penalties))


def get_path(tree: dict, path: tuple):
    """The leaf at ``path``: dict keys, and a final integer index into an array leaf."""
    for key in path:
        tree = tree[key]
    return tree


def set_path(tree: dict, path: tuple, value) -> dict:
    """A copy of ``tree`` with the leaf at ``path`` replaced (the input is not modified); an
    integer key sets one element of an array leaf."""
    if not path:
        return value
    if isinstance(path[0], (int, np.integer)):
        if len(path) != 1:
            raise ValueError("an integer index must end the parameter path")
        return jnp.asarray(tree).at[int(path[0])].set(value)
    out = dict(tree)
    out[path[0]] = set_path(tree[path[0]], path[1:], value)
    return out
