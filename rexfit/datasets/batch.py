"""Batched evaluation of a fixed-geometry dataset: energies, forces, stresses, a weighted
least-squares objective, its exact gradient, the residual vector and its Jacobian.

The structures of a ``<dataset>`` are never relaxed, so every neighbour list is built once, on
the host, when the :class:`DatasetObjective` is made.  Structures are grouped into *buckets*
by periodicity and atom count; a bucket is stacked into arrays with a leading structure axis,
padded and split into *chunks* of equal shape.  Every padded size (atom slots, pair and
triplet slots, structures per chunk) is a rung of one global geometric :func:`ladder` (ratio
≤ 4/3), so chunk shapes do not depend on the dataset: the datasets of a job and the training
and validation parts of one land on few, shared shapes.  The jitted programs are module-level
(:data:`KERNELS`) with the :class:`Spec` (potential, kernel, transform; hashed by value) as
static argument, so one program is traced and compiled once per chunk shape for the whole
process, whichever objective calls it.

Objective (absent targets skip their term; N_s real atoms of structure s)::

    L(θ) = Σ_s [ w_E,s ((E_s − E*_s) / (N_s δ_E,s))²
                 + w_F,s / (3 N_s) Σ_{i,α} ((F_s,iα − F*_s,iα) / δ_F,s)²
                 + w_S,s / 6 Σ_v ((σ_s,v − σ*_s,v) / δ_S,s)² ]

E in eV (so the energy term compares energies per atom, δ_E in eV/atom), F in eV/Å, σ in
eV/Å³ (Voigt xx yy zz yz xz xy, positive tensile, as :mod:`rexfit.physics.properties`).
L = Σ r² with the residual vector r of :meth:`DatasetObjective.residuals`, whose rows are,
structure by structure in input order: the energy row (if an energy target is given), the 3N
force rows (atom by atom, x y z) and the 6 stress rows (Voigt order);
:attr:`DatasetObjective.rows` labels every row.

Two evaluation kernels give the same numbers (to round-off):

* ``"autodiff"`` (any potential): ``jax.vmap`` over the structures of a chunk of the same
  reverse pass as :func:`rexfit.physics.properties.evaluate` (energy, then forces and virial
  from its gradient with respect to positions and a homogeneous strain); the objective's
  gradient is reverse-over-reverse.
* ``"analytic"`` (EAM and Lennard-Jones terms, sums of them, linked parameters): pair
  functionals written out by hand on the half neighbour list, with the fixed pair vectors
  d_ij computed once on the host.  Per pair, dE/dr = V′(r) + F′(ρ_i) ρ′_ij(r)
  + F′(ρ_j) ρ′_ji(r) (radial derivatives by forward mode); forces are ± dE/dr d/r summed
  onto the atoms, the virial is Σ dE/dr d⊗d/r.  The objective's gradient is then a single
  reverse pass.  About 4× faster than autodiff for EAM; chosen by ``"auto"`` whenever it
  applies.

Memory.  Inputs live in host (NumPy) arrays.  If they take more than ``resident_bytes``, a
chunk is moved to the device only when it is evaluated and released afterwards, with at most
two chunks in flight (the next one is dispatched while the previous one finishes); otherwise
all chunks are transferred once and kept.  ``max_bucket_atoms`` bounds the atom slots per
chunk and with them the autodiff intermediates, which dominate device memory.  See
docs/datasets-engine.md.
"""

from __future__ import annotations

import math
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rexfit.datasets import descriptor_kernel as dk
from rexfit.physics.strain import deform, tensor_to_voigt
from rexfit.potentials.base import Linked, SumPotential, species_table
from rexfit.potentials.eam import EAM
from rexfit.potentials.lists import build_lists
from rexfit.potentials.manybody_files import SW_PARAMETERS, stack_params
from rexfit.potentials.pair import LennardJones
from rexfit.potentials.sw import _EXP_FLOOR, StillingerWeber
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
from rexfit.structures.neighbors import (
    PADDING_DISPLACEMENT,
    NeighborList,
    build_neighbor_list,
    pair_displacements,
)
from rexfit.structures.system import System, make_system
from rexfit.structures.triplets import TripletNeighborList, Triplets

#: Row kinds of the residual vector (:attr:`Rows.kind`).
ENERGY, FORCE, STRESS = 0, 1, 2

#: Voigt order of stress rows and of the virial components (xx yy zz yz xz xy).
VOIGT = dk.VOIGT


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True, eq=False)
class Item:
    """One fixed-geometry structure with its targets, weights and tolerances.

    positions: (N, 3) Å.  cell: (3, 3) Å, rows are lattice vectors.  species: (N,) int,
    0-based indices into the job's atom types (default all 0).  pbc: periodicity along
    a1, a2, a3.  energy: total-energy target (eV) or None.  forces: (N, 3) eV/Å or None.
    stress: (6,) eV/Å³ Voigt (xx yy zz yz xz xy, positive tensile) or None; needs a cell of
    non-zero volume.  weight_*: w_E, w_F, w_S ≥ 0 (weight_forces may also be (N,), one
    weight per atom).  tol_energy: δ_E (eV/atom; eV when not energy_per_atom),
    tol_forces: δ_F (eV/Å), tol_stress: δ_S (eV/Å³), all > 0.  name: for messages.
    energy_per_atom: the energy residual is (E − E*)/(N δ_E) (default) or (E − E*)/δ_E.
    mean_components: the squared force and stress residuals of the structure are averaged over
    its 3N and 6 components (default, the objective above) or summed over them (FitSNAP,
    pacemaker).
    """

    positions: Any
    cell: Any
    species: Any = None
    pbc: tuple[bool, bool, bool] = (True, True, True)
    energy: float | None = None
    forces: Any = None
    stress: Any = None
    weight_energy: float = 1.0
    weight_forces: float = 1.0
    weight_stress: float = 1.0
    tol_energy: float = 1.0
    tol_forces: float = 1.0
    tol_stress: float = 1.0
    name: str = ""
    energy_per_atom: bool = True
    mean_components: bool = True


