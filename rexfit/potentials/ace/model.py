"""The ACE potential (pacemaker's model) as a pure JAX energy of (params, system, neighbours).

For atom i of element μ_i, with neighbours j (element μ_j, r_ij < r_c(μ_i μ_j)):

- A-basis: A_{μ n l m} = Σ_{j: μ_j = μ} R_nl(r_ij) Y_lm(r̂_ij), R_nl = Σ_k crad[μ_i μ_j][n, l, k]
  g_k(r_ij) (:mod:`.radial`, :mod:`.harmonics`); rank-1 A_{μ k} = Σ_j g_k(r_ij) (the radial basis
  itself, no radial coefficients; Y_00 = 1 in the evaluator's normalisation).
- B-basis: B = Re Σ_{m} C^{LS}_{l m} Π_t A_{μ_t n_t l_t m_t} (generalised Clebsch–Gordan
  coefficients, :mod:`.coupling`; all m with Σm = 0, each pair ±m as one term,
  :func:`.coupling.folded_ms_combinations`); rank 1: B = A_{μ n}.
- densities ρ_p = Σ_B c_{B,p} B, energy E_i = Σ_p w_p F(ρ_p; m_p) (:mod:`.embedding`).
- core repulsion ρ_core = Σ_j V_core(r_ij) and E_i ← E_i f_cut(ρ_core) + ρ_core, f_cut the quintic
  step from 1 at ρ_cut − Δρ_cut to 0 at ρ_cut; in the ``zbl`` mode V_core is ZBL and
  E_i ← E_i f + ρ_core (1 − f), f the quintic step in the nearest neighbour's distance
  (:meth:`ACE._zbl_switch`).

No energy shift (an isolated atom has energy 0).  Elements are in alphabetical order; the
system's species index them (or the symbols given to :meth:`ACE.for_species`).  The bonds
A–B and B–A share their radial coefficients.

params: {"crad": {"Al-Cu": (nradmax, lmax + 1, nradbase), …} (one per unordered bond),
"c": {"Al Cu": (functions, ndensity), …} (one per species block of the file, its functions in
file order)}; the same arrays flattened are accepted (a job's params tree,
:meth:`ACE.shaped`).  Radial functions: tabulated with cubic Hermite splines as the ACE
evaluator does (``spline=True``, the default: agrees with pyace to round-off), or exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.ace.coupling import folded_ms_combinations
from rexfit.potentials.ace.embedding import EMBEDDINGS, embedding
from rexfit.potentials.ace.files import BBasis, bond_key, with_coefficients
from rexfit.potentials.ace.harmonics import lm_index, spherical_harmonics
from rexfit.potentials.ace.radial import (INNER_CUTOFFS, RADIAL_BASES, ZBL_INNER, Bond,
                                          core_repulsion, core_repulsion_nodes, poly_step,
                                          radial_basis, radial_basis_nodes, spline_eval,
                                          spline_table)
from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System

#: Y_00 in the evaluator's normalisation of the spherical harmonics (:mod:`.harmonics`)
Y00 = 1.0
#: the evaluator's core-cutoff defaults (files without rho_core_cut / drho_core_cut)
RHO_CORE_CUT, DRHO_CORE_CUT = 100000.0, 250.0


@dataclass(frozen=True)
class Embedding:
    """One element's embedding: kind, (w_p, m_p) per density, core cutoff ρ_cut, Δρ_cut."""

    kind: str
    weights: tuple[float, ...]
    exponents: tuple[float, ...]
    rho_core_cut: float
    drho_core_cut: float

    @property
    def ndensity(self) -> int:
        return len(self.weights)


