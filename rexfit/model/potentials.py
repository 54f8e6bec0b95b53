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
from rexfit.potentials.base import SumPotential
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
        params[pot.id][path...], starting at ``value``, and returns its leaf."""

        def register(dof: s.FitDofSpec, path: tuple, value: float):
            spec = s.ParamSpec(name=dof.name, value=value, origin=dof.origin, fit=dof.enabled,
                               min=dof.min, max=dof.max, reset=dof.reset)
            return self.add(names.file_param_name(pot, dof.name, dof.tag), (pot.id, *path),
                            spec)

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


def _file_elements(pot: s.PotentialSpec, species: tuple[str, ...], in_file: set[str]):
    """The job species a parameter file describes: all of them, or the leading ones (species
    after them do not interact with this potential)."""
    from rexfit.potentials.file_dofs import file_elements

    return file_elements(f"<{pot.kind} id='{pot.id}'>", pot.param_file, species, in_file,
                         pot.origin)


def _model_elements(pot: s.PotentialSpec, species: tuple[str, ...], named: list[str]):
    """The job species a descriptor model describes: the leading species, in job order."""
    if named == list(species[:len(named)]):
        return tuple(named)
    raise InputErrors([InputError(
        f"<{pot.kind} id='{pot.id}'>: its elements ({', '.join(named)}) must be the first "
        f"species of <atom-types> in the same order ({', '.join(species)}); species after "
        "them are not described by it", pot.origin)])


def _descriptor_model(pot: s.PotentialSpec, species: tuple[str, ...], b: _Builder):
    """<snap> and <linear-model>: the model, its coefficient tree {element: {"beta0", "beta",
    "gamma"}} and one DOF per fitted coefficient, named by
    :func:`rexfit.job.names.model_coefficient_name` (head.beta0[El], head.betaK[El],
    head.gammaM[El], K and M counted from 1 as the coefficients of a .snapcoeff file)."""
    from rexfit.descriptors.ead import EAD
    from rexfit.descriptors.power_spectrum import PowerSpectrum
    from rexfit.potentials.snap import SNAP, DescriptorModel
    from rexfit.potentials.snap_files import read_snapcoeff, read_snapparam

    opts = dict(pot.options)
    elements_opt = [(k.split(":", 1)[1], v.split()) for k, v in pot.options
                    if k.startswith("element:")]
    try:
        table = read_snapcoeff(opts["coeff-file"]) if opts.get("coeff-file") else None
        if table is not None:
            named = list(table) if not elements_opt else [e for e, _ in elements_opt]
            elements = _file_elements(pot, species, set(table)) if not elements_opt else \
                _model_elements(pot, species, named)
            if elements_opt and any(e not in table for e in elements):
                raise ValueError(f"elements {', '.join(e for e in elements if e not in table)}"
                                 " are not in the file")
        else:
            elements = _model_elements(pot, species, [e for e, _ in elements_opt])
        given = dict(elements_opt)
        weights = [float(given[e][-1]) if e in given else table[e].weight for e in elements]
        if pot.kind == "snap":
            if pot.param_file:
                settings = read_snapparam(pot.param_file)
            else:
                settings = {k: float(v) if k in ("rcutfac", "rfac0", "rmin0") else int(v)
                            for k, v in opts.items() if k in ("twojmax", "rcutfac", "rfac0",
                                                              "rmin0", "switchflag",
                                                              "bzeroflag", "quadraticflag")}
            radii = []
            for e in elements:
                if e in given and len(given[e]) == 2:
                    radii.append(float(given[e][0]))
                else:
                    radii.append(table[e].radius)
            extra = {k: settings[k] for k in ("rfac0", "rmin0", "switchflag", "bzeroflag")
                     if k in settings}
            obj = SNAP.create(elements, int(settings["twojmax"]), float(settings["rcutfac"]),
                              radii, weights, bool(int(settings.get("quadraticflag", 0))),
                              **extra)
        else:
            kind = opts["descriptor"]
            if kind == "power-spectrum":
                descriptor = PowerSpectrum(int(opts["nmax"]), int(opts["lmax"]),
                                           float(opts["rcut"]), tuple(weights),
                                           alpha=float(opts.get("alpha", 2.0)))
            else:
                descriptor = EAD(int(opts["lmax"]),
                                 tuple(float(x) for x in opts["eta"].split()),
                                 tuple(float(x) for x in opts["rs"].split()),
                                 float(opts["rcut"]), tuple(weights))
            obj = DescriptorModel(descriptor, elements, opts.get("quadratic") == "true")
    except PotentialFileError:  # already names file:line
        raise
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise InputErrors([InputError(f"<{pot.kind} id='{pot.id}'>: {exc}", pot.origin)]) \
            from None
    shapes = obj.parameter_shapes()
    params = {}
    for e in elements:
        params[e] = {}
        flat = None if table is None else np.asarray(table[e].coefficients, float)
        start = 0
        for name in ("beta0", "beta", "gamma"):
            if name not in shapes:
                continue
            size = int(np.prod(shapes[name], dtype=int))
            if flat is not None:
                need = 1 + obj.n_linear + (shapes["gamma"][0] if "gamma" in shapes else 0)
                if flat.size != need:
                    raise InputErrors([InputError(
                        f"{opts['coeff-file']}: {flat.size} coefficients per element, but "
                        f"the model needs {need} (beta0, {obj.n_linear} beta"
                        + (f", {shapes['gamma'][0]} gamma" if "gamma" in shapes else "")
                        + ")", pot.origin)])
                values = flat[start:start + size]
            else:
                values = np.zeros(size)
            start += size
            params[e][name] = jnp.float64(values[0]) if name == "beta0" else jnp.asarray(values)
    l2 = float(opts.get("l2", 0.0))
    chosen: dict[tuple[str, str], s.FitDofSpec] = {}
    errors = []
    for dof in pot.fit_dofs:
        if dof.name not in shapes:
            errors.append(InputError(f"<fit-dof> entry <{dof.name}>: this model has no "
                                     f"{dof.name} (it is not quadratic)", dof.origin))
            continue
        targets = elements if dof.tag is None else (dof.tag,)
        for e in targets:
            if e not in elements:
                errors.append(InputError(f"<fit-dof> entry <{dof.name}>: tag '{e}' is not an "
                                         f"element of this model ({', '.join(elements)})",
                                         dof.origin))
            elif (e, dof.name) in chosen:
                errors.append(InputError(f"<fit-dof> names {dof.name} of {e} twice",
                                         dof.origin))
            else:
                chosen[(e, dof.name)] = dof
    if errors:
        raise InputErrors(errors)
    for (e, name), dof in chosen.items():
        values = np.atleast_1d(np.asarray(params[e][name], float))
        for k, value in enumerate(values):
            label = names.model_coefficient_name(pot, name, e, k)
            path = (pot.id, e, name) if name == "beta0" else (pot.id, e, name, k)
            spec = s.ParamSpec(name=label, value=float(value), origin=dof.origin,
                               fit=dof.enabled, min=dof.min, max=dof.max, reset=dof.reset)
            b.add(label, path, spec)
    return obj, params


def _nn_descriptor(settings: dict, elements: tuple[str, ...], weights, radii):
    """The descriptor object of a <neural-network> from its job settings."""
    from rexfit.descriptors.acsf import ACSF, WACSF
    from rexfit.descriptors.bispectrum import Bispectrum
    from rexfit.descriptors.ead import EAD
    from rexfit.descriptors.lsp import LSP
    from rexfit.descriptors.power_spectrum import PowerSpectrum

    kind = settings["kind"]
    weights = tuple(weights)
    if kind in ("acsf", "wacsf"):
        terms = {k: tuple(tuple(float(v) for v in t) for t in settings[k])
                 for k in ("g2", "g4", "g5")}
        if kind == "acsf":
            return ACSF(float(settings["rcut"]), cutoff_function=settings["cutoff-function"],
                        n_elements=len(elements), **terms)
        return WACSF(float(settings["rcut"]), cutoff_function=settings["cutoff-function"],
                     weights=weights, **terms)
    if kind == "lsp":
        return LSP(tuple(settings["rn"]), float(settings["sigma"]), float(settings["rcut"]),
                   float(settings["d"]), tuple(settings["ls"]), weights)
    if kind == "power-spectrum":
        return PowerSpectrum(int(settings["nmax"]), int(settings["lmax"]),
                             float(settings["rcut"]), weights, alpha=float(settings["alpha"]))
    if kind == "ead":
        return EAD(int(settings["lmax"]), tuple(settings["eta"]), tuple(settings["rs"]),
                   float(settings["rcut"]), weights)
    return Bispectrum(int(settings["twojmax"]), float(settings["rcutfac"]), tuple(radii),
                      weights, rfac0=float(settings["rfac0"]), rmin0=float(settings["rmin0"]),
                      switchflag=bool(settings["switchflag"]),
                      bzeroflag=bool(settings["bzeroflag"]))


def _neural_network(pot: s.PotentialSpec, species: tuple[str, ...], b: _Builder):
    """<neural-network>: the model, its params (random from the seed, or a model file) and one
    DOF per trained weight (unit fit scale), named head.<leaf>.<k>[El]
    (:func:`rexfit.job.names.network_param_name`)."""
    import json

    from rexfit.potentials.neural_network import TRAINED, NeuralNetwork
    from rexfit.potentials.nn_files import descriptor_to_dict, read_model
    from rexfit.potentials.pinn import BOP_PARAMETERS, PINN

    opts = dict(pot.options)
    given = [(k.split(":", 1)[1], v.split()) for k, v in pot.options if k.startswith("element:")]
    elements = _model_elements(pot, species, [e for e, _ in given])
    weights = [float(v[-1]) for _, v in given]
    radii = [float(v[0]) if len(v) == 2 else 0.0 for _, v in given]
    try:
        descriptor = _nn_descriptor(json.loads(opts["descriptor"]), elements, weights, radii)
        layers = (descriptor, elements, tuple(int(h) for h in opts["hidden"].split()),
                  opts["activation"])
        if pot.kind == "pinn":
            model = PINN(*layers, rc=float(opts["rc"]), d=float(opts["d"]))
        else:
            model = NeuralNetwork(*layers)
        if opts.get("model-file"):
            loaded, params = read_model(opts["model-file"])
            same = (type(loaded) is type(model) and loaded.elements == model.elements
                    and loaded.hidden == model.hidden and loaded.activation == model.activation
                    and descriptor_to_dict(loaded.descriptor) == descriptor_to_dict(descriptor)
                    and getattr(loaded, "rc", None) == getattr(model, "rc", None)
                    and getattr(loaded, "d", None) == getattr(model, "d", None))
            if not same:
                raise ValueError(f"{opts['model-file']} holds another network (elements, "
                                 "layers, activation or descriptor settings differ from the "
                                 "job's)")
        elif pot.kind == "pinn":
            base = {e: dict(zip(BOP_PARAMETERS, map(float, opts[f"base:{e}"].split())))
                    for e in elements}
            params = model.initial_params(int(opts.get("seed", 0)), base)
        else:
            params = model.initial_params(int(opts.get("seed", 0)))
    except PotentialFileError:  # already names file:line
        raise
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise InputErrors([InputError(f"<{pot.kind} id='{pot.id}'>: {exc}", pot.origin)]) \
            from None
    l2 = float(opts.get("l2", 0.0))
    chosen: dict[tuple[str, str], s.FitDofSpec] = {}
    for dof in pot.fit_dofs:
        for e in (elements if dof.tag is None else (dof.tag,)):
            if e not in elements:
                raise InputErrors([InputError(
                    f"<fit-dof> entry <{dof.name}>: tag '{e}' is not an element of this "
                    f"network ({', '.join(elements)})", dof.origin)])
            chosen[(e, dof.name)] = dof
    for (e, group), dof in chosen.items():
        for leaf, value in params[e].items():
            # <weights/>: every weight and hidden bias; <bias/>: the output bias;
            # <base/>: a PINN's base BOP parameters
            kind = leaf if leaf in ("bias", "base") else "weights"
            if not leaf.startswith(TRAINED) or leaf in ("mean", "std") or kind != group:
                continue
            values = np.atleast_1d(np.asarray(value, float))
            for k, v in enumerate(values):
                scalar = np.ndim(value) == 0
                label = names.network_param_name(pot, leaf, e, None if scalar else k)
                path = (pot.id, e, leaf) if scalar else (pot.id, e, leaf, k)
                spec = s.ParamSpec(name=label, value=float(v), origin=dof.origin,
                                   fit=dof.enabled, min=dof.min, max=dof.max, reset=dof.reset)
                # L2 acts on the weights (w*, out), not on biases or base parameters
                decay = l2 if leaf.startswith("w") or leaf == "out" else 0.0
                b.add(label, path, spec, scale=None if group == "base" else 1.0, l2=decay)
    return model, params


def build_potentials(job: s.JobSpec) -> PotentialModel:
    """Physics objects and the named parameter tree for every potential of the job."""
    species = tuple(sp.symbol for sp in job.species)
    b = _Builder(species)
    terms, params = [], {}
    for pot in job.potentials:
        family = registry.family(pot.kind)
        if family is not None:
            obj, prm = b.family(pot, family)
        elif pot.kind in ("snap", "linear-model"):
            obj, prm = _descriptor_model(pot, species, b)
        elif pot.kind in ("neural-network", "pinn"):
            obj, prm = _neural_network(pot, species, b)
        else:
            raise NotImplementedInRexfit(
                f"{pot.origin}: <{pot.kind}> potentials are not computed by this version of "
                f"rexfit yet (available: {', '.join(registry.BY_ELEMENT)}, "
                f"snap, linear-model, "
                f"neural-network, pinn)")
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
