"""Writing a LAMMPS ``pair_style adp`` file (the extended DYNAMO setfl format) from an
:class:`~rexfit.potentials.adp.ADP` of any function objects (``<export-adp-file>``).

The layout is described in :mod:`rexfit.potentials.adp_files`, which reads it back into an
:class:`~rexfit.potentials.adp_files.ADPTables`.  :func:`adp_tables_from_potential` samples
the potential on LAMMPS's grids; :func:`write_adp_tables` writes tables (atomically).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from rexfit.export.eam_table import _block, _values, largest_density
from rexfit.files import write_text
from rexfit.potentials.adp_files import ADPTables

if TYPE_CHECKING:  # pragma: no cover
    from rexfit.potentials.adp import ADP



def _real(x) -> str:
    """A float written so that it reads back identical."""
    return f"{float(x):.16e}"


def adp_file_text(tables: ADPTables) -> str:
    """The LAMMPS adp file of ``tables`` as text (values with 17 significant digits)."""
    out = io.StringIO()
    for line in tables.comments:
        out.write(line.replace("\n", " ") + "\n")
    out.write(f"{len(tables.elements)} {' '.join(tables.elements)}\n")
    out.write(f"{tables.nrho} {_real(tables.drho)} {tables.nr} {_real(tables.dr)} "
              f"{_real(tables.cutoff)}\n")
    info = tables.info or (("0.0", "none"),) * len(tables.elements)
    for a, z, m, extra in zip(tables.elements, tables.numbers, tables.masses, info):
        out.write(" ".join([str(int(z)), repr(float(m)), *extra]) + "\n")
        out.write(_block(np.asarray(tables.F[a], dtype=float)))
        out.write(_block(np.asarray(tables.rho[a], dtype=float)))
    for name in ("z2r", "u2r", "w2r"):
        for pair in tables.pairs():
            out.write(_block(np.asarray(getattr(tables, name)[pair], dtype=float)))
    return out.getvalue()


def write_adp_tables(path, tables: ADPTables) -> None:
    """Write ``tables`` as a LAMMPS adp file (atomically)."""
    write_text(str(path), adp_file_text(tables))


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` with a non-finite first point (a function singular at r = 0 or ρ = 0)
    replaced by linear extrapolation from the next two; any other non-finite value is an
    error."""
    bad = ~np.isfinite(values)
    if bad[1:].any():
        k = int(np.argmax(bad[1:])) + 1
        raise ValueError(f"{what} is not finite at grid point {k} ({values[k]})")
    if bad[0]:
        values = values.copy()
        values[0] = 2.0 * values[1] - values[2]
    return values