@dataclass(frozen=True, eq=False)
class Prediction:
    """Model values of one structure (host NumPy): energy eV, forces (N, 3) eV/Å,
    stress (6,) eV/Å³ Voigt (NaN for a cell of zero volume), virial (3, 3) eV, W = ∂E/∂ε."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray
    virial: np.ndarray


@dataclass(frozen=True, eq=False)
class Rows:
    """Labels of the residual rows, (M,) int arrays: structure index, kind (:data:`ENERGY`,
    :data:`FORCE`, :data:`STRESS`), atom (−1 for energy and stress rows) and component
    (x y z = 0 1 2 for forces, Voigt 0..5 for stress, 0 for energy)."""

    structure: np.ndarray
    kind: np.ndarray
    atom: np.ndarray
    component: np.ndarray

    def __len__(self) -> int:
        return len(self.structure)


# ----------------------------------------------------------------------------- chunks


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class Chunk:
    """B stacked structures of one bucket: a pytree, leading axis = structure (B), n atom
    slots, E pair slots, T triplet slots.  Fields a kernel does not use are None.

    Common: species, mask (B, n); pair_mask (B, E).  Targets and residual scales:
    e_ref (B,), f_ref (3, B, n), s_ref (6, B), ce (B,), cf (B, n) (0 on padding atoms),
    cs (B,), volume (B,) Å³ (1 where no stress is defined).
    Autodiff kernel: positions (B, n, 3), cell (B, 3, 3), i, j (B, E), shifts (B, E, 3)
    (int8 when small), triplets tij, tik, tmask (B, T) or None.
    Analytic kernel: gi, gj (B, E) atom slots in the flattened (B·n) atom axis, si, sj (B, E)
    species of the two atoms, d (3, B, E) pair vectors x_j + n·cell − x_i in Å (padding
    pairs: the far dummy of the neighbour lists).
    Descriptor kernel: the analytic fields on the full list, plus per descriptor model
    features (B, n, K) and feature_grads (B, E, K, 3) (∂B_i/∂d_p of each pair's centre i) or,
    for a species-linear model (:func:`descriptor_kernel.species_linear`), its designs
    (force (B, n, S, K, 3), virial (B, S, K, 6)),
    and base = (energy (B,), forces (3, B, n), virial (6, B)) of parameter-free terms or None.
    Static: pbc, cutoff, skin, half, ordered (triplet layout, None without triplets), packed
    (descriptor kernel with pruned triplets: tij, tik index the chunk's flattened (B·E) pair
    slots and the triplets of all B structures are packed one after another, row-major over
    (B, T), so that no structure pads its own triplet slots).
    """

    species: Any
    mask: Any
    pair_mask: Any
    e_ref: Any
    f_ref: Any
    s_ref: Any
    ce: Any
    cf: Any
    cs: Any
    volume: Any
    positions: Any = None
    cell: Any = None
    i: Any = None
    j: Any = None
    shifts: Any = None
    tij: Any = None
    tik: Any = None
    tmask: Any = None
    gi: Any = None
    gj: Any = None
    si: Any = None
    sj: Any = None
    d: Any = None
    features: Any = None
    feature_grads: Any = None
    base: Any = None
    pbc: tuple = field(default=(True, True, True), metadata=dict(static=True))
    cutoff: float = field(default=0.0, metadata=dict(static=True))
    skin: float = field(default=0.0, metadata=dict(static=True))
    half: bool = field(default=True, metadata=dict(static=True))
    ordered: bool | None = field(default=None, metadata=dict(static=True))
    packed: bool = field(default=False, metadata=dict(static=True))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, n, E): structures, atom slots and pair slots."""
        b, n = self.mask.shape
        return b, n, self.pair_mask.shape[1]

    def nbytes(self) -> int:
        return sum(np.asarray(leaf).nbytes for leaf in jax.tree_util.tree_leaves(self))


def _structure(c: Chunk) -> tuple[System, NeighborList]:
    """System and neighbour list of one (un-batched) structure of an autodiff chunk."""
    system = System(positions=c.positions, cell=c.cell, species=c.species, mask=c.mask,
                    pbc=c.pbc)
    fields = dict(i=c.i, j=c.j, shifts=c.shifts.astype(jnp.int32), mask=c.pair_mask,
                  ref_positions=c.positions, ref_cell=c.cell, cutoff=c.cutoff, skin=c.skin,
                  half=c.half)
    if c.tij is None:
        return system, NeighborList(**fields)
    triplets = Triplets(ij=c.tij, ik=c.tik, mask=c.tmask, ordered=c.ordered)
    return system, TripletNeighborList(**fields, triplets=triplets)


def evaluate_structure(potential, params, system: System, nbrs: NeighborList, volume):
    """(energy eV, forces (N, 3) eV/Å, virial (3, 3) eV, stress (6,) eV/Å³) of one structure
    from one reverse pass of the energy w.r.t. positions and a homogeneous strain, the same
    operations as :func:`rexfit.physics.properties.evaluate`; ``volume`` divides the virial
    (passed in so that cells of zero volume stay finite)."""

    def energy(positions, strain):
        return potential.energy(params, deform(system.replace(positions=positions), strain),
                                nbrs)

    value, (g_x, g_eps) = jax.value_and_grad(energy, argnums=(0, 1))(
        system.positions, jnp.zeros((3, 3), system.positions.dtype))
    virial = 0.5 * (g_eps + g_eps.T)
    return value, -g_x, virial, tensor_to_voigt(virial) / volume


def _autodiff_outputs(potential, params, c: Chunk):
    """Kernel "autodiff": energy (B,), forces (3, B, n), virial (6, B), stress (6, B)."""

    def one(c1: Chunk):
        system, nbrs = _structure(c1)
        e, f, w, s = evaluate_structure(potential, params, system, nbrs, c1.volume)
        return e, f, jnp.stack([w[a, b] for a, b in VOIGT]), s

    geometry = replace(c, e_ref=None, f_ref=None, s_ref=None, ce=None, cf=None, cs=None)
    energy, forces, virial, stress = jax.vmap(one)(geometry)
    return energy, jnp.moveaxis(forces, 2, 0), virial.T, stress.T


# ----------------------------------------------------------------------------- analytic kernel


def _leaves(potential, params=None):
    """(leaf potential, its params or None) of a sum/linked tree, in order."""
    if isinstance(potential, SumPotential):
        for name, term in potential.terms:
            yield from _leaves(term, None if params is None else params[name])
    elif isinstance(potential, Linked):
        yield from _leaves(potential.term,
                           None if params is None else potential.resolve(params))
    else:
        yield potential, params


def analytic_supported(potential) -> bool:
    """True if every term of ``potential`` is an EAM, Lennard-Jones or Stillinger–Weber
    potential (possibly in sums and with linked parameters): the ``"analytic"`` kernel
    applies."""
    if isinstance(potential, SumPotential):
        return all(analytic_supported(t) for _, t in potential.terms)
    if isinstance(potential, Linked):
        return analytic_supported(potential.term)
    return type(potential) in (EAM, LennardJones, StillingerWeber)


def _distinct(entries) -> list:
    """The distinct (key, function) entries of an EAM mapping, in ``EAM._select`` order."""
    return list(dict.fromkeys(entry for _, entry in entries))


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


def prepare_analytic(potential, params) -> list:
    """Per leaf of ``potential``: for EAM, {"pair"|"density"|"embedding": [prepared data of
    each distinct function]}; for Stillinger–Weber, {name: (S³,) values of every element
    triplet entry}; for Lennard-Jones, its params."""
    out = []
    for leaf, p in _leaves(potential, params):
        if isinstance(leaf, EAM):
            out.append({role: [_prepared_function(fn, p[key])
                               for key, fn in _distinct(getattr(leaf, role))]
                        for role in ("pair", "density", "embedding")})
        elif isinstance(leaf, StillingerWeber):
            out.append(stack_params(p, leaf.elements, SW_PARAMETERS))
        else:
            out.append(p)
    return out


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
    distinct = _distinct(entries)
    if len(distinct) == 1 and np.all(table == 0):
        return _value_and_slope(distinct[0][1], data[0], x)
    value, slope = jnp.zeros_like(x), jnp.zeros_like(x)
    for k, ((_, fn), d) in enumerate(zip(distinct, data)):
        v, dv = _value_and_slope(fn, d, x)
        chosen = slots == k
        value = value + jnp.where(chosen, v, 0.0)
        slope = slope + jnp.where(chosen, dv, 0.0)
    return value, slope


# Per-atom arrays are gathered onto pairs (F′(ρ_i) onto i–j pairs, and in the reverse pass the
# cotangent of ρ_i).  XLA's CPU backend fuses the computation of the gathered array into the
# per-pair consumer and so recomputes it for every pair, in the reverse pass once per spline
# coefficient too (measured: 40 % of the objective's gradient).  jax.lax.optimization_barrier
# does not prevent this on the CPU backend; a conditional does (its operands and results are
# buffers), and autodiff turns it into another conditional for the cotangents.  The predicate
# is "the chunk has a real atom", always true (structures have atoms); the other branch
# returns zeros, which would also be right for a chunk of padding only.


def _materialise(values, live):
    return jax.lax.cond(live, lambda v: v, jnp.zeros_like, values)


def _gather_atoms(values, index, live):
    """values (B, n) at the flattened atom slots ``index`` (B, E)."""
    return _materialise(values, live).reshape(-1)[index]


def _scatter_atoms(values, index, shape, live):
    """Σ of pair values (B, E) onto their atom slots ``index`` → (B, n)."""
    summed = jax.ops.segment_sum(values.reshape(-1), index.reshape(-1),
                                 num_segments=shape[0] * shape[1])
    return _materialise(summed.reshape(shape), live)


def _slot_array(entries, n_species: int, ndim: int, symmetric: bool = False) -> np.ndarray:
    """Species (tuple) → index of its distinct function in ``entries``, −1 where none (the
    numbering of ``EAM._select``), as a host table."""
    distinct = _distinct(entries)
    index = {entry: k for k, entry in enumerate(distinct)}
    table = {}
    for key, entry in entries:
        table[key] = index[entry]
        if symmetric:
            table[key[::-1]] = index[entry]
    return species_table(table, n_species, ndim)


def _eam_terms(eam: EAM, prepared: dict, c: Chunk):
    """(pair energies (B, E), atom energies (B, n), dE/dr (B, E)) of one EAM term."""
    atoms = c.mask.shape
    r2, r = _distances(c)
    use = c.pair_mask & (r2 < eam.cutoff * eam.cutoff)
    r = jnp.where(c.pair_mask, r, 0.5 * eam.cutoff)
    zero = jnp.zeros_like(r)

    def radial(role, table, slots):
        v, dv = _select(getattr(eam, role), prepared[role], table, slots, r)
        return jnp.where(use, v, 0.0), jnp.where(use, dv, 0.0)

    if eam.pair:
        table = _slot_array(eam.pair, eam.n_species, 2, symmetric=True)
        v, dv = radial("pair", table, jnp.asarray(table)[c.si, c.sj])
    else:
        v = dv = zero
    table = _slot_array(eam.density, eam.n_species, 2)
    if eam.density:
        rho_ij, drho_ij = radial("density", table, jnp.asarray(table)[c.si, c.sj])
        if np.array_equal(table, table.T):  # ρ_ji = ρ_ij: evaluate once
            rho_ji, drho_ji = rho_ij, drho_ij
        else:
            rho_ji, drho_ji = radial("density", table.T, jnp.asarray(table)[c.sj, c.si])
    else:
        rho_ij = drho_ij = rho_ji = drho_ji = zero
    live = jnp.any(c.mask)
    rho = _scatter_atoms(rho_ij, c.gi, atoms, live) + _scatter_atoms(rho_ji, c.gj, atoms, live)
    rho = jnp.where(c.mask, rho, 1.0)  # padding atoms: a harmless argument, masked below
    table = _slot_array(eam.embedding, eam.n_species, 1)
    f, df = _select(eam.embedding, prepared["embedding"], table,
                    jnp.asarray(table)[c.species], rho)
    f, df = jnp.where(c.mask, f, 0.0), jnp.where(c.mask, df, 0.0)
    dedr = (dv + _gather_atoms(df, c.gi, live) * drho_ij
            + _gather_atoms(df, c.gj, live) * drho_ji)
    return v, f, jnp.where(use, dedr, 0.0)


def _distances(c: Chunk):
    """r² and r (B, E) of the pair vectors, as ``pair_distances`` computes them."""
    r2 = c.d[0] * c.d[0] + c.d[1] * c.d[1] + c.d[2] * c.d[2]
    return r2, jnp.sqrt(r2)


def _lj_terms(lj: LennardJones, params, c: Chunk):
    """(pair energies (B, E), None, dE/dr (B, E)) of one Lennard-Jones term."""
    r2, r = _distances(c)
    use = c.pair_mask & (r2 < lj.cutoff * lj.cutoff)
    if lj.pairs is not None:
        n = 1 + max(max(p) for p in lj.pairs)
        table = np.zeros((n + 1, n + 1), dtype=bool)  # last row/column: species ≥ n
        for a, b in lj.pairs:
            table[a, b] = table[b, a] = True
        use = use & jnp.asarray(table)[jnp.minimum(c.si, n), jnp.minimum(c.sj, n)]
    r = jnp.where(c.pair_mask, r, 0.5 * lj.cutoff)
    v, dv = jax.jvp(lambda x: lj.pair_energy(params, x), (r,), (jnp.ones_like(r),))
    return jnp.where(use, v, 0.0), None, jnp.where(use, dv, 0.0)


def _sw_leg(p, slot, n: int, r, r2, use):
    """One direction of a Stillinger–Weber pair, centre i → neighbour j, with the values of
    entry ``slot`` (the ijj entry, as :meth:`StillingerWeber._pair_terms`): φ2, dφ2/dr, the
    leg factor g = exp(γσ/(r − aσ)) and dg/dr (B, E), all 0 where the leg is not used."""

    def entry(name):
        return p[name][0] if n == 1 else p[name][slot]

    eps, sigma, a, gamma = (entry(k) for k in ("epsilon", "sigma", "a", "gamma"))
    big_a, big_b, pp, qq, tol = (entry(k) for k in ("A", "B", "p", "q", "tol"))
    cut = sigma * a
    tol_safe = jnp.where(tol > 0.0, jnp.minimum(tol, 0.01), 0.5)
    shortening = jnp.where(gamma < 1.0, gamma, 1.0) * sigma / jnp.log(tol_safe)
    r_cut = cut + jnp.where(tol > 0.0, shortening, 0.0)
    use = use & (r2 < r_cut * r_cut)
    sigma_s = jnp.where(use, sigma, 1.0)
    x = jnp.where(use, r - cut, -1.0)  # < 0 where used
    log_ratio = jnp.log(sigma_s / r)
    power_p, power_q = jnp.exp(pp * log_ratio), jnp.exp(qq * log_ratio)
    radial = big_a * eps * (big_b * power_p - power_q)
    d_radial = big_a * eps * (qq * power_q - big_b * pp * power_p) / r
    inv_x = sigma_s / x
    e1 = jnp.exp(jnp.maximum(inv_x, _EXP_FLOOR))
    de1 = jnp.where(inv_x > _EXP_FLOOR, -e1 * inv_x / x, 0.0)
    g = jnp.exp(jnp.maximum(gamma * inv_x, _EXP_FLOOR))
    dg = jnp.where(gamma * inv_x > _EXP_FLOOR, -g * gamma * inv_x / x, 0.0)

    def masked(v):
        return jnp.where(use, v, 0.0)

    return (masked(radial * e1), masked(d_radial * e1 + radial * de1), masked(g), masked(dg))


# Channels of the per-atom three-body moments (see StillingerWeber.energy): the symmetric
# tensor T (xx yy zz xy xz yz), the vector v, G = Σ g and Q = Σ g².
_SW_CHANNELS = 11
_TENSOR_WEIGHT = np.array([[[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]]])  # T:T' over six components


def _sw_channels(g, u):
    """Channels (B, E, 11) of legs with factor g (B, E) and unit vectors u (3 × (B, E))."""
    ux, uy, uz = u
    return jnp.stack([g * ux * ux, g * uy * uy, g * uz * uz, g * ux * uy, g * ux * uz,
                      g * uy * uz, g * ux, g * uy, g * uz, g, g * g], axis=-1)


def _sw_leg_gradient(cot, g, dg, u, r):
    """dE/d(leg vector) (3 × (B, E)) of a leg with factor g, slope dg, unit vector u, length
    r, from its centre's moment cotangents ``cot`` (B, E, 11): with A = ∂E/∂T, b = ∂E/∂v,
    α = ∂E/∂G, β = ∂E/∂Q, the leg enters E through g uu, g u, g and g², so

        dE/dd = (uᵀAu + b·u + α + 2βg) g′ u + g [2(Au − (uᵀAu) u) + b − (b·u) u] / r."""
    ux, uy, uz = u
    a = [cot[..., k] for k in range(6)]  # xx yy zz xy xz yz
    au = (a[0] * ux + a[3] * uy + a[4] * uz, a[3] * ux + a[1] * uy + a[5] * uz,
          a[4] * ux + a[5] * uy + a[2] * uz)
    uau = ux * au[0] + uy * au[1] + uz * au[2]
    b = (cot[..., 6], cot[..., 7], cot[..., 8])
    bu = ux * b[0] + uy * b[1] + uz * b[2]
    radial = (uau + bu + cot[..., 9] + 2.0 * cot[..., 10] * g) * dg
    tangential = g / r
    return tuple(radial * uk + tangential * (2.0 * (auk - uau * uk) + bk - bu * uk)
                 for uk, auk, bk in zip(u, au, b))


def _sw_terms(sw: StillingerWeber, p: dict, c: Chunk):
    """(energy (B,), dE/dd (3 × (B, E))) of one Stillinger–Weber term on the half list.

    Each half-list pair is two legs: i → j with the ijj entry and j → i with the jii entry;
    the pair energy is ½(φ2_ijj + φ2_jii) as in :class:`StillingerWeber`.  The three-body
    energy is that of the per-atom moments of :meth:`StillingerWeber.energy`; its derivative
    with respect to each atom's moments is formed per atom and carried back to the legs by
    :func:`_sw_leg_gradient`."""
    n = len(sw.elements)
    b_structures, n_atoms = c.mask.shape
    r2, r = _distances(c)
    valid = c.pair_mask & (c.si < n) & (c.sj < n)
    si, sj = jnp.minimum(c.si, n - 1), jnp.minimum(c.sj, n - 1)
    reach2 = np.asarray(sw.reach, dtype=np.float64) ** 2
    r = jnp.where(valid, r, 1.0)
    if n == 1:
        use_ij = use_ji = valid & (r2 < reach2[0, 0])
        slot_ij = slot_ji = None
    else:
        table = jnp.asarray(reach2)
        use_ij, use_ji = valid & (r2 < table[si, sj]), valid & (r2 < table[sj, si])
        slot_ij, slot_ji = (si * n + sj) * n + sj, (sj * n + si) * n + si
    phi_ij, dphi_ij, g_ij, dg_ij = _sw_leg(p, slot_ij, n, r, r2, use_ij)
    if n == 1:  # one entry: both legs of a pair are equal
        phi_ji, dphi_ji, g_ji, dg_ji = phi_ij, dphi_ij, g_ij, dg_ij
    else:
        phi_ji, dphi_ji, g_ji, dg_ji = _sw_leg(p, slot_ji, n, r, r2, use_ji)
    u = tuple(c.d[k] / r for k in range(3))
    minus_u = tuple(-uk for uk in u)

    # moments per (atom slot, neighbour species): segment gi·n + s_j (i → j), gj·n + s_i
    live = jnp.any(c.mask)
    segments = b_structures * n_atoms * n
    seg_ij, seg_ji = (c.gi, c.gj) if n == 1 else (c.gi * n + sj, c.gj * n + si)
    channels = jnp.concatenate([_sw_channels(g_ij, u), _sw_channels(g_ji, minus_u)], axis=1)
    index = jnp.concatenate([seg_ij, seg_ji], axis=1)
    moments = jax.ops.segment_sum(channels.reshape(-1, _SW_CHANNELS), index.reshape(-1),
                                  num_segments=segments)
    moments = _materialise(moments, live).reshape(b_structures * n_atoms, n, _SW_CHANNELS)
    tensor, vector, big_g, big_q = (moments[..., :6], moments[..., 6:9], moments[..., 9],
                                    moments[..., 10])

    shape = (n, n, n)
    strength = (p["lambda"] * p["epsilon"]).reshape(shape)
    c0 = p["costheta0"].reshape(shape)
    centre = jnp.minimum(c.species.reshape(-1), n - 1)
    strength, c0 = strength[centre], c0[centre]  # (atoms, n, n)

    def symmetric(m):
        return 0.5 * (m + jnp.swapaxes(m, -1, -2))

    s_t, s_v, s_g = symmetric(strength), symmetric(strength * c0), symmetric(strength * c0 * c0)
    diagonal = jnp.diagonal(strength * (1.0 - c0) ** 2, axis1=-2, axis2=-1)  # (atoms, n)
    # E3_i = ½ Σ_st S_st [T^s:T^t − 2c v^s·v^t + c² G^s G^t] − ½ Σ_s S_ss (1 − c_ss)² Q^s
    d_tensor = jnp.einsum("ast,atk->ask", s_t, tensor)
    d_vector = -2.0 * jnp.einsum("ast,atk->ask", s_v, vector)
    d_g = jnp.einsum("ast,at->as", s_g, big_g)
    d_q = -0.5 * diagonal
    e3 = (0.5 * jnp.sum(d_tensor * tensor * _TENSOR_WEIGHT, axis=(1, 2))
          + 0.5 * jnp.sum(d_vector * vector, axis=(1, 2))
          + 0.5 * jnp.sum(d_g * big_g, axis=1) + jnp.sum(d_q * big_q, axis=1))
    e3 = jnp.where(c.mask.reshape(-1), e3, 0.0).reshape(b_structures, n_atoms)
    cotangents = jnp.concatenate([d_tensor, d_vector, d_g[..., None], d_q[..., None]],
                                 axis=-1).reshape(-1, _SW_CHANNELS)
    cotangents = _materialise(cotangents, live)
    cot_ij, cot_ji = cotangents[seg_ij], cotangents[seg_ji]

    leg_ij = _sw_leg_gradient(cot_ij, g_ij, dg_ij, u, r)
    leg_ji = _sw_leg_gradient(cot_ji, g_ji, dg_ji, minus_u, r)
    pair_slope = 0.5 * (dphi_ij + dphi_ji)
    grad = tuple(pair_slope * uk + a - b for uk, a, b in zip(u, leg_ij, leg_ji))
    energy = 0.5 * jnp.sum(phi_ij + phi_ji, axis=1) + jnp.sum(e3, axis=1)
    return energy, grad


def _radial_terms(leaf, prepared, c: Chunk):
    """(energy (B,), dE/dd (3 × (B, E))) of an EAM or Lennard-Jones term."""
    v, f, dedr = (_eam_terms if isinstance(leaf, EAM) else _lj_terms)(leaf, prepared, c)
    energy = jnp.sum(v, axis=1) + (0.0 if f is None else jnp.sum(f, axis=1))
    w = dedr / jnp.where(c.pair_mask, _distances(c)[1], 1.0)  # dE/dr / r, 0 if unused
    return energy, tuple(w * c.d[k] for k in range(3))


def _analytic_outputs(potential, prepared: list, c: Chunk):
    """Kernel "analytic" (``prepared`` from :func:`prepare_analytic`): energy (B,),
    forces (3, B, n), virial (6, B), stress (6, B).  Every term gives its energy and dE/dd
    per pair (d = x_j − x_i); forces are ±dE/dd summed onto the two atoms and the virial is
    Σ d ⊗ dE/dd (symmetrised)."""
    atoms = c.mask.shape
    energy, grad = 0.0, (0.0, 0.0, 0.0)
    for leaf, p in zip([leaf for leaf, _ in _leaves(potential)], prepared):
        e, g = (_sw_terms if isinstance(leaf, StillingerWeber) else _radial_terms)(leaf, p, c)
        energy = energy + e
        grad = tuple(a + b for a, b in zip(grad, g))
    live = jnp.any(c.mask)
    forces = jnp.stack([_scatter_atoms(g, c.gi, atoms, live)
                        - _scatter_atoms(g, c.gj, atoms, live) for g in grad])
    virial = jnp.stack([0.5 * jnp.sum(grad[a] * c.d[b] + grad[b] * c.d[a], axis=1)
                        for a, b in VOIGT])
    return energy, forces, virial, virial / c.volume[None]


# ----------------------------------------------------------------------------- jitted kernels
#
# Every evaluation maps the variables x to "prepared" data once (the transform, then for the
# analytic kernel the spline coefficients of tabulated functions), runs one jitted kernel per
# chunk on the prepared data and, for gradients, pulls the sum over chunks back to x once.
# The kernels are module-level functions with the :class:`Spec` as static argument, so their
# compilations are shared by every objective with the same potential, kernel and transform.


@dataclass(frozen=True)
class Spec:
    """What a kernel compiles for (static): potential, kernel name, transform (or None)."""

    potential: Any
    kernel: str
    transform: Any


def _prepare(spec: Spec, x):
    params = x if spec.transform is None else spec.transform(x)
    if spec.kernel == "analytic":
        return prepare_analytic(spec.potential, params)
    return params


def _outputs(spec: Spec, prepared, c: Chunk):
    """energy (B,), forces (3, B, n), virial (6, B), stress (6, B) of a chunk."""
    if spec.kernel == "analytic":
        return _analytic_outputs(spec.potential, prepared, c)
    if spec.kernel == "descriptor":
        return dk.descriptor_outputs(spec.potential, prepared, c, _scatter_atoms, VOIGT)
    return _autodiff_outputs(spec.potential, prepared, c)


def _residual_block(spec: Spec, prepared, c: Chunk):
    """A chunk's residual block: [r_E (B,), r_F (3, B, n), r_S (6, B)] flattened."""
    return _block_of(_outputs(spec, prepared, c), c)


def _block_of(outputs, c: Chunk):
    energy, forces, _, stress = outputs
    r_e = c.ce * (energy - c.e_ref)
    r_f = c.cf[None] * (forces - c.f_ref)
    r_s = c.cs[None] * (stress - c.s_ref)
    return jnp.concatenate([r_e, r_f.reshape(-1), r_s.reshape(-1)])


def _loss(spec: Spec, prepared, c: Chunk):
    r = _residual_block(spec, prepared, c)
    return jnp.sum(r * r)


def _loss_and_outputs(spec: Spec, prepared, c: Chunk):
    """(Σ r² of the chunk, its outputs as :func:`_outputs`): one program serves both
    :meth:`DatasetObjective.value` and :meth:`DatasetObjective.predictions`."""
    outputs = _outputs(spec, prepared, c)
    r = _block_of(outputs, c)
    return jnp.sum(r * r), outputs


def _jacobian_tangents(spec: Spec, x):
    """∂prepared/∂x with the variables (ravelled x) as the last axis of every leaf."""
    flat, unravel = ravel_pytree(x)
    return jax.jacfwd(lambda f: _prepare(spec, unravel(f)))(flat)


def _direction_tangents(spec: Spec, x, directions):
    """∂prepared/∂x · D for directions D (P, K) in ravelled-x order; K as the last axis."""
    flat, unravel = ravel_pytree(x)

    def along(d):
        return jax.jvp(lambda f: _prepare(spec, unravel(f)), (flat,), (d,))[1]

    return jax.vmap(along, in_axes=1, out_axes=-1)(directions)


def _chunk_jacobian(spec: Spec, prepared, tangents, c: Chunk):
    """(residual block, (P, block) rows of the Jacobian, the chunk's outputs as
    :func:`_outputs`) by forward mode: the residuals are
    linearised once and the linear map is applied to one tangent after another.  (Mapping
    it over all tangents at once with ``vmap`` gives XLA's CPU backend fusions that redo
    primal work per tangent: 3× slower for Stillinger–Weber at five tangents.)"""
    def block(p):
        outputs = _outputs(spec, p, c)
        return _block_of(outputs, c), outputs

    r, linear, outputs = jax.linearize(block, prepared, has_aux=True)
    return r, jax.lax.map(linear, jax.tree_util.tree_map(
        lambda t: jnp.moveaxis(t, -1, 0), tangents)), outputs


def _key(x) -> np.ndarray:
    """Host copy of the ravelled variables: identifies the point of an evaluation."""
    return np.asarray(ravel_pytree(x)[0])


def _static(fn):
    return jax.jit(fn, static_argnums=0)


KERNELS = {
    "prepare": _static(_prepare),
    "pullback": _static(lambda spec, x, g: jax.vjp(partial(_prepare, spec), x)[1](g)[0]),
    "prepare_jvp": _static(lambda spec, x, t: jax.jvp(partial(_prepare, spec), (x,), (t,))),
    "jacobian_tangents": _static(_jacobian_tangents),
    "direction_tangents": _static(_direction_tangents),
    "value": _static(_loss_and_outputs),
    "value_and_grad": _static(jax.value_and_grad(_loss, argnums=1)),
    "residuals": _static(_residual_block),
    "predictions": None,  # the "value" program (loss and outputs), set below
    "jvp": _static(lambda spec, p, t, c: jax.jvp(
        lambda q: _residual_block(spec, q, c), (p,), (t,))),
    "vjp": _static(lambda spec, p, ct, c: jax.vjp(
        lambda q: _residual_block(spec, q, c), p)[1](ct)[0]),
    "jacobian": _static(_chunk_jacobian),
}
"""The jitted kernels, by name; per-chunk ones take (spec, prepared, ..., chunk)."""
KERNELS["predictions"] = KERNELS["value"]


# ----------------------------------------------------------------------------- buckets


@dataclass(eq=False)
class _Bucket:
    """Structures sharing one chunk shape: host arrays padded to n_chunks · size rows."""

    members: np.ndarray  # (S,) item indices
    size: int  # structures per chunk B
    n_chunks: int
    host: Chunk  # NumPy leaves, leading structure axis n_chunks · size (f_ref, s_ref: axis 1)
    device: list | None = None  # resident device chunks, if kept
    take: list = field(default_factory=list)  # per chunk: residual-block entries used
    dest: list = field(default_factory=list)  # per chunk: their rows in the residual vector

    def host_chunk(self, k: int) -> Chunk:
        lo, hi = k * self.size, (k + 1) * self.size
        sliced = {name: (None if getattr(self.host, name) is None
                         else (getattr(self.host, name)[:, lo:hi] if name in _SECOND_AXIS
                               else getattr(self.host, name)[lo:hi]))
                  for name in _ARRAY_FIELDS}
        for name in ("features", "feature_grads"):
            value = getattr(self.host, name)
            sliced[name] = None if value is None else jax.tree_util.tree_map(
                lambda x: x[lo:hi], value)
        base = self.host.base
        sliced["base"] = None if base is None else (base[0][lo:hi], base[1][:, lo:hi],
                                                    base[2][:, lo:hi])
        return Chunk(**sliced, pbc=self.host.pbc, cutoff=self.host.cutoff,
                     skin=self.host.skin, half=self.host.half, ordered=self.host.ordered,
                     packed=self.host.packed)

    def chunk(self, k: int) -> Chunk:
        return self.device[k] if self.device is not None else jax.device_put(self.host_chunk(k))


_ARRAY_FIELDS = ("species", "mask", "pair_mask", "e_ref", "f_ref", "s_ref", "ce", "cf", "cs",
                 "volume", "positions", "cell", "i", "j", "shifts", "tij", "tik", "tmask",
                 "gi", "gj", "si", "sj", "d")
_SECOND_AXIS = ("f_ref", "s_ref", "d")  # structure axis second (component first)


def _merge_small_groups(groups: dict[tuple, list[int]], budget: float) -> dict:
    """Atom-count classes merged upwards, smallest first, while the padding atom slots this
    adds (members × (larger class − smaller class)) stay within ``budget`` in all."""
    out = dict(groups)
    for pbc in sorted({key[0] for key in out}):
        classes = sorted(key[1] for key in out if key[0] == pbc)
        for small, large in zip(classes, classes[1:]):
            cost = len(out[(pbc, small)]) * (large - small)
            if cost > budget:
                continue
            budget -= cost
            out[(pbc, large)] = out.pop((pbc, small)) + out[(pbc, large)]
    return out


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def ladder(n: int, multiple: int = 1) -> int:
    """The smallest rung ≥ n (and ≥ 1) of the global shape ladder 1, 2, …, 6, 8, 10, 12, 16,
    20, 24, 32, 40, 48, … (m·2^k, m = 4, 5, 6: consecutive rungs differ by at most a factor
    4/3), rounded up to a multiple of ``multiple``.

    Every padded size of a chunk (atom slots, pair slots, triplet slots, structures per
    chunk) is a rung: it depends on the size it pads and on nothing else, so that different
    datasets of a job, and the training and validation parts of one, land on the same chunk
    shapes and share every compiled program (at most 33 % padding per axis)."""
    n = max(int(n), 1)
    if n <= 6:
        return _round_up(n, multiple)
    scale = 1 << max(0, (n - 1).bit_length() - 3)  # n in (4·scale, 8·scale]
    for m in (4, 5, 6, 8):
        if m * scale >= n:
            return _round_up(m * scale, multiple)
    raise AssertionError(n)  # pragma: no cover


@dataclass(eq=False)
class _Listed:
    """Host data of one item: geometry and its unpadded lists."""

    positions: np.ndarray
    cell: np.ndarray
    species: np.ndarray
    pbc: tuple
    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    triplets: tuple | None  # (ij, ik, ordered)
    meta: tuple  # the list's (cutoff, skin, half)
    pruned: bool = False  # triplets pruned for the fixed geometry (see dk.prune_lists)

    @property
    def natoms(self) -> int:
        return len(self.positions)


#: Open :func:`pooled_rows` scopes, innermost last: engines waiting for their rows.
_POOL: list[list] = []


@contextmanager
def pooled_rows():
    """Engines (descriptor kernel) made inside this scope compute their descriptor rows
    together when it ends: the structures of every dataset of a job, training and
    validation alike, packed into the same blocks (a job's data split into many datasets
    costs no more blocks than one). The engines are ready after the scope; nothing may use
    them inside it."""
    _POOL.append([])
    try:
        yield
    except BaseException:
        _POOL.pop()
        raise
    pending = _POOL.pop()
    groups: dict = {}
    for entry in pending:
        engine, listed, _, geometries = entry
        key = (id(engine.potential), listed[0].meta, geometries[0].triplets is None)
        groups.setdefault(key, []).append(entry)
    for group in groups.values():
        geometries = [g for _, _, _, gs in group for g in gs]
        first, listed = group[0][0], group[0][1]
        rows = first._descriptor_rows(geometries, listed[0].meta)
        start = 0
        for engine, listed, atom_minimum, gs in group:
            stop = start + len(gs)
            engine._rows = [per_model[start:stop] for per_model in rows]
            engine._complete(listed, atom_minimum)
            start = stop


class DatasetObjective:
    """Energies, forces, stresses and the weighted least-squares objective of many fixed
    structures for one potential, batched by bucket and streamed chunk by chunk.

    potential: a static potential object (``potential.energy(params, system, nbrs)``).
    items: the structures (:class:`Item`).  skin: neighbour-list skin in Å (0 is enough:
    geometries never change).  transform: optional jax-traceable map from the variables ``x``
    every method takes to the potential's params tree (e.g. a fit vector u ↦
    ``ParameterSpace.tree(u)``); gradients and Jacobians are then with respect to ``x``.
    n_species: number of species of the job (default: from the potential or the items).
    kernel: "auto", "analytic" (EAM / Lennard-Jones sums only) or "autodiff".
    max_bucket_atoms: atom slots (padding included) per chunk; a bucket with more is split
    into chunks of equal shape (None: one chunk per bucket; "auto": 512 for the descriptor
    kernel on a CPU, where chunks that stay in the caches make a training step 2–3× faster
    than 4096-slot ones, else 4096).  atom_minimum: smallest
    atom-count class.  Padded sizes are rungs of the global :func:`ladder`, the same for
    every dataset.  merge_padding: a bucket of small structures joins the next larger
    class of the same periodicity while the atom slots this adds stay within this fraction
    of the dataset's atoms in all (each bucket shape costs a compilation of every kernel;
    0 keeps one bucket per class).  resident_bytes: keep all chunks on the device if their inputs take
    at most this many bytes, else stream them from the host on every call.
    min_chunk_atoms: a small bucket's chunk still has at least this many atom slots (within
    ``max_bucket_atoms``), so that small datasets (a validation part, say) share the chunk
    shapes of larger ones ("auto": 256 for the analytic and descriptor kernels, whose padding
    slots are cheap; 0 for autodiff, where a padding slot costs as much as a real one).
    """

    def __init__(
        self,
        potential,
        items: Sequence[Item],
        *,
        skin: float = 0.0,
        transform: Callable | None = None,
        n_species: int | None = None,
        kernel: str = "auto",
        max_bucket_atoms: int | None | str = "auto",
        atom_minimum: int = 8,
        merge_padding: float = 0.1,
        resident_bytes: int = 256 * 2**20,
        min_chunk_atoms: int | str = "auto",
    ):
        if kernel not in ("auto", "analytic", "autodiff", "descriptor"):
            raise ValueError(f"kernel must be 'auto', 'analytic', 'descriptor' or 'autodiff', "
                             f"not {kernel!r}")
        if kernel == "descriptor" and not dk.descriptor_supported(potential):
            raise ValueError("the descriptor kernel handles descriptor models (SNAP, linear "
                             "models, networks, PINNs) over parameter-free terms (ZBL) only")
        if kernel == "analytic" and not analytic_supported(potential):
            raise ValueError("the analytic kernel handles EAM, Lennard-Jones and "
                             "Stillinger–Weber terms only")
        if not items:
            raise ValueError("a dataset needs at least one structure")
        self.potential = potential
        self.items = list(items)
        self.skin = float(skin)
        self.transform = transform
        if kernel == "auto":
            kernel = ("analytic" if analytic_supported(potential) else
                      "descriptor" if dk.descriptor_supported(potential) else "autodiff")
        self.kernel = kernel
        if n_species is None:
            n_species = getattr(potential, "n_species", None)
        if n_species is None:  # from the items: largest species index + 1
            n_species = 1 + max(int(np.max(np.asarray(it.species), initial=0))
                                if it.species is not None else 0 for it in self.items)
        self.n_species = int(n_species)
        for it in self.items:
            species = np.zeros(0) if it.species is None else np.asarray(it.species)
            if len(np.reshape(it.positions, (-1, 3))) == 0:
                raise ValueError(f"structure {it.name!r} has no atoms")
            if species.size and (species.min() < 0 or species.max() >= self.n_species):
                raise ValueError(f"structure {it.name!r}: species must lie in "
                                 f"0..{self.n_species - 1}")
        if max_bucket_atoms == "auto":
            cpu = jax.default_backend() == "cpu"
            max_bucket_atoms = 512 if kernel == "descriptor" and cpu else 4096
        self.max_bucket_atoms = max_bucket_atoms
        self.merge_padding = float(merge_padding)
        if min_chunk_atoms == "auto":  # autodiff: padding slots cost as much as real ones
            # descriptor kernel: padding rows are cheap, so every bucket of n atom slots gets
            # the same chunk (max_bucket_atoms // n structures) whatever its size, and the
            # datasets of a job share their programs however the data are split
            min_chunk_atoms = (0 if kernel == "autodiff" else
                               max_bucket_atoms if kernel == "descriptor" and max_bucket_atoms
                               else 256)
        self.min_chunk_atoms = int(min_chunk_atoms)
        self._resident_bytes = resident_bytes
        listed = [self._list(it) for it in self.items]
        self.natoms = np.array([x.natoms for x in listed])
        self._base = self._rows = None
        if self.kernel == "descriptor":
            geometries = self._geometries(listed)
            self._base = self._base_predictions(geometries)
            if _POOL:  # inside pooled_rows(): rows with the other engines', on its exit
                _POOL[-1].append((self, listed, atom_minimum, geometries))
                return
            self._rows = self._descriptor_rows(geometries, listed[0].meta)
        self._complete(listed, atom_minimum)

    def _complete(self, listed: list, atom_minimum: int) -> None:
        """The rest of :meth:`__init__`, once the descriptor rows are there."""
        self._buckets = self._make_buckets(listed, atom_minimum)
        self._base = self._rows = None  # now in the buckets' host arrays
        self.rows = self._make_rows()
        self.input_bytes = sum(b.host.nbytes() for b in self._buckets)
        self.resident = self.input_bytes <= self._resident_bytes
        if self.resident:
            for b in self._buckets:
                b.device = [jax.device_put(b.host_chunk(k)) for k in range(b.n_chunks)]
        self._spec = Spec(self.potential, self.kernel, self.transform)
        self._last_outputs = None  # (x key, per-chunk outputs) of the last Jacobian

    # ------------------------------------------------------------------ set-up

    def _list(self, it: Item) -> _Listed:
        """Geometry and neighbour lists of one item (host, unpadded)."""
        system = make_system(it.positions, it.cell, it.species, it.pbc)
        if self.kernel == "analytic":
            nbrs = build_neighbor_list(system, self.potential.cutoff, self.skin, half=True)
        elif self.kernel == "descriptor":  # full list (with triplets if a descriptor needs)
            nbrs = build_lists(self.potential, system, self.skin, n_species=self.n_species)
        else:
            nbrs = build_lists(self.potential, system, self.skin, n_species=self.n_species)
        npair = int(np.count_nonzero(np.asarray(nbrs.mask)))
        i, j = np.asarray(nbrs.i)[:npair], np.asarray(nbrs.j)[:npair]
        shifts = np.asarray(nbrs.shifts)[:npair]
        trip = getattr(nbrs, "triplets", None)
        if trip is not None:
            count = trip.count
            ij, ik = np.asarray(trip.ij)[:count], np.asarray(trip.ik)[:count]
            vectors = np.asarray(pair_displacements(system, nbrs))[:npair]
            pruned = dk.prune_lists(self.potential, vectors, i, j, np.asarray(system.species),
                                    ij, ik, trip.ordered)
            if pruned is not None:  # the structure never moves: drop what adds nothing
                pairs, ij, ik = pruned
                i, j, shifts = i[pairs], j[pairs], shifts[pairs]
            trip = (ij, ik, trip.ordered)
        return _Listed(np.asarray(system.positions), np.asarray(system.cell),
                       np.asarray(system.species), system.pbc, i, j, shifts, trip,
                       (nbrs.cutoff, nbrs.skin, nbrs.half),
                       pruned=trip is not None and pruned is not None)

    @staticmethod
    def _geometries(listed: list[_Listed]) -> list:
        """What the descriptors (and the base) see of every item: species, full-list pairs
        and their vectors, and the triplets unless pruned (packed triplets belong to the
        potential, not the descriptors, and are not passed on)."""
        geometries = []
        for x in listed:
            d = x.positions[x.j] - x.positions[x.i] + x.shifts.astype(np.float64) @ x.cell
            trip = x.triplets if x.triplets is not None and not x.pruned else None
            geometries.append(dk.Geometry(x.species, x.i, x.j, d, trip))
        if any(g.triplets is None for g in geometries):
            geometries = [replace(g, triplets=None) for g in geometries]
        return geometries

    def _base_predictions(self, geometries: list):
        """Per item (energy, forces (N, 3), virial (3, 3)) of the parameter-free terms, or
        None without them (descriptor kernel; :func:`descriptor_kernel.structure_base`)."""
        base = dk.base_potential(self.potential)
        if base is None:
            return None
        return dk.structure_base(*base, geometries)

    def _descriptor_rows(self, geometries: list, meta: tuple) -> list:
        """Per descriptor model, per item: descriptor rows (N, K) and their pair derivatives
        (E, K, 3) (:func:`descriptor_kernel.structure_feature_rows`: blocks of one shape
        for every dataset)."""
        cutoff, skin, _ = meta
        out = []
        for model in dk.models(self.potential):
            species = dk.species_linear(model)
            if species is not None and not dk.supports_design(model.descriptor, geometries):
                species = None
            out.append(dk.structure_feature_rows(model.descriptor, cutoff + skin, geometries,
                                                 ladder, design_species=species))
        return out

    def _make_buckets(self, listed: list[_Listed], atom_minimum: int) -> list[_Bucket]:
        groups: dict[tuple, list[int]] = {}
        for k, x in enumerate(listed):
            groups.setdefault((x.pbc, ladder(max(x.natoms, atom_minimum))), []).append(k)
        groups = _merge_small_groups(groups, self.merge_padding * int(np.sum(self.natoms)))
        return [self._stack(key[0], key[1], np.asarray(groups[key]), listed)
                for key in sorted(groups)]

    def _stack(self, pbc, n: int, members: np.ndarray, listed: list[_Listed]) -> _Bucket:
        """One bucket: ``n`` atom slots (its class, a rung of :func:`ladder`), pair and
        triplet slots the rungs of its largest lists, structures per chunk the rung of its
        size (at least ``min_chunk_atoms // n``) up to ``max_bucket_atoms // n`` (larger
        buckets: chunks of that many)."""
        e = ladder(max(len(listed[k].i) for k in members), 8)
        # descriptor models that all keep per-atom designs never read the pair slots: keep
        # the fewest, so that the chunk shape depends on the atom slots only
        designs_only = (self.kernel == "descriptor" and self._rows is not None
                        and not any(map(dk.is_geometric, dk.models(self.potential)))
                        and all(isinstance(per_item[members[0]][1], tuple)
                                for per_item in self._rows))
        if designs_only:
            e = 8
        has_trip = listed[members[0]].triplets is not None
        s = len(members)
        size = ladder(max(s, self.min_chunk_atoms // n))
        if self.max_bucket_atoms is not None:
            size = min(size, max(1, self.max_bucket_atoms // n))
        n_chunks = -(-s // size)
        rows = n_chunks * size
        analytic = self.kernel in ("analytic", "descriptor")
        descriptor = self.kernel == "descriptor"
        packed = descriptor and has_trip and all(listed[k].pruned for k in members)

        def member(row):  # padding rows: weightless copies of the first member
            return members[row] if row < s else members[0]

        if packed:  # triplet slots per row: the fullest chunk's triplets spread over its rows
            # (padding rows, weightless, get none: a small bucket's chunk is mostly padding)
            t = ladder(-(-max(sum(len(listed[members[r]].triplets[0])
                                  for r in range(c * size, min((c + 1) * size, s)))
                              for c in range(n_chunks)) // size), 8)
        else:
            t = ladder(max(len(listed[k].triplets[0]) for k in members), 8) if has_trip \
                else 0

        def zeros(shape, dtype=np.float64):
            return np.zeros(shape, dtype)

        a: dict[str, Any] = dict(
            species=zeros((rows, n), np.int32), mask=zeros((rows, n), bool),
            pair_mask=zeros((rows, e), bool),
            e_ref=zeros(rows), f_ref=zeros((3, rows, n)), s_ref=zeros((6, rows)),
            ce=zeros(rows), cf=zeros((rows, n)), cs=zeros(rows), volume=np.ones(rows))
        if analytic:
            a.update(gi=zeros((rows, e), np.int32), gj=zeros((rows, e), np.int32),
                     si=zeros((rows, e), np.int32), sj=zeros((rows, e), np.int32),
                     d=zeros((3, rows, e)))
        if descriptor:
            if self._base is not None:
                base = (zeros(rows), zeros((3, rows, n)), zeros((6, rows)))
        if not analytic:
            big = max(int(np.abs(listed[k].shifts).max(initial=0)) for k in members)
            a.update(positions=zeros((rows, n, 3)), cell=zeros((rows, 3, 3)),
                     i=zeros((rows, e), np.int32), j=zeros((rows, e), np.int32),
                     shifts=zeros((rows, e, 3), np.int8 if big < 127 else np.int32))
        if has_trip:
            a.update(tij=zeros((rows, t), np.int32), tik=zeros((rows, t), np.int32),
                     tmask=zeros((rows, t), bool))
        ordered = None
        for row in range(rows):
            k = members[row] if row < s else members[0]  # padding rows: weightless copies
            x = listed[k]
            na, npair = x.natoms, (0 if designs_only else len(x.i))
            a["species"][row, :na] = x.species
            a["mask"][row, :na] = True
            a["pair_mask"][row, :npair] = True
            if analytic:
                local = row % size  # structure index within its chunk
                d = np.tile(np.asarray(PADDING_DISPLACEMENT), (e, 1))
                a["gi"][row] = local * n
                a["gj"][row] = local * n
                if npair:
                    d[:npair] = x.positions[x.j] - x.positions[x.i] + x.shifts.astype(
                        np.float64) @ x.cell
                    a["gi"][row, :npair] += x.i
                    a["gj"][row, :npair] += x.j
                    a["si"][row, :npair] = x.species[x.i]
                    a["sj"][row, :npair] = x.species[x.j]
                a["d"][:, row] = d.T
                if descriptor:
                    if self._base is not None and row < s:
                        energy, forces, virial = self._base[k]
                        base[0][row] = energy
                        base[1][:, row, :na] = np.asarray(forces).T
                        base[2][:, row] = [virial[p, q] for p, q in VOIGT]
            else:
                a["positions"][row, :na] = x.positions
                a["cell"][row] = x.cell
                a["i"][row, :npair], a["j"][row, :npair] = x.i, x.j
                a["shifts"][row, :npair] = x.shifts
            if has_trip:
                ij, ik, ordered = x.triplets
                if packed and row < s:  # appended to the chunk's flat triplet list (pair
                    # slots b·E + p); padding rows of the packed layout get no triplets
                    if row % size == 0:
                        fill = 0
                    local = (row % size) * e
                    flat = slice(fill, fill + len(ij))
                    chunk_rows = slice(row - row % size, row - row % size + size)
                    for name, values in (("tij", ij + local), ("tik", ik + local)):
                        a[name][chunk_rows].reshape(-1)[flat] = values
                    a["tmask"][chunk_rows].reshape(-1)[flat] = True
                    fill += len(ij)
                elif not packed:
                    a["tij"][row, :len(ij)], a["tik"][row, :len(ij)] = ij, ik
                    a["tmask"][row, :len(ij)] = True
            if row < s:
                self._targets(self.items[k], na, abs(float(np.linalg.det(x.cell))), a, row)
        cutoff, skin, half = listed[members[0]].meta
        if descriptor:
            features, grads = [], []
            for per_item in self._rows:
                k_features = per_item[members[0]][0].shape[1]
                f = zeros((rows, n, k_features))
                designs = isinstance(per_item[members[0]][1], tuple)
                if designs:  # species-linear model: force and virial designs
                    n_species = per_item[members[0]][1][1].shape[0]
                    g = (zeros((rows, n, n_species, k_features, 3)),
                         zeros((rows, n_species, k_features, 6)))
                else:
                    g = zeros((rows, e, k_features, 3))
                for row in range(rows):
                    value, slope = per_item[member(row)]
                    f[row, :len(value)] = value
                    if designs:
                        g[0][row, :len(value)], g[1][row] = slope
                    else:
                        g[row, :len(slope)] = slope
                for k in members:  # now in this bucket only: release (peak memory)
                    per_item[k] = None
                features.append(f)
                grads.append(g)
            a["features"], a["feature_grads"] = tuple(features), tuple(grads)
            if self._base is not None:
                a["base"] = base
        host = Chunk(**a, pbc=pbc, cutoff=cutoff, skin=skin, half=half, ordered=ordered,
                     packed=packed)
        return _Bucket(members=members, size=size, n_chunks=n_chunks, host=host)

    @staticmethod
    def _targets(it: Item, na: int, volume: float, a: dict, row: int) -> None:
        """Reference values and residual scales of one item into row ``row``."""
        w_forces = it.weight_forces
        per_atom = np.ndim(w_forces) > 0
        if per_atom:
            w_forces = np.asarray(w_forces, dtype=np.float64)
            if w_forces.shape != (na,):
                raise ValueError(f"structure {it.name!r}: per-atom force weights must have "
                                 f"shape ({na},)")
        for w, tol in ((it.weight_energy, it.tol_energy),
                       (np.min(w_forces) if per_atom else w_forces, it.tol_forces),
                       (it.weight_stress, it.tol_stress)):
            if not w >= 0 or not tol > 0:
                raise ValueError(f"structure {it.name!r}: weights must be ≥ 0 and "
                                 f"tolerances > 0")
        if volume > 0.0:
            a["volume"][row] = volume
        if it.energy is not None:
            a["e_ref"][row] = float(it.energy)
            if it.energy_per_atom:
                a["ce"][row] = math.sqrt(it.weight_energy) / (na * it.tol_energy)
            else:
                a["ce"][row] = math.sqrt(it.weight_energy) / it.tol_energy
        if it.forces is not None:
            forces = np.asarray(it.forces, dtype=np.float64)
            if forces.shape != (na, 3):
                raise ValueError(f"structure {it.name!r}: forces must have shape ({na}, 3)")
            a["f_ref"][:, row, :na] = forces.T
            share = 3 * na if it.mean_components else 1
            if per_atom:
                a["cf"][row, :na] = np.sqrt(w_forces / share) / it.tol_forces
            else:
                a["cf"][row, :na] = math.sqrt(w_forces / share) / it.tol_forces
        if it.stress is not None:
            stress = np.asarray(it.stress, dtype=np.float64)
            if stress.shape != (6,):
                raise ValueError(f"structure {it.name!r}: stress must be 6 Voigt values")
            if not volume > 0.0:
                raise ValueError(f"structure {it.name!r}: a stress target needs a cell of "
                                 f"non-zero volume")
            a["s_ref"][:, row] = stress
            share = 6.0 if it.mean_components else 1.0
            a["cs"][row] = math.sqrt(it.weight_stress / share) / it.tol_stress

    def _make_rows(self) -> Rows:
        """Row labels, and per chunk the map from its residual block to the rows.

        A chunk's residual block is [r_E (B,), r_F (3, B, n) flattened, r_S (6, B)
        flattened]: entry b for the energy of structure b, B + (c·B + b)·n + a for force
        component c of atom a, B + 3Bn + v·B + b for stress component v.
        """
        structure, kind, atom, comp = [], [], [], []
        start = np.zeros(len(self.items) + 1, np.int64)
        for k, it in enumerate(self.items):
            na, count = self.natoms[k], 0
            if it.energy is not None:
                structure.append([k]), kind.append([ENERGY]), atom.append([-1])
                comp.append([0])
                count += 1
            if it.forces is not None:
                structure.append(np.full(3 * na, k)), kind.append(np.full(3 * na, FORCE))
                atom.append(np.repeat(np.arange(na), 3)), comp.append(np.tile([0, 1, 2], na))
                count += 3 * na
            if it.stress is not None:
                structure.append(np.full(6, k)), kind.append(np.full(6, STRESS))
                atom.append(np.full(6, -1)), comp.append(np.arange(6))
                count += 6
            start[k + 1] = start[k] + count

        def cat(parts):
            return (np.concatenate(parts).astype(np.int64) if parts
                    else np.zeros(0, np.int64))

        for bucket in self._buckets:
            size, n, _ = bucket.host_chunk(0).shape
            for c in range(bucket.n_chunks):
                take, dest = [], []
                for b in range(size):
                    if c * size + b >= len(bucket.members):
                        break
                    k = bucket.members[c * size + b]
                    it, na = self.items[k], self.natoms[k]
                    if it.energy is not None:
                        take.append([b])
                    if it.forces is not None:
                        atoms, xyz = np.repeat(np.arange(na), 3), np.tile([0, 1, 2], na)
                        take.append(size + (xyz * size + b) * n + atoms)
                    if it.stress is not None:
                        take.append(size + 3 * size * n + np.arange(6) * size + b)
                    dest.append(np.arange(start[k], start[k + 1]))
                bucket.take.append(cat(take))
                bucket.dest.append(cat(dest))
        return Rows(cat(structure), cat(kind), cat(atom), cat(comp))

    # ------------------------------------------------------------------ kernels

    def _call(self, name: str, *args):
        return KERNELS[name](self._spec, *args)

    def descriptor_rows(self, model: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(species (M,), descriptor rows (M, K)) of every real atom of the dataset for the
        ``model``-th descriptor model (descriptor kernel only)."""
        if self.kernel != "descriptor":
            raise ValueError("descriptor rows are kept by the descriptor kernel only")
        species, rows = [], []
        for b in self._buckets:
            real = np.zeros(b.n_chunks * b.size, bool)
            real[:len(b.members)] = True  # padding rows copy a real structure: skip them
            mask = b.host.mask & real[:, None]
            species.append(b.host.species[mask])
            rows.append(b.host.features[model][mask])
        return np.concatenate(species), np.concatenate(rows)

    @property
    def bucket_shapes(self) -> list[tuple[int, int, int]]:
        """(B, n, E) of every bucket's chunks: structures, atom slots, pair slots."""
        return [b.host_chunk(0).shape for b in self._buckets]

    @property
    def n_chunks(self) -> int:
        return sum(b.n_chunks for b in self._buckets)

    @staticmethod
    def cache_sizes() -> dict[str, int]:
        """Compilations made so far by each jitted kernel (shared by all objectives: one per
        potential, transform, kernel and chunk shape)."""
        return {name: fn._cache_size() for name, fn in KERNELS.items()}

    # ------------------------------------------------------------------ chunk loop

    @property
    def chunk_keys(self) -> list[tuple[int, int]]:
        """(bucket, chunk) of every chunk: the units :meth:`value_and_grad` can be restricted
        to (minibatches)."""
        return [(bi, k) for bi, b in enumerate(self._buckets) for k in range(b.n_chunks)]

    def chunk_structures(self, key: tuple[int, int]) -> int:
        """Number of real structures in chunk ``key``."""
        b = self._buckets[key[0]]
        return int(min(b.size, len(b.members) - key[1] * b.size))

    def _map(self, name: str, *args, only=None) -> Iterator:
        """Run kernel ``name`` on every chunk (or the chunk keys in ``only``): yields (bucket,
        k, outputs) in order, with at most two chunks in flight (the next is dispatched before
        the previous is awaited)."""
        fn = KERNELS[name]
        pending: deque = deque()
        for bi, bucket in enumerate(self._buckets):
            for k in range(bucket.n_chunks):
                if only is not None and (bi, k) not in only:
                    continue
                pending.append((bucket, k, fn(self._spec, *args, bucket.chunk(k))))
                if len(pending) > 1:
                    b0, k0, out = pending.popleft()
                    yield b0, k0, jax.block_until_ready(out)
        while pending:
            b0, k0, out = pending.popleft()
            yield b0, k0, jax.block_until_ready(out)

    @staticmethod
    def _add(total, term):
        return term if total is None else jax.tree_util.tree_map(jnp.add, total, term)

    # ------------------------------------------------------------------ public API

    @property
    def n_rows(self) -> int:
        """Length M of the residual vector."""
        return len(self.rows)

    def value(self, x) -> float:
        """L(x)."""
        prepared = self._call("prepare", x)
        return float(sum(float(v) for _, _, (v, _) in self._map("value", prepared)))

    def value_and_grad(self, x, chunks=None):
        """(L(x), ∂L/∂x), the gradient a NumPy pytree like ``x``; with ``chunks`` (keys of
        :attr:`chunk_keys`) only those chunks' part of L."""
        prepared = self._call("prepare", x)
        total, grad = 0.0, None
        only = None if chunks is None else set(map(tuple, chunks))
        for _, _, (v, g) in self._map("value_and_grad", prepared, only=only):
            total += float(v)
            grad = self._add(grad, g)
        return total, jax.device_get(self._call("pullback", x, grad))

    def residuals(self, x) -> np.ndarray:
        """The residual vector r (M,), L = Σ r², rows as :attr:`rows`."""
        prepared = self._call("prepare", x)
        out = np.zeros(self.n_rows)
        for b, k, r in self._map("residuals", prepared):
            out[b.dest[k]] = np.asarray(r)[b.take[k]]
        return out

    def jacobian(self, x, directions=None) -> np.ndarray:
        """J = ∂r/∂x, (M, P), columns in the order of ``jax.flatten_util.ravel_pytree(x)``;
        with ``directions`` D (P, K) in that order, J·D (M, K) instead, computed without J.

        Forward mode, one linearisation per chunk and one tangent pass per column: meant for
        few columns — fitted DOFs through ``transform`` or ``directions`` (e.g. ∂params/∂u
        of a fit vector u), not whole tables (P = 30 003 for Cu_mishin1.eam.alloy).
        """
        return self.residuals_and_jacobian(x, directions)[1]

    def residuals_and_jacobian(self, x, directions=None) -> tuple[np.ndarray, np.ndarray]:
        """(r, J) or, with ``directions``, (r, J·D), as :meth:`residuals` and
        :meth:`jacobian` give them, from one pass over the chunks."""
        prepared = self._call("prepare", x)
        if directions is None:
            tangents = self._call("jacobian_tangents", x)
            columns = ravel_pytree(x)[0].shape[0]
        else:
            directions = np.asarray(directions, dtype=np.float64)
            if directions.ndim != 2 or directions.shape[0] != ravel_pytree(x)[0].shape[0]:
                raise ValueError("directions must be a (P, K) array, P = size of x")
            tangents = self._call("direction_tangents", x, directions)
            columns = directions.shape[1]
        r, out = np.zeros(self.n_rows), np.zeros((self.n_rows, columns))
        outputs = []
        for b, k, (block, jac, chunk_outputs) in self._map("jacobian", prepared, tangents):
            r[b.dest[k]] = np.asarray(block)[b.take[k]]
            out[b.dest[k]] = np.asarray(jac).T[b.take[k]]
            outputs.append((b, k, chunk_outputs))
        # kept (on the device; a few numbers per atom, small beside the inputs even of a
        # streamed dataset) for predictions() at the same x: the output phase of a
        # least-squares fit then needs no program of its own
        self._last_outputs = (_key(x), outputs)
        return r, out

    def jvp(self, x, tangent) -> tuple[np.ndarray, np.ndarray]:
        """(r, J·t) for a tangent t shaped like ``x``."""
        prepared, t_prepared = self._call("prepare_jvp", x, tangent)
        r, jt = np.zeros(self.n_rows), np.zeros(self.n_rows)
        for b, k, (rk, tk) in self._map("jvp", prepared, t_prepared):
            r[b.dest[k]] = np.asarray(rk)[b.take[k]]
            jt[b.dest[k]] = np.asarray(tk)[b.take[k]]
        return r, jt

    def vjp(self, x, cotangent):
        """Jᵀ·c for a cotangent c (M,): a NumPy pytree like ``x``."""
        prepared = self._call("prepare", x)
        cotangent = np.asarray(cotangent, dtype=np.float64)
        grad, pending = None, deque()
        for bucket in self._buckets:
            size, n, _ = bucket.host_chunk(0).shape
            for k in range(bucket.n_chunks):
                block = np.zeros(size * (1 + 3 * n + 6))
                block[bucket.take[k]] = cotangent[bucket.dest[k]]
                pending.append(self._call("vjp", prepared, block, bucket.chunk(k)))
                if len(pending) > 1:
                    grad = self._add(grad, jax.block_until_ready(pending.popleft()))
        while pending:
            grad = self._add(grad, jax.block_until_ready(pending.popleft()))
        return jax.device_get(self._call("pullback", x, grad))

    def predictions(self, x) -> list[Prediction]:
        """Per structure (input order): energy, forces, stress, virial as host NumPy."""
        last = self._last_outputs
        if last is not None and np.array_equal(last[0], _key(x)):
            chunks = last[1]
        else:
            chunks = ((b, k, out[1]) for b, k, out in
                      self._map("predictions", self._call("prepare", x)))
        out: list[Prediction | None] = [None] * len(self.items)
        for b, k, outputs in chunks:
            energy, forces, virial, stress = (np.asarray(o) for o in outputs)
            for local in range(b.size):
                row = k * b.size + local
                if row >= len(b.members):
                    break
                item = b.members[row]
                na = self.natoms[item]
                w = np.zeros((3, 3))
                for v, (p, q) in enumerate(VOIGT):
                    w[p, q] = w[q, p] = virial[v, local]
                s = stress[:, local].copy()
                if not abs(np.linalg.det(np.asarray(self.items[item].cell, float))) > 0.0:
                    s[:] = np.nan
                out[item] = Prediction(float(energy[local]), forces[:, local, :na].T.copy(),
                                       s, w)
        return out
