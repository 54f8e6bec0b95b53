"""atomicrex-style DOF names, e.g. ``Al[EAM].V[user-function].A``.

One place decides how a parameter is named in logs, results.json, parameters.xml and
``<parameter-constraints>``.
"""

from __future__ import annotations

from rexfit.job import spec as s

POTENTIAL_TYPE = {
    "lennard-jones": "LJ",
    "eam": "EAM",
    "meam": "MEAM",
    "adp": "ADP",
    "tersoff": "Tersoff",
    "abop": "ABOP",
    "stillinger-weber": "SW",
    "tabulated-eam": "EAM-table",
    "zbl": "ZBL",
    "snap": "SNAP",
    "linear-model": "linear-model",
    "neural-network": "NN",
    "pinn": "PINN",
}

FUNCTION_TYPE = {"sum": "functionSum", "product": "functionProduct"}


def function_label(fn: s.FunctionSpec) -> str:
    return f"{fn.id or 'screening'}[{FUNCTION_TYPE.get(fn.kind, fn.kind)}]"


def function_params(fn: s.FunctionSpec, prefix: str) -> list[tuple[str, s.ParamSpec]]:
    """Every (full name, parameter) of a function and the functions inside it."""
    here = f"{prefix}.{function_label(fn)}"
    out: list[tuple[str, s.ParamSpec]] = []
    if isinstance(fn, s.SplineSpec):
        for node in fn.nodes:
            out.append((f"{here}.node[{node.x:g}].y", node.y))
    elif isinstance(fn, s.CompositeFunctionSpec):
        for sub in fn.functions:
            out.extend(function_params(sub, here))
    else:
        out.extend((f"{here}.{p.name}", p) for p in fn.params)
    if isinstance(fn, s.SplineSpec):
        out.extend((f"{here}.{p.name}", p) for p in (fn.derivative_left, fn.derivative_right))
    if fn.screening is not None:
        out.extend(function_params(fn.screening, here))
    return out


def potential_params(pot: s.PotentialSpec) -> list[tuple[str, s.ParamSpec]]:
    """Every (full name, parameter) written inline in a potential (not those in param files)."""
    head = f"{pot.id}[{POTENTIAL_TYPE.get(pot.kind, pot.kind)}]"
    # A potential's cutoff fixes the neighbour lists: it is structure, not a DOF.
    out = [(f"{head}.{p.name}", p) for p in pot.params if p.name != "cutoff"]
    for fn in pot.functions:
        out.extend(function_params(fn, head))
    return out


def file_param_name(pot: s.PotentialSpec, name: str, tag: str | None) -> str:
    """Name of a parameter that lives in a parameter file (Tersoff-like): ``id[Tersoff].A[SiSiSi]``."""
    head = f"{pot.id}[{POTENTIAL_TYPE.get(pot.kind, pot.kind)}]"
    return f"{head}.{name}[{tag}]" if tag else f"{head}.{name}"
