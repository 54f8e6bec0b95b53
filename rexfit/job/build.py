"""Turn the validated node tree into a :class:`JobSpec`, checking what the XSD cannot.

Each XML tag maps to a builder through an explicit registry (POTENTIALS, FUNCTIONS, STRUCTURES,
MINIMIZERS); a test checks the registries and the XSD agree. Builders never raise on bad input:
they record located errors and return None, so one run reports every problem.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Callable

from ase.data import atomic_masses, atomic_numbers

from rexfit.datasets.readers import FORMATS as DATASET_READERS
from rexfit.datasets.readers import is_format_name, parse_index, parse_select
from rexfit.errors import InputError, InputErrors
from rexfit.job import names
from rexfit.job import spec as s
from rexfit.job.language import ANALYTIC_FUNCTIONS, DATASET_PROPERTIES, DOF_PROPERTIES, NEEDS_CUTOFF
from rexfit.job.nodes import Node
from rexfit.job.values import Collector
from rexfit.potentials import registry

# ============================================================================ tables

LATTICES = ("fcc-lattice", "bcc-lattice", "sc-lattice", "hcp-lattice", "diamond-lattice",
            "dimer-structure", "L12-lattice", "B1-lattice", "B2-lattice", "L10-lattice",
            "omega-lattice")
COMPOUND_LATTICES = {"L12-lattice", "B1-lattice", "B2-lattice", "L10-lattice"}
CA_LATTICES = {"hcp-lattice": math.sqrt(8.0 / 3.0), "L10-lattice": 1.0,
               "omega-lattice": math.sqrt(3.0 / 8.0)}

NLOPT_ALGORITHMS = (
    "LD_LBFGS", "LD_MMA", "LD_CCSAQ", "LD_SLSQP", "LD_TNEWTON", "LD_VAR1", "LD_VAR2",
    "LN_COBYLA", "LN_BOBYQA", "LN_NEWUOA", "LN_NEWUOA_BOUND", "LN_PRAXIS", "LN_NELDERMEAD",
    "LN_SBPLX", "GN_CRS2_LM", "GN_ESCH", "GN_DIRECT", "GN_DIRECT_L", "GN_ISRES",
    "GN_MLSL", "GN_MLSL_LDS", "GD_MLSL", "GD_MLSL_LDS", "G_MLSL", "G_MLSL_LDS",
)

FIT_DOF_ATTRIBUTES = {"enabled", "min", "max", "reset", "tag"}


# ============================================================================ context


class Context(Collector):
    """Errors plus what builders need to know about the rest of the job."""

    def __init__(self, job_dir: str):
        super().__init__(job_dir)
        self.species: dict[str, s.SpeciesSpec] = {}

    def check_species(self, name: str | None, origin, what: str, wildcard: bool = True) -> None:
        if name is None or (wildcard and name == "*"):
            return
        if name not in self.species:
            known = ", ".join(self.species) or "none declared"
            self.error(f"{what}: species '{name}' is not declared in <atom-types> "
                       f"(declared: {known})", origin)


# ============================================================================ parameters


def _fit_dofs(ctx: Context, node: Node | None, allowed: tuple[str, ...] | list[str],
              owner: str) -> dict[str, s.FitDofSpec]:
    """Read a <fit-dof> element; names must be among ``allowed``."""
    out: dict[str, s.FitDofSpec] = {}
    if node is None:
        return out
    for entry in node.children:
        bad = set(entry.attrs) - FIT_DOF_ATTRIBUTES
        for a in sorted(bad):
            ctx.error(f"<fit-dof> entry <{entry.tag}>: unknown attribute '{a}' "
                      f"(allowed: {', '.join(sorted(FIT_DOF_ATTRIBUTES))})", entry.origin)
        if entry.tag not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            ctx.error(f"<fit-dof> names '{entry.tag}', which is not a parameter of {owner} "
                      f"(parameters: {known})", entry.origin)
            continue
        lo = ctx.attr_number(entry, "min")
        hi = ctx.attr_number(entry, "max")
        ctx.bounds(lo, hi, f"<fit-dof> entry <{entry.tag}>", entry.origin)
        dof = s.FitDofSpec(
            name=entry.tag, origin=entry.origin,
            enabled=ctx.attr_bool(entry, "enabled", True),
            min=lo, max=hi, reset=ctx.attr_bool(entry, "reset", False), tag=entry.get("tag"))
        key = names.tagged(entry.tag, dof.tag)
        if key in out:
            ctx.error(f"<fit-dof> lists '{key}' twice", entry.origin)
        out[key] = dof
    return out


def _param(name: str, value: float, origin, dof: s.FitDofSpec | None, ctx: Context) -> s.ParamSpec:
    if dof is None:
        return s.ParamSpec(name=name, value=value, origin=origin)
    if dof.enabled and value is not None and math.isfinite(value):
        if (dof.min is not None and value < dof.min) or (dof.max is not None and value > dof.max):
            ctx.warn(f"initial value {value:g} of '{name}' is outside its fit range "
                     f"[{_fmt(dof.min)}:{_fmt(dof.max)}]", dof.origin)
    return s.ParamSpec(name=name, value=value, origin=origin, fit=dof.enabled, min=dof.min,
                       max=dof.max, reset=dof.reset, tag=dof.tag)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


# ============================================================================ functions


def _function_common(ctx: Context, node: Node) -> tuple[float | None, s.FunctionSpec | None]:
    cutoff = ctx.child_number(node, "cutoff")
    if node.find("cutoff") is not None:
        ctx.positive(cutoff, f"<{node.tag}> cutoff", node.find("cutoff").origin)
    screening = None
    scr = node.find("screening")
    if scr is not None and scr.children:
        screening = build_function(ctx, scr.children[0], top_level=False)
    return cutoff, screening


def _user_function(ctx: Context, node: Node, fid: str):
    cutoff, screening = _function_common(ctx, node)
    iv = node.find("input-var")
    input_var = iv.value if iv is not None and iv.value else "r"
    params: list[tuple[str, float, Node]] = []
    seen: set[str] = set()
    for p in node.findall("param"):
        name = p.get("name", "").strip()
        if name in seen:
            ctx.error(f"parameter '{name}' is defined twice", p.origin)
        seen.add(name)
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            ctx.error(f"<param name='{name}'>: a parameter name must be a plain identifier",
                      p.origin)
        value = ctx.number(p.value, p, f"<param name='{name}'>")
        ctx.finite(value, f"parameter '{name}'", p.origin)
        params.append((name, value, p))
    if input_var in seen:
        ctx.error(f"'{input_var}' is both the input variable and a parameter", node.origin)
    allowed = {input_var, *seen} | ({"cutoff"} if cutoff is not None else set())
    expr_node = node.find("expression")
    if expr_node is None:
        ctx.error(f"<user-function id='{fid}'> needs an <expression>", node.origin)
        expression = None
    else:
        expression = ctx.expression(expr_node, allowed)
    der_node = node.find("derivative")
    derivative = ctx.expression(der_node, allowed) if der_node is not None else None
    dofs = _fit_dofs(ctx, node.find("fit-dof"), [n for n, _, _ in params],
                     f"user-function '{fid}'")
    if expression is None and expr_node is not None:
        return None
    return s.UserFunctionSpec(
        id=fid, input_var=input_var, expression=expression,
        expression_text=expr_node.value if expr_node is not None else "",
        derivative=derivative, derivative_text=der_node.value if der_node is not None else None,
        params=tuple(_param(n, v, p.origin, dofs.get(n), ctx) for n, v, p in params),
        cutoff=cutoff, screening=screening, origin=node.origin)


def _spline(ctx: Context, node: Node, fid: str):
    cutoff, screening = _function_common(ctx, node)
    dofs = _fit_dofs(ctx, node.find("fit-dof"), ["derivative-left", "derivative-right"],
                     f"spline '{fid}'")
    ends = []
    for tag in ("derivative-left", "derivative-right"):
        v = ctx.child_number(node, tag)
        v = 0.0 if v is None else v
        child = node.find(tag)
        ends.append(_param(tag, v, (child or node).origin, dofs.get(tag), ctx))
    nodes = []
    nodes_el = node.find("nodes")
    xs: list[float] = []
    for n in (nodes_el.findall("node") if nodes_el is not None else []):
        x = ctx.attr_number(n, "x")
        y = ctx.attr_number(n, "y")
        lo, hi = ctx.attr_number(n, "min"), ctx.attr_number(n, "max")
        ctx.bounds(lo, hi, "<node>", n.origin)
        ctx.finite(x, "<node> x", n.origin)
        ctx.finite(y, "<node> y", n.origin)
        if x is None or y is None:
            continue
        xs.append(x)
        nodes.append(s.SplineNodeSpec(x=x, y=s.ParamSpec(
            name=names.spline_node(x), value=y, origin=n.origin,
            fit=ctx.attr_bool(n, "enabled", False), min=lo, max=hi,
            reset=ctx.attr_bool(n, "reset", False))))
    if len(nodes) < 2:
        ctx.error(f"<spline id='{fid}'> needs at least two <node> elements", node.origin)
    if any(b <= a for a, b in zip(xs, xs[1:])):
        ctx.error(f"<spline id='{fid}'>: node x values must increase strictly", node.origin)
    return s.SplineSpec(id=fid, cutoff=cutoff, derivative_left=ends[0], derivative_right=ends[1],
                        nodes=tuple(nodes), screening=screening, origin=node.origin)


def _poly(ctx: Context, node: Node, fid: str):
    cutoff, screening = _function_common(ctx, node)
    params = []
    coeffs = node.find("coefficients")
    seen = set()
    for c in (coeffs.findall("coeff") if coeffs is not None else []):
        n = ctx.attr_int(c, "n")
        if n is None:
            continue
        if n < 0:
            ctx.error("<coeff n>: the power must be ≥ 0", c.origin)
        if n in seen:
            ctx.error(f"<coeff n='{n}'> appears twice", c.origin)
        seen.add(n)
        value = ctx.number(c.value, c, f"<coeff n='{n}'>")
        lo, hi = ctx.attr_number(c, "min"), ctx.attr_number(c, "max")
        ctx.bounds(lo, hi, f"<coeff n='{n}'>", c.origin)
        params.append(s.ParamSpec(name=names.poly_coefficient(n), value=value, origin=c.origin,
                                  fit=ctx.attr_bool(c, "enabled", False), min=lo, max=hi,
                                  reset=ctx.attr_bool(c, "reset", False)))
    if not params:
        ctx.error(f"<poly id='{fid}'> needs <coefficients> with at least one <coeff>", node.origin)
    if node.find("fit-dof") is not None:
        _fit_dofs(ctx, node.find("fit-dof"), [], f"poly '{fid}' (use enabled on <coeff>)")
    return s.AnalyticFunctionSpec(kind="poly", id=fid, params=tuple(params), cutoff=cutoff,
                                  screening=screening, origin=node.origin)


def _composite(ctx: Context, node: Node, fid: str):
    cutoff, screening = _function_common(ctx, node)
    parts = [build_function(ctx, c, top_level=False) for c in node.children if c.tag in FUNCTIONS]
    if not parts:
        ctx.error(f"<{node.tag} id='{fid}'> needs at least one function inside", node.origin)
    if node.find("fit-dof") is not None:
        _fit_dofs(ctx, node.find("fit-dof"), [], f"{node.tag} '{fid}' (fit the inner functions)")
    return s.CompositeFunctionSpec(kind=node.tag, id=fid, functions=tuple(p for p in parts if p),
                                   cutoff=cutoff, screening=screening, origin=node.origin)


def _analytic(ctx: Context, node: Node, fid: str):
    cutoff, screening = _function_common(ctx, node)
    names_ = ANALYTIC_FUNCTIONS[node.tag]
    if node.tag in NEEDS_CUTOFF and cutoff is None:
        ctx.error(f"<{node.tag}> needs a <cutoff>", node.origin)
    dofs = _fit_dofs(ctx, node.find("fit-dof"), list(names_), f"{node.tag} '{fid}'")
    params = []
    for name in names_:
        child = node.find(name)
        value = ctx.child_number(node, name, required=True)
        if value is None:
            continue
        ctx.finite(value, f"<{node.tag}> {name}", child.origin)
        params.append(_param(name, value, child.origin, dofs.get(name), ctx))
    return s.AnalyticFunctionSpec(kind=node.tag, id=fid, params=tuple(params), cutoff=cutoff,
                                  screening=screening, origin=node.origin)


FUNCTIONS: dict[str, Callable] = {
    "user-function": _user_function,
    "spline": _spline,
    "poly": _poly,
    "sum": _composite,
    "product": _composite,
    **{kind: _analytic for kind in ANALYTIC_FUNCTIONS},
}


def build_function(ctx: Context, node: Node, *, top_level: bool) -> s.FunctionSpec | None:
    fid = (node.get("id") or "").strip()
    if top_level and not fid:
        ctx.error(f"<{node.tag}> inside <functions> needs an 'id' (mappings refer to it)",
                  node.origin)
    return FUNCTIONS[node.tag](ctx, node, fid)


# ============================================================================ potentials


def _potential_head(ctx: Context, node: Node) -> dict:
    pid = (node.get("id") or "").strip()
    a, b = node.get("species-a", "*"), node.get("species-b", "*")
    ctx.check_species(a, node.origin, f"<{node.tag} id='{pid}'> species-a")
    ctx.check_species(b, node.origin, f"<{node.tag} id='{pid}'> species-b")
    return dict(kind=node.tag, id=pid, species_a=a, species_b=b, origin=node.origin)


class FamilyReader:
    """What a family's ``build_spec`` reads the XML with (the reader of
    :mod:`rexfit.potentials.family`): the builder's located errors, numbers, fit-dofs and
    parameter specs, named by :mod:`rexfit.job.names`."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def error(self, message: str, origin) -> None:
        self.ctx.error(message, origin)

    def warn(self, message: str, origin) -> None:
        self.ctx.warn(message, origin)

    def number(self, node: Node, tag: str, required: bool = False) -> float | None:
        return self.ctx.child_number(node, tag, required=required)

    def attribute(self, node: Node, name: str, default: float | None = None) -> float | None:
        return self.ctx.attr_number(node, name, default)

    def integer(self, node: Node, name: str, default: int | None = None) -> int | None:
        return self.ctx.attr_int(node, name, default)

    def boolean(self, node: Node, name: str, default: bool) -> bool:
        return self.ctx.attr_bool(node, name, default)

    def numbers(self, node: Node, name: str, default: str | None = None) -> list[float]:
        return _numbers(self.ctx, node, name, default)

    def value(self, node: Node, what: str) -> float | None:
        return self.ctx.number(node.value, node, what)

    def flag(self, node: Node, name: str, default: bool) -> bool:
        return self.ctx.attr_bool(node, name, default)

    def file(self, node: Node) -> str | None:
        return self.ctx.file(node)

    @property
    def declared_species(self) -> tuple[str, ...]:
        return tuple(self.ctx.species)

    def check_species(self, name: str | None, origin, what: str) -> None:
        self.ctx.check_species(name, origin, what)

    def positive(self, value: float | None, what: str, origin) -> None:
        self.ctx.positive(value, what, origin)

    def finite(self, value: float | None, what: str, origin) -> None:
        self.ctx.finite(value, what, origin)

    def fit_dofs(self, node: Node | None, allowed, owner: str) -> dict[str, s.FitDofSpec]:
        return _fit_dofs(self.ctx, node, allowed, owner)

    def param(self, name: str, value: float, origin, dof: s.FitDofSpec | None,
              tag: str | None = None) -> s.ParamSpec:
        """The spec of parameter ``name`` (``name[tag]`` with a tag)."""
        return _param(names.tagged(name, tag), value, origin, dof, self.ctx)

    def species(self, name: str | None, origin, what: str) -> bool:
        """True if ``name`` is a declared species (no wildcard); else an error."""
        if name in self.ctx.species:
            return True
        if name in (None, "", "*"):
            self.ctx.error(f"{what}: name one declared species here (not '{name or ''}')",
                           origin)
        else:
            self.ctx.check_species(name, origin, what, wildcard=False)
        return False


