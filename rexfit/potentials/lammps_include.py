"""The LAMMPS commands that load an exported potential file, for ``include``: one
``pair_style``/``pair_coeff`` pair, or a ``hybrid/overlay`` with the job's parameter-free
potentials that declare a ``lammps_overlay`` (ZBL under a SNAP or an ACE)."""

from __future__ import annotations


def include_text(header: str, pair_style: str, coeff_args: str, overlays) -> str:
    """The text of the include file: ``pair_style`` reading ``coeff_args`` (files and the
    species mapping, after ``* *``); ``overlays``: (potential id, (style, pair_coeff words) or
    None) of the job's other potentials — the first overlay joins under ``hybrid/overlay``,
    those without one are named in a comment as not included."""
    under = [o for _, o in overlays if o is not None]
    others = [pid for pid, o in overlays if o is None]
    lines = [f"# {header}", "# LAMMPS: units metal; include this file after the box is "
             "defined (atom types = the job's species in order)"]
    if others:
        lines.append(f"# the job's other potentials ({', '.join(others)}) are not included")
    if under:
        style, coeffs = under[0]
        lines.append(f"pair_style hybrid/overlay {style} {pair_style}")
        lines += [f"pair_coeff {c}" for c in coeffs]
        lines.append(f"pair_coeff * * {pair_style} {coeff_args}")
    else:
        lines += [f"pair_style {pair_style}", f"pair_coeff * * {coeff_args}"]
    return "\n".join(lines) + "\n"
