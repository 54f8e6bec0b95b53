"""From the JobSpec's potentials to physics objects plus one named parameter tree.

The result is a :class:`PotentialModel`: a static sum of potentials, the parameter pytree
(``params[potential id][...]``) and one :class:`ParamEntry` per scalar DOF saying where it lives
in the tree, under its atomicrex name. Parameters are flattened only at the fit boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from rexfit.errors import InputError, InputErrors, NotImplementedInRexfit, Origin
from rexfit.job import names
from rexfit.job import spec as s
from rexfit.potentials.base import SumPotential
from rexfit.potentials.eam import EAM
from rexfit.potentials.functions import Analytic, Combination, Function, Poly, Spline, UserFunction
from rexfit.potentials.pair import LennardJones


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


@dataclass(frozen=True)
class PotentialModel:
    potential: SumPotential
    params: dict
    entries: tuple[ParamEntry, ...]
    species: tuple[str, ...]

    @property
    def cutoff(self) -> float:
        return self.potential.cutoff

    def fitted(self) -> list[ParamEntry]:
        return [e for e in self.entries if e.fit]


class _Builder:
    def __init__(self, species: tuple[str, ...]):
        self.species = species
        self.entries: list[ParamEntry] = []

    def add(self, name: str, path: tuple[str, ...], p: s.ParamSpec) -> jnp.ndarray:
        self.entries.append(ParamEntry(name, path, p.value, p.fit, p.min, p.max, p.reset, p.origin))
        return jnp.float64(p.value)

    # ------------------------------------------------------------------ functions

    def function(self, fn: s.FunctionSpec, path: tuple[str, ...], prefix: str):
        """(function object, params subtree) for a function spec; DOFs recorded."""
        here = f"{prefix}.{names.function_label(fn)}"
        params: dict[str, Any] = {}
        screening = None
        if fn.screening is not None:
            screening, params["screening"] = self.function(fn.screening, path + ("screening",), here)
        if isinstance(fn, s.UserFunctionSpec):
            for p in fn.params:
                params[p.name] = self.add(f"{here}.{p.name}", path + (p.name,), p)
            obj: Function = UserFunction(cutoff=fn.cutoff, screening=screening,
                                         expression=fn.expression, input_var=fn.input_var,
                                         param_names=tuple(p.name for p in fn.params))
        elif isinstance(fn, s.SplineSpec):
            for node in fn.nodes:
                key = f"node[{node.x:g}].y"
                params[key] = self.add(f"{here}.{key}", path + (key,), node.y)
            for p in (fn.derivative_left, fn.derivative_right):
                params[p.name] = self.add(f"{here}.{p.name}", path + (p.name,), p)
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
                params[p.name] = self.add(f"{here}.{p.name}", path + (p.name,), p)
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

    def lennard_jones(self, pot: s.PotentialSpec):
        head = f"{pot.id}[{names.POTENTIAL_TYPE[pot.kind]}]"
        values = {p.name: p for p in pot.params}
        params = {n: self.add(f"{head}.{n}", (pot.id, n), values[n]) for n in ("sigma", "epsilon")}
        a = None if pot.species_a == "*" else self.species.index(pot.species_a)
        b = None if pot.species_b == "*" else self.species.index(pot.species_b)
        return LennardJones.between(values["cutoff"].value, a, b, len(self.species)), params

    def eam(self, pot: s.PotentialSpec):
        head = f"{pot.id}[{names.POTENTIAL_TYPE[pot.kind]}]"
        objects, params = {}, {}
        for fn in pot.functions:
            objects[fn.id], params[fn.id] = self.function(fn, (pot.id, fn.id), head)
        pair, density, embedding = {}, {}, {}
        reach = []
        for m in pot.mapping:
            entry = (m.function, objects[m.function])
            if m.role == "embedding-energy":
                for a in self.species_of(m.species_a):
                    embedding[a] = entry
                continue
            fn_reach = objects[m.function].reach
            if fn_reach is None:
                raise InputErrors([InputError(
                    f"function '{m.function}' used as {m.role} never reaches zero: give it a "
                    f"<cutoff> or a <screening> function", m.origin)])
            reach.append(fn_reach)
            if m.role == "pair-interaction":
                for a in self.species_of(m.species_a):
                    for b in self.species_of(m.species_b):
                        pair[(min(a, b), max(a, b))] = entry
            elif m.role == "electron-density":
                centres = self.species_of(m.species_a if m.species_b is not None else "*")
                neighbours = self.species_of(m.species_b if m.species_b is not None else m.species_a)
                for a in centres:
                    for b in neighbours:
                        density[(a, b)] = entry
        eam = EAM.create(len(self.species), max(reach), pair, density, embedding)
        return eam, params


def _tabulated_eam(pot: s.PotentialSpec, species: tuple[str, ...]):
    """A LAMMPS EAM table as a fixed potential (its tables are not fitted yet)."""
    from rexfit.potentials.eam_files import read_funcfl, read_setfl, tabulated_eam

    if any(d.enabled for d in pot.fit_dofs):
        raise NotImplementedInRexfit(f"{pot.origin}: fitting the tables of <tabulated-eam> is "
                                     "not available yet; remove its <fit-dof>")
    try:
        if pot.file_format == "eam":
            names_ = [v for k, v in pot.options if k.startswith("species:")]
            tables = read_funcfl(list(pot.param_files), names_)
        else:
            tables = read_setfl(pot.param_file, finnis_sinclair=pot.file_format == "eam/fs")
    except InputError as err:
        raise InputErrors([InputError(err.message, err.origin or pot.origin)]) from None
    used = [sp if (pot.species_a in ("*", sp) or pot.species_b in ("*", sp)) else None
            for sp in species]
    missing = [sp for sp in used if sp is not None and sp not in tables.elements]
    if missing:
        raise InputErrors([InputError(
            f"<tabulated-eam id='{pot.id}'>: species {', '.join(missing)} not in "
            f"{pot.param_file} (it has {', '.join(tables.elements)})", pot.origin)])
    return tabulated_eam(tables, used)


def build_potentials(job: s.JobSpec) -> PotentialModel:
    """Physics objects and the named parameter tree for every potential of the job."""
    species = tuple(sp.symbol for sp in job.species)
    b = _Builder(species)
    terms, params = [], {}
    for pot in job.potentials:
        if pot.kind == "lennard-jones":
            obj, prm = b.lennard_jones(pot)
        elif pot.kind == "eam":
            obj, prm = b.eam(pot)
        elif pot.kind == "tabulated-eam":
            obj, prm = _tabulated_eam(pot, species)
        else:
            raise NotImplementedInRexfit(
                f"{pot.origin}: <{pot.kind}> potentials are not computed by this version of "
                f"rexfit yet (available: lennard-jones, eam, tabulated-eam)")
        terms.append((pot.id, obj))
        params[pot.id] = prm
    if not terms:
        raise InputErrors([InputError("the job has no potential: add one inside <potentials>",
                                      job.origin)])
    return PotentialModel(SumPotential(tuple(terms)), params, tuple(b.entries), species)


def get_path(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def set_path(tree: dict, path: tuple[str, ...], value) -> dict:
    """A copy of ``tree`` with the leaf at ``path`` replaced (the input is not modified)."""
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = set_path(tree[path[0]], path[1:], value)
    return out
