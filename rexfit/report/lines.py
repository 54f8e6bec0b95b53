"""atomicrex-style output lines and compact tables of the output phase (SPEC §6)."""

from __future__ import annotations

import re

from rexfit.job.language import DOF_PROPERTIES, PROPERTIES

ALWAYS = ("total-energy", "atomic-energy", "total-volume", "atomic-volume")


def fmt(value, digits: int = 6) -> str:
    return f"{value:.{digits}g}"


def structure_lines(record: dict, digits: int = 6) -> list[str]:
    """Lines for one structure record (as stored in results.json)."""
    out = [f"Structure '{record['id']}':"]
    for name, p in record["properties"].items():
        if not p.get("output", True):
            continue
        unit = p["unit"]
        value = p["value"]
        if name == "atomic-forces":
            import numpy as np

            f = np.asarray(value)
            mags = np.linalg.norm(f, axis=1) if f.size else np.zeros(0)
            out.append(f"   atomic-forces avg/max: {fmt(mags.mean() if mags.size else 0, digits)} / "
                       f"{fmt(mags.max(initial=0), digits)} eV/A")
            if p.get("output_all"):
                for i, row in enumerate(f):
                    out.append(f"   atomic-forces: {i} ({', '.join(fmt(x, digits) for x in row)})")
            continue
        if name == "stress":
            text = " ".join(fmt(x, digits) for x in value)
            out.append(f"   stress: {text} GPa (xx yy zz yz xz xy)")
            continue
        line = f"   {name}: {fmt(value, digits)} {unit}".rstrip()
        if p.get("fit") and p.get("target") is not None:
            line += (f" (target: {fmt(p['target'], digits)} {unit})".replace(" )", ")")
                     + f" Abs. weight: {fmt(p['abs_weight'], digits)};"
                     f" Tolerance: {fmt(p['tolerance'], digits)};"
                     f" Weighted residual: {fmt(p['weighted_residual'], digits)}")
        elif p.get("target") is not None:
            line += f" (target: {fmt(p['target'], digits)} {unit})".replace(" )", ")")
        if p.get("relaxed") and name in DOF_PROPERTIES:  # atomicrex marks the relaxed DOFs
            line += " (relaxed)"
        if p.get("min") is not None or p.get("max") is not None:
            lo = "" if p.get("min") is None else fmt(p["min"], digits)
            hi = "" if p.get("max") is None else fmt(p["max"], digits)
            line += f" [{lo}:{hi}]"
        out.append(line)
    if record.get("relaxation_status") not in (None, "converged"):
        out.append(f"   relaxation: {record['relaxation_status']}")
    return out


def property_table(records: list[dict], digits: int = 6) -> list[str]:
    """A compact structure × property table: value, target, error."""
    rows = [("structure", "property", "value", "target", "error", "unit")]
    for rec in records:
        for name, p in rec["properties"].items():
            if name in ("atomic-forces", "stress") or (name in ALWAYS and p.get("target") is None):
                continue
            target = p.get("target")
            err = "" if target is None else fmt(p["value"] - target, 4)
            rows.append((rec["id"], name, fmt(p["value"], digits),
                         "" if target is None else fmt(target, digits), err,
                         PROPERTIES.get(name, "")))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


#: A run of parameters named alike (``...betaK[Mo]``, K = 0, 1, …) longer than this is shown as
#: one row of the parameter table (coefficient vectors of descriptor models).
COLLAPSE_RUN = 8
_NUMBERED = re.compile(r"^(.*\D)(\d+)(\[[^\]]*\])?$")


def parameter_table(parameters: dict, digits: int = 6) -> list[str]:
    """Parameter table: name, initial, final, bounds (fitted parameters first).  A run of more
    than :data:`COLLAPSE_RUN` parameters whose names differ only in a number (e.g. SNAP's
    ``Mo[SNAP].beta0[Mo]`` … ``beta30[Mo]``) is one row with the ranges of its values."""
    rows = [("parameter", "initial", "value", "bounds", "fitted")]
    runs: dict[tuple, list[tuple[int, str]]] = {}
    for name in parameters:
        m = _NUMBERED.match(name)
        if m:
            p = parameters[name]
            runs.setdefault((m.group(1), m.group(3) or "", p["fitted"]), []).append(
                (int(m.group(2)), name))
    collapsed = {name: key for key, names in runs.items() if len(names) > COLLAPSE_RUN
                 for _, name in names}
    done: set = set()
    for name, p in sorted(parameters.items(), key=lambda kv: not kv[1]["fitted"]):
        if name in collapsed:
            key = collapsed[name]
            if key in done:
                continue
            done.add(key)
            members = sorted(runs[key])
            group = [parameters[n] for _, n in members]

            def span(field):
                values = [q[field] for q in group]
                return f"{fmt(min(values), digits)} … {fmt(max(values), digits)}"

            label = f"{key[0]}{{{members[0][0]}..{members[-1][0]}}}{key[1]}"
            rows.append((f"{label} ({len(members)})", span("initial"), span("value"), "",
                         "yes" if p["fitted"] else ""))
            continue
        lo = "" if p["min"] is None else fmt(p["min"], digits)
        hi = "" if p["max"] is None else fmt(p["max"], digits)
        rows.append((name, fmt(p["initial"], digits), fmt(p["value"], digits),
                     f"[{lo}:{hi}]" if (lo or hi) else "", "yes" if p["fitted"] else ""))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def group_objectives(records: list[dict], digits: int = 6) -> list[str]:
    """The objective split by group, per set (groups by name; '(top level)' for none)."""
    out = []
    for set_name in ("training", "validation"):
        sums: dict[str, float] = {}
        for rec in records:
            if rec["set"] != set_name:
                continue
            terms = [p["weighted_residual"] for p in rec["properties"].values()
                     if p.get("fit") and "weighted_residual" in p]
            if terms:
                key = rec.get("group") or "(top level)"
                sums[key] = sums.get(key, 0.0) + sum(terms)
        if len(sums) > 1 or (sums and "(top level)" not in sums):
            out.append(f"Objective by group ({set_name} set):")
            width = max(len(k) for k in sums)
            out += [f"  {k.ljust(width)}  {fmt(v, digits)}" for k, v in sums.items()]
    return out


def gamma_table(ident: str, records: list[dict], digits: int = 6) -> list[str]:
    """The largest ACE extrapolation grade γ of every structure (records' ``max_gamma`` of
    potential ``ident``), training set first; γ > 1: the structure has atoms outside the
    training set's active set."""
    rows = [(r["set"], r["id"], r["max_gamma"][ident]) for set_name in ("training", "validation")
            for r in records if r["set"] == set_name and ident in r.get("max_gamma", {})]
    width = max([len("structure")] + [len(str(name)) for _, name, _ in rows])
    out = [f"   {'set':<10} {'structure':<{width}} max gamma"]
    out += [f"   {s:<10} {name:<{width}} {fmt(g, digits)}" for s, name, g in rows]
    return out
