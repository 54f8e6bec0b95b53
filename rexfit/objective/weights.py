"""atomicrex's nested weights and the tolerance rule (SPEC §4); the tolerance tables are in
:mod:`rexfit.job.language`, residual styles in :mod:`rexfit.objective.terms`.

w_abs = (w_S / Σ_S w_S) × (w_P / Σ_{fitted P of S} w_P), with group weights multiplying the
same way recursively (a group's subgroups count as its structures). Only members that contain
fitted properties take part in a normalisation. The training and validation sets are weighted
separately (the validation objective is computed as if its properties were fitted).
"""

from __future__ import annotations

from rexfit.job import spec as s
from rexfit.job.language import DEFAULT_TOLERANCE, PROPERTIES, TOLERANCE_PRESETS


def tolerance(prop: s.PropertySpec, natoms: int, preset: str | None) -> float:
    """The tolerance δ of a property: its attribute, else the preset's, else the default
    (:data:`rexfit.job.language.DEFAULT_TOLERANCE`, ×natoms for eV)."""
    if prop.tolerance is not None:
        return prop.tolerance
    unit = PROPERTIES[prop.name]
    if preset is not None:
        return TOLERANCE_PRESETS[preset].get(unit, 1.0)
    if unit == "eV":
        return DEFAULT_TOLERANCE["eV"] * natoms
    return DEFAULT_TOLERANCE.get(unit, 1.0)


def absolute_weights(group: s.GroupSpec, *, validation: bool = False) -> dict[tuple[str, str], float]:
    """{(structure id, property name): w_abs} for the training (or validation) set.

    A ``<dataset>`` is one member (like a structure): its entry is (dataset id, quantity), the
    weight its entries share (each entry's part is set by the dataset objective)."""
    out: dict[tuple[str, str], float] = {}

    def member_props(m) -> list:
        if isinstance(m, s.GroupSpec):
            return [1 for x in m.members if member_props(x)]
        if isinstance(m, s.DatasetSpec):  # one member; its entries share the weight
            present = m.has_validation if validation else m.has_training
            return [p for p in m.properties if p.relative_weight > 0] if present else []
        if m.fit == validation:
            return []
        return [p for p in m.properties if p.fit and p.relative_weight > 0]

    def walk(g: s.GroupSpec, scale: float) -> None:
        members = [m for m in g.members if member_props(m) and m.relative_weight > 0]
        total = sum(m.relative_weight for m in members)
        for m in members:
            w = scale * m.relative_weight / total
            if isinstance(m, s.GroupSpec):
                walk(m, w)
                continue
            props = member_props(m)
            ptotal = sum(p.relative_weight for p in props)
            for p in props:
                out[(m.id, p.name)] = w * p.relative_weight / ptotal

    walk(group, 1.0)
    return out

