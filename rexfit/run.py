"""Running a job: build the model, (training phase), output phase, write the results.

Flow: JobSpec → PotentialModel + StructureModels → relax + compute properties → records →
log lines, tables, results.json (SPEC §2, §6).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from rexfit import __version__
from rexfit.errors import CalculationFailed, NotImplementedInRexfit
from rexfit.job import spec as s
from rexfit.job.build import DOF_PROPERTIES, PROPERTIES
from rexfit.model.potentials import PotentialModel, build_potentials, get_path
from rexfit.model.structures import build_structure
from rexfit.objective.weights import absolute_weights, residual, tolerance
from rexfit.physics.named import compute
from rexfit.physics.properties import EV_PER_A3_TO_GPA
from rexfit.physics.relax import relax
from rexfit.report import lines as rl
from rexfit.report.files import write_json, write_text
from rexfit.report.structure_files import write_structure


@dataclass
class Log:
    """Everything printed, kept for log.txt."""

    quiet: bool = False
    text: list[str] = field(default_factory=list)

    def __call__(self, line: str = "") -> None:
        self.text.append(line)
        if not self.quiet:
            print(line, flush=True)


def output_dir_for(job: s.JobSpec, override: str | None) -> str:
    if override:
        return override
    stem = os.path.splitext(os.path.basename(job.path))[0]
    return os.path.join(os.path.dirname(os.path.abspath(job.path)), f"{stem}.rexfit")


def _property_records(st: s.StructureSpec, model, relaxed, values: dict, weights: dict,
                      preset: str | None) -> dict:
    natoms = int(np.sum(np.asarray(relaxed.system.mask)))
    listed = {p.name: p for p in st.properties}
    order = [n for n in rl.ALWAYS if n in values] + [p.name for p in st.properties
                                                     if p.name not in rl.ALWAYS]
    out = {}
    for name in order:
        if name not in values:
            continue
        p = listed.get(name)
        target = _target(p, name, model)
        rec = {"value": values[name], "target": target, "unit": PROPERTIES[name],
               "fit": bool(p and p.fit), "relaxed": name in DOF_PROPERTIES and name in model.relax,
               "output": p.output if p else True, "output_all": p.output_all if p else False}
        if p is not None:
            rec.update(min=p.min, max=p.max, residual_style=p.residual_style)
            tol = tolerance(p, natoms, preset)
            rec["tolerance"] = tol
            w = weights.get((st.id, name))
            if w is not None and target is not None:
                r = residual(p.residual_style, values[name], target, tol)
                rec.update(abs_weight=w, weighted_residual=w * r)
        out[name] = rec
    return out


def _target(p: s.PropertySpec | None, name: str, model):
    if p is not None and p.target is not None:
        return list(p.target) if isinstance(p.target, tuple) else p.target
    ref = model.reference
    if name == "atomic-forces" and ref.forces is not None:
        return np.asarray(ref.forces).tolist()
    if name == "stress" and ref.stress is not None:
        return (np.asarray(ref.stress) * EV_PER_A3_TO_GPA).tolist()
    if name == "total-energy" and ref.energy is not None:
        return float(ref.energy)
    return None


def evaluate_structures(job: s.JobSpec, pm: PotentialModel, params,
                        finals: dict | None = None) -> list[dict]:
    """Relax every structure and compute its properties → one record per structure.

    ``finals``, if given, receives {structure id: Relaxed (system and neighbour list)}."""
    weights = absolute_weights(job.structures)
    weights.update(absolute_weights(job.structures, validation=True))
    records = []
    for st in job.all_structures():
        model = build_structure(st, pm.species)
        try:
            relaxed = relax(model, pm.potential, params)
            values = compute(model, relaxed, pm.potential, params,
                             {p.name for p in st.properties})
        except (ValueError, FloatingPointError) as exc:
            raise CalculationFailed(f"structure '{st.id}' ({st.origin}): {exc}") from None
        if finals is not None:
            finals[st.id] = relaxed
        bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, float)))]
        if bad:
            raise CalculationFailed(f"structure '{st.id}' ({st.origin}): non-finite "
                                    f"{', '.join(bad)} at the current parameters")
        records.append({
            "id": st.id, "group": st.group, "set": "training" if st.fit else "validation",
            "natoms": int(np.sum(np.asarray(relaxed.system.mask))),
            "relative_weight": st.relative_weight,
            "relaxation": relaxed.message if model.relax else "none",
            "at_bound": relaxed.at_bound,
            "properties": _property_records(st, model, relaxed, values, weights,
                                            job.tolerance_preset),
        })
    return records


def objective_of(records: list[dict], set_name: str) -> float | None:
    terms = [p["weighted_residual"] for r in records if r["set"] == set_name
             for p in r["properties"].values() if "weighted_residual" in p and p["fit"]]
    return float(sum(terms)) if terms else None


def parameter_records(pm: PotentialModel, params) -> dict:
    return {e.name: {"value": float(get_path(params, e.path)), "initial": e.initial,
                     "fitted": e.fit, "min": e.min, "max": e.max} for e in pm.entries}


def run_job(job: s.JobSpec, *, output_dir: str | None = None, no_fit: bool = False,
            quiet: bool = False) -> dict:
    """Run ``job``; write log.txt and results.json into the output directory; return results."""
    if job.fitting is not None and job.fitting.enabled and not no_fit:
        raise NotImplementedInRexfit(
            f"{job.fitting.origin}: the training phase (<fitting>) is not part of rexfit "
            f"{__version__} yet; run with --no-fit to compute every property at the given "
            "parameters (nothing was computed or written)")
    start = time.perf_counter()
    log = Log(quiet)
    digits = job.real_precision or 6
    pm = build_potentials(job)
    params = pm.params
    log(f"rexfit {__version__}: job '{job.name}' ({job.path})")
    log("Computing structure properties")
    finals: dict = {}
    records = evaluate_structures(job, pm, params, finals)
    for set_name in ("training", "validation"):
        recs = [r for r in records if r["set"] == set_name]
        if not recs:
            continue
        log(f"--- {set_name} set ---")
        for rec in recs:
            for line in rl.structure_lines(rec, digits):
                log(line)
    objective = {"training": objective_of(records, "training"),
                 "validation": objective_of(records, "validation")}
    objective["initial"] = objective["training"]
    for set_name in ("training", "validation"):
        recs = [r for r in records if r["set"] == set_name]
        if recs:
            log(f"Property table ({set_name} set):")
            for line in rl.property_table(recs, digits):
                log(line)
    parameters = parameter_records(pm, params)
    log("Parameters:")
    for line in rl.parameter_table(parameters, digits):
        log(line)
    for set_name in ("training", "validation"):
        if objective[set_name] is not None:
            log(f"Objective ({set_name} set): {rl.fmt(objective[set_name], digits)}")
    results = {
        "rexfit_version": __version__,
        "job": job.name,
        "objective": objective,
        "fit": None,
        "parameters": parameters,
        "structures": {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in records},
        "seconds": time.perf_counter() - start,
    }
    _check_finite(results)
    out = output_dir_for(job, output_dir)
    for st in job.all_structures():
        if st.output is not None:
            write_structure(os.path.join(out, st.output.path), st.output.format,
                            finals[st.id].system, pm.species)
    for path in export_potentials(job, pm, params, finals, out):
        log(f"Wrote {path}")
    write_json(os.path.join(out, "results.json"), results)
    write_text(os.path.join(out, "log.txt"), "\n".join(log.text) + "\n")
    if not quiet:
        print(f"Results written to {out}")
    return results


def export_potentials(job: s.JobSpec, pm: PotentialModel, params, finals: dict,
                      out: str) -> list[str]:
    """Write every <export-eam-file> of the job into ``out``; returns the paths written."""
    from rexfit.export.eam_table import write_eam_table

    written = []
    masses = [sp.mass for sp in job.species]
    numbers = [sp.atomic_number for sp in job.species]
    terms = dict(pm.potential.terms)
    for pot in job.potentials:
        for ex in pot.exports:
            opts = dict(ex.options)
            if opts.get("kind") != "export-eam-file":
                raise NotImplementedInRexfit(f"{ex.origin}: <{opts.get('kind')}> is not "
                                             "written by this version of rexfit yet")
            eam = terms[pot.id]
            rho_max = 0.0
            for relaxed in finals.values():  # their neighbour lists reach every potential
                rho = np.asarray(eam.densities(params[pot.id], relaxed.system, relaxed.nbrs))
                rho_max = max(rho_max, float(rho.max(initial=0.0)))
            factor = float(opts.get("rho-range-factor", 2.0))
            path = os.path.join(out, ex.path)
            alloy = ex.path.endswith(".alloy")
            try:
                write_eam_table(path, eam, params[pot.id], pm.species, masses, numbers,
                                rho_max=factor * (rho_max or 1.0),
                                resolution=int(opts.get("resolution", 10000)), alloy=alloy)
            except ValueError as exc:
                raise CalculationFailed(f"{ex.origin}: {exc}") from None
            written.append(path)
    return written


def _check_finite(obj, where: str = "results") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise CalculationFailed(f"non-finite value in {where}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for v in obj:
            _check_finite(v, where)
