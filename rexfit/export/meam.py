"""Writing LAMMPS ``meam/spline`` files: a file's splines (:func:`write_meam_spline`), a spline
MEAM (:func:`write_meam_file`) and a fitted ``<meam>`` (its ``<export-potential>``), its
functions sampled over the range the final structures reach (:func:`export_meam`).  The
layout is described in :mod:`rexfit.potentials.meam_files`, which reads it."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from rexfit import __version__
from rexfit.files import write_text
from rexfit.potentials.meam import export_splines, lammps_data
from rexfit.potentials.meam_files import (
    GRID_TOLERANCE,
    MEAMSplineFile,
    clamped_second_derivatives,
    pair_count,
)
from rexfit.structures.neighbors import pair_displacements

#: Knots per sampled function of an exported spline-MEAM (energy error ~1e-9 eV/atom for
#: smooth functions; splines LAMMPS already reproduces are copied exactly).
MEAM_EXPORT_KNOTS = 500


def export_meam(meam, params, species, masses, numbers, finals: dict, options: dict,
                path: str) -> None:
    """Write ``meam`` at ``params`` to ``path`` (meam/spline, atomically).  Functions are
    sampled from 0.8 × the shortest distance and up to twice the largest density met in
    ``finals`` ({id: relaxed structure}).  ``masses``, ``numbers`` and ``options`` are not
    used (the file has neither; the element takes no options).  ValueError if the potential
    cannot be written."""
    r_min, rho_max = math.inf, 0.0
    for relaxed in finals.values():
        disp = np.asarray(pair_displacements(relaxed.system, relaxed.nbrs))
        mask = np.asarray(relaxed.nbrs.mask)
        if mask.any():
            r_min = min(r_min, float(np.linalg.norm(disp[mask], axis=1).min()))
        rho = np.asarray(meam.densities(params, relaxed.system, relaxed.nbrs))
        rho_max = max(rho_max, float(np.abs(rho).max(initial=0.0)))
    r_min = 0.8 * r_min if math.isfinite(r_min) else 1.0
    spline, sparams = export_splines(meam, params, MEAM_EXPORT_KNOTS, r_min=r_min,
                                     rho_range=(-0.1 * (rho_max or 1.0), 2.0 * (rho_max or 1.0)),
                                     elements=species)
    write_meam_file(path, spline, sparams, species, comment=f"written by rexfit {__version__}")


def _number(value: float) -> str:
    return repr(float(value))


def meam_spline_text(data: MEAMSplineFile, comment: str | None = None,
                     old_format: bool | None = None) -> str:
    """``data`` as the text of a meam/spline file LAMMPS reads back exactly (17 significant
    digits).

    The multi-element layout is used unless ``old_format`` (default: ``data.old_format``) is
    true, which needs a single element.  Knots must be on a uniform grid (LAMMPS's rule).
    The ``y''`` column holds the spline's second derivatives (LAMMPS ignores it).
    """
    n = data.n_elements
    old = data.old_format if old_format is None else bool(old_format)
    if old and n != 1:
        raise ValueError(f"the old meam/spline layout holds one element, not {n}")
    if not old and len(data.elements) != n:
        raise ValueError(f"the multi-element layout needs {n} element names, "
                         f"got {data.elements!r}")
    counts = {"phi": pair_count(n), "rho": n, "U": n, "f": n, "g": pair_count(n)}
    for kind, count in counts.items():
        if len(getattr(data, kind)) != count:
            raise ValueError(f"{kind}: expected {count} splines, got {len(getattr(data, kind))}")
    text = comment if comment is not None else (data.comment or "meam/spline potential")
    text = " ".join(text.split())
    if "UNITS:" not in text:
        text += " UNITS: metal"
    out = [f"# {text}"]
    if not old:
        out.append(f"meam/spline {n} {' '.join(data.elements)}")
    for kind in counts:
        for k, spline in enumerate(getattr(data, kind)):
            x = np.asarray(spline.knots, dtype=np.float64)
            y = np.asarray(spline.values, dtype=np.float64)
            if len(x) < 2 or len(y) != len(x):
                raise ValueError(f"{kind}[{k}]: needs ≥ 2 knots and one value per knot")
            h = (x[-1] - x[0]) / (len(x) - 1)
            off = np.abs(x[0] + h * np.arange(len(x)) - x)
            if not h > 0.0 or off.max() > GRID_TOLERANCE:
                raise ValueError(f"{kind}[{k}]: knots must increase on a uniform grid "
                                 f"(LAMMPS meam/spline); max deviation {off.max():.3g}")
            if not (np.all(np.isfinite(y)) and math.isfinite(spline.derivative_left)
                    and math.isfinite(spline.derivative_right)):
                raise ValueError(f"{kind}[{k}]: values and derivatives must be finite")
            y2 = clamped_second_derivatives(x, y, spline.derivative_left,
                                            spline.derivative_right)
            if not old:
                out.append("spline3eq")
            out.append(str(len(x)))
            out.append(f"{_number(spline.derivative_left)} {_number(spline.derivative_right)}")
            if old:
                out.append("0 0 0 0")
            out += [f"{_number(a)} {_number(b)} {_number(c)}" for a, b, c in zip(x, y, y2)]
    return "\n".join(out) + "\n"


def write_meam_spline(path, data: MEAMSplineFile, comment: str | None = None,
                      old_format: bool | None = None) -> None:
    """Write ``data`` as a meam/spline file (:func:`meam_spline_text`), atomically."""
    write_text(str(path), meam_spline_text(data, comment, old_format))


def write_meam_file(path, potential, params, elements: Sequence[str],
                    comment: str | None = None, old_format: bool = False) -> None:
    """Write a :class:`~rexfit.potentials.meam.MEAM` at ``params`` as a meam/spline file
    (multi-element layout unless ``old_format``) that LAMMPS evaluates to the same energies
    (``pair_coeff * * path e1 e2 ...``), atomically.

    Every function must be a :class:`~rexfit.potentials.meam.MEAMSpline` in LAMMPS's form
    (density, f independent of the centre species, g of the centre); use
    :func:`~rexfit.potentials.meam.export_splines` first for other functions.  Missing
    functions are written as zero splines.
    """
    write_meam_spline(path, lammps_data(potential, params, elements), comment=comment,
                      old_format=old_format)