def _family_potential(ctx: Context, node: Node) -> s.PotentialSpec:
    """A potential of a family on :mod:`rexfit.potentials.registry`: its typed spec, its
    parameters and its exports."""
    family = registry.family(node.tag)
    head = _potential_head(ctx, node)
    mapped = _functions_and_mapping(ctx, node, head, family.mapping_roles) \
        if family.mapping_roles else {}
    typed = family.build_spec(FamilyReader(ctx), node, head["id"], head["species_a"],
                              head["species_b"])
    params = () if typed is None else tuple(p for _, p in family.parameter_specs(typed))
    exports = _exports(ctx, node, family.exports) if family.exports else ()
    if family.dof_groups:
        files = {} if typed is None else {"fit_dofs": typed.fit_dofs}
    else:
        files = {key: getattr(typed, key) for key in ("param_file", "fit_dofs")
                 if hasattr(typed, key)}
    return s.PotentialSpec(**head, params=params, exports=exports, family_spec=typed, **files,
                           **mapped)


def _exports(ctx: Context, node: Node, tags: tuple[str, ...]) -> tuple[s.ExportSpec, ...]:
    out = []
    for c in node.children:
        if c.tag in tags:
            if not c.value:
                ctx.error(f"<{c.tag}> needs a file name", c.origin)
                continue
            res = ctx.attr_int(c, "resolution")
            if res is not None and res < 2:
                ctx.error(f"<{c.tag}> resolution must be at least 2", c.origin)
            rf = ctx.attr_number(c, "rho-range-factor")
            if c.get("rho-range-factor") is not None:
                ctx.positive(rf, f"<{c.tag}> rho-range-factor", c.origin)
            out.append(s.ExportSpec(path=c.value, origin=c.origin,
                                    options=tuple(sorted(c.attrs.items())) + (("kind", c.tag),)))
    return tuple(out)