@dataclass(frozen=True, eq=False)
class _Tables:
    """Host-built arrays of an :class:`ACE` (not part of its identity)."""

    g_spline: np.ndarray  # (T, M + 1, K, 4) radial basis, per ordered pair type t = S·μ_i + μ_j
    hc_spline: np.ndarray  # (T, M + 1, 1, 4) core repulsion
    scale: np.ndarray  # (T,) 1/h
    nodes: np.ndarray  # (T,) M
    rcut: np.ndarray  # (T,)
    rank1: np.ndarray  # (F1, 2) (μ, k) of each rank-1 function (flat index μ·K + k)
    products: tuple  # per rank ≥ 2: (index (P, r) into flat A, c (P,), function (P,) among
    # the rank's F_r, F_r), the terms of :func:`.coupling.folded_ms_combinations`
    order: np.ndarray  # (F,) position in the stacked coefficient rows of each B column
    mu0: np.ndarray  # (F,) central element of each stacked row


@dataclass(frozen=True)
class ACE:
    """An ACE potential; structure only (params separate).  Build with :meth:`from_bbasis`.

    elements: alphabetical.  embeddings: one per element.  bonds: S×S :class:`Bond` (ordered
    pairs).  nradmax, lmax, nradbase: the global sizes.  functions: per block
    (name, ((elements, ns, ls, LS, skip), …)) in file order.  crad_shapes: (bond key, shape).
    spline: evaluate the tabulated radial functions (pyace's way) or the exact ones.
    species: the symbols the system's species index (None: :attr:`elements`).
    basis: the file it was read from (written back with new coefficients by
    :meth:`to_bbasis`; not part of its identity).
    """

    elements: tuple[str, ...]
    embeddings: tuple[Embedding, ...]
    bonds: tuple[tuple[Bond, ...], ...]
    nradmax: int
    lmax: int
    nradbase: int
    functions: tuple
    crad_shapes: tuple
    delta_spline_bins: float
    spline: bool = True
    species: tuple[str, ...] | None = None
    tables: _Tables = field(default=None, compare=False, repr=False)
    basis: BBasis | None = field(default=None, compare=False, repr=False)

    full_list = True
    #: atom slots per chunk of the dataset engine's autodiff kernel on a CPU (loss and
    #: gradient on 10,000 Cu atoms: 180 µs/atom of CPU against 226 with 4096-slot chunks)
    autodiff_chunk_atoms = 512
    #: the same for its analytic kernel (:mod:`rexfit.potentials.ace_dataset`)
    analytic_chunk_atoms = 512
    #: the energy depends on positions and cell only through the pair vectors of its full
    #: list: the dataset engine packs several structures into one flat chunk
    #: (:func:`rexfit.datasets.chunks.flat_outputs`)
    autodiff_flat_chunks = True

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_bbasis(basis: BBasis, spline: bool = True):
        """(potential, params) of a B-basis file (:func:`.files.read_bbasis`)."""
        elements = basis.elements
        embeddings, bonds, crad, crad_shapes = [], {}, {}, []
        for e in elements:
            b = basis.block(e)
            if b is None or b.ndensity is None:
                raise ValueError(f"ACE basis: no embedding block for element {e}")
            if b.npot not in EMBEDDINGS:
                raise ValueError(f"ACE basis: embedding {b.npot!r} of {e} is not supported "
                                 f"(known: {', '.join(EMBEDDINGS)})")
            fs = b.fs_parameters
            if fs is None or len(fs) != 2 * b.ndensity:
                raise ValueError(f"ACE basis: element {e} needs 2 × ndensity = "
                                 f"{2 * b.ndensity} embedding parameters, not {fs}")
            embeddings.append(Embedding(
                b.npot, tuple(fs[0::2]), tuple(fs[1::2]),
                RHO_CORE_CUT if b.rho_core_cut is None else b.rho_core_cut,
                DRHO_CORE_CUT if b.drho_core_cut is None else b.drho_core_cut))
        for a in elements:
            for c in elements:
                blk = basis.block(a, c) if a != c else basis.block(a)
                if a != c and (blk is None or blk.rcut is None):  # given once, for c-a
                    blk = basis.block(c, a)
                if blk is None or blk.rcut is None:
                    raise ValueError(f"ACE basis: no bond block for {a}-{c}")
                if blk.radbase not in RADIAL_BASES:
                    raise ValueError(f"ACE basis: radial basis {blk.radbase!r} of {a}-{c} is "
                                     f"not supported (known: {', '.join(RADIAL_BASES)})")
                inner = blk.inner_cutoff_type or "density"  # older files: density
                if inner not in INNER_CUTOFFS:
                    raise NotImplementedError(f"ACE basis: inner_cutoff_type {inner!r} is not "
                                              "supported (only distance, density and zbl)")
                core = blk.core_repulsion or (0.0, 0.0)
                z = (0, 0)
                if inner == ZBL_INNER:
                    from ase.data import atomic_numbers

                    if a not in atomic_numbers or c not in atomic_numbers:
                        raise ValueError(f"ACE basis: the zbl inner cutoff needs chemical "
                                         f"elements, not {a}-{c}")
                    z = (atomic_numbers[a], atomic_numbers[c])
                bonds[a, c] = Bond(blk.radbase, blk.radparameters[0], blk.rcut, blk.dcut,
                                   blk.r_in or 0.0, blk.delta_in or 0.0, inner,
                                   core[0], core[1], blk.nradbase, z)
                coeff = np.asarray(blk.radcoefficients, dtype=np.float64).reshape(
                    blk.nradmax, blk.lmax + 1, blk.nradbase)
                key = bond_key(a, c)
                if key in crad:
                    same = replace(bonds[a, c], z=()) == replace(bonds[c, a], z=())
                    if not same or not np.array_equal(coeff, crad[key]):
                        raise ValueError(f"ACE basis: bonds {a}-{c} and {c}-{a} differ (they "
                                         "must share radial settings and coefficients)")
                else:
                    crad[key] = coeff
                    crad_shapes.append((key, coeff.shape))
        nradmax = max(s[0] for _, s in crad_shapes)
        lmax = max(s[1] for _, s in crad_shapes) - 1
        nradbase = max(s[2] for _, s in crad_shapes)
        functions, c = [], {}
        for b in basis.blocks:
            if not b.functions:
                continue
            ndensity = embeddings[elements.index(b.elements[0])].ndensity
            for f in b.functions:
                if len(f.c) != ndensity or f.elements[0] != b.elements[0]:
                    raise ValueError(f"ACE basis: block {b.name}: function {f.elements} needs "
                                     f"central element {b.elements[0]} and {ndensity} "
                                     f"coefficients (one per density), not {len(f.c)}")
            functions.append((b.name, tuple((f.elements, f.ns, f.ls, f.LS, f.skip)
                                            for f in b.functions)))
            c[b.name] = np.asarray([f.c for f in b.functions], dtype=np.float64)
        potential = ACE(tuple(elements), tuple(embeddings),
                        tuple(tuple(bonds[a, b] for b in elements) for a in elements),
                        nradmax, lmax, nradbase, tuple(functions), tuple(crad_shapes),
                        basis.delta_spline_bins, spline, basis=basis)
        object.__setattr__(potential, "tables", potential._build_tables())
        params = {"crad": {k: jnp.asarray(v) for k, v in crad.items()},
                  "c": {k: jnp.asarray(v) for k, v in c.items()}}
        return potential, params

    def with_spline(self, spline: bool):
        """The same potential, tabulated (True) or exact (False) radial functions."""
        other = replace(self, spline=spline)
        object.__setattr__(other, "tables", self.tables)
        return other

    def for_species(self, species):
        """The same potential for systems whose species index ``species`` (symbols, e.g. a
        job's atom types in order) instead of :attr:`elements`; atoms of a species that is
        not an element of the potential carry no energy and are nobody's neighbour."""
        other = replace(self, species=tuple(species))
        object.__setattr__(other, "tables", self.tables)
        return other

    def _elements_of(self, species):
        """(element index, known) of species indices: the alphabetical element of each atom
        (0 where unknown) and whether the potential knows it."""
        if self.species is None:
            known = (species >= 0) & (species < len(self.elements))
            return jnp.where(known, species, 0), known
        table = np.array([self.elements.index(x) if x in self.elements else -1
                          for x in self.species] + [-1])
        e = jnp.asarray(table)[jnp.clip(species, 0, len(table) - 1)]
        return jnp.maximum(e, 0), e >= 0

    def _build_tables(self) -> _Tables:
        S, K = len(self.elements), self.nradbase
        index = {e: s for s, e in enumerate(self.elements)}
        bonds = [b for row in self.bonds for b in row]
        g, hc = [], []
        for bond in bonds:
            g.append(spline_table(lambda r, b=bond: radial_basis_nodes(r, b, K), bond.rcut,
                                  self.delta_spline_bins))
            hc.append(spline_table(lambda r, b=bond: [v[:, None] for v in
                                                      core_repulsion_nodes(r, b)],
                                   bond.rcut, self.delta_spline_bins))
        rows = max(t.nodes for t in g) + 1

        def stack(tables):
            out = np.zeros((len(tables), rows) + tables[0].coefficients.shape[1:])
            for n, t in enumerate(tables):
                out[n, :t.nodes + 1] = t.coefficients
            return out

        nl = self.nradmax * (self.lmax + 1) ** 2
        rank1, mu0, by_rank, position = [], [], {}, []
        for _, funcs in self.functions:
            for elements, ns, ls, LS, skip in funcs:
                row = len(mu0)
                mu0.append(index[elements[0]])
                if skip:  # listed in the file, not evaluated
                    continue
                mus = [index[e] for e in elements[1:]]
                if len(ns) == 1:
                    rank1.append((mus[0] * K + ns[0] - 1, row))
                    continue
                ms, cg = folded_ms_combinations(tuple(ls), tuple(LS))
                flat = np.array([[mus[t] * nl + (ns[t] - 1) * (self.lmax + 1) ** 2
                                  + lm_index(ls[t], m[t]) for t in range(len(ns))] for m in ms],
                                dtype=np.int64).reshape(-1, len(ns))
                by_rank.setdefault(len(ns), []).append((flat, cg, row))
        order = [row for _, row in rank1]
        products = []
        for rank in sorted(by_rank):
            idx, cgs, fn = [], [], []
            for k, (flat, cg, row) in enumerate(by_rank[rank]):
                idx.append(flat)
                cgs.append(cg)
                fn.append(np.full(len(cg), k))
                order.append(row)
            products.append((np.concatenate(idx), np.concatenate(cgs), np.concatenate(fn),
                             len(by_rank[rank])))
        return _Tables(stack(g), stack(hc), np.array([t.scale for t in g]),
                       np.array([t.nodes for t in g]), np.array([b.rcut for b in bonds]),
                       np.array([i for i, _ in rank1], dtype=np.int64).reshape(-1),
                       tuple(products), np.array(order, dtype=np.int64), np.array(mu0))

    # ------------------------------------------------------------------ evaluation
    @property
    def zbl_inner(self) -> bool:
        """Whether ACE is weighed against ZBL by each atom's nearest neighbour (the first
        bond's inner cutoff is ``zbl``: the model's rule for the whole basis)."""
        return self.bonds[0][0].inner == ZBL_INNER

    @property
    def cutoff(self) -> float:
        """The largest bond cutoff (Å)."""
        return max(b.rcut for row in self.bonds for b in row)

    def c_shape(self, name: str) -> tuple[int, int]:
        """(functions, ndensity) of the coefficient table of the block ``name``."""
        funcs = dict(self.functions)[name]
        central = self.elements.index(name.split()[0])
        return len(funcs), self.embeddings[central].ndensity

    def shaped(self, params) -> dict:
        """``params`` with every array in its shape (crad (nradmax, lmax + 1, nradbase),
        c (functions, ndensity)); flat arrays (a job's params tree, whose DOFs index 1-D
        leaves) are reshaped, shaped ones kept."""
        shapes = dict(self.crad_shapes)
        return {"crad": {k: jnp.reshape(v, shapes[k]) for k, v in params["crad"].items()},
                "c": {k: jnp.reshape(v, self.c_shape(k)) for k, v in params["c"].items()}}

    def _crad(self, params):
        """(T, nradmax, lmax + 1, nradbase) radial coefficients per ordered pair type."""
        out = []
        shapes = dict(self.crad_shapes)
        for a in self.elements:
            for b in self.elements:
                key = bond_key(a, b)
                c = jnp.reshape(jnp.asarray(params["crad"][key], dtype=jnp.float64),
                                shapes[key])
                n, l, k = c.shape
                out.append(jnp.pad(c, ((0, self.nradmax - n), (0, self.lmax + 1 - l),
                                       (0, self.nradbase - k))))
        return jnp.stack(out)

    def _coefficients(self, params):
        """(F, P) function coefficients in the tables' column order, P the most densities."""
        p = max(e.ndensity for e in self.embeddings)
        rows = []
        for name, _ in self.functions:
            c = jnp.reshape(jnp.asarray(params["c"][name], dtype=jnp.float64),
                            self.c_shape(name))
            rows.append(jnp.pad(c, ((0, 0), (0, p - c.shape[1]))))
        return jnp.concatenate(rows)[self.tables.order]

    def _radial(self, r, t):
        """(E, K) radial basis and (E,) core repulsion of pairs at r (E,) of pair types t."""
        tab = self.tables
        if self.spline:
            scale, nodes = jnp.asarray(tab.scale)[t], jnp.asarray(tab.nodes)[t]
            return (spline_eval(tab.g_spline, t, scale, nodes, r),
                    spline_eval(tab.hc_spline, t, scale, nodes, r)[:, 0])
        g = jnp.zeros((r.shape[0], self.nradbase))
        hc = jnp.zeros(r.shape)
        bonds = [b for row in self.bonds for b in row]
        for k, bond in enumerate(bonds):
            here = t == k
            g = jnp.where(here[:, None], radial_basis(r, bond, self.nradbase), g)
            hc = jnp.where(here, core_repulsion(r, bond), hc)
        return g, hc

    def descriptors(self, params, system: System, nbrs: NeighborList):
        """(N, F) B-basis function values of every atom for every evaluated function (columns
        in the tables' order, ``tables.order`` giving each column's row of the stacked
        coefficients; not masked by the central element) and (N,) ρ_core."""
        S = len(self.elements)
        natoms = system.natoms
        if nbrs.half:
            raise ValueError("ACE needs a full neighbour list (build_neighbor_list(..., "
                             "half=False)), not a half list")
        d = pair_displacements(system, nbrs)
        element, known = self._elements_of(system.species)
        sj = element[nbrs.j]
        parts = self.pair_terms(params, d, element[nbrs.i] * S + sj,
                                nbrs.mask & known[nbrs.i] & known[nbrs.j])
        # everything summed over neighbours goes through one real scatter, onto (atom, μ_j)
        summed = jax.ops.segment_sum(parts, nbrs.i * S + sj,
                                     num_segments=natoms * S).reshape(natoms, S, -1)
        return self.basis_from_sums(summed)

    def pair_terms(self, params, d, t, ok):
        """(E, P) what each pair adds to its centre's sums over the neighbours of one element:
        the radial basis g_k (K), the core repulsion (1), and Re, Im of R_nl Y_lm (N·LM each)
        (:meth:`basis_from_sums` takes those sums); pair vectors d (E, 3) Å, pair types
        t = S·μ_i + μ_j (E,), ok (E,) the pairs to count (zero rows otherwise)."""
        tab = self.tables
        r = jnp.sqrt(jnp.sum(d * d, axis=-1))
        valid = ok & (r < jnp.asarray(tab.rcut)[t])
        r = jnp.where(valid, r, 2.0 * self.cutoff + 1.0)
        u = d / r[:, None]
        g, hc = self._radial(r, t)
        g = jnp.where(valid[:, None], g, 0.0)
        hc = jnp.where(valid, hc, 0.0)
        parts = [g * Y00, hc[:, None]]
        if tab.products:
            lm = self.lmax + 1
            crad = self._crad(params)  # (T, N, L, K)
            if crad.shape[0] == 1:
                radial = jnp.einsum("ek,nlk->enl", g, crad[0])  # (E, N, L)
            else:  # every pair type's combination, then the pair's own (no per-pair gather)
                pick = (t[:, None] == jnp.arange(crad.shape[0])[None, :]).astype(g.dtype)
                radial = jnp.einsum("et,etnl->enl", pick, jnp.einsum("ek,tnlk->etnl", g, crad))
            l_of = np.array([l for l in range(lm) for _ in range(2 * l + 1)])
            phi = (radial[:, :, l_of] * spherical_harmonics(u, self.lmax)[:, None, :]).reshape(
                r.shape[0], -1)
            parts += [jnp.real(phi), jnp.imag(phi)]
        return jnp.concatenate(parts, axis=1)

    def basis_from_sums(self, summed):
        """((N, F) B-basis values in the tables' column order, (N,) ρ_core) from each atom's
        sums of :meth:`pair_terms` over its neighbours of each element, summed (N, S, P)."""
        K, tab = self.nradbase, self.tables
        natoms = summed.shape[0]
        S = len(self.elements)
        a1 = summed[:, :, :K].reshape(natoms, S * K)
        rho_core = jnp.sum(summed[:, :, K], axis=1)
        columns = [a1[:, tab.rank1]] if tab.rank1.size else []
        if tab.products:
            half = (summed.shape[2] - K - 1) // 2
            # A (S·N·LM, N_at): one row per entry, the atoms along it, so that the factors
            # are gathered (and, in reverse, scatter-added) as whole contiguous rows.  Complex
            # numbers: the same speed as real and imaginary parts apart here, but half the
            # operations, and the value-and-gradient program compiles in 4–5 s of CPU
            # instead of 7
            a = (summed[:, :, K + 1:K + 1 + half]
                 + 1j * summed[:, :, K + 1 + half:]).reshape(natoms, -1).T
            for idx, cg, fn, count in tab.products:
                prod = a[idx[:, 0]]
                for k in range(1, idx.shape[1]):
                    prod = prod * a[idx[:, k]]
                b = jax.ops.segment_sum(jnp.real(prod) * cg[:, None], fn, num_segments=count,
                                        indices_are_sorted=True)
                columns.append(b.T)
        return jnp.concatenate(columns, axis=1), rho_core

    def core_weight(self, rho_core, element):
        """(N,) the ``density`` inner cutoff's factor f_cut(ρ_core) of the embedding energy,
        with ρ_cut, Δρ_cut of each atom's element (indices ``element``)."""
        out = jnp.ones_like(rho_core)
        for s, emb in enumerate(self.embeddings):
            fcut = jnp.where(rho_core >= emb.rho_core_cut, 0.0,
                             jnp.where(rho_core <= emb.rho_core_cut - emb.drho_core_cut,
                                       1.0, poly_step(rho_core, emb.rho_core_cut,
                                                      emb.drho_core_cut)))
            out = jnp.where(element == s, fcut, out)
        return out

    def features(self, params, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, F) B-basis function values, one column per function of the file (blocks and
        functions in file order, as the rows of ``params["c"]`` stacked), zero where the atom
        is not the function's central element, for padding and for skipped functions: with a
        linear embedding (one density, w = 1, m = 1) and no core repulsion the energy is
        Σ_i features_i · c, the design matrix of linear ACE."""
        b, _ = self.descriptors(params, system, nbrs)
        element, known = self._elements_of(system.species)
        own = jnp.asarray(self.tables.mu0)[self.tables.order][None, :] == element[:, None]
        b = jnp.where(own & (known & system.mask)[:, None], b, 0.0)
        total = len(self.tables.mu0)
        return jnp.zeros((system.natoms, total)).at[:, self.tables.order].set(b)

    def atom_energies(self, params, system: System, nbrs: NeighborList) -> jax.Array:
        """(N,) eV per atom (0 for padding)."""
        b, rho_core = self.descriptors(params, system, nbrs)
        species, known = self._elements_of(system.species)
        fcut = (self._zbl_switch(system, nbrs) if self.zbl_inner
                else self.core_weight(rho_core, species))
        energy = self.embedding_energies(self._coefficients(params), b, rho_core, species, fcut)
        return jnp.where(system.mask & known, energy, 0.0)

    def embedding_energies(self, c, b, rho_core, species, fcut) -> jax.Array:
        """(N,) eV per atom (not masked) from the B-basis values ``b`` (N, F) and ρ_core (N,)
        of :meth:`basis_from_sums`, the coefficients ``c`` (F, P) of :meth:`_coefficients`,
        element indices ``species`` (N,) and the inner cutoff's weight ``fcut`` (N,)."""
        mine = jnp.asarray(self.tables.mu0)[self.tables.order][None, :] == species[:, None]
        rho = (jnp.where(mine, b, 0.0)) @ c  # (N, P)
        energy = jnp.zeros(b.shape[0])
        zbl = self.zbl_inner
        for s, emb in enumerate(self.embeddings):
            f = sum(w * embedding(emb.kind, rho[:, p], m)
                    for p, (w, m) in enumerate(zip(emb.weights, emb.exponents)))
            e = f * fcut + (rho_core * (1.0 - fcut) if zbl else rho_core)
            energy = jnp.where(species == s, e, energy)
        return energy

    def _zbl_switch(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N,) the ``zbl`` mode's weight of ACE against ZBL per atom (:meth:`zbl_switch` of
        the system's pairs)."""
        S = len(self.elements)
        d = pair_displacements(system, nbrs)
        r = jnp.sqrt(jnp.sum(d * d, axis=-1))
        element, known = self._elements_of(system.species)
        t = element[nbrs.i] * S + element[nbrs.j]
        return self.zbl_switch(r, t, nbrs.mask & known[nbrs.i] & known[nbrs.j], nbrs.i,
                               system.natoms)

    def zbl_switch(self, r, t, ok, centre, natoms: int) -> jax.Array:
        """(natoms,) the ``zbl`` mode's weight of ACE against ZBL per atom from its pairs at
        r (E,) of pair types t (E,), ok (E,) the pairs to count, centre (E,) their atom: the
        quintic step in r_in − r_min from 1 (nearest neighbour at r_in or beyond) to 0 (at
        r_in − δ_in or closer), with r_in, δ_in of the nearest neighbour's bond (the largest
        δ_in among tied nearest neighbours); 1 without neighbours.  Its derivative is JAX's:
        through the minimum, the mean of the tied nearest pairs' derivatives."""
        bonds = [b for row in self.bonds for b in row]
        r_in = jnp.asarray([b.r_in for b in bonds])[t]
        delta = jnp.asarray([b.delta_in for b in bonds])[t]
        gap = r - (r_in - delta)
        top = self.cutoff
        ok = ok & (r < jnp.asarray(self.tables.rcut)[t]) & (gap < top)
        gap = jnp.where(ok, gap, top)
        dmin = jax.ops.segment_min(gap, centre, num_segments=natoms)
        nearest = ok & (gap == dmin[centre])
        width = jax.ops.segment_max(jnp.where(nearest, delta, -1.0), centre,
                                    num_segments=natoms)
        found = width >= 0.0
        width = jnp.where(found, width, 1.0)
        x = width - jnp.where(found, dmin, 0.0)
        return jnp.where(found, poly_step(x, width, width), 1.0)

    def zbl_switch_and_slope(self, r, t, ok, centre, natoms: int):
        """(:meth:`zbl_switch` (natoms,), its derivative ∂f_c/∂r_p (E,) of each pair's own
        centre c = centre_p): the weight depends on the distances of its own pairs only, so
        one pull-back of Σ_i f_i gives every pair's (the same derivative as the model's)."""
        f, pull = jax.vjp(lambda x: self.zbl_switch(x, t, ok, centre, natoms), r)
        return f, pull(jnp.ones_like(f))[0]

    def energy(self, params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` a full list reaching :attr:`cutoff`."""
        return jnp.sum(self.atom_energies(params, system, nbrs))

    def to_bbasis(self, basis: BBasis | None, params) -> BBasis:
        """``basis`` (the file this potential was read from; None: :attr:`basis`) with the
        coefficients of ``params`` (shaped or flat)."""
        basis = self.basis if basis is None else basis
        params = self.shaped(params)
        crad = {k: np.asarray(v) for k, v in params["crad"].items()}
        return with_coefficients(basis, crad, {k: np.asarray(v) for k, v in params["c"].items()})
