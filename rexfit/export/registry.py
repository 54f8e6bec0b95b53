"""Which function writes which potential file: tables keyed by potential kind (the job's XML
element), export element and file kind (for the families of the registry, named by their
record), so the rest of export/ never switches on a kind.

Every writer is a plain function of the potential's spec or model term and its parameters."""

from __future__ import annotations

import os

from rexfit import __version__
from rexfit.export.adp import export_adp_file
from rexfit.export.descriptor_models import coefficient_export, coefficient_writer
from rexfit.export.eam_table import export_eam_file
from rexfit.export.meam import export_meam
from rexfit.files import write_text
from rexfit.export.parameter_files import (
    PARAMETER_FILES,
    export_parameter_file,
    write_parameter_file,
)
from rexfit.potentials import registry
from rexfit.potentials.family import Family


def family_export(family: Family):
    """The ``<export-potential>`` writer of a registered family with a LAMMPS writer: a file of
    LAMMPS commands (read with ``include``), written atomically, with a header naming the job
    and the atom types."""

    def export(job, pot, terms, params, out: str, name: str) -> list[str]:
        species = tuple(sp.symbol for sp in job.species)
        types = " ".join(f"{k + 1}={sym}" for k, sym in enumerate(species))
        header = (f"Written by rexfit {__version__} for <{pot.kind} id='{pot.id}'> of job "
                  f"'{job.name}' ({os.path.basename(job.path)})",
                  f"LAMMPS: include {name} (atom types {types})")
        path = os.path.join(out, name)
        write_text(path, family.write_lammps(pot.family_spec, params[pot.id], species, header))
        return [path]

    return export


#: Potentials whose fitted values live in a file of their own, not in parameters.xml:
#: kind -> (the file's extension, the parameters.xml element naming it, the writer
#: ``write(job, pot, term, params, path)``).
FITTED_FILES = {
    **{kind: (ext, "param-file", write_parameter_file)
       for kind, (ext, _) in PARAMETER_FILES.items()},
    **{f.element: (f.coefficient_file, f.coefficient_element, coefficient_writer(f))
       for f in registry.FAMILIES if f.coefficient_file is not None},
}

#: Elements of a potential that its fitted file replaces in parameters.xml: kind -> tags.
REPLACED_BY_FITTED = {f.element: f.coefficient_replaces for f in registry.FAMILIES
                      if f.coefficient_replaces}

#: ``<export-potential>`` that needs only the parameters, written with parameters.xml (which
#: then names it): kind -> ``export(job, pot, terms, params, out, name)`` returning the paths
#: written, the file parameters.xml names first.
WITH_PARAMETERS = {
    **{f.element: family_export(f) for f in registry.FAMILIES if f.write_lammps is not None},
    **{kind: export_parameter_file for kind in PARAMETER_FILES},
    **{f.element: coefficient_export(f) for f in registry.FAMILIES
       if f.coefficient_file is not None},
}

#: Exports sampled over the final structures, written after the output phase: file kind (as a
#: family's record names it in ``sampled_exports``) ->
#: ``export(term, params, species, masses, numbers, finals, options, path)``.
SAMPLED_WRITERS = {
    "eam-table": export_eam_file,
    "adp-table": export_adp_file,
    "meam/spline": export_meam,
}


def after_output(element: str, kind: str):
    """The writer of ``<element>`` in a potential of ``kind`` after the output phase (the
    file kind its family's record gives that element), or None."""
    family = registry.family(kind)
    file_kind = dict(family.sampled_exports).get(element) if family is not None else None
    return SAMPLED_WRITERS.get(file_kind)