def adp_tables_from_potential(
    potential: ADP, params, elements: Sequence[str], nr: int, dr: float, nrho: int,
    drho: float, *, masses: Sequence[float] | None = None,
    numbers: Sequence[int] | None = None, comments: Sequence[str] | None = None,
) -> ADPTables:
    """Sample ``potential`` (species s ↔ ``elements[s]``) on LAMMPS's grids.

    F on ρ_k = k·drho (k < nrho); ρ, r·φ, u, w on r_k = k·dr (k < nr).  The grid must reach
    the cutoff, (nr − 1)·dr ≥ cutoff (LAMMPS holds the last value beyond it); choose
    dr = cutoff/(nr − 1) so that the cutoff is a grid point.  LAMMPS does not extrapolate F
    above (nrho − 1)·drho, so that must exceed every density met.  Densities must not depend
    on the receiving species (the file has one ρ per element).  A function that is infinite
    at r = 0 (or F at ρ = 0) gets the linear extrapolation of the next two points there (no
    atom pair ever reads it).  Atomic numbers and masses default to ASE's for the element
    names.
    """
    elements = tuple(elements)
    n = len(elements)
    if n != potential.n_species:
        raise ValueError(f"{n} element names for a potential of {potential.n_species} species")
    if nr < 5 or nrho < 5:
        raise ValueError(f"nr and nrho must be at least 5, got {nr}, {nrho}")
    if not (dr > 0 and drho > 0):
        raise ValueError(f"dr and drho must be positive, got {dr}, {drho}")
    if (nr - 1) * dr < potential.cutoff * (1.0 - 1e-12):
        raise ValueError(f"the r grid ends at {(nr - 1) * dr:g} Å, before the cutoff "
                         f"{potential.cutoff:g} Å")
    if numbers is None:
        numbers = [atomic_numbers.get(a, 0) for a in elements]
    if masses is None:
        masses = [float(atomic_masses[z]) if z else 1.0 for z in numbers]
    r = np.arange(nr) * float(dr)
    rho_grid = np.arange(nrho) * float(drho)
    pair, density = dict(potential.pair), dict(potential.density)
    embedding, u, w = dict(potential.embedding), dict(potential.u), dict(potential.w)
    F, rho, z2r, u2r, w2r = {}, {}, {}, {}, {}
    for s, a in enumerate(elements):
        F[a] = _finite(_values(embedding, s, params, rho_grid), f"F of {a}")
        columns = [_values(density, (c, s), params, r) for c in range(n)]
        if any(not np.array_equal(col, columns[0], equal_nan=True) for col in columns[1:]):
            raise ValueError(f"the density due to {a} depends on the receiving species; an "
                             "adp file cannot express that")
        rho[a] = _finite(columns[0], f"the density of {a}")
    for s, a in enumerate(elements):
        for t, b in enumerate(elements[: s + 1]):
            key = (t, s)  # t ≤ s: the symmetrised key of the mappings
            phi = _values(pair, key, params, r)
            ok = np.isfinite(phi)
            z = np.full_like(phi, np.nan)
            z[ok] = r[ok] * phi[ok]
            z2r[(a, b)] = _finite(z, f"r*phi of {a}-{b}")
            u2r[(a, b)] = _finite(_values(u, key, params, r), f"u of {a}-{b}")
            w2r[(a, b)] = _finite(_values(w, key, params, r), f"w of {a}-{b}")
    if comments is None:
        from rexfit import __version__

        comments = (f"ADP potential written by rexfit {__version__}",
                    f"elements {' '.join(elements)}",
                    f"Nrho={nrho} drho={drho:.10g} Nr={nr} dr={dr:.10g} "
                    f"cutoff={potential.cutoff:.10g}")
    comments = tuple(comments) + ("",) * (3 - len(comments))
    if len(comments) != 3:
        raise ValueError(f"an adp file has 3 comment lines, got {len(comments)}")
    return ADPTables(elements, tuple(int(z) for z in numbers), tuple(float(m) for m in masses),
                     int(nrho), float(drho), int(nr), float(dr), float(potential.cutoff),
                     F, rho, z2r, u2r, w2r, (("0.0", "none"),) * n, comments)


def write_adp_file(path, potential: ADP, params, elements: Sequence[str], nr: int, dr: float,
                   nrho: int, drho: float, **kwargs) -> ADPTables:
    """Sample ``potential`` (:func:`adp_tables_from_potential`) and write the LAMMPS adp file;
    returns the tables written."""
    tables = adp_tables_from_potential(potential, params, elements, nr, dr, nrho, drho,
                                       **kwargs)
    write_adp_tables(path, tables)
    return tables


def export_adp_file(adp: ADP, params, species, masses, numbers, finals: dict, options: dict,
                    path: str) -> None:
    """``<export-adp-file>``: the adp file at ``path`` on ``resolution`` (default 10000)
    points, F up to ``rho-range-factor`` (default 2) × the largest density of the EAM part
    met in ``finals``.  ValueError if the potential cannot be written."""
    factor = float(options.get("rho-range-factor", 2.0))
    rho_top = factor * (largest_density(adp.eam, params, finals) or 1.0)
    resolution = int(options.get("resolution", 10000))
    write_adp_file(path, adp, params, species, resolution, adp.cutoff / (resolution - 1),
                   resolution, rho_top / (resolution - 1), masses=masses, numbers=numbers)
