"""Properties of a structure by their job-file names, in output units (eV, eV/atom, Å, Å³, GPa,
eV/Å), as JAX functions of the potential parameters and the relaxed DOF vector — the same
code serves the objective (differentiated) and the output phase (evaluated).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rexfit.physics import elastic
from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate

ELASTIC = {f"C{i}{j}" for i in range(1, 7) for j in range(i, 7)} | {"bulk-modulus",
                                                                    "shear-modulus"}
LATTICE = ("lattice-parameter", "ca-ratio", "atom-distance")
#: A marker in a wanted-property set (not a property): the elastic constants are wanted only
#: of structures whose atoms are not relaxed, so no relaxed-ion correction is taken even where
#: the layout lets atoms move (a program shared with structures that relax their atoms but
#: want no elastic constants; :func:`rexfit.objective.terms.share_programs`).
CLAMPED_IONS = "clamped-ion elastic constants"
ELASTIC_NEEDS_PBC = "elastic constants need a periodic cell"


def check_wanted(problem, wanted, structure_id: str) -> str | None:
    """Why ``wanted`` cannot be computed for ``problem`` (a message naming the structure),
    or None."""
    if set(wanted) & ELASTIC and not all(problem.pbc):
        return f"structure '{structure_id}': {ELASTIC_NEEDS_PBC}"
    return None


def property_values(problem, potential, params, x, nbrs, wanted) -> dict:
    """{name: jnp value} of every always-computed property plus those in ``wanted``.

    ``x`` is the relaxed DOF vector of ``problem`` (a RelaxProblem, or its Geometry inside a
    jitted program); ``wanted`` a set of property names. Pure and traceable: call it under
    ``jit``/``grad``. Given a Geometry, the lattice DOFs are all of (lattice-parameter,
    ca-ratio, atom-distance), whether the structure has them or not.
    """
    own = getattr(getattr(problem, "model", None), "dofs", None)  # None: the caller filters
    problem = getattr(problem, "geometry", problem)
    system = problem.system(x)
    n = problem.nreal
    periodic = all(problem.pbc)
    c = None
    if set(wanted) & ELASTIC:
        if not periodic:
            raise ValueError(ELASTIC_NEEDS_PBC)
        # energy, forces and stress come with the elastic constants, from one pass
        ions = problem.layout.move and CLAMPED_IONS not in wanted
        ev, c = elastic.evaluate_with_elastic_constants(
            potential, params, system, nbrs, problem.relaxed_ions, ions)
    else:
        ev = evaluate(potential, params, system, nbrs)
    out = {"total-energy": ev.energy, "atomic-energy": ev.energy / n}
    if periodic:
        vol = system.volume
        out["total-volume"] = vol
        out["atomic-volume"] = vol / n
        stress = ev.stress * EV_PER_A3_TO_GPA
        out["stress"] = stress
        out["pressure"] = -jnp.sum(stress[:3]) / 3.0
    for name, value in problem.lattice_values(x).items():
        if name in LATTICE and (own is None or name in own):
            out[name] = jnp.asarray(value, dtype=jnp.float64)
    if "atomic-forces" in wanted:
        if problem.real is None:
            raise ValueError("this structure's layout has no per-atom forces")
        out["atomic-forces"] = ev.forces[problem.real]
    if c is not None:
        for i in range(6):
            for j in range(i, 6):
                out[f"C{i + 1}{j + 1}"] = c[i, j] * EV_PER_A3_TO_GPA
        out["bulk-modulus"] = elastic.bulk_modulus(c) * EV_PER_A3_TO_GPA
        out["shear-modulus"] = elastic.shear_modulus(c) * EV_PER_A3_TO_GPA
    return out


def to_host(values: dict) -> dict:
    """jnp property values → floats and nested lists (for reports and results.json)."""
    out = {}
    for k, v in values.items():
        a = np.asarray(v, dtype=float)
        out[k] = float(a) if a.ndim == 0 else a.tolist()
    return out
