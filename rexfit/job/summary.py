"""A short human-readable account of what a validated job asks rexfit to compute."""

from __future__ import annotations

from rexfit.job import names
from rexfit.job.spec import JobSpec
from rexfit.potentials import registry

#: Potentials whose ``<fit-dof>`` entries name groups of coefficients (``<beta/>``,
#: ``<weights/>``, ...) rather than single parameters: the families that declare
#: ``dof_groups`` (descriptor models, networks).  How many coefficients a group holds follows
#: from the descriptor and network settings, which only the model (JAX) knows.
COEFFICIENT_GROUP_KINDS = frozenset(f.element for f in registry.FAMILIES if f.dof_groups)


def fitted_parameters(job: JobSpec) -> list[str]:
    """Full names of every fitted DOF (inline parameters and parameter-file entries; a
    coefficient group of a descriptor model counts once, see :func:`fitted_groups`)."""
    out = [n for p in job.potentials for n, prm in names.potential_params(p) if prm.fit]
    out += [names.file_param_name(p, d.name, d.tag)
            for p in job.potentials for d in p.fit_dofs if d.enabled]
    return out


def fitted_single_parameters(job: JobSpec) -> list[str]:
    """:func:`fitted_parameters` without the coefficient groups: each name one number."""
    groups = set(fitted_groups(job))
    return [n for n in fitted_parameters(job) if n not in groups]


def fitted_groups(job: JobSpec) -> list[str]:
    """Names of the fitted coefficient groups of descriptor models and networks (e.g.
    ``Mo[SNAP].beta``; ``[tag]`` when limited to one element), whose sizes the model sets."""
    return [names.file_param_name(p, d.name, d.tag)
            for p in job.potentials if p.kind in COEFFICIENT_GROUP_KINDS
            for d in p.fit_dofs if d.enabled]


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def counts(job: JobSpec) -> str:
    """What ``rexfit validate`` says of a valid job, known without computing: structures,
    datasets and their files, fitted parameters (and coefficient groups, whose sizes only the
    built model knows), e.g. ``4 structures, 4 fitted parameters``."""
    parts = []
    datasets = job.all_datasets()
    structures = job.all_structures()
    if structures or not datasets:
        parts.append(_n(len(structures), "structure"))
    if datasets:
        files = sum(len(d.files) for d in datasets)
        parts.append(f"{_n(len(datasets), 'dataset')} of {_n(files, 'file')}")
    params = fitted_single_parameters(job)
    groups = fitted_groups(job)
    if groups:
        text = (f"{_n(len(groups), 'group')} of fitted coefficients "
                f"({', '.join(groups)}; their sizes are known once the model is built)")
        parts.append(f"{_n(len(params), 'fitted parameter')} + {text}" if params else text)
    else:
        parts.append(_n(len(params), "fitted parameter"))
    return ", ".join(parts)


def describe(job: JobSpec) -> list[str]:
    """Lines saying what the job contains and what running it computes."""
    structures = job.all_structures()
    training = [s for s in structures if s.fit]
    validation = [s for s in structures if not s.fit]
    fitted_props = sum(1 for s in training for p in s.properties if p.fit)
    lines = [f"Job '{job.name}' ({job.path})"]
    lines.append("  species: " + ", ".join(sp.symbol for sp in job.species))
    for p in job.potentials:
        family = registry.family(p.kind)
        if family is not None and family.species_text is not None and p.family_spec is not None:
            acts = family.species_text(p.family_spec)
        else:
            acts = f"species {p.species_a}-{p.species_b}"
        lines.append(f"  potential '{p.id}' <{p.kind}> {acts}")
    if structures or not job.all_datasets():
        lines.append(f"  structures: {len(training)} in the training set, "
                     f"{len(validation)} in the validation set")
    for s in structures:
        relax = f"; relaxes {', '.join(sorted(s.relax))}" if s.relax else ""
        props = ", ".join(p.name + ("*" if p.fit else "") for p in s.properties) or "none listed"
        lines.append(f"    {s.id} <{s.kind}> ({'training' if s.fit else 'validation'}){relax}: "
                     f"{props}")
    datasets = job.all_datasets()
    if datasets:
        lines.append(f"  datasets: {len(datasets)} (entries are counted when the files are "
                     "read, as the job runs)")
    for d in datasets:
        split = ("validation" if not d.fit else
                 f"training, {d.validation_fraction:g} held out for validation"
                 if d.validation_fraction else "training")
        props = ", ".join(p.name for p in d.properties) or "none listed"
        lines.append(f"    {d.id} <dataset> ({split}): {props}")
        for f in d.files:
            kind = "validation-file" if f.validation else "file"
            attrs = [f'format="{f.format}"'] if f.format else []
            if f.index is not None:
                attrs.append(f'index="{f.index}"')
            if f.groups:
                attrs.append(f'group="{" ".join(f.groups)}"')
            if f.select is not None:
                attrs.append(f'select="{f.select}"')
            lines.append(f"      <{' '.join([kind] + attrs)}> {f.path}")
    fitted = fitted_single_parameters(job)
    groups = fitted_groups(job)
    if job.fitting is not None and job.fitting.enabled:
        m = job.fitting.minimizer
        opts = " ".join(f"{k}={v}" for k, v in m.options)
        over = [_n(len(fitted), "parameter")] if fitted or not groups else []
        if groups:
            over.append(f"{_n(len(groups), 'coefficient group')} (sized by the model when the "
                        "job runs)")
        over = " and ".join(over)
        fitted_data = f" and {_n(len(datasets), 'dataset')}" if datasets else ""
        lines.append(f"  training phase: <{m.kind}{(' ' + opts) if opts else ''}> over "
                     f"{over}, {fitted_props} fitted properties (* above){fitted_data}")
        for name in fitted + groups:
            lines.append(f"    {name}")
    else:
        lines.append("  training phase: none (no enabled <fitting>); properties are computed "
                     "at the given parameters")
    lines.append("  output phase: every property of every structure, training and validation")
    return lines
