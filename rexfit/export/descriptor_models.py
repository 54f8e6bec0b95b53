"""Writing descriptor models: the coefficient file (``.snapcoeff`` layout) of a ``<snap>`` or
``<linear-model>``, the JSON model file of a ``<neural-network>`` or ``<pinn>``, and a SNAP's
``<export-potential>`` trio (``.snapcoeff``, ``.snapparam`` and the ``.snap`` LAMMPS commands)."""

from __future__ import annotations

import os


from rexfit import __version__
from rexfit.export.nn import write_model
from rexfit.files import atomic_write, write_text
from rexfit.job import spec as s
from rexfit.potentials.snap import coefficient_table
from rexfit.potentials.snap_files import write_snapcoeff, write_snapparam
from rexfit.potentials.zbl import ZBL

#: Descriptor models whose coefficients live in a coefficient file, and its extension.
COEFFICIENT_FILES = {"snap": "snapcoeff", "linear-model": "coeff", "neural-network": "json",
                     "pinn": "json"}
#: The element of parameters.xml that names the file, per kind (default ``coeff-file``).
FILE_ELEMENT = {"neural-network": "model-file", "pinn": "model-file"}


def write_coefficient_file(job: s.JobSpec, pot: s.PotentialSpec, term, params,
                           path: str) -> None:
    """Write a descriptor model's coefficients (.snapcoeff layout) or a network's model
    file (JSON), atomically."""
    header = [f"Written by rexfit {__version__} for <{pot.kind} id='{pot.id}'> of job "
              f"'{job.name}' ({os.path.basename(job.path)})"]
    if pot.kind in FILE_ELEMENT:
        write_model(path, term, params, header[0])
        return
    table = coefficient_table(term, params)
    atomic_write(path, lambda tmp: write_snapcoeff(tmp, table, header))


def export_descriptor_model(job: s.JobSpec, pot: s.PotentialSpec, terms: dict, params,
                            out: str, name: str) -> list[str]:
    """<export-potential> of a descriptor model.  SNAP: NAME.snapcoeff, NAME.snapparam and
    NAME.snap, the LAMMPS commands that use them (``pair_style snap``, or ``hybrid/overlay``
    with the job's ZBL); a linear model or network: its coefficient or model file NAME.
    ``terms`` are all the job's model terms by potential id.  Returns the paths written, the
    coefficient (model) file first."""
    term = terms[pot.id]
    if pot.kind != "snap":
        path = os.path.join(out, name)
        write_coefficient_file(job, pot, term, params[pot.id], path)
        return [path]
    base = os.path.join(out, name)
    header = [f"Written by rexfit {__version__} for <snap id='{pot.id}'> of job '{job.name}' "
              f"({os.path.basename(job.path)})"]
    write_coefficient_file(job, pot, term, params[pot.id], base + ".snapcoeff")
    atomic_write(base + ".snapparam", lambda tmp: write_snapparam(tmp, term.settings(),
                                                                   header))
    write_text(base + ".snap", _snap_commands(job, pot, terms, base, header[0]))
    return [base + ".snapcoeff", base + ".snapparam", base + ".snap"]


def _snap_commands(job: s.JobSpec, pot: s.PotentialSpec, terms: dict, base: str,
                   header: str) -> str:
    """The .snap include file: LAMMPS commands that read the exported SNAP files (with the
    job's ZBL as ``hybrid/overlay``)."""
    term = terms[pot.id]
    species = [sp.symbol for sp in job.species]
    mapping = " ".join(species[k] if k < len(term.elements) else "NULL"
                       for k in range(len(species)))
    files = f"{os.path.basename(base)}.snapcoeff {os.path.basename(base)}.snapparam"
    zbl = [t for t in terms.values() if isinstance(t, ZBL)]
    others = [k for k, t in terms.items() if k != pot.id and not isinstance(t, ZBL)]
    lines = [f"# {header}", "# LAMMPS: units metal; include this file after the box is "
             "defined (atom types = the job's species in order)"]
    if others:
        lines.append(f"# the job's other potentials ({', '.join(others)}) are not included")
    if zbl:
        z = zbl[0]
        lines.append(f"pair_style hybrid/overlay zbl {z.inner!r} {z.outer!r} snap")
        for i in range(len(species)):
            for j in range(i, len(species)):
                if i < len(z.atomic_numbers) and j < len(z.atomic_numbers):
                    lines.append(f"pair_coeff {i + 1} {j + 1} zbl {z.atomic_numbers[i]!r} "
                                 f"{z.atomic_numbers[j]!r}")
        lines.append(f"pair_coeff * * snap {files} {mapping}")
    else:
        lines += ["pair_style snap", f"pair_coeff * * {files} {mapping}"]
    return "\n".join(lines) + "\n"
