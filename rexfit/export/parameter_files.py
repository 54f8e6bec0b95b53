"""Writing the LAMMPS parameter file of a potential whose parameters live in one: the
registered families with a ``parameter_file`` (Tersoff and ABOP: ``.tersoff``, ABOP converted
to the Tersoff form; Stillinger–Weber: ``.sw``), whose record gives the file's text."""

from __future__ import annotations

import os

from rexfit import __version__
from rexfit.errors import CalculationFailed
from rexfit.files import write_text
from rexfit.job import spec as s
from rexfit.potentials import registry

#: Potentials whose parameters live in a LAMMPS parameter file -> (that file's extension, the
#: LAMMPS pair_style that reads it): the registered families that declare a parameter file.
PARAMETER_FILES = {f.element: (f.parameter_file, f.pair_style) for f in registry.FAMILIES
                   if f.parameter_file is not None}


def write_parameter_file(job: s.JobSpec, pot: s.PotentialSpec, term, params, path: str) -> None:
    """Write the parameter file of ``pot`` (its model ``term`` at ``params``) to ``path``,
    atomically, with a header naming the job and the LAMMPS commands that read it."""
    header = [f"Written by rexfit {__version__} for <{pot.kind} id='{pot.id}'> of job "
              f"'{job.name}' ({os.path.basename(job.path)}); read from {pot.param_file}",
              f"LAMMPS: pair_style {PARAMETER_FILES[pot.kind][1]}; "
              f"pair_coeff * * {os.path.basename(path)} {' '.join(term.elements)}"]
    try:
        text = registry.family(pot.kind).parameter_text(term, params, header)
    except ValueError as exc:
        raise CalculationFailed(f"cannot write the fitted parameters to {path}: {exc}") from None
    write_text(path, text)


def export_parameter_file(job: s.JobSpec, pot: s.PotentialSpec, terms: dict, params, out: str,
                          name: str) -> list[str]:
    """``<export-potential>NAME</export-potential>`` of ``pot``: its parameter file ``out/NAME``.
    ``terms`` and ``params`` are the job's, by potential id.  Returns the path written."""
    path = os.path.join(out, name)
    write_parameter_file(job, pot, terms[pot.id], params[pot.id], path)
    return [path]