def _functions_and_mapping(ctx: Context, node: Node, head: dict,
                           roles: tuple[str, ...]) -> dict:
    """{functions, mapping} of a family built from the job's functions: every ``<functions>``
    entry and every ``<mapping>`` line (its role among ``roles``), checked."""
    functions: list[s.FunctionSpec] = []
    ids: dict[str, Node] = {}
    for fl in node.findall("functions"):
        for fnode in fl.children:
            fid = (fnode.get("id") or "").strip()
            if fid and fid in ids:
                ctx.error(f"function id '{fid}' is used twice in potential '{head['id']}' "
                          f"(first at {ids[fid].origin})", fnode.origin)
            ids.setdefault(fid, fnode)
            fn = build_function(ctx, fnode, top_level=True)
            if fn is not None:
                functions.append(fn)
    mapping = []
    mapping_nodes = node.findall("mapping")
    param_file = node.find("param-file")
    if not mapping_nodes and param_file is None:
        ctx.error(f"<{node.tag} id='{head['id']}'> needs a <mapping> that assigns functions",
                  node.origin)
    for m in mapping_nodes:
        for entry in m.children:
            if entry.tag not in roles:
                ctx.error(f"<{entry.tag}> is not part of a <{node.tag}> mapping "
                          f"(allowed: {', '.join(roles)})", entry.origin)
                continue
            fname = entry.get("function", "").strip()
            if fname not in ids:
                known = ", ".join(sorted(i for i in ids if i)) or "none defined"
                ctx.error(f"<{entry.tag}> refers to function '{fname}', which is not defined in "
                          f"<functions> of potential '{head['id']}' (defined: {known})",
                          entry.origin)
            for attr in ("species", "species-a", "species-b", "species-c"):
                ctx.check_species(entry.get(attr), entry.origin, f"<{entry.tag}> {attr}")
            if entry.get("species-c", "*").strip() != "*":
                ctx.error(f"<{entry.tag}> species-c: g depends on the species of the two "
                          "neighbours only (species-a and species-b), as in LAMMPS "
                          "meam/spline; leave species-c out", entry.origin)
            if entry.tag == "embedding-energy" or entry.get("species") is not None:
                a, b = entry.get("species", "*"), None
            else:
                a, b = entry.get("species-a", "*"), entry.get("species-b", "*")
            mapping.append(s.MappingSpec(role=entry.tag, species_a=a, species_b=b,
                                         function=fname, origin=entry.origin))
    return dict(functions=tuple(functions), mapping=tuple(mapping))


