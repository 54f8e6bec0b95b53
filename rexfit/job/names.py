"""atomicrex-style parameter paths, e.g. ``Al[EAM].V[user-function].A``: the only module that
builds one.

A path is ``<potential head>.<function label>….<leaf>``: the head is the potential's id and type
(:func:`potential_head`), each function adds ``id[type]`` (:func:`function_label`), the leaf is
a parameter name, possibly tagged (``A[SiSiSi]``, ``beta3[Al]``). Logs, results.json,
parameters.xml, ``<parameter-constraints>`` and the model's parameter entries all use these
functions. The type names come from :mod:`rexfit.job.language`.
"""

from __future__ import annotations

from typing import Iterator

from rexfit.job import spec as s
from rexfit.job.language import FUNCTION_TYPE, POTENTIAL_TYPE

# ============================================================================ parts


def type_head(ident: str, kind: str) -> str:
    """``Al[EAM]`` for a potential of id ``Al`` and XML element ``kind`` (``eam``)."""
    return f"{ident}[{POTENTIAL_TYPE.get(kind, kind)}]"


def potential_head(pot: s.PotentialSpec) -> str:
    """The first part of every parameter path of ``pot``: ``Al[EAM]``."""
    return type_head(pot.id, pot.kind)


def function_type_label(ident: str | None, kind: str) -> str:
    """``V[functionSum]`` for a function of id ``V`` and XML element ``kind`` (``sum``); a
    function without an id (a screening function) is called ``screening``."""
    return f"{ident or 'screening'}[{FUNCTION_TYPE.get(kind, kind)}]"


def function_label(fn: s.FunctionSpec) -> str:
    """``V[user-function]``: a function's part of a path."""
    return function_type_label(fn.id, fn.kind)


def child(prefix: str, part: str) -> str:
    """``prefix.part``: one more part of a path."""
    return f"{prefix}.{part}"


def function_path(prefix: str, fn: s.FunctionSpec) -> str:
    """``prefix.V[user-function]``: the path of ``fn`` inside ``prefix``."""
    return child(prefix, function_label(fn))


def tagged(name: str, tag: str | None) -> str:
    """``A[SiSiSi]`` (``A`` without a tag): a parameter name with its species tag."""
    return f"{name}[{tag}]" if tag else name


def spline_node(x: float) -> str:
    """Leaf name of a spline node's value: ``node[2.5].y``."""
    return f"node[{x:g}].y"


def poly_coefficient(n: int) -> str:
    """Leaf name of a ``<poly>`` coefficient of x**n: ``coeff[3]``."""
    return f"coeff[{n}]"


# ============================================================================ whole paths


def function_params(fn: s.FunctionSpec, prefix: str) -> list[tuple[str, s.ParamSpec]]:
    """Every (full name, parameter) of a function and the functions inside it."""
    here = function_path(prefix, fn)
    out: list[tuple[str, s.ParamSpec]] = []
    if isinstance(fn, s.SplineSpec):
        for node in fn.nodes:
            out.append((child(here, spline_node(node.x)), node.y))
    elif isinstance(fn, s.CompositeFunctionSpec):
        for sub in fn.functions:
            out.extend(function_params(sub, here))
    else:
        out.extend((child(here, p.name), p) for p in fn.params)
    if isinstance(fn, s.SplineSpec):
        out.extend((child(here, p.name), p) for p in (fn.derivative_left, fn.derivative_right))
    if fn.screening is not None:
        out.extend(function_params(fn.screening, here))
    return out


def potential_params(pot: s.PotentialSpec) -> list[tuple[str, s.ParamSpec]]:
    """Every (full name, parameter) written inline in a potential (not those in param files)."""
    head = potential_head(pot)
    # A potential's cutoff fixes the neighbour lists: it is structure, not a DOF.
    out = [(child(head, p.name), p) for p in pot.params if p.name != "cutoff"]
    for fn in pot.functions:
        out.extend(function_params(fn, head))
    return out


def labelled_functions(fn: s.FunctionSpec, prefix: str) -> Iterator[tuple[str, s.FunctionSpec]]:
    """(full label, function) of ``fn``, its parts and its screening functions, depth first:
    ``Al[EAM].V[functionSum]``, ``Al[EAM].V[functionSum].Vrep[user-function]``, …"""
    here = function_path(prefix, fn)
    yield here, fn
    if isinstance(fn, s.CompositeFunctionSpec):
        for sub in fn.functions:
            yield from labelled_functions(sub, here)
    if fn.screening is not None:
        yield from labelled_functions(fn.screening, here)


def user_functions(job: s.JobSpec) -> list[tuple[str, s.UserFunctionSpec]]:
    """(full label, spec) of every ``<user-function>`` of every potential of ``job``, in file
    order, parts and screening functions included."""
    return [(label, fn) for pot in job.potentials for top in pot.functions
            for label, fn in labelled_functions(top, potential_head(pot))
            if isinstance(fn, s.UserFunctionSpec)]


def file_param_name(pot: s.PotentialSpec, name: str, tag: str | None) -> str:
    """Name of a parameter that lives in a parameter file (Tersoff-like): ``id[Tersoff].A[SiSiSi]``;
    also a coefficient of a group, named by its family: ``Mo[SNAP].beta3[Mo]``,
    ``Si[NN].w1.17[Si]``."""
    return child(potential_head(pot), tagged(name, tag))
