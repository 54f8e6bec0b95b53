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
from rexfit.potentials.eam import EAM
from rexfit.report.files import write_text


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
