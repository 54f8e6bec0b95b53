"""Writing a fitted ``<meam>`` as a LAMMPS ``meam/spline`` file (its ``<export-potential>``),
its functions sampled over the range the final structures reach."""

from __future__ import annotations

import math

import numpy as np

from rexfit import __version__
from rexfit.files import atomic_write
from rexfit.potentials.meam import export_splines
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
    atomic_write(path, lambda tmp: spline.write_file(
        tmp, sparams, species, comment=f"written by rexfit {__version__}"))