def _numbers(ctx: Context, node: Node, name: str, default: str | None = None) -> list[float]:
    raw = node.get(name, default)
    if raw is None:
        return []
    out = []
    for word in raw.split():
        value = ctx.number(word, node, f"<{node.tag}> attribute '{name}'")
        if value is not None:
            out.append(value)
    return out


#: XML element -> potential builder: the families of the registry, then the others.
POTENTIALS: dict[str, Callable] = {
    **{f.element: _family_potential for f in registry.FAMILIES},
}


# ============================================================================ structures


def _property(ctx: Context, node: Node, sid: str, kind: str) -> s.PropertySpec | None:
    name = node.tag
    where = f"structure '{sid}', property {name}"
    if name == "ca-ratio" and kind not in CA_LATTICES:
        ctx.error(f"{where}: only hcp, L10 and omega lattices have a c/a ratio", node.origin)
    if name == "atom-distance" and kind != "dimer-structure":
        ctx.error(f"{where}: only <dimer-structure> has an atom distance", node.origin)
    if name == "lattice-parameter" and kind in ("dimer-structure", "user-structure"):
        ctx.error(f"{where}: <{kind}> has no lattice parameter", node.origin)
    fit = ctx.attr_bool(node, "fit", False)
    target = None
    if name == "stress":
        raw = node.get("target")
        if raw is not None:
            vals = [ctx.number(t, node, f"{where} target") for t in raw.split()]
            if len(vals) != 6:
                ctx.error(f"{where}: target needs six Voigt components (xx yy zz yz xz xy), "
                          f"got {len(vals)}", node.origin)
            for v in vals:
                ctx.finite(v, f"{where} target", node.origin)
            target = tuple(vals)
    elif name != "atomic-forces":
        target = ctx.attr_number(node, "target")
        ctx.finite(target, f"{where}: target", node.origin)
        from_file = kind == "user-structure" and name in ("total-energy", "atomic-energy")
        if fit and target is None and not from_file:  # user structures: the file's energy
            ctx.error(f"{where}: fit='true' needs a target value", node.origin)
    weight = ctx.attr_number(node, "relative-weight", 1.0)
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        ctx.error(f"{where}: relative-weight must be ≥ 0, got {weight:g}", node.origin)
    tol = ctx.attr_number(node, "tolerance")
    ctx.positive(tol, f"{where}: tolerance", node.origin)
    lo, hi = ctx.attr_number(node, "min"), ctx.attr_number(node, "max")
    ctx.bounds(lo, hi, where, node.origin)
    style = node.get("residual-style", "squared")
    if style == "squared-relative" and fit and isinstance(target, float) and target == 0:
        ctx.error(f"{where}: residual-style 'squared-relative' divides by the target, which is 0",
                  node.origin)
    if (name in DOF_PROPERTIES and fit and isinstance(target, float) and math.isfinite(target)
            and ((lo is not None and target < lo) or (hi is not None and target > hi))):
        ctx.warn(f"{where}: target {target:g} is outside the DOF's own range "
                 f"[{_fmt(lo)}:{_fmt(hi)}]; the relaxed value can never reach it", node.origin)
    return s.PropertySpec(
        name=name, origin=node.origin, fit=fit, target=target, relative_weight=weight or 0.0,
        tolerance=tol, residual_style=style, min=lo, max=hi,
        output=ctx.attr_bool(node, "output", True),
        output_all=ctx.attr_bool(node, "output-all", False))


def _structure_common(ctx: Context, node: Node, kind: str, group: str, fit: bool) -> dict:
    sid = (node.get("id") or "").strip()
    weight = ctx.attr_number(node, "relative-weight", 1.0)
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        ctx.error(f"structure '{sid}': relative-weight must be ≥ 0, got {weight:g}", node.origin)
    props: dict[str, s.PropertySpec] = {}
    for pl in node.findall("properties"):
        for pnode in pl.children:
            if pnode.tag in props:
                ctx.error(f"structure '{sid}': property {pnode.tag} is given twice", pnode.origin)
                continue
            p = _property(ctx, pnode, sid, kind)
            if p is not None:
                props[pnode.tag] = p
    relax: set[str] = set()
    for rl in node.findall("relax") + node.findall("relax-dof"):
        for r in rl.children:
            msg = _relax_problem(r.tag, kind)
            if msg:
                ctx.error(f"structure '{sid}': {msg}", r.origin)
            relax.add(r.tag)
    for name, p in props.items():
        if name in DOF_PROPERTIES and p.fit:
            relax.add(name)
    output = None
    out_node = node.find("output")
    if out_node is not None:
        output = s.OutputSpec(path=out_node.get("file", ""), format=out_node.get("format", ""),
                              origin=out_node.origin)
    return dict(kind=kind, id=sid, origin=node.origin, relative_weight=weight or 0.0,
                fit=fit and ctx.attr_bool(node, "fit", True), relax=frozenset(relax),
                properties=tuple(props.values()), output=output, group=group)


def _relax_problem(dof: str, kind: str) -> str | None:
    if dof == "lattice-parameter" and kind in ("dimer-structure", "user-structure"):
        return f"<{kind}> has no lattice parameter to relax"
    if dof == "ca-ratio" and kind not in CA_LATTICES:
        return "only hcp, L10 and omega lattices have a c/a ratio to relax"
    if dof == "atom-distance" and kind != "dimer-structure":
        return "only <dimer-structure> has an atom distance to relax"
    if dof in ("cell-shape", "cell-volume") and kind != "user-structure":
        return f"<{dof}/> applies to <user-structure>; lattices relax lattice-parameter/ca-ratio"
    return None


