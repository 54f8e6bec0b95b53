"""Writing the files of families whose fitted values live in a coefficient or model file of
their own (``Family.coefficient_file``: SNAP and linear models, ``.snapcoeff`` layout; neural
networks and PINNs, JSON): the fitted file parameters.xml names, and the ``<export-potential>``
files (SNAP: ``.snapcoeff``, ``.snapparam`` and the ``.snap`` LAMMPS commands).  The text
comes from the family record; this module names the job in the header and writes atomically."""

from __future__ import annotations

import os

from rexfit import __version__
from rexfit.files import write_text
from rexfit.job import spec as s
from rexfit.potentials import registry
from rexfit.potentials.family import Family


def _header(job: s.JobSpec, pot: s.PotentialSpec) -> str:
    return (f"Written by rexfit {__version__} for <{pot.kind} id='{pot.id}'> of job "
            f"'{job.name}' ({os.path.basename(job.path)})")


def coefficient_writer(family: Family):
    """``write(job, pot, term, params, path)``: the coefficient (model) file of a potential of
    ``family``, its model ``term`` at ``params``, written atomically."""

    def write(job: s.JobSpec, pot: s.PotentialSpec, term, params, path: str) -> None:
        write_text(path, family.coefficient_text(term, params, _header(job, pot)))

    return write


def _overlay(pot: s.PotentialSpec, species: tuple[str, ...]):
    """How ``pot`` enters another family's LAMMPS ``hybrid/overlay``, or None."""
    family = registry.family(pot.kind)
    if family is None or family.lammps_overlay is None or pot.family_spec is None:
        return None
    return family.lammps_overlay(pot.family_spec, species)


def coefficient_export(family: Family):
    """``export(job, pot, terms, params, out, name)``: the ``<export-potential>NAME`` files of
    a potential of ``family`` (its ``export_files``, or the coefficient file NAME); returns
    the paths written, the one parameters.xml names first.  ``terms`` and ``params`` are the
    job's, by potential id."""

    def export(job: s.JobSpec, pot: s.PotentialSpec, terms: dict, params, out: str,
               name: str) -> list[str]:
        term, values, header = terms[pot.id], params[pot.id], _header(job, pot)
        files = None
        if family.export_files is not None:
            species = tuple(sp.symbol for sp in job.species)
            overlays = tuple((p.id, _overlay(p, species)) for p in job.potentials
                             if p.id != pot.id)
            files = family.export_files(term, values, name, header, overlays, species)
        if files is None:
            files = ((name, family.coefficient_text(term, values, header)),)
        paths = []
        for file_name, text in files:
            path = os.path.join(out, file_name)
            write_text(path, text)
            paths.append(path)
        return paths

    return export
