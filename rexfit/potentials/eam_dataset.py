"""The analytic dataset kernel of :class:`rexfit.potentials.eam.EAM`: on the half neighbour
list of a chunk, per pair dE/dr = V′(r) + F′(ρ_i) ρ′_ij(r) + F′(ρ_j) ρ′_ji(r), with the radial
derivatives of LAMMPS tables from their spline coefficients and of other functions by forward
mode.  :func:`prepare` runs once per evaluation, :func:`terms` once per chunk (looked up by
:mod:`rexfit.datasets.analytic`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.analytic_dataset import (
    distances,
    gather_atoms,
    radial_terms,
    scatter_atoms,
)
from rexfit.potentials.eam import EAM, distinct_functions, slot_table
from rexfit.potentials.tabulated import (
    FUNCFL_ZZ_TO_EV_ANGSTROM,
    FuncflPair,
    LammpsTable,
    RPhiTable,
    _Grid,
    _slope,
    interpolate,
    spline_coefficients,
)


_TABLES = (LammpsTable, RPhiTable, FuncflPair)


def _prepared_function(fn, params):
    """What the kernel needs of one function: spline coefficients (n, 4) of a LAMMPS table,
    else the function's own params.  Computed once per objective call, not per chunk."""
    if isinstance(fn, FuncflPair):
        z = FUNCFL_ZZ_TO_EV_ANGSTROM * params[fn.element_a]["values"]
        return spline_coefficients(z * params[fn.element_b]["values"])
    if isinstance(fn, _TABLES):
        return spline_coefficients(params["values"])
    return params


def prepare(eam: EAM, params) -> dict:
    """{"pair"|"density"|"embedding": [prepared data of each distinct function]}."""
    return {role: [_prepared_function(fn, params[key])
                   for key, fn in distinct_functions(getattr(eam, role))]
            for role in ("pair", "density", "embedding")}


def _value_and_slope(fn, data, x):
    """fn(x) and dfn/dx elementwise.  LAMMPS tables from their prepared coefficients: the
    value by ``interpolate`` (whose custom derivative is LAMMPS's slope) and the slope by
    the same cubic derivative, the numbers ``jax.jvp`` of the function gives, without its
    zero-tangent table lookups; other functions by forward mode."""
    if isinstance(fn, _TABLES):
        table = fn if isinstance(fn, LammpsTable) else fn.table
        grid = _Grid(table.n, table.delta, table.extrapolate_above)
        value, slope = interpolate(grid, data, x), _slope(grid, data, x)
        if isinstance(fn, LammpsTable):
            return value, slope
        return value / x, (slope - value / x) / x  # V = z/r
    return jax.jvp(lambda y: fn(data, y), (x,), (jnp.ones_like(x),))


def _select(entries, data: list, table: np.ndarray, slots, x):
    """Value and slope of the function of each element's slot (0 where the slot is −1), as
    ``EAM._select`` with derivatives: one evaluation per distinct function.  ``table`` is
    the host slot table ``slots`` was gathered from (one function everywhere: no masking)."""
    distinct = distinct_functions(entries)
    if len(distinct) == 1 and np.all(table == 0):
        return _value_and_slope(distinct[0][1], data[0], x)
    value, slope = jnp.zeros_like(x), jnp.zeros_like(x)
    for k, ((_, fn), d) in enumerate(zip(distinct, data)):
        v, dv = _value_and_slope(fn, d, x)
        chosen = slots == k
        value = value + jnp.where(chosen, v, 0.0)
        slope = slope + jnp.where(chosen, dv, 0.0)
    return value, slope


def pair_terms(eam: EAM, prepared: dict, c):
    """(pair energies (B, E), atom energies (B, n), dE/dr (B, E)) of one EAM term."""
    atoms = c.mask.shape
    r2, r = distances(c)
    use = c.pair_mask & (r2 < eam.cutoff * eam.cutoff)
    r = jnp.where(c.pair_mask, r, 0.5 * eam.cutoff)
    zero = jnp.zeros_like(r)

    def radial(role, table, slots):
        v, dv = _select(getattr(eam, role), prepared[role], table, slots, r)
        return jnp.where(use, v, 0.0), jnp.where(use, dv, 0.0)

    if eam.pair:
        table = slot_table(eam.pair, eam.n_species, 2, symmetric=True)
        v, dv = radial("pair", table, jnp.asarray(table)[c.si, c.sj])
    else:
        v = dv = zero
    table = slot_table(eam.density, eam.n_species, 2)
    if eam.density:
        rho_ij, drho_ij = radial("density", table, jnp.asarray(table)[c.si, c.sj])
        if np.array_equal(table, table.T):  # ρ_ji = ρ_ij: evaluate once
            rho_ji, drho_ji = rho_ij, drho_ij
        else:
            rho_ji, drho_ji = radial("density", table.T, jnp.asarray(table)[c.sj, c.si])
    else:
        rho_ij = drho_ij = rho_ji = drho_ji = zero
    live = jnp.any(c.mask)
    rho = scatter_atoms(rho_ij, c.gi, atoms, live) + scatter_atoms(rho_ji, c.gj, atoms, live)
    rho = jnp.where(c.mask, rho, 1.0)  # padding atoms: a harmless argument, masked below
    table = slot_table(eam.embedding, eam.n_species, 1)
    f, df = _select(eam.embedding, prepared["embedding"], table,
                    jnp.asarray(table)[c.species], rho)
    f, df = jnp.where(c.mask, f, 0.0), jnp.where(c.mask, df, 0.0)
    dedr = (dv + gather_atoms(df, c.gi, live) * drho_ij
            + gather_atoms(df, c.gj, live) * drho_ji)
    return v, f, jnp.where(use, dedr, 0.0)


def terms(eam: EAM, prepared: dict, c):
    """(energy (B,), dE/dd (3 × (B, E))) of one EAM term."""
    return radial_terms(*pair_terms(eam, prepared, c), c)