def _lattice(ctx: Context, node: Node, group: str, fit: bool) -> s.StructureSpec:
    kind = node.tag
    common = _structure_common(ctx, node, kind, group, fit)
    sid = common["id"]
    one = node.find("atom-type")
    a, b = node.find("atom-type-A"), node.find("atom-type-B")
    if kind in COMPOUND_LATTICES or (kind == "dimer-structure" and one is None):
        species = tuple(x.value for x in (a, b) if x is not None)
        if len(species) != 2:
            ctx.error(f"<{kind} id='{sid}'> needs <atom-type-A> and <atom-type-B>", node.origin)
    else:
        if one is None and a is None:
            ctx.error(f"<{kind} id='{sid}'> needs an <atom-type>", node.origin)
            species = ()
        else:
            species = ((one or a).value,)
        if kind == "dimer-structure" and species:
            species = species * 2
    for sp_node in (one, a, b):
        if sp_node is not None:
            ctx.check_species(sp_node.value, sp_node.origin, f"structure '{sid}' <{sp_node.tag}>",
                              wildcard=False)
    lp = ca = dist = None
    if kind == "dimer-structure":
        dist = ctx.child_number(node, "atom-distance", required=True)
        if node.find("atom-distance") is not None:
            ctx.positive(dist, f"structure '{sid}' <atom-distance>", node.find("atom-distance").origin)
        if node.find("lattice-parameter") is not None:
            ctx.error(f"<dimer-structure id='{sid}'> takes <atom-distance>, not <lattice-parameter>",
                      node.find("lattice-parameter").origin)
    else:
        lp = ctx.child_number(node, "lattice-parameter", required=True)
        if node.find("lattice-parameter") is not None:
            ctx.positive(lp, f"structure '{sid}' <lattice-parameter>",
                         node.find("lattice-parameter").origin)
        if node.find("atom-distance") is not None:
            ctx.error(f"<{kind}> has no <atom-distance> (only <dimer-structure> does)",
                      node.find("atom-distance").origin)
    if kind in CA_LATTICES:
        ca = ctx.child_number(node, "ca-ratio")
        if ca is None:
            ca = CA_LATTICES[kind]
        elif node.find("ca-ratio") is not None:
            ctx.positive(ca, f"structure '{sid}' <ca-ratio>", node.find("ca-ratio").origin)
    elif node.find("ca-ratio") is not None:
        ctx.error(f"<{kind}> has no c/a ratio (hcp, L10 and omega do)", node.find("ca-ratio").origin)
    _check_dof_start(ctx, common, "lattice-parameter", lp)
    _check_dof_start(ctx, common, "ca-ratio", ca)
    _check_dof_start(ctx, common, "atom-distance", dist)
    return s.StructureSpec(**common, species=species, lattice_parameter=lp, ca_ratio=ca,
                           atom_distance=dist)


def _check_dof_start(ctx: Context, common: dict, name: str, value: float | None) -> None:
    for p in common["properties"]:
        if p.name == name and value is not None and math.isfinite(value):
            if (p.min is not None and value < p.min) or (p.max is not None and value > p.max):
                ctx.error(f"structure '{common['id']}': the initial {name} {value:g} is outside "
                          f"its range [{_fmt(p.min)}:{_fmt(p.max)}]", p.origin)


def _user_structure(ctx: Context, node: Node, group: str, fit: bool) -> s.StructureSpec:
    common = _structure_common(ctx, node, "user-structure", group, fit)
    sid = common["id"]
    sources = [c for c in node.children if c.tag in ("poscar-file", "atoms-file", "cell")]
    if len(sources) != 1:
        what = "none" if not sources else ", ".join(f"<{c.tag}>" for c in sources)
        ctx.error(f"<user-structure id='{sid}'> needs exactly one of <poscar-file>, <atoms-file> "
                  f"or <cell> (found {what})", node.origin)
    kw: dict = {}
    pbc_node = node.find("pbc")
    if pbc_node is not None:
        kw["pbc"] = tuple(ctx.attr_bool(pbc_node, ax, True) for ax in "xyz")
    poscar = node.find("poscar-file")
    if poscar is not None:
        kw["poscar_file"] = ctx.file(poscar)
        if kw["poscar_file"]:
            _check_poscar_species(ctx, poscar, kw["poscar_file"])
    af = node.find("atoms-file")
    if af is not None:
        kw["atoms_file"] = ctx.file(af)
        kw["atoms_format"] = af.get("format")
    cell = node.find("cell")
    if cell is not None:
        vecs = []
        for tag in ("a1", "a2", "a3"):
            v = cell.find(tag)
            if v is None:
                ctx.error(f"<cell> of structure '{sid}' needs <{tag} x y z/>", cell.origin)
                continue
            vecs.append(tuple(ctx.attr_number(v, ax) or 0.0 for ax in "xyz"))
        if len(vecs) == 3:
            det = _det3(vecs)
            if not abs(det) > 1e-12:
                ctx.error(f"<cell> of structure '{sid}': the cell vectors are linearly dependent "
                          f"(volume {det:g} Å³)", cell.origin)
            kw["cell"] = tuple(vecs)
        atoms_nodes = cell.findall("atoms") + node.findall("atoms")
        atoms = []
        for al in atoms_nodes:
            for at in al.findall("atom"):
                ctx.check_species(at.get("type"), at.origin, f"structure '{sid}' <atom>", wildcard=False)
                pos = tuple(ctx.attr_number(at, ax) or 0.0 for ax in "xyz")
                atoms.append(s.AtomSpec(species=at.get("type", ""), position=pos,
                                        reduced=ctx.attr_bool(at, "reduced", False),
                                        origin=at.origin))
        if not atoms:
            ctx.error(f"<cell> of structure '{sid}' has no atoms (add <atoms><atom .../></atoms>)",
                      cell.origin)
        kw["atoms"] = tuple(atoms)
    species = tuple(sorted({a.species for a in kw.get("atoms", ())}))
    return s.StructureSpec(**common, species=species, **kw)


