"""From the JobSpec's potentials to physics objects plus one named parameter tree.

The result is a :class:`PotentialModel`: a static sum of potentials, the parameter pytree
(``params[potential id][...]``) and one :class:`ParamEntry` per scalar DOF saying where it lives
in the tree, under its atomicrex name. Parameters are flattened only at the fit boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from rexfit.errors import InputError, InputErrors, NotImplementedInRexfit, Origin
from rexfit.job import names
from rexfit.job import spec as s
from rexfit.potentials.base import Linked, SumPotential
from rexfit.potentials.eam import EAM
from rexfit.potentials.functions import Analytic, Combination, Function, Poly, Spline, UserFunction
from rexfit.potentials import registry
from rexfit.potentials.family import Family
from rexfit.potentials.tokens import PotentialFileError


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

    def add(self, name: str, path: tuple, p: s.ParamSpec, scale: float | None = None,
            l2: float = 0.0) -> jnp.ndarray:
        self.entries.append(ParamEntry(name, path, p.value, p.fit, p.min, p.max, p.reset,
                                       p.origin, scale, l2))
        return jnp.float64(p.value)

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
        both from its ``build_model``: the parameter-file families)."""
        head = names.potential_head(pot)
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
        fit ``scale`` and L2 ``l2`` of that DOF."""

        def register(dof: s.FitDofSpec, path: tuple, value: float, *, name: str | None = None,
                     tag: str | None = None, scale: float | None = None, l2: float = 0.0):
            label = names.file_param_name(pot, *((dof.name, dof.tag) if name is None
                                                  else (name, tag)))
            spec = s.ParamSpec(name=label, value=value, origin=dof.origin, fit=dof.enabled,
                               min=dof.min, max=dof.max, reset=dof.reset)
            return self.add(label, (pot.id, *path), spec, scale, l2)

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

    def eam(self, pot: s.PotentialSpec):
        params, roles, cutoff = self.mapped(pot, ("pair-interaction", "electron-density",
                                                  "embedding-energy"))
        eam = EAM.create(len(self.species), cutoff, roles["pair-interaction"],
                         roles["electron-density"], roles["embedding-energy"])
        return eam, params

    def meam(self, pot: s.PotentialSpec):
        """<meam> (spline-MEAM, LAMMPS meam/spline form) from the job's functions.

        pair-interaction (a, b), electron-density (centre a, neighbour b), f-function
        (centre a, neighbour b), g-function (the two neighbour species), embedding-energy."""
        from rexfit.potentials.meam import MEAM

        if pot.param_file is not None:
            return _meam_file(pot, self.species)
        params, roles, cutoff = self.mapped(pot, ("pair-interaction", "electron-density",
                                                  "f-function", "g-function",
                                                  "embedding-energy"))
        try:
            meam = MEAM.create(len(self.species), cutoff, roles["pair-interaction"],
                               roles["electron-density"], roles["f-function"],
                               roles["g-function"], roles["embedding-energy"])
        except ValueError as exc:
            raise InputErrors([InputError(f"<meam id='{pot.id}'>: {exc}", pot.origin)]) from None
        return meam, params

    def adp(self, pot: s.PotentialSpec):
        """<adp>: EAM roles plus the dipole (u) and quadrupole (w) functions per species pair."""
        from rexfit.potentials.adp import ADP

        if pot.param_file is not None:
            return _tabulated_adp(pot, self.species)
        params, roles, cutoff = self.mapped(pot, ("pair-interaction", "electron-density",
                                                  "embedding-energy", "u-function",
                                                  "w-function"))
        try:
            adp = ADP.create(len(self.species), cutoff, roles["pair-interaction"],
                             roles["electron-density"], roles["embedding-energy"],
                             roles["u-function"], roles["w-function"])
        except ValueError as exc:
            raise InputErrors([InputError(f"<adp id='{pot.id}'>: {exc}", pot.origin)]) from None
        return adp, params


def _meam_file(pot: s.PotentialSpec, species: tuple[str, ...]):
    """<meam> with a <param-file>: a LAMMPS meam/spline file (its knot values are fixed)."""
    from rexfit.potentials.meam import MEAM

    if pot.functions or pot.mapping:
        raise InputErrors([InputError(f"<meam id='{pot.id}'>: give either a <param-file> or "
                                      "<functions> with a <mapping>, not both", pot.origin)])
    try:
        return MEAM.from_file(pot.param_file, species)
    except PotentialFileError:  # already names file:line
        raise
    except (ValueError, InputError) as exc:
        raise InputErrors([InputError(f"{pot.param_file}: {getattr(exc, 'message', exc)}",
                                      pot.origin)]) from None


def _tabulated_adp(pot: s.PotentialSpec, species: tuple[str, ...]):
    """<adp> with a <param-file>: the LAMMPS adp tables as a fixed potential."""
    from rexfit.potentials.adp import read_adp, tabulated_adp

    if pot.functions or pot.mapping:
        raise InputErrors([InputError(f"<adp id='{pot.id}'>: give either a <param-file> or "
                                      "<functions> with a <mapping>, not both", pot.origin)])
    try:
        tables = read_adp(pot.param_file)
    except PotentialFileError:  # already names file:line
        raise
    except ValueError as exc:
        raise InputErrors([InputError(str(exc), pot.origin)]) from None
    used = [sp if (pot.species_a in ("*", sp) or pot.species_b in ("*", sp)) else None
            for sp in species]
    missing = [sp for sp in used if sp is not None and sp not in tables.elements]
    if missing:
        raise InputErrors([InputError(
            f"<adp id='{pot.id}'>: species {', '.join(missing)} not in {pot.param_file} "
            f"(it has {', '.join(tables.elements)})", pot.origin)])
    return tabulated_adp(tables, used)


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


#: Names a ``<fit-dof>`` of a Tersoff potential may use for LAMMPS's h = cos θ0.
TERSOFF_ALIASES = {"theta0": "costheta0", "h": "costheta0"}
#: Parameters that move a three-body potential's cutoff: fitting one widens the lists.
CUTOFF_PARAMS = {"R", "D", "bigr", "bigd"}
#: Pair parameters that a LAMMPS file stores on both the ijj and the jii line while LAMMPS
#: evaluates the pair once: fitting one copy (tag ijj, i ≠ j) moves the other with it.
PAIR_PARAMS = {
    "tersoff": {"A", "lambda1", "R", "D"},
    "abop": {"D0", "S", "r0", "beta", "bigr", "bigd"},
}


def _file_elements(pot: s.PotentialSpec, species: tuple[str, ...], in_file: set[str]):
    """The job species a parameter file describes: all of them, or the leading ones (species
    after them do not interact with this potential)."""
    from rexfit.potentials.file_dofs import file_elements

    return file_elements(f"<{pot.kind} id='{pot.id}'>", pot.param_file, species, in_file,
                         pot.origin)


def _three_body(pot: s.PotentialSpec, species: tuple[str, ...], b: _Builder):
    """Tersoff or ABOP from its LAMMPS parameter file, with its DOFs."""
    from rexfit.potentials import manybody_files as mf
    from rexfit.potentials.abop import ABOP, TWO_BODY, from_tersoff
    from rexfit.potentials.file_dofs import CUTOFF_MARGIN, register_dofs
    from rexfit.potentials.tersoff import Tersoff

    kind = pot.kind
    try:
        entries = mf.read_tersoff_file(pot.param_file)
        elements = _file_elements(pot, species, {e for key in entries for e in key})
        mf.check_tags(elements)
        params = mf.params_from_entries(entries, elements, mf.TERSOFF_PARAMETERS)
        if kind == "abop":
            params = from_tersoff(params, elements)
    except PotentialFileError:  # already names file:line
        raise
    except ValueError as exc:
        raise InputErrors([InputError(f"{pot.param_file}: {exc}", pot.origin)]) from None
    fitted_cutoff = any(d.enabled and d.name in CUTOFF_PARAMS for d in pot.fit_dofs)
    margin = CUTOFF_MARGIN if fitted_cutoff else 0.0
    if kind == "tersoff":
        obj = Tersoff.create(elements, params, margin)
    else:
        classic = dict(pot.options).get("classic-mode") == "true"
        obj = ABOP.create(elements, params, classic, margin)

    def check(dof: s.FitDofSpec, parts: tuple[str, str, str]) -> str | None:
        if kind == "abop" and dof.name in TWO_BODY and parts[1] != parts[2]:
            return (f"<fit-dof> entry <{dof.name}>: {dof.name} is a two-body parameter, used "
                    f"only from the pair entries; use tag='{parts[0]}{parts[1]}{parts[1]}'")
        return None

    canonical = (lambda name: TERSOFF_ALIASES.get(name, name)) if kind == "tersoff" else \
        (lambda name: name)
    params, links = register_dofs(pot.param_file, pot.fit_dofs, params, elements, species,
                                  PAIR_PARAMS[kind], b.file_dofs(pot), canonical, check)
    return (Linked(obj, links) if links else obj), params


def build_potentials(job: s.JobSpec) -> PotentialModel:
    """Physics objects and the named parameter tree for every potential of the job."""
    species = tuple(sp.symbol for sp in job.species)
    b = _Builder(species)
    terms, params = [], {}
    for pot in job.potentials:
        family = registry.family(pot.kind)
        if family is not None:
            obj, prm = b.family(pot, family)
        elif pot.kind == "eam":
            obj, prm = b.eam(pot)
        elif pot.kind == "adp":
            obj, prm = b.adp(pot)
        elif pot.kind == "meam":
            obj, prm = b.meam(pot)
        elif pot.kind == "tabulated-eam":
            obj, prm = _tabulated_eam(pot, species)
        elif pot.kind in ("tersoff", "abop"):
            obj, prm = _three_body(pot, species, b)
        else:
            raise NotImplementedInRexfit(
                f"{pot.origin}: <{pot.kind}> potentials are not computed by this version of "
                f"rexfit yet (available: {', '.join(registry.BY_ELEMENT)}, eam, meam, adp, "
                f"tabulated-eam, tersoff, abop)")
        terms.append((pot.id, obj))
        params[pot.id] = prm
    if not terms:
        raise InputErrors([InputError("the job has no potential: add one inside <potentials>",
                                      job.origin)])
    return PotentialModel(SumPotential(tuple(terms)), params, tuple(b.entries), species)


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
