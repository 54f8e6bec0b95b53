"""Spline-MEAM potential (Lenosky et al. 2000) in the form of LAMMPS ``pair_style meam/spline``.

E = ½ Σ_i Σ_{j≠i} φ_{s_i s_j}(r_ij) + Σ_i [U_{s_i}(ρ_i) − U_{s_i}(0)],

ρ_i = Σ_{j≠i} ρ_{s_i s_j}(r_ij)
      + Σ_{j<k} f_{s_i s_j}(r_ij) f_{s_i s_k}(r_ik) g_{s_i s_j s_k}(cos θ_jik),

the sums running over neighbours closer than ``cutoff`` (and, for the f legs, closer than the
per-species-pair ``f_reach``), θ_jik the angle at atom i.  In LAMMPS's multi-element form the
density and f depend on the neighbour species only (ρ_{s_j}, f_{s_j}), g on the two neighbour
species only (g_{s_j s_k} = g_{s_k s_j}) and φ is symmetric; :meth:`MEAM.create` takes that
form ({b: ...}) or the centre-dependent one ({(a, b): ...}, {(a, b, c): ...}).  The subtraction
of U(0) (the energy of an isolated atom) is LAMMPS's; ``zero_offset=False`` drops it.

Functions are any static function objects called as ``fn(params[key], x)`` (the
:mod:`~rexfit.potentials.functions` library, or :class:`MEAMSpline`, LAMMPS's spline exactly).
Parameters live in a separate pytree ``params = {key: params of that function}``, so energies,
forces and stresses are differentiable with respect to every parameter.  Forces and stress
come from autodiff of :meth:`MEAM.energy` (rexfit.physics.properties).

LAMMPS details reproduced: every spline is continued linearly outside its knots (also U, and
φ, ρ, f between their last knot and the global cutoff); the global cutoff is the largest last
knot of all φ, ρ and f splines; pairs count when r² < cutoff²; evaluation uses LAMMPS's
uniform-grid formula.  LAMMPS needs equally spaced knots; it indexes unordered species pairs
correctly only for up to two elements (see docs/meam.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params
from rexfit.potentials.functions import Spline
from rexfit.potentials.meam_files import (
    GRID_TOLERANCE,
    MEAMSplineFile,
    SplineData,
    pair_index,
    pair_list,
    read_meam_spline,
)
from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System
from rexfit.structures.triplets import (
    TripletNeighborList,
    build_triplet_neighbor_list,
    require_triplets,
)

Entry = tuple[str, Any]
"""A mapping entry: (params key, function object)."""


# ----------------------------------------------------------------------------- the spline


@dataclass(frozen=True)
class MEAMSpline:
    """Cubic spline through (x_k, y_k) on equally spaced knots, exactly as LAMMPS meam/spline.

    Clamped (first derivatives d0, dN prescribed at the end knots) and continued linearly
    outside [x_0, x_{N−1}] with slopes d0 and dN.  Inside, the second derivatives come from
    the actual knots and the value from LAMMPS's uniform-grid formula (interval
    ⌊(x − x_0)/h⌋, h = (x_{N−1} − x_0)/(N − 1)).  Parameters: ``values`` (N,),
    ``derivative-left`` and ``derivative-right`` (scalars); the knots are static.
    """

    knots: tuple[float, ...]

    def __post_init__(self):
        x = np.asarray(self.knots, dtype=np.float64)
        if x.ndim != 1 or len(x) < 2 or not np.all(np.diff(x) > 0):
            raise ValueError("MEAMSpline needs at least 2 increasing knots")
        grid = x[0] + (x[-1] - x[0]) / (len(x) - 1) * np.arange(len(x))
        if np.max(np.abs(grid - x)) > GRID_TOLERANCE:
            raise ValueError("MEAMSpline knots must be equally spaced (LAMMPS meam/spline)")

    @property
    def reach(self) -> None:
        """None: the linear continuation beyond the last knot need not vanish."""
        return None

    @cached_property
    def _moment_operator(self) -> np.ndarray:
        """(N, N + 2) static matrix B with M = B·[y_0 … y_{N−1}, d0, dN]: the clamped spline's
        second derivatives M_k at the knots (the tridiagonal system LAMMPS solves, inverted)."""
        x = np.asarray(self.knots, dtype=np.float64)
        n = len(x)
        dx = np.diff(x)
        system = np.zeros((n, n))
        rhs = np.zeros((n, n + 2))  # right-hand sides as linear maps of (y, d0, dN)
        system[0, :2] = (2.0, 1.0)
        rhs[0, :2] = (-6.0 / dx[0] ** 2, 6.0 / dx[0] ** 2)
        rhs[0, n] = -6.0 / dx[0]
        system[-1, -2:] = (1.0, 2.0)
        rhs[-1, n - 2:n] = (6.0 / dx[-1] ** 2, -6.0 / dx[-1] ** 2)
        rhs[-1, n + 1] = 6.0 / dx[-1]
        for k in range(1, n - 1):
            width = x[k + 1] - x[k - 1]
            sig = dx[k - 1] / width
            system[k, k - 1:k + 2] = (sig, 2.0, 1.0 - sig)
            scale = 6.0 / width
            rhs[k, k - 1:k + 2] = (scale / dx[k - 1], -scale * (1.0 / dx[k] + 1.0 / dx[k - 1]),
                                   scale / dx[k])
        return np.linalg.solve(system, rhs)

    @staticmethod
    def _vector(p: Params) -> jax.Array:
        """[y_0 … y_{N−1}, d0, dN] of the parameters."""
        y = jnp.asarray(p["values"], dtype=jnp.float64)
        ends = jnp.stack([jnp.asarray(p["derivative-left"], dtype=jnp.float64),
                          jnp.asarray(p["derivative-right"], dtype=jnp.float64)])
        return jnp.concatenate([y, ends])

    def second_derivatives(self, p: Params) -> jax.Array:
        """M_k = y''(x_k) (N,) of the clamped spline (linear in the parameters)."""
        return jnp.asarray(self._moment_operator) @ self._vector(p)

    def __call__(self, p: Params, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, dtype=jnp.float64)
        knots = np.asarray(self.knots, dtype=np.float64)
        n = len(knots)
        xmin = float(knots[0])
        span = float(knots[-1] - knots[0])
        h = span / (n - 1)
        hsq = h * h
        v = self._vector(p)
        y = v[:n]
        scaled_m = (jnp.asarray(self._moment_operator) @ v) / (6.0 * h)
        # per interval k: y_{k+1}, (y_{k+1} − y_k)/h, M_k/6h, M_{k+1}/6h, x_{k+1} − x_0
        table = jnp.stack([y[1:], (y[1:] - y[:-1]) / h, scaled_m[:-1], scaled_m[1:],
                           jnp.asarray(knots[1:] - xmin)], axis=-1)
        t = x - xmin
        k = jnp.clip(jnp.floor(t * (1.0 / h)), 0, n - 2).astype(jnp.int32)
        row = table[k]
        a = row[..., 4] - t
        b = h - a
        inner = (row[..., 0] - a * row[..., 1]
                 + ((a * a - hsq) * a * row[..., 2] + (b * b - hsq) * b * row[..., 3]))
        left = y[0] + v[n] * t
        right = y[n - 1] + v[n + 1] * (t - span)
        return jnp.where(t <= 0.0, left, jnp.where(t >= span, right, inner))


def spline_params(data: SplineData) -> dict[str, jax.Array]:
    """The :class:`MEAMSpline` params of a spline read from a file."""
    return {"values": jnp.asarray(np.asarray(data.values, dtype=np.float64)),
            "derivative-left": jnp.float64(data.derivative_left),
            "derivative-right": jnp.float64(data.derivative_right)}


def _spline_data(fn: MEAMSpline, p: Params) -> SplineData:
    return SplineData(np.asarray(fn.knots, dtype=np.float64),
                      np.asarray(p["values"], dtype=np.float64),
                      float(p["derivative-left"]), float(p["derivative-right"]))


# ----------------------------------------------------------------------------- the potential


def _is_index(key) -> bool:
    return isinstance(key, (int, np.integer))


def _freeze(mapping: Mapping[Any, Entry]) -> tuple:
    return tuple(sorted(mapping.items(), key=lambda kv: kv[0]))


def _put(table: dict, key, entry: Entry, what: str) -> None:
    if key in table and table[key] != entry:
        raise ValueError(f"{what} function for species {key} given twice, differently")
    table[key] = entry


def _distinct(entries) -> list:
    return list(dict.fromkeys(entry for _, entry in entries))


def _select(entries, slots: jax.Array, x: jax.Array, params: Params) -> jax.Array:
    """Σ over distinct functions of where(slot == k, f_k(x), 0); one evaluation each."""
    out = jnp.zeros_like(x)
    for k, (key, fn) in enumerate(_distinct(entries)):
        out = out + jnp.where(slots == k, fn(params[key], x), 0.0)
    return out


@dataclass(frozen=True)
class MEAM:
    """Spline-MEAM over ``n_species`` species indices (build with :meth:`create`).

    cutoff: Å, pairs with r² ≥ cutoff² are ignored.  pair: ((a, b), (key, φ)), a ≤ b.
    density: ((a, b), (key, ρ)), density at an a-atom due to a b-neighbour.  f: ((a, b),
    (key, f)), the radial factor of the leg from an a-atom to a b-neighbour.  g: ((a, b, c),
    (key, g)), b ≤ c, angular factor at an a-atom between b- and c-neighbours.  embedding:
    (a, (key, U)).  f_reach: (S, S) nested tuple, Å: legs a→b longer than f_reach[a][b] carry
    no f (the triplet list is pruned to it).  zero_offset: subtract U_a(0) per atom (LAMMPS).
    Absent entries contribute nothing.  Frozen and hashable: a static ``jit`` argument.
    """

    n_species: int
    cutoff: float
    pair: tuple
    density: tuple
    f: tuple
    g: tuple
    embedding: tuple
    f_reach: tuple
    zero_offset: bool = True

    # ------------------------------------------------------------------ construction

    @staticmethod
    def create(n_species: int, cutoff: float, pair: Mapping, density: Mapping, f: Mapping,
               g: Mapping, embedding: Mapping, *, f_reach: Mapping | float | None = None,
               zero_offset: bool = True) -> MEAM:
        """MEAM from dicts of (key, fn) entries.

        pair {(a, b)} (symmetrised); density and f {b} (LAMMPS: neighbour species b, any
        centre) or {(a, b)} (centre a, neighbour b); g {(b, c)} (neighbour species, any centre,
        symmetrised) or {(a, b, c)}; embedding {a}.  f_reach: Å, a number or a dict keyed like
        f; default min(fn.reach, cutoff) for functions that vanish beyond a known distance
        (``fn.reach``), else the cutoff.  An entry given twice differently is an error.
        """
        n = int(n_species)
        cutoff = float(cutoff)
        pairs: dict = {}
        for (a, b), entry in pair.items():
            a, b = int(a), int(b)
            _put(pairs, (min(a, b), max(a, b)), entry, "pair")

        def by_centre(mapping: Mapping, what: str) -> dict:
            out: dict = {}
            for key, entry in mapping.items():
                keys = ([(a, int(key)) for a in range(n)] if _is_index(key)
                        else [tuple(int(k) for k in key)])
                for k in keys:
                    _put(out, k, entry, what)
            return out

        dens = by_centre(density, "density")
        fs = by_centre(f, "f")
        gs: dict = {}
        for key, entry in g.items():
            key = tuple(int(k) for k in key)
            if len(key) == 2:
                keys = [(a, min(key), max(key)) for a in range(n)]
            elif len(key) == 3:
                keys = [(key[0], min(key[1:]), max(key[1:]))]
            else:
                raise ValueError(f"g keys are (b, c) or (a, b, c), got {key}")
            for k in keys:
                _put(gs, k, entry, "g")
        emb = {int(a): entry for a, entry in embedding.items()}
        for table in (pairs, dens, fs, gs, emb):
            for key in table:
                idx = key if isinstance(key, tuple) else (key,)
                if any(not 0 <= int(s) < n for s in idx):
                    raise ValueError(f"species {key} outside 0..{n - 1}")

        reach = np.zeros((n, n))
        for (a, b), (_, fn) in fs.items():
            own = getattr(fn, "reach", None)
            reach[a, b] = cutoff if own is None else min(float(own), cutoff)
        if f_reach is not None:
            if isinstance(f_reach, Mapping):
                for key, value in f_reach.items():
                    if _is_index(key):
                        reach[:, int(key)] = min(float(value), cutoff)
                    else:
                        reach[tuple(int(k) for k in key)] = min(float(value), cutoff)
            else:
                reach[:, :] = min(float(f_reach), cutoff)
        for a, b in np.ndindex(n, n):
            if (a, b) not in fs:
                reach[a, b] = 0.0
        return MEAM(n, cutoff, _freeze(pairs), _freeze(dens), _freeze(fs), _freeze(gs),
                    _freeze(emb), tuple(tuple(float(v) for v in row) for row in reach),
                    bool(zero_offset))

    @staticmethod
    def from_file(path, elements: Iterable[str], prune_f: bool = True) -> tuple[MEAM, dict]:
        """(potential, params) from a LAMMPS meam/spline file, species s ↦ ``elements[s]``.

        Like ``pair_coeff * * path e1 e2 ...``, but a subset or reordering of the file's
        elements is allowed; an old-layout (single-element) file takes one name, any name.
        Params keys: ``phi_<a>_<b>`` (a, b in file order), ``rho_<b>``, ``U_<a>``, ``f_<b>``,
        ``g_<b>_<c>``, each {"values", "derivative-left", "derivative-right"}.  The cutoff is
        LAMMPS's (the largest last knot of φ, ρ, f in the file).  With ``prune_f``, f_reach of
        f_b is its last knot if the file's f_b has a zero tail (value and end slope 0), which
        keeps the triplet list short; a fit must then keep that tail at zero (or the model cuts
        f there while LAMMPS would not; :func:`lammps_data`, and so the file writer, refuses
        such parameters).  Without ``prune_f`` every f reaches the cutoff, whatever its
        parameters.
        """
        data = read_meam_spline(path)
        return potential_from_data(data, elements, prune_f=prune_f)

    # ------------------------------------------------------------------ neighbours

    def triplet_cutoffs(self):
        """Triplets whose two legs are both within the f-function reach, unordered
        (:mod:`rexfit.potentials.lists`)."""
        reach = np.asarray(self.f_reach, dtype=np.float64)
        return reach, reach, False

    def neighbor_list(self, system: System, skin: float = 0.5, capacity: int | None = None,
                      triplet_capacity: int | None = None) -> TripletNeighborList:
        """Full neighbour list within cutoff + skin with unordered triplets (j < k), both
        legs shorter than their f_reach + skin."""
        reach = np.asarray(self.f_reach, dtype=np.float64)
        return build_triplet_neighbor_list(system, self.cutoff, skin, reach, reach,
                                           ordered=False, capacity=capacity,
                                           triplet_capacity=triplet_capacity)

    # ------------------------------------------------------------------ evaluation

    def _table(self, entries, shape_dims: int, symmetric_last: bool = False) -> jax.Array:
        """Species tuple → index of its distinct function (−1 if none), a static table."""
        index = {entry: k for k, entry in enumerate(_distinct(entries))}
        table = np.full((self.n_species,) * shape_dims, -1, dtype=np.int32)
        for key, entry in entries:
            key = key if isinstance(key, tuple) else (key,)
            table[key] = index[entry]
            if symmetric_last:
                table[key[:-2] + (key[-1], key[-2])] = index[entry]
        return jnp.asarray(table)

    def _legs(self, system: System, nbrs: NeighborList):
        """Per pair slot: displacement, r (safe), r², use mask, clipped species of i and j."""
        n = self.n_species
        d = pair_displacements(system, nbrs)
        r2 = jnp.sum(d * d, axis=1)
        si, sj = system.species[nbrs.i], system.species[nbrs.j]
        valid = nbrs.mask & (si >= 0) & (si < n) & (sj >= 0) & (sj < n)
        use = valid & (r2 < self.cutoff * self.cutoff)
        r = jnp.sqrt(jnp.where(use, r2, (0.5 * self.cutoff) ** 2))
        return d, r, r2, use, jnp.clip(si, 0, n - 1), jnp.clip(sj, 0, n - 1)

    def pair_energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """½ Σ_i Σ_{j≠i} φ(r_ij) in eV (full or half neighbour list)."""
        _, r, _, use, si, sj = self._legs(system, nbrs)
        slots = self._table(self.pair, 2, symmetric_last=True)[si, sj]
        phi = _select(self.pair, slots, r, params)
        weight = 1.0 if nbrs.half else 0.5
        return weight * jnp.sum(jnp.where(use, phi, 0.0))

    def densities(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """ρ_i (N,) of every atom slot (0 on padding); ``nbrs`` must carry triplets."""
        triplets = require_triplets(nbrs)
        d, r, r2, use, si, sj = self._legs(system, nbrs)
        natoms = system.natoms
        slots = self._table(self.density, 2)[si, sj]
        two_body = jnp.where(use, _select(self.density, slots, r, params), 0.0)
        rho = jax.ops.segment_sum(two_body, nbrs.i, num_segments=natoms)

        reach = jnp.asarray(np.asarray(self.f_reach, dtype=np.float64))[si, sj]
        use_f = use & (r2 < reach * reach)
        f_slots = self._table(self.f, 2)[si, sj]
        fv = jnp.where(use_f, _select(self.f, f_slots, r, params), 0.0)
        a, b = triplets.ij, triplets.ik
        ok = triplets.mask & use_f[a] & use_f[b]
        cos = jnp.where(ok, jnp.sum(d[a] * d[b], axis=1) / (r[a] * r[b]), 0.0)
        g_slots = self._table(self.g, 3, symmetric_last=True)[si[a], sj[a], sj[b]]
        angular = _select(self.g, g_slots, cos, params)
        three_body = jnp.where(ok, fv[a] * fv[b] * angular, 0.0)
        if triplets.ordered:  # each pair of legs listed twice
            three_body = 0.5 * three_body
        rho = rho + jax.ops.segment_sum(three_body, nbrs.i[a], num_segments=natoms)
        return jnp.where(system.mask, rho, 0.0)

    def embedding_energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Σ_i [U_{s_i}(ρ_i) − U_{s_i}(0)] in eV over real atoms (no U(0) if not zero_offset)."""
        n = self.n_species
        rho = self.densities(params, system, nbrs)
        species = system.species
        real = system.mask & (species >= 0) & (species < n)
        slots = self._table(self.embedding, 1)[jnp.clip(species, 0, n - 1)]
        u = _select(self.embedding, slots, rho, params)
        if self.zero_offset:
            u = u - _select(self.embedding, slots, jnp.zeros_like(rho), params)
        return jnp.sum(jnp.where(real, u, 0.0))

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` must carry triplets (:meth:`neighbor_list`)."""
        return self.pair_energy(params, system, nbrs) + self.embedding_energy(
            params, system, nbrs)


# ----------------------------------------------------------------------------- files


def _names(elements: Sequence[str] | None, n: int) -> tuple[str, ...]:
    names = tuple(str(e) for e in elements) if elements is not None else tuple(
        str(s) for s in range(n))
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"need {n} distinct element names, got {names!r}")
    return names


def potential_from_data(data: MEAMSplineFile, elements: Iterable[str],
                        prune_f: bool = True) -> tuple[MEAM, dict]:
    """(MEAM, params) of a read file for species s ↦ elements[s] (see :meth:`MEAM.from_file`)."""
    elements = tuple(elements)
    if not elements or len(set(elements)) != len(elements):
        raise ValueError(f"need distinct element names, got {elements!r}")
    if data.old_format:
        if len(elements) != 1:
            raise ValueError("an old-layout meam/spline file describes one element; "
                             f"got {len(elements)} names")
        file_index = [0]
        file_names = elements
    else:
        missing = [e for e in elements if e not in data.elements]
        if missing:
            raise ValueError(f"elements {missing} are not in the meam/spline file "
                             f"({' '.join(data.elements)})")
        file_index = [data.elements.index(e) for e in elements]
        file_names = data.elements
    nf = data.n_elements
    n = len(elements)
    params: dict[str, dict] = {}
    pair, density, fs, gs, emb, reach = {}, {}, {}, {}, {}, {}

    def entry(key: str, spline: SplineData) -> Entry:
        params[key] = spline_params(spline)
        return key, MEAMSpline(tuple(float(x) for x in spline.knots))

    for s, fa in enumerate(file_index):
        name = file_names[fa]
        density[s] = entry(f"rho_{name}", data.rho[fa])
        emb[s] = entry(f"U_{name}", data.U[fa])
        fs[s] = entry(f"f_{name}", data.f[fa])
        spline = data.f[fa]
        reach[s] = spline.cutoff if (prune_f and spline.zero_tail) else data.cutoff
        for t in range(s, n):
            fb = file_index[t]
            lo, hi = min(fa, fb), max(fa, fb)
            tag = f"{file_names[lo]}_{file_names[hi]}"
            pair[(s, t)] = entry(f"phi_{tag}", data.phi[pair_index(lo, hi, nf)])
            gs[(s, t)] = entry(f"g_{tag}", data.g[pair_index(lo, hi, nf)])
    potential = MEAM.create(n, data.cutoff, pair, density, fs, gs, emb, f_reach=reach)
    return potential, params


def _lammps_slots(potential: MEAM) -> dict[str, dict]:
    """The potential's functions per LAMMPS slot (phi (a,b) a≤b; rho b; U a; f b; g (b,c)),
    None where absent; ValueError if a function depends on the centre where LAMMPS's cannot."""
    n = potential.n_species
    pair, density, fs = dict(potential.pair), dict(potential.density), dict(potential.f)
    gs, emb = dict(potential.g), dict(potential.embedding)

    def common(table: dict, keys: list, what: str):
        found = {table.get(k) for k in keys}
        if len(found) > 1:
            raise ValueError(f"{what} differs between centre species; LAMMPS meam/spline "
                             "cannot represent that")
        return found.pop()

    slots: dict[str, dict] = {"phi": {}, "rho": {}, "U": {}, "f": {}, "g": {}}
    for a, b in pair_list(n):
        slots["phi"][(a, b)] = pair.get((a, b))
        slots["g"][(a, b)] = common(gs, [(c, a, b) for c in range(n)], f"g[{a},{b}]")
    for b in range(n):
        slots["rho"][b] = common(density, [(a, b) for a in range(n)], f"density[{b}]")
        slots["f"][b] = common(fs, [(a, b) for a in range(n)], f"f[{b}]")
        slots["U"][b] = emb.get(b)
        reaches = {potential.f_reach[a][b] for a in range(n)}
        if slots["f"][b] is not None and len(reaches) > 1:
            raise ValueError(f"f_reach of neighbour species {b} differs between centres")
    return slots


def _zero_spline(x0: float, x1: float) -> SplineData:
    return SplineData(np.array([x0, x1]), np.zeros(2), 0.0, 0.0)


def lammps_data(potential: MEAM, params: Params, elements: Sequence[str] | None = None,
                comment: str = "") -> MEAMSplineFile:
    """The meam/spline file contents of a potential made of :class:`MEAMSpline` functions.

    Checks that LAMMPS will compute the same energy: LAMMPS's cutoff (largest last knot of
    φ, ρ, f) equals ``potential.cutoff`` or all tails beyond it vanish; f is not cut short
    of where its spline is nonzero; U(0) is subtracted (or is 0).  Raises ValueError if not.
    """
    n = potential.n_species
    names = _names(elements, n)
    slots = _lammps_slots(potential)
    rc = potential.cutoff
    out: dict[str, list[SplineData]] = {k: [] for k in slots}
    for kind, table in slots.items():
        for key, entry in table.items():
            if entry is None:
                lo, hi = {"g": (-1.0, 1.0), "U": (0.0, 1.0)}.get(kind, (0.0, rc))
                out[kind].append(_zero_spline(lo, hi))
                continue
            pkey, fn = entry
            if not isinstance(fn, MEAMSpline):
                raise ValueError(f"{kind}{list(np.atleast_1d(key))} ({pkey}) is a "
                                 f"{type(fn).__name__}, not a MEAMSpline; convert the potential "
                                 "with export_splines() first")
            out[kind].append(_spline_data(fn, params[pkey]))
    data = MEAMSplineFile(names, tuple(out["phi"]), tuple(out["rho"]), tuple(out["U"]),
                          tuple(out["f"]), tuple(out["g"]), comment=comment)
    rc_lammps = data.cutoff
    radial = [("phi", s) for s in data.phi] + [("rho", s) for s in data.rho] + [
        ("f", s) for s in data.f]
    if rc_lammps > rc * (1 + 1e-12):
        raise ValueError(f"a spline reaches {rc_lammps} Å, beyond the potential's cutoff {rc} "
                         "Å: LAMMPS would count pairs the potential ignores")
    if rc_lammps < rc * (1 - 1e-12):
        for kind, s in radial:
            if not s.zero_tail:
                raise ValueError(f"LAMMPS's cutoff would be {rc_lammps} Å < {rc} Å, but a {kind} "
                                 "spline is nonzero beyond its last knot")
    for b, s in enumerate(data.f):
        reach = potential.f_reach[0][b]
        if slots["f"][b] is not None and reach < rc_lammps * (1 - 1e-12):
            if not (s.zero_tail and s.cutoff <= reach * (1 + 1e-12)):
                raise ValueError(f"f of species {names[b]} is cut at {reach} Å (f_reach) but its "
                                 "spline is nonzero beyond; LAMMPS would use it to the cutoff")
    if not potential.zero_offset:
        for a, s in enumerate(data.U):
            fn = MEAMSpline(tuple(s.knots))
            u0 = float(fn({"values": s.values, "derivative-left": s.derivative_left,
                           "derivative-right": s.derivative_right}, jnp.zeros(())))
            if u0 != 0.0:
                raise ValueError(f"U of {names[a]} is {u0} at ρ = 0; LAMMPS always subtracts "
                                 "U(0) but this potential does not (zero_offset=False)")
    return data


# ----------------------------------------------------------------------------- export


def _uniform(x: np.ndarray, tol: float = 1e-10) -> bool:
    if len(x) < 2:
        return False
    grid = x[0] + (x[-1] - x[0]) / (len(x) - 1) * np.arange(len(x))
    return bool(np.all(np.diff(x) > 0) and np.max(np.abs(grid - x)) <= tol)


def _exact_spline(fn, p: Params, kind: str, limit: float) -> SplineData | None:
    """A rexfit :class:`Spline` that LAMMPS's spline reproduces exactly, or None.

    Needs equally spaced knots and no screening; radial functions (phi, rho, f) must have a
    zero tail (last value and right slope 0), end within ``limit`` and not be cut before their
    last knot; U and g must have no cutoff.
    """
    if type(fn) is not Spline or fn.screening is not None:
        return None
    x = np.asarray(fn.knots, dtype=np.float64)
    if not _uniform(x):
        return None
    y = np.array([float(p[f"node[{k:g}].y"]) for k in fn.knots])
    d0, d1 = float(p["derivative-left"]), float(p["derivative-right"])
    data = SplineData(x, y, d0, d1)
    if kind in ("U", "g"):
        return data if fn.cutoff is None else None
    if not data.zero_tail or x[-1] > limit * (1 + 1e-12):
        return None
    if fn.cutoff is not None and fn.cutoff < x[-1]:
        return None
    return data


def _sampled(fn, p: Params, x0: float, x1: float, n_knots: int) -> SplineData:
    """fn sampled at n_knots equally spaced points on [x0, x1], exact end slopes."""
    knots = np.linspace(x0, x1, n_knots)

    @jax.jit
    def sample(q):
        slope = jax.grad(lambda x: fn(q, x)[()])
        return fn(q, jnp.asarray(knots)), slope(jnp.float64(x0)), slope(jnp.float64(x1))

    values, d0, d1 = sample(p)
    return SplineData(knots, np.asarray(values, dtype=np.float64), float(d0), float(d1))


def export_splines(potential: MEAM, params: Params, n_knots: int = 200, *, r_min: float,
                   rho_range: tuple[float, float] | None = None,
                   elements: Sequence[str] | None = None) -> tuple[MEAM, dict]:
    """(MEAM, params) of :class:`MEAMSpline` functions approximating ``potential``, ready for
    :func:`rexfit.export.meam.write_meam_file`.

    :class:`MEAMSpline` functions are copied; rexfit ``Spline`` functions that LAMMPS's spline
    reproduces (equally spaced knots, no screening, a zero tail) are copied exactly; every
    other function is sampled at ``n_knots`` equally spaced points with its exact end slopes:
    φ, ρ, f on [r_min, r_end] (r_end = where the function vanishes, ``fn.reach`` or f_reach,
    at most the cutoff), g on [−1, 1], U on ``rho_range`` (required when some U is sampled).
    This is an approximation: the cubic-spline error falls as h⁴ with the knot spacing h,
    and outside the sampled ranges (r < r_min, ρ outside ``rho_range``) LAMMPS continues
    linearly.  Params keys: ``phi_<a>_<b>``, ``rho_<b>``, ``U_<a>``, ``f_<b>``, ``g_<b>_<c>``
    with the ``elements`` names (default: species indices).  Centre-dependent densities, f
    or g cannot be exported (ValueError).
    """
    n = potential.n_species
    names = _names(elements, n)
    slots = _lammps_slots(potential)
    rc = potential.cutoff
    n_knots = int(n_knots)
    if n_knots < 2:
        raise ValueError("n_knots must be at least 2")
    new_params: dict[str, dict] = {}
    built: dict[str, dict] = {k: {} for k in slots}
    f_reach = np.asarray(potential.f_reach, dtype=np.float64)
    for kind, table in slots.items():
        for key, entry in table.items():
            tag = "_".join(names[s] for s in np.atleast_1d(key))
            new_key = f"{kind}_{tag}"
            if entry is None:
                continue
            pkey, fn = entry
            p = params[pkey]
            radial = kind in ("phi", "rho", "f")
            r_end = rc
            if radial:
                own = getattr(fn, "reach", None)
                r_end = rc if own is None else min(float(own), rc)
                if kind == "f":
                    r_end = min(r_end, float(f_reach[0, key]))
            if isinstance(fn, MEAMSpline):
                data = _spline_data(fn, p)
            else:
                data = _exact_spline(fn, p, kind, r_end)
            if data is None:
                if radial:
                    if not r_min < r_end:
                        raise ValueError(f"r_min = {r_min} must be below {r_end} ({kind} {tag})")
                    data = _sampled(fn, p, float(r_min), r_end, n_knots)
                elif kind == "g":
                    data = _sampled(fn, p, -1.0, 1.0, n_knots)
                else:
                    if rho_range is None:
                        raise ValueError("rho_range=(lo, hi) is needed to sample the embedding "
                                         f"function U of {names[key]}")
                    lo, hi = (float(v) for v in rho_range)
                    data = _sampled(fn, p, lo, hi, n_knots)
            new_params[new_key] = spline_params(data)
            built[kind][key] = (new_key, MEAMSpline(tuple(float(x) for x in data.knots)), data)
    radial_splines = [v[2] for kind in ("phi", "rho", "f") for v in built[kind].values()]
    cutoff = max(s.cutoff for s in radial_splines) if radial_splines else rc
    reach = {b: (v[2].cutoff if v[2].zero_tail else cutoff) for b, v in built["f"].items()}
    strip = {kind: {k: v[:2] for k, v in table.items()} for kind, table in built.items()}
    result = MEAM.create(n, cutoff, strip["phi"], strip["rho"], strip["f"], strip["g"],
                         strip["U"], f_reach=reach, zero_offset=potential.zero_offset)
    return result, new_params
