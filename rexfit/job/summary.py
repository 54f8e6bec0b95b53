"""A short human-readable account of what a validated job asks rexfit to compute."""

from __future__ import annotations

from rexfit.job import names
from rexfit.job.spec import JobSpec


def fitted_parameters(job: JobSpec) -> list[str]:
    """Full names of every fitted DOF (inline parameters and parameter-file entries)."""
    out = [n for p in job.potentials for n, prm in names.potential_params(p) if prm.fit]
    out += [names.file_param_name(p, d.name, d.tag)
            for p in job.potentials for d in p.fit_dofs if d.enabled]
    return out


def describe(job: JobSpec) -> list[str]:
    """Lines saying what the job contains and what running it computes."""
    structures = job.all_structures()
    training = [s for s in structures if s.fit]
    validation = [s for s in structures if not s.fit]
    fitted_props = sum(1 for s in training for p in s.properties if p.fit)
    lines = [f"Job '{job.name}' ({job.path})"]
    lines.append("  species: " + ", ".join(sp.symbol for sp in job.species))
    for p in job.potentials:
        lines.append(f"  potential '{p.id}' <{p.kind}> species {p.species_a}-{p.species_b}")
    lines.append(f"  structures: {len(training)} in the training set, "
                 f"{len(validation)} in the validation set")
    for s in structures:
        relax = f"; relaxes {', '.join(sorted(s.relax))}" if s.relax else ""
        props = ", ".join(p.name + ("*" if p.fit else "") for p in s.properties) or "none listed"
        lines.append(f"    {s.id} <{s.kind}> ({'training' if s.fit else 'validation'}){relax}: "
                     f"{props}")
    fitted = fitted_parameters(job)
    if job.fitting is not None and job.fitting.enabled:
        m = job.fitting.minimizer
        opts = " ".join(f"{k}={v}" for k, v in m.options)
        lines.append(f"  training phase: <{m.kind}{(' ' + opts) if opts else ''}> over "
                     f"{len(fitted)} parameters and {fitted_props} fitted properties (* above)")
        for name in fitted:
            lines.append(f"    {name}")
    else:
        lines.append("  training phase: none (no enabled <fitting>); properties are computed "
                     "at the given parameters")
    lines.append("  output phase: every property of every structure, training and validation")
    return lines
