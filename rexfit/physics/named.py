"""Properties of a relaxed structure by their job-file names, in output units
(eV, eV/atom, Å, Å³, GPa, eV/Å)."""

from __future__ import annotations

import numpy as np

from rexfit.physics import elastic
from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate

ELASTIC = {f"C{i}{j}" for i in range(1, 7) for j in range(i, 7)} | {"bulk-modulus",
                                                                    "shear-modulus"}


def compute(model, relaxed, potential, params, wanted: set[str]) -> dict[str, object]:
    """Every always-computed property plus those in ``wanted`` for a relaxed structure."""
    system, nbrs = relaxed.system, relaxed.nbrs
    ev = evaluate(potential, params, system, nbrs)
    n = int(np.sum(np.asarray(system.mask)))
    periodic = all(system.pbc)
    out: dict[str, object] = {
        "total-energy": float(ev.energy),
        "atomic-energy": float(ev.energy) / n,
    }
    if periodic:
        vol = float(system.volume)
        out["total-volume"] = vol
        out["atomic-volume"] = vol / n
        stress = np.asarray(ev.stress) * EV_PER_A3_TO_GPA
        out["stress"] = stress.tolist()
        out["pressure"] = float(-np.sum(stress[:3]) / 3.0)
    for dof in ("lattice-parameter", "ca-ratio", "atom-distance"):
        if dof in relaxed.dofs:
            out[dof] = float(relaxed.dofs[dof])
    if "atomic-forces" in wanted:
        out["atomic-forces"] = np.asarray(ev.forces)[np.asarray(system.mask)].tolist()
    if wanted & ELASTIC:
        if not periodic:
            raise ValueError(f"structure '{model.id}': elastic constants need a periodic cell")
        relaxed_ions = "atom-coordinates" in model.relax
        fn = (elastic.relaxed_ion_elastic_constants if relaxed_ions
              else elastic.clamped_ion_elastic_constants)
        c = np.asarray(fn(potential, params, system, nbrs))
        for i in range(6):
            for j in range(i, 6):
                out[f"C{i + 1}{j + 1}"] = float(c[i, j] * EV_PER_A3_TO_GPA)
        out["bulk-modulus"] = float(elastic.bulk_modulus(c) * EV_PER_A3_TO_GPA)
        out["shear-modulus"] = float(elastic.shear_modulus(c) * EV_PER_A3_TO_GPA)
    return out
