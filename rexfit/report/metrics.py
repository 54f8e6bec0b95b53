"""Error metrics of predicted against reference values (DFT datasets): RMSE, MAE, maximum
absolute error and the coefficient of determination, per set (training / validation), for the
whole set and per group, for energies per atom, force components and stress components.

Everything returned is plain Python (float, int, None, dict), ready for results.json.
Definitions: docs/metrics-and-plots.md.
"""

from __future__ import annotations

import math

import numpy as np

from rexfit.report.lines import fmt

#: Quantities of a dataset, in reporting order: name → (description, unit).
QUANTITIES: dict[str, tuple[str, str]] = {
    "energy_per_atom": ("energy per atom", "eV/atom"),
    "forces": ("force components", "eV/A"),
    "stress": ("stress components", "GPa"),
}

#: Set names in reporting order (any other set name follows, in order of appearance).
SETS = ("training", "validation")

#: Group name of records without a group, used when other records of the set have one.
NO_GROUP = "(top level)"


def _finite_array(values, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains non-finite values")
    return a


def metrics(predicted, reference, weights=None) -> dict:
    """RMSE, MAE, maximum absolute error, R² and count of ``predicted`` against ``reference``
    (arrays of one shape, compared element by element).

    ``weights`` (optional, non-negative, broadcast to that shape) weight each element: the
    means are weighted means, R² uses the weighted mean of the reference, ``max`` and
    ``count`` consider the elements of non-zero weight only.

    With no element (``count`` 0) every metric is None; ``r2`` is None as well when the
    reference values do not vary (SS_tot = 0: R² is undefined)."""
    pred = _finite_array(predicted, "predicted")
    ref = _finite_array(reference, "reference")
    if pred.shape != ref.shape:
        raise ValueError(f"predicted has shape {pred.shape} but reference has {ref.shape}")
    pred, ref = pred.ravel(), ref.ravel()
    if weights is not None:
        w = _finite_array(weights, "weights")
        try:
            w = np.broadcast_to(w, np.asarray(predicted).shape).ravel()
        except ValueError:
            raise ValueError(f"weights of shape {w.shape} do not match values of shape "
                             f"{np.shape(predicted)}") from None
        if np.any(w < 0):
            raise ValueError("weights must be non-negative")
        keep = w > 0
        if not keep.all():
            pred, ref, w = pred[keep], ref[keep], w[keep]
    else:
        w = None
    n = int(pred.size)
    if n == 0:
        return {"rmse": None, "mae": None, "max": None, "r2": None, "count": 0}
    err = pred - ref
    abs_err = np.abs(err)
    if w is None:
        mse = float(np.mean(err * err))
        mae = float(np.mean(abs_err))
        centre = float(np.mean(ref))
        dev = ref - centre
        ss_res = float(np.sum(err * err))
        ss_tot = float(np.sum(dev * dev))
    else:
        wsum = float(np.sum(w))
        mse = float(np.sum(w * err * err)) / wsum
        mae = float(np.sum(w * abs_err)) / wsum
        centre = float(np.sum(w * ref)) / wsum
        dev = ref - centre
        ss_res = float(np.sum(w * err * err))
        ss_tot = float(np.sum(w * dev * dev))
    # Constant references give SS_tot = 0 up to rounding of their mean: R² is undefined.
    constant = float(ref.max()) == float(ref.min())
    r2 = None if constant or ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    return {"rmse": math.sqrt(mse), "mae": mae, "max": float(abs_err.max()),
            "r2": r2, "count": n}


# ---------------------------------------------------------------------------- datasets


def _pair(record: dict, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted, reference) of one record for a quantity of QUANTITIES, flattened, or None."""
    key = "energy" if name == "energy_per_atom" else name
    value = record.get(key)
    if value is None:
        return None
    pred, ref = value
    rid = record.get("id")
    where = (f"record '{rid}'" if rid is not None else "record") + f" ({key})"
    pred = _finite_array(pred, f"{where} predicted")
    ref = _finite_array(ref, f"{where} reference")
    if pred.shape != ref.shape:
        raise ValueError(f"{where}: predicted shape {pred.shape} != reference shape {ref.shape}")
    if name == "energy_per_atom":
        natoms = record.get("natoms")
        if not natoms or natoms <= 0:
            raise ValueError(f"{where}: an energy needs natoms > 0")
        return pred.reshape(-1) / natoms, ref.reshape(-1) / natoms
    if name == "forces" and pred.ndim == 2 and pred.shape[1] != 3:
        raise ValueError(f"{where}: forces must have shape (N, 3), not {pred.shape}")
    return pred.reshape(-1), ref.reshape(-1)


def _group(record: dict) -> str | None:
    """A record's group name; None (also for "", as in rexfit's structure records) if none."""
    g = record.get("group")
    return str(g) if g else None


def _set_order(records: list[dict]) -> list[str]:
    seen = [r["set"] for r in records]
    return [s for s in SETS if s in seen] + list(dict.fromkeys(s for s in seen if s not in SETS))


def gather(records: list[dict]) -> dict:
    """The concatenated (predicted, reference) arrays of every set, whole set and per group:
    ``{set: {"all": {quantity: (pred, ref)}, "groups": {group: {quantity: (pred, ref)}}}}``.

    Energies become energies per atom; forces and stresses their components. Quantities absent
    from every record of a set (or group) are left out. Groups are listed when some record of
    the set has one; records without a group (None or "") are then listed under
    ``NO_GROUP``."""
    out: dict = {}
    for set_name in _set_order(records):
        recs = [r for r in records if r["set"] == set_name]
        grouped = any(_group(r) is not None for r in recs)
        parts: dict = {"all": {}}
        per_group: dict[str, dict[str, list]] = {}
        for name in QUANTITIES:
            for rec in recs:
                pair = _pair(rec, name)
                if pair is None:
                    continue
                parts["all"].setdefault(name, []).append(pair)
                if grouped:
                    g = _group(rec) or NO_GROUP
                    per_group.setdefault(g, {}).setdefault(name, []).append(pair)
        group_order = list(dict.fromkeys(_group(r) or NO_GROUP for r in recs)) if grouped else []
        out[set_name] = {
            "all": {q: _concat(v) for q, v in parts["all"].items()},
            "groups": {g: {q: _concat(v) for q, v in per_group[g].items()}
                       for g in group_order if g in per_group},
        }
    return out


def _concat(pairs: list) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([p for p, _ in pairs]), np.concatenate([r for _, r in pairs]))


def dataset_metrics(records: list[dict]) -> dict:
    """Metrics of a dataset split into sets and groups.

    ``records``: one dict per structure with ``set`` ("training" / "validation"), ``group``
    (str or None), ``natoms`` and, each optional (None or missing = not available),
    ``energy`` = (predicted, reference) total energies in eV, ``forces`` = (predicted (N, 3),
    reference (N, 3)) in eV/Å and ``stress`` = (predicted (6,), reference (6,)) in GPa.

    Returns ``{set: {"all": {quantity: metrics}, "groups": {group: {quantity: metrics}}}}``
    with quantities ``energy_per_atom`` (eV/atom), ``forces`` (eV/Å, per component) and
    ``stress`` (GPa, per component); see :func:`gather` for what is left out."""
    out = {}
    for set_name, parts in gather(records).items():
        out[set_name] = {
            "all": {q: metrics(*pr) for q, pr in parts["all"].items()},
            "groups": {g: {q: metrics(*pr) for q, pr in qs.items()}
                       for g, qs in parts["groups"].items()},
        }
    return out


def dataset_records(structures: list[dict]) -> list[dict]:
    """:func:`dataset_metrics` records from rexfit's structure records (``run.structure_records``,
    the ``structures`` of results.json with their ``id``): (value, target) of ``total-energy``
    (else ``atomic-energy`` × natoms), ``atomic-forces`` and ``stress``, where a target is
    known; structures with none of them are left out."""
    out = []
    for rec in structures:
        props = rec.get("properties", {})

        def pair(name):
            p = props.get(name)
            if p is None or p.get("target") is None or p.get("value") is None:
                return None
            return p["value"], p["target"]

        energy = pair("total-energy")
        if energy is None and pair("atomic-energy") is not None:
            v, t = pair("atomic-energy")
            energy = (v * rec["natoms"], t * rec["natoms"])
        item = {"id": rec.get("id"), "set": rec["set"], "group": rec.get("group"),
                "natoms": rec["natoms"], "energy": energy, "forces": pair("atomic-forces"),
                "stress": pair("stress")}
        if any(item[k] is not None for k in ("energy", "forces", "stress")):
            out.append(item)
    return out


def metrics_table(result: dict, digits: int = 6) -> list[str]:
    """An aligned text table of a :func:`dataset_metrics` result (one row per set, group and
    quantity; ``all`` rows first), for the terminal and log.txt."""
    rows = [("set", "group", "quantity", "count", "RMSE", "MAE", "max", "R^2", "unit")]

    def cell(v) -> str:
        return "-" if v is None else fmt(v, digits)

    for set_name, parts in result.items():
        blocks = [("all", parts.get("all", {}))] + list(parts.get("groups", {}).items())
        for group, qs in blocks:
            for name in [q for q in QUANTITIES if q in qs] + [q for q in qs if q not in QUANTITIES]:
                m = qs[name]
                unit = QUANTITIES.get(name, ("", ""))[1]
                rows.append((set_name, group, name, str(m["count"]), cell(m["rmse"]),
                             cell(m["mae"]), cell(m["max"]), cell(m["r2"]), unit))
    if len(rows) == 1:
        return []
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    numeric = {3, 4, 5, 6, 7}
    return ["  " + "  ".join(c.rjust(w) if k in numeric else c.ljust(w)
                             for k, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]
