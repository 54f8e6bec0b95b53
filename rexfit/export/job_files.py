"""The files a run writes for its potentials: parameters.xml with the fitted parameter files
it names (before the output phase), and the ``<export-...>`` files that sample the final
structures (after it).  Each file is written once, under one name."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rexfit.errors import CalculationFailed, NotImplementedInRexfit
from rexfit.export.parameters_xml import write_parameters_xml
from rexfit.export.registry import (FITTED_FILES, REPLACED_BY_FITTED, WITH_PARAMETERS,
                                    after_output)
from rexfit.job import spec as s

if TYPE_CHECKING:  # pragma: no cover
    from rexfit.model.potentials import PotentialModel
    from rexfit.objective.parameters import ParameterSpace


def _export_kind(ex) -> str | None:
    """The element of an export (``export-potential``, ``export-eam-file`` ...)."""
    return dict(ex.options).get("kind")


def changed_parameters(job: s.JobSpec, space: ParameterSpace) -> set[str]:
    """Names of the parameters a fit changes: the fitted ones and the constrained ones."""
    return {e.name for e in space.fitted} | {c.dependent_dof for c in job.constraints}


def write_fitted_parameters(job: s.JobSpec, space: ParameterSpace, params,
                            directory: str) -> list[str]:
    """The files of a fit that need only its parameters: the ``<export-potential>`` files of
    potentials whose values live in a file (Tersoff, ABOP, SW; SNAP, linear models, networks)
    and parameters.xml, which points to them (each fitted file is written once).  Returns the
    paths of the exported files."""
    exported = {}
    written = []
    terms = dict(space.pm.potential.terms)
    for pot in job.potentials:
        export = WITH_PARAMETERS.get(pot.kind)
        if export is None:
            continue
        for ex in pot.exports:
            if _export_kind(ex) != "export-potential":
                continue
            paths = export(job, pot, terms, params, directory, ex.path)
            written += paths
            exported.setdefault(pot.id, os.path.relpath(paths[0], directory))
    write_parameters(job, space, params, directory, exported=exported)
    return written


def write_parameters(job: s.JobSpec, space: ParameterSpace, params, directory: str, *,
                     exported: dict[str, str] | None = None) -> dict:
    """parameters.xml in ``directory`` with the changed parameters.  A potential whose values
    live in a file of their own (Tersoff, ABOP, SW; SNAP, linear models, networks) and has
    changed parameters gets its fitted file ``<id>.fitted.<ext>`` next to it, which
    parameters.xml points to — unless ``exported`` ({potential id: file name relative to
    ``directory``}) names the file its ``<export-potential>`` was written to, which is then
    used instead (each fitted file is written once).  Returns {name: value} of the changed
    parameters."""
    pm = space.pm
    changed = changed_parameters(job, space)
    values = space.named_values(params)
    terms = dict(pm.potential.terms)
    in_files = {pot.id: pot for pot in job.potentials if pot.kind in FITTED_FILES}
    files: dict[str, tuple[str, str]] = {}  # potential id -> (parameters.xml element, name)
    for e in pm.entries:
        pot = in_files.get(e.path[0])
        if e.name not in changed or pot is None or pot.id in files:
            continue
        ext, element, write = FITTED_FILES[pot.kind]
        name = (exported or {}).get(pot.id)
        if name is None:
            name = f"{pot.id}.fitted.{ext}"
            write(job, pot, terms[pot.id], params[pot.id], os.path.join(directory, name))
        files[pot.id] = (element, name)
    in_xml = {k: values[k] for k in changed
              if not any(e.name == k and e.path[0] in files for e in pm.entries)}
    param_files = {pid: name for pid, (element, name) in files.items()
                   if element == "param-file"}
    coeff_files = {pid: (element, name) for pid, (element, name) in files.items()
                   if element != "param-file"}
    replaced = {pid: REPLACED_BY_FITTED[in_files[pid].kind] for pid in files
                if in_files[pid].kind in REPLACED_BY_FITTED}
    write_parameters_xml(job, pm.entries, in_xml, os.path.join(directory, "parameters.xml"),
                         param_files, coeff_files, replaced)
    return {k: values[k] for k in sorted(changed)}


def export_potentials(job: s.JobSpec, pm: PotentialModel, params, finals: dict,
                      out: str) -> list[str]:
    """Write the job's exports that sample the final structures ``finals`` ({id: relaxed
    structure}) into ``out``: ``<export-eam-file>``, ``<export-adp-file>`` and the
    ``<export-potential>`` of a MEAM.  Returns the paths written.  The other
    ``<export-potential>`` files are written by write_fitted_parameters."""
    written = []
    masses = [sp.mass for sp in job.species]
    numbers = [sp.atomic_number for sp in job.species]
    terms = dict(pm.potential.terms)
    for pot in job.potentials:
        for ex in pot.exports:
            kind = _export_kind(ex)
            if kind == "export-potential" and pot.kind in WITH_PARAMETERS:
                continue  # written with parameters.xml (write_fitted_parameters)
            export = after_output(kind, pot.kind)
            if export is None:
                raise NotImplementedInRexfit(f"{ex.origin}: <{kind}> is not written by this "
                                             f"version of rexfit for <{pot.kind}> yet")
            path = os.path.join(out, ex.path)
            try:
                export(terms[pot.id], params[pot.id], pm.species, masses, numbers, finals,
                       dict(ex.options), path)
            except ValueError as exc:
                raise CalculationFailed(f"{ex.origin}: {exc}") from None
            written.append(path)
    return written
