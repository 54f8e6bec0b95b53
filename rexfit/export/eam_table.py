"""Writing an EAM potential as a LAMMPS table: ``eam/fs`` or, when the file name ends in
``.alloy``, ``eam/alloy`` (``<export-eam-file resolution rho-range-factor>``).

Layout (LAMMPS pair_style eam/fs documentation): three comment lines; ``N el1 el2 ...``;
``Nrho drho Nr dr cutoff``; per element: ``Z mass a0 lattice``, F(ρ) on ρ_k = k·drho, then the
densities (eam/fs: one per neighbour element, density at this element due to that neighbour;
eam/alloy: one); finally r·φ(r) on r_k = k·dr for every pair i ≥ j.
"""

from __future__ import annotations

import io

import jax.numpy as jnp
import numpy as np

from rexfit import __version__
from rexfit.files import write_text
from rexfit.potentials.eam import EAM


def _values(entries: dict, key, params, x: np.ndarray) -> np.ndarray:
    entry = entries.get(key)
    if entry is None:
        return np.zeros_like(x)
    name, fn = entry
    return np.asarray(fn(params[name], jnp.asarray(x)), dtype=float)


def _block(values: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.16e}" for v in values[k:k + 5])
                     for k in range(0, len(values), 5)) + "\n"


def eam_table_text(eam: EAM, params, species: tuple[str, ...], masses, numbers, *,
                   rho_max: float, resolution: int = 10000, alloy: bool = False) -> str:
    """The table file as text; ``rho_max`` is the largest tabulated density."""
    pair = dict(eam.pair)
    density = dict(eam.density)
    embedding = dict(eam.embedding)
    n = len(species)
    nr = nrho = int(resolution)
    dr = eam.cutoff / (nr - 1)
    drho = rho_max / (nrho - 1)
    r = np.arange(nr) * dr
    rho = np.arange(nrho) * drho
    out = io.StringIO()
    out.write(f"EAM potential written by rexfit {__version__}\n")
    out.write(f"style {'eam/alloy' if alloy else 'eam/fs'}; elements {' '.join(species)}\n")
    out.write(f"Nrho={nrho} drho={drho:.10g} Nr={nr} dr={dr:.10g} cutoff={eam.cutoff:.10g}\n")
    out.write(f"{n} {' '.join(species)}\n")
    out.write(f"{nrho} {drho:.16e} {nr} {dr:.16e} {eam.cutoff:.16e}\n")
    for a in range(n):
        out.write(f"{numbers[a]} {masses[a]:.10g} 0.0 none\n")
        out.write(_block(_values(embedding, a, params, rho)))
        if alloy:
            columns = {tuple(np.round(_values(density, (c, a), params, r), 14)) for c in range(n)}
            if len(columns) > 1:
                raise ValueError(
                    f"the density of {species[a]} depends on the receiving species; "
                    "eam/alloy cannot express that (export to an eam/fs file)")
            out.write(_block(_values(density, (0, a), params, r)))
        else:
            for b in range(n):
                out.write(_block(_values(density, (a, b), params, r)))
    for a in range(n):
        for b in range(a + 1):
            phi = _values(pair, (min(a, b), max(a, b)), params, r)
            out.write(_block(r * phi))
    return out.getvalue()


def write_eam_table(path: str, *args, **kwargs) -> None:
    write_text(path, eam_table_text(*args, **kwargs))


def largest_density(eam: EAM, params, finals: dict) -> float:
    """The largest density ρ met in the final structures ``finals`` ({id: relaxed structure
    with ``system`` and ``nbrs``}; their neighbour lists reach every potential), 0 if none."""
    rho_max = 0.0
    for relaxed in finals.values():
        rho = np.asarray(eam.densities(params, relaxed.system, relaxed.nbrs))
        rho_max = max(rho_max, float(rho.max(initial=0.0)))
    return rho_max


def export_eam_file(eam: EAM, params, species, masses, numbers, finals: dict, options: dict,
                    path: str) -> None:
    """``<export-eam-file>``: the table at ``path`` (eam/alloy when it ends in ``.alloy``),
    F tabulated up to ``rho-range-factor`` (default 2) × the largest density met in
    ``finals``, ``resolution`` (default 10000) points per table.  ValueError if the
    potential cannot be written in that style."""
    factor = float(options.get("rho-range-factor", 2.0))
    rho_max = factor * (largest_density(eam, params, finals) or 1.0)
    write_eam_table(path, eam, params, species, masses, numbers, rho_max=rho_max,
                    resolution=int(options.get("resolution", 10000)),
                    alloy=path.endswith(".alloy"))