def _det3(v) -> float:
    (a, b, c), (d, e, f), (g, h, i) = v
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _check_poscar_species(ctx: Context, node: Node, path: str) -> None:
    """If the POSCAR names its species (VASP 5 line 6), they must be declared."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [next(fh, "") for _ in range(7)]
    except OSError:
        return
    if len(lines) < 6:
        ctx.error(f"<poscar-file>: '{os.path.basename(path)}' is too short to be a POSCAR file",
                  node.origin)
        return
    tokens = lines[5].split()
    if tokens and all(t.isalpha() for t in tokens):
        for t in tokens:
            ctx.check_species(t, node.origin, f"<poscar-file> {os.path.basename(path)}", wildcard=False)


STRUCTURES: dict[str, Callable] = {
    **{kind: _lattice for kind in LATTICES},
    "user-structure": _user_structure,
}


#: Dataset file formats (the readers' registry).
DATASET_FORMATS = DATASET_READERS


def _dataset_path(ctx: Context, c: Node, fmt: str | None) -> str | None:
    """The path of a <file>: a file, or for FitSNAP JSON also a directory of them."""
    name = (c.value or "").strip()
    if name and (fmt is None or fmt.strip().lower() in ("fitsnap", "fitsnap-json")):
        path = os.path.normpath(os.path.join(os.path.dirname(c.origin.path), name))
        if os.path.isdir(path):
            return path
    return ctx.file(c)


def _dataset_selection(ctx: Context, c: Node) -> tuple:
    """(index, groups, select) of a <file>, checked (never evaluated)."""

    def checked(attr: str, parse) -> str | None:
        value = c.get(attr)
        if value is None:
            return None
        try:
            parse(value)
        except InputError as err:
            ctx.error(f"<{c.tag}> {err.message}", c.origin)
        return value.strip()

    groups = tuple((c.get("group") or "").split())
    if c.get("group") is not None and not groups:
        ctx.error(f"<{c.tag}> group is empty: give the group names, separated by blanks",
                  c.origin)
    return checked("index", parse_index), groups, checked("select", parse_select)


def _dataset(ctx: Context, node: Node, group: str, fit: bool) -> s.DatasetSpec:
    did = (node.get("id") or "").strip()
    weight = ctx.attr_number(node, "relative-weight", 1.0)
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        ctx.error(f"dataset '{did}': relative-weight must be ≥ 0, got {weight:g}", node.origin)
    fraction = ctx.attr_number(node, "validation-fraction", 0.0) or 0.0
    if not 0.0 <= fraction < 1.0:
        ctx.error(f"dataset '{did}': validation-fraction must be in [0, 1), got {fraction:g}",
                  node.origin)
    files = []
    for c in node.children:
        if c.tag not in ("file", "validation-file"):
            continue
        fmt = c.get("format")
        path = _dataset_path(ctx, c, fmt)
        if fmt is not None and not is_format_name(fmt):
            ctx.error(f"<{c.tag}> format '{fmt}' is not a dataset format (one of "
                      f"{', '.join(DATASET_FORMATS)}, or a format name ASE reads)", c.origin)
        group_from = c.get("group-from")
        if group_from is not None and group_from.strip() != "comment" \
                and not group_from.strip().startswith("info:"):
            ctx.error(f"<{c.tag}> group-from must be 'comment' or 'info:KEY', got "
                      f"'{group_from}'", c.origin)
        keys = []
        for quantity in ("energy", "forces", "stress"):
            key = c.get(f"{quantity}-key")
            if key is None:
                continue
            if not key.strip():
                ctx.error(f"<{c.tag}> {quantity}-key is empty: give the name of the key",
                          c.origin)
            keys.append((quantity, key.strip()))
        index, groups, select = _dataset_selection(ctx, c)
        files.append(s.DatasetFileSpec(
            path=path or "", origin=c.origin, format=None if fmt is None else fmt.strip(),
            group_from=None if group_from is None else group_from.strip(),
            energy_shift_per_atom=ctx.attr_number(c, "energy-shift-per-atom", 0.0) or 0.0,
            validation=c.tag == "validation-file", keys=tuple(keys),
            index=index, groups=groups, select=select))
    if not any(not f.validation for f in files):
        ctx.error(f"<dataset id='{did}'> needs at least one <file>", node.origin)
    refs = []
    for c in node.findall("reference-energy"):
        sp = (c.get("species") or "").strip()
        ctx.check_species(sp, c.origin, "<reference-energy> species", wildcard=False)
        try:
            refs.append((sp, float(c.value)))
        except (TypeError, ValueError):
            ctx.error(f"<reference-energy species='{sp}'> needs a number", c.origin)
    weighting = None
    ew = node.find("energy-weighting")
    if ew is not None:
        scale = ctx.attr_number(ew, "scale")
        ctx.positive(scale, "<energy-weighting> scale", ew.origin)
        form = (ew.get("form") or "inverse-square").strip()
        if form not in ("inverse-square", "exponential"):
            ctx.error(f"<energy-weighting> form must be inverse-square or exponential, got "
                      f"'{form}'", ew.origin)
        weighting = (scale or 1.0, form, ctx.attr_number(ew, "max-above-min"))
    group_weights, weight_keys, conventions = _dataset_weights(ctx, node, did)
    props = []
    for pl in node.findall("properties"):
        for c in pl.children:
            if c.tag not in DATASET_PROPERTIES:
                ctx.error(f"<{c.tag}> cannot be fitted to a dataset (one of "
                          f"{', '.join(DATASET_PROPERTIES)})", c.origin)
                continue
            w = ctx.attr_number(c, "relative-weight", 1.0)
            tol = ctx.attr_number(c, "tolerance")
            if tol is not None:
                ctx.positive(tol, f"<{c.tag}> tolerance", c.origin)
            props.append(s.PropertySpec(name=c.tag, origin=c.origin, fit=True,
                                        relative_weight=1.0 if w is None else w, tolerance=tol))
    if not props:
        props = [s.PropertySpec(name=n, origin=node.origin, fit=True)
                 for n in ("atomic-energy", "atomic-forces")]
    kappa_auto = (node.get("kappa") or "").strip() == "auto"
    if node.get("kappa") is not None:
        props = _kappa(ctx, node, did, props)
    return s.DatasetSpec(kappa_auto=kappa_auto, id=did, origin=node.origin, files=tuple(files),
                         properties=tuple(props), relative_weight=weight or 0.0,
                         fit=fit and ctx.attr_bool(node, "fit", True),
                         validation_fraction=fraction,
                         seed=ctx.attr_int(node, "seed") or 0,
                         reference_energies=tuple(refs), energy_weighting=weighting, group=group,
                         keep_extreme_volumes=ctx.attr_bool(node, "keep-extreme-volumes",
                                                            False),
                         group_weights=group_weights, weight_keys=weight_keys, **conventions)


def _kappa(ctx: Context, node: Node, did: str, props: list) -> list:
    """``props`` with pacemaker's κ (the ``kappa`` attribute) as the relative weights of the
    energies (1 − κ) and forces (κ); ``auto``: 1/2 each until the data are read."""
    if (node.get("kappa") or "").strip() == "auto":
        kappa = 0.5  # provisional: the model layer sets it from the training data
    else:
        kappa = ctx.attr_number(node, "kappa")
    if kappa is None:
        return props
    if not 0.0 <= kappa <= 1.0:
        ctx.error(f"dataset '{did}': kappa must be in [0, 1] (pacemaker's force weight), got "
                  f"{kappa:g}", node.origin)
        return props
    given = {c.tag: c for pl in node.findall("properties") for c in pl.children}
    share = {"atomic-energy": 1.0 - kappa, "atomic-forces": kappa}
    for name, w in share.items():
        c = given.get(name)
        if c is not None and c.get("relative-weight") is not None:
            ctx.error(f"dataset '{did}': <{name}> relative-weight and the dataset's kappa both "
                      "set its weight: give one", c.origin)
        if w > 0.0 and not any(p.name == name for p in props):
            ctx.error(f"dataset '{did}': kappa = {kappa:g} gives {name} the weight {w:g}, but "
                      f"<properties> does not fit it: add <{name}/>", node.origin)
    return [dataclasses.replace(p, relative_weight=share[p.name]) if p.name in share else p
            for p in props]


#: <dataset> attributes naming per-frame weight keys, and the quantity each weights.
WEIGHT_KEY_ATTRIBUTES = {"weight-key": "all", "energy-weight-key": "energy",
                         "forces-weight-key": "forces", "stress-weight-key": "stress"}
#: <dataset> residual conventions: attribute -> (accepted values, default first).
DATASET_CONVENTIONS = {"component-residuals": ("mean", "sum"),
                       "energy-residual": ("per-atom", "total")}


def _dataset_weights(ctx: Context, node: Node, did: str) -> tuple:
    """(group weights, weight keys, {convention field: value}) of a <dataset>."""
    groups: dict[str, s.GroupWeightSpec] = {}
    for c in node.findall("group-weight"):
        name = (c.get("group") or "").strip()
        if not name:
            ctx.error("<group-weight> needs a group name (group=\"...\")", c.origin)
            continue
        if name in groups:
            ctx.error(f"<group-weight group='{name}'> is given twice in dataset '{did}' (first "
                      f"at {groups[name].origin})", c.origin)
            continue
        values = {}
        for attr in ("weight", "energy", "forces", "stress"):
            v = ctx.attr_number(c, attr, 1.0)
            if v is not None and not (math.isfinite(v) and v >= 0):
                ctx.error(f"<group-weight group='{name}'> {attr} must be a number ≥ 0, got "
                          f"{v:g}", c.origin)
                v = 1.0
            values[attr] = 1.0 if v is None else v
        groups[name] = s.GroupWeightSpec(group=name, origin=c.origin, **values)
    keys = []
    for attr, quantity in WEIGHT_KEY_ATTRIBUTES.items():
        key = node.get(attr)
        if key is None:
            continue
        if not key.strip():
            ctx.error(f"<dataset id='{did}'> {attr} is empty: give the name of the per-frame "
                      "key", node.origin)
            continue
        keys.append((quantity, key.strip()))
    conventions = {}
    for attr, accepted in DATASET_CONVENTIONS.items():
        value = (node.get(attr) or accepted[0]).strip()
        if value not in accepted:
            ctx.error(f"<dataset id='{did}'> {attr} must be {' or '.join(accepted)}, got "
                      f"'{value}'", node.origin)
            value = accepted[0]
        conventions[attr.replace("-", "_")] = value
    return tuple(groups.values()), tuple(keys), conventions


def _group(ctx: Context, node: Node, path: str, fit: bool, ids: dict[str, Node]) -> s.GroupSpec:
    gid = (node.get("id") or "").strip()
    weight = ctx.attr_number(node, "relative-weight", 1.0)
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        ctx.error(f"group '{gid}': relative-weight must be ≥ 0, got {weight:g}", node.origin)
    fit = fit and ctx.attr_bool(node, "fit", True)
    here = "/".join(p for p in (path, gid) if p)
    members = []
    for c in node.children:
        if c.tag == "group":
            members.append(_group(ctx, c, here, fit, ids))
        elif c.tag == "dataset":
            did = (c.get("id") or "").strip()
            if did in ids:
                ctx.error(f"structure id '{did}' is used twice (first at {ids[did].origin})",
                          c.origin)
            ids.setdefault(did, c)
            members.append(_dataset(ctx, c, here, fit))
        elif c.tag in STRUCTURES:
            sid = (c.get("id") or "").strip()
            if sid in ids:
                ctx.error(f"structure id '{sid}' is used twice (first at {ids[sid].origin})",
                          c.origin)
            ids.setdefault(sid, c)
            members.append(STRUCTURES[c.tag](ctx, c, here, fit))
    return s.GroupSpec(id=gid, origin=node.origin, relative_weight=weight or 0.0, fit=fit,
                       members=tuple(members))


# ============================================================================ fitting


def _typed_options(ctx: Context, node: Node) -> tuple[tuple[str, object], ...]:
    out = []
    for k, v in sorted(node.attrs.items()):
        if k == "algorithm":
            out.append((k, v.strip()))
            continue
        try:
            num: object = int(v) if re.fullmatch(r"\s*[+-]?\d+\s*", v) else float(v)
        except ValueError:
            low = v.strip().lower()
            num = True if low == "true" else False if low == "false" else v.strip()
        out.append((k, num))
    return tuple(out)


def _minimizer(ctx: Context, node: Node) -> s.MinimizerSpec:
    opts = dict(_typed_options(ctx, node))
    for key in ("conv-threshold", "learning-rate", "ftol_rel", "ftol_abs", "xtol_rel", "xtol_abs",
                "maxtime", "gradient-tolerance", "ftol", "xtol", "gtol", "decay-rate", "rcond",
                "linearity-tolerance"):
        if key in opts and isinstance(opts[key], (int, float)):
            ctx.positive(float(opts[key]), f"<{node.tag}> {key}", node.origin)
    for key in ("max-iter", "maxeval", "epochs", "batch-size", "count", "popsize", "memory",
                "patience"):
        if key in opts and isinstance(opts[key], int) and opts[key] < 1:
            ctx.error(f"<{node.tag}> {key} must be at least 1, got {opts[key]}", node.origin)
    if node.tag == "nlopt":
        alg = opts.get("algorithm", "")
        if alg.startswith("NLOPT_"):
            alg = alg[len("NLOPT_"):]
        if alg not in NLOPT_ALGORITHMS:
            ctx.error(f"<nlopt>: unknown algorithm '{alg}' (known: {', '.join(NLOPT_ALGORITHMS)})",
                      node.origin)
    inner = None
    inner_nodes = [c for c in node.children if c.tag in MINIMIZERS]
    if node.tag in ("multistart", "spa"):
        if not inner_nodes:
            ctx.error(f"<{node.tag}> needs a local minimizer inside (e.g. <BFGS/>)", node.origin)
    if inner_nodes:
        inner = _minimizer(ctx, inner_nodes[0])
    return s.MinimizerSpec(kind=node.tag, options=tuple(sorted(opts.items())), origin=node.origin,
                           inner=inner)


MINIMIZERS = ("BFGS", "lbfgs", "nlopt", "nelder-mead", "powell", "differential-evolution", "adam",
              "least-squares", "linear-solve", "multistart", "spa")


def _fitting(ctx: Context, node: Node) -> s.FittingSpec | None:
    mins = [c for c in node.children if c.tag in MINIMIZERS]
    if len(mins) != 1:
        what = "none" if not mins else ", ".join(f"<{c.tag}>" for c in mins)
        ctx.error(f"<fitting> needs exactly one minimizer (e.g. <BFGS/>), found {what}",
                  node.origin)
        if not mins:
            return None
    interval = ctx.attr_int(node, "output-interval", 10)
    if interval is not None and interval < 1:
        ctx.error("<fitting> output-interval must be at least 1", node.origin)
    checkpoint = ctx.attr_int(node, "checkpoint-interval")
    if checkpoint is not None and checkpoint < 1:
        ctx.error("<fitting> checkpoint-interval must be at least 1", node.origin)
    return s.FittingSpec(enabled=ctx.attr_bool(node, "enabled", True),
                         output_interval=interval or 10, minimizer=_minimizer(ctx, mins[0]),
                         origin=node.origin, checkpoint_interval=checkpoint)


# ============================================================================ job


_SINGLE = ("name", "verbosity", "real-precision", "validate-potentials", "output-file",
           "atom-types", "fitting", "tolerance-preset")


def _species(ctx: Context, root: Node) -> None:
    for at in root.findall("atom-types"):
        for sp in at.findall("species"):
            sym = sp.value
            if sym in ctx.species:
                ctx.error(f"species '{sym}' is declared twice", sp.origin)
                continue
            z = ctx.attr_int(sp, "atomic-number")
            mass = ctx.attr_number(sp, "mass")
            if z is None:
                z = atomic_numbers.get(sym)
            if mass is None:
                if z is None:
                    ctx.error(f"species '{sym}' is not an element symbol: give mass and "
                              f"atomic-number attributes", sp.origin)
                    mass = 0.0
                else:
                    mass = float(atomic_masses[z])
            ctx.positive(mass, f"species '{sym}' mass", sp.origin)
            ctx.species[sym] = s.SpeciesSpec(symbol=sym, mass=mass, atomic_number=z or 0,
                                             origin=sp.origin)


def _constraints(ctx: Context, root: Node, potentials: list[s.PotentialSpec]):
    dof_names = {n for p in potentials for n, _ in names.potential_params(p)}
    for p in potentials:
        for d in p.fit_dofs:
            dof_names.add(names.file_param_name(p, d.name, d.tag))
    out = []
    for pc in root.findall("parameter-constraints"):
        for c in pc.findall("constraint"):
            dep = c.get("dependent-dof", "").strip()
            if dep not in dof_names:
                ctx.error(f"<constraint>: dependent-dof '{dep}' is not a parameter of this job "
                          f"(e.g. {sorted(dof_names)[0] if dof_names else 'none defined'})",
                          c.origin)
            enode = c.find("expression")
            tree = _constraint_expression(ctx, enode, dof_names) if enode is not None else None
            if tree is not None:
                out.append(s.ConstraintSpec(id=c.get("id", ""), dependent_dof=dep,
                                            expression=tree, expression_text=enode.value,
                                            origin=c.origin))
    return tuple(out)


_DOF_TOKEN = re.compile(r"[A-Za-z_][\w\- ]*\[[^\]]*\](?:\.[A-Za-z_][\w\-]*(?:\[[^\]]*\])?)+")


def _constraint_expression(ctx: Context, node: Node, dof_names: set[str]):
    """Parse a constraint expression whose names are full DOF names (with brackets and dots).

    Each DOF name is replaced by an identifier of the same length so error columns still point
    into the text the user wrote.
    """
    text = node.text
    mapping: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        name = m.group(0)
        alias = f"_d{len(mapping)}"
        alias = (alias + "_" * len(name))[: max(len(name), len(alias))]
        mapping[alias] = name
        return alias

    replaced = _DOF_TOKEN.sub(sub, text)
    alias_node = Node(node.tag, node.attrs, replaced, node.children, node.origin)
    tree = ctx.expression(alias_node, None)
    if tree is None:
        return None
    from rexfit import expr as ex

    for name in sorted(ex.free_names(tree)):
        real = mapping.get(name, name)
        if real not in dof_names:
            ctx.error(f"<constraint> expression uses '{real}', which is not a parameter of this job",
                      node.origin)
    return (tree, tuple(sorted(mapping.items())))


def build_job(root: Node, path: str) -> tuple[s.JobSpec, list]:
    """Build the JobSpec from the validated tree. Returns (spec, warnings); raises InputErrors."""
    ctx = Context(os.path.dirname(path))
    if root.tag != "job":
        ctx.error(f"the root element must be <job>, not <{root.tag}>", root.origin)
        raise InputErrors(ctx.errors)
    seen: dict[str, Node] = {}
    for c in root.children:
        if c.tag in _SINGLE and c.tag in seen:
            ctx.error(f"<{c.tag}> appears twice in <job> (first at {seen[c.tag].origin})", c.origin)
        seen.setdefault(c.tag, c)
    _species(ctx, root)
    if not ctx.species:
        ctx.error("the job declares no species: add <atom-types><species>Al</species></atom-types>",
                  root.origin)
    potentials: list[s.PotentialSpec] = []
    pids: dict[str, Node] = {}
    for pl in root.findall("potentials"):
        for pnode in pl.children:
            pid = (pnode.get("id") or "").strip()
            if pid in pids:
                ctx.error(f"potential id '{pid}' is used twice (first at {pids[pid].origin})",
                          pnode.origin)
            pids.setdefault(pid, pnode)
            potentials.append(POTENTIALS[pnode.tag](ctx, pnode))
    ids: dict[str, Node] = {}
    groups = [_group(ctx, st, "", True, ids) for st in root.findall("structures")]
    structures = groups[0] if len(groups) == 1 else s.GroupSpec(
        id="", origin=root.origin, members=tuple(m for g in groups for m in g.members))
    fitting = None
    fnode = root.find("fitting")
    if fnode is not None:
        fitting = _fitting(ctx, fnode)
    presets = [n for n in (root.find("tolerance-preset"),
                           fnode.find("tolerance-preset") if fnode is not None else None) if n]
    if len(presets) > 1 and presets[0].value != presets[1].value:
        ctx.error(f"two different tolerance presets: '{presets[0].value}' and "
                  f"'{presets[1].value}'", presets[1].origin)
    constraints = _constraints(ctx, root, potentials)
    if ctx.errors:
        raise InputErrors(ctx.errors + ctx.warnings)

    def text(tag: str) -> str | None:
        n = root.find(tag)
        return n.value if n is not None else None

    rp = text("real-precision")
    job = s.JobSpec(
        path=path, name=text("name") or os.path.splitext(os.path.basename(path))[0],
        species=tuple(ctx.species.values()), potentials=tuple(potentials),
        structures=structures, fitting=fitting, constraints=constraints,
        verbosity=text("verbosity") or "medium", real_precision=int(rp) if rp else None,
        validate_potentials=root.find("validate-potentials") is not None,
        output_file=text("output-file"),
        tolerance_preset=presets[0].value if presets else None, origin=root.origin)
    if fitting is not None and fitting.enabled:
        _check_fit_has_work(ctx, job)
    if ctx.errors:
        raise InputErrors(ctx.errors + ctx.warnings)
    return job, ctx.warnings


def _check_fit_has_work(ctx: Context, job: s.JobSpec) -> None:
    from rexfit.job.summary import fitted_parameters

    if not fitted_parameters(job):
        ctx.error("<fitting> is enabled but no parameter is fitted: list some in <fit-dof>",
                  job.fitting.origin)
    if not any(p.fit for st in job.training for p in st.properties) \
            and not any(ds.has_training for ds in job.all_datasets()):
        ctx.error("<fitting> is enabled but no property of a training structure has fit='true'",
                  job.fitting.origin)
