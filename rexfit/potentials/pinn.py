"""Physically informed neural-network (PINN) potential of Purja Pun, Batra, Ramprasad and Mishin,
Nat. Commun. 10, 2339 (2019), and the analytic bond-order potential (BOP) it is built on.

BOP energy, every parameter belonging to the centre atom i (f_c the LSP cutoff function,
:func:`~rexfit.descriptors.lsp.lsp_cutoff`, with one global r_c and d):

    E = Σ_i E_i,
    E_i = ½ Σ_{j≠i} [e^{A_i − α_i r_ij} − S_ij b_ij e^{B_i − β_i r_ij}] f_c(r_ij) + E_i^p
    E_i^p = −σ_i (Σ_{j≠i} S_ij b_ij f_c(r_ij))^{1/2}
    b_ij = (1 + z_ij)^{−1/2},   z_ij = Σ_{k≠i,j} a_i S_ik (cos θ_ijk − h_i)² f_c(r_ik)
    S_ij = Π_{k≠i,j} S_ijk,     S_ijk = 1 − f_c(x) e^{−λ_i x},  x = r_ik + r_jk − r_ij

(the form of the paper and of its authors' LAMMPS ``pair_style pinn``).  :class:`BOP` has one
constant parameter set per element; :class:`PINN` gives every atom its own set
p_i = p⁰_{e_i} + N_{e_i}((G_i − μ) / σ_G), p = (A, B, α, β, a, h, λ, σ) in
:data:`BOP_PARAMETERS` order, N_e a per-element feed-forward network with 8 linear outputs
on the atom's descriptor row G_i (normally :class:`~rexfit.descriptors.lsp.LSP`).  The
base-plus-correction form is that of the authors' LAMMPS code (baseline parameters plus the
network output); p⁰ = 0 gives a network that outputs the parameters themselves.

Reach.  An atom k screens the bond i–j only if x < r_c; as r_jk ≥ r_ik − r_ij this needs
r_ik < r_ij + r_c/2 < 1.5 r_c.  The neighbour list therefore reaches 1.5 r_c (LAMMPS's cutmax),
and the triplets (ordered) have a first leg i→j up to r_c and a second leg i→k up to 1.5 r_c.
The screening product is a segment sum of log S_ijk over triplets, exponentiated per pair slot.

Guards (never active for a_i ≥ 0 and λ_i ≥ 0, where S_ijk ≥ d⁴/(d⁴ + r_c⁴), z_ij ≥ 0):
S_ijk is floored at 1e-30 before the logarithm and 1 + z_ij at 1e-12; E_i^p of an atom with no
bond is 0 with a zero gradient.  Species ≥ len(elements) do not interact (they neither bond
nor screen); padding atoms, pairs and triplets are masked.  Energy only: forces and stress come
from autodiff.

BOP params: {element: {"A", "B", "alpha", "beta", "a", "h", "lambda", "sigma"}} float64 scalars
(A, B dimensionless — the prefactors are e^A, e^B eV; α, β, λ in 1/Å; a, h dimensionless;
σ in eV).

PINN params: {element: {"base": (8,), "w1": (K·h1,), "b1": (h1,), …, "wN": (h_{N−1}·h_N,),
"bN": (h_N,), "out": (h_N·8,), "bias": (8,), "mean": (K,), "std": (K,)}}: "base" is p⁰ in
:data:`BOP_PARAMETERS` order, weight matrices are stored flat, row-major, input index slowest
(as in :mod:`rexfit.potentials.neural_network`); "mean"/"std" normalise the descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.descriptors.lsp import lsp_cutoff
from rexfit.potentials.base import Params
from rexfit.potentials.lists import reach_table
from rexfit.potentials.neural_network import ACTIVATIONS, hidden_layers, initial_hidden
from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.potentials.network_family import BASE_PARAMETERS
from rexfit.structures.system import System
from rexfit.structures.triplets import require_triplets

#: Names of the 8 per-atom BOP parameters, in the order of a PINN's "base", "out" and "bias"
#: (the job's ``<base>`` attributes, declared with the family record).
BOP_PARAMETERS = BASE_PARAMETERS

#: Leaves of a PINN element's params that are trained ("mean", "std" are normalisation).
TRAINED = ("base", "w", "b", "out", "bias")

_S_FLOOR = 1e-30  # S_ijk before its logarithm
_Z_FLOOR = 1e-12  # 1 + z_ij before the inverse square root
_A, _B, _ALPHA, _BETA, _SMALL_A, _H, _LAMBDA, _SIGMA = range(8)


def _reach_tables(n: int, rc: float):
    """(first, second) leg reach tables (n, n) in Å: r_c for i→j, 1.5 r_c for i→k."""
    return np.full((n, n), float(rc)), np.full((n, n), 1.5 * float(rc))


def bop_atom_energies(p: jax.Array, system: System, nbrs: NeighborList, rc: float, d: float,
                      n_species: int) -> jax.Array:
    """Per-atom BOP energies E_i (N,) in eV from per-atom parameters ``p`` (N, 8).

    ``nbrs``: full list with triplets reaching 1.5 r_c (both layouts accepted); atoms and
    neighbours of species ≥ ``n_species`` and padding are ignored.
    """
    triplets = require_triplets(nbrs)
    natoms = system.natoms
    capacity = nbrs.capacity
    si, sj = system.species[nbrs.i], system.species[nbrs.j]
    valid = (nbrs.mask & system.mask[nbrs.i] & system.mask[nbrs.j] & (si >= 0)
             & (si < n_species) & (sj >= 0) & (sj < n_species))
    far = jnp.asarray([4.0 * rc, 0.0, 0.0])  # beyond every reach, never zero: finite gradients
    disp = jnp.where(valid[:, None], pair_displacements(system, nbrs), far[None, :])
    r = jnp.sqrt(jnp.sum(disp * disp, axis=1))
    unit = disp / r[:, None]
    bond = valid & (r < rc)
    fc = lsp_cutoff(r, rc, d)  # 0 beyond r_c
    pp = p[nbrs.i]  # (E, 8): the parameters of each pair's centre atom

    a, b = triplets.ij, triplets.ik

    def log_screening(first, second):
        """log S_ijk of bond ``first`` (i→j) screened by the atom at leg ``second`` (i→k)."""
        ok = triplets.mask & bond[first] & valid[second]
        d_jk = jnp.where(ok[:, None], disp[second] - disp[first], far[None, :])
        x = r[second] + jnp.sqrt(jnp.sum(d_jk * d_jk, axis=1)) - r[first]
        ok = ok & (x < rc)
        x = jnp.where(ok, x, rc)  # f_c(r_c) = 0 and a finite exponential elsewhere
        s = 1.0 - lsp_cutoff(x, rc, d) * jnp.exp(-pp[first, _LAMBDA] * x)
        return jnp.where(ok, jnp.log(jnp.maximum(s, _S_FLOOR)), 0.0)

    def angular(first, second, s_pair):
        """a_i S_ik (cos θ_ijk − h_i)² f_c(r_ik): leg ``second``'s term of z for ``first``."""
        ok = triplets.mask & bond[first] & bond[second]
        cos = jnp.sum(unit[first] * unit[second], axis=1)
        dev = cos - pp[first, _H]
        term = pp[first, _SMALL_A] * s_pair[second] * dev * dev * fc[second]
        return jnp.where(ok, term, 0.0)

    log_s = jax.ops.segment_sum(log_screening(a, b), a, num_segments=capacity)
    if not triplets.ordered:  # each pair of legs listed once: both orders from one slot
        log_s = log_s + jax.ops.segment_sum(log_screening(b, a), b, num_segments=capacity)
    s_pair = jnp.exp(log_s)  # S_ij per pair slot
    z = jax.ops.segment_sum(angular(a, b, s_pair), a, num_segments=capacity)
    if not triplets.ordered:
        z = z + jax.ops.segment_sum(angular(b, a, s_pair), b, num_segments=capacity)
    b_ij = 1.0 / jnp.sqrt(jnp.maximum(1.0 + z, _Z_FLOOR))

    r_b = jnp.where(bond, r, rc)
    repulsive = jnp.exp(pp[:, _A] - pp[:, _ALPHA] * r_b) * fc
    bonding = jnp.where(bond, s_pair * b_ij * fc, 0.0)  # S_ij b_ij f_c(r_ij)
    attractive = jnp.exp(pp[:, _B] - pp[:, _BETA] * r_b) * bonding
    pair = jnp.where(bond, 0.5 * (repulsive - attractive), 0.0)
    e_pair = jax.ops.segment_sum(pair, nbrs.i, num_segments=natoms)
    bonds = jax.ops.segment_sum(bonding, nbrs.i, num_segments=natoms)
    has = bonds > 0.0
    root = jnp.where(has, jnp.sqrt(jnp.where(has, bonds, 1.0)), 0.0)
    atoms = system.mask & (system.species >= 0) & (system.species < n_species)
    return jnp.where(atoms, e_pair - p[:, _SIGMA] * root, 0.0)


def _stack_base(base: Mapping[str, Mapping], elements) -> dict[str, np.ndarray]:
    """{element: (8,) float64} from per-element dicts of the 8 named BOP parameters."""
    out = {}
    for e in elements:
        if e not in base:
            raise ValueError(f"no base BOP parameters for element {e!r}")
        missing = [k for k in BOP_PARAMETERS if k not in base[e]]
        if missing:
            raise ValueError(f"base BOP parameters of {e!r} lack {', '.join(missing)}")
        out[e] = np.array([float(base[e][k]) for k in BOP_PARAMETERS])
    return out


@dataclass(frozen=True)
class BOP:
    """The PINN's analytic bond-order potential with constant per-element parameters.

    elements: species s ↦ elements[s]; rc, d (Å): cutoff radius and range of f_c.
    Needs a full neighbour list with triplets (:meth:`triplet_cutoffs`, ``build_lists``).
    """

    elements: tuple[str, ...]
    rc: float
    d: float

    full_list = True

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "rc", float(self.rc))
        object.__setattr__(self, "d", float(self.d))
        if not self.elements or self.rc <= 0.0 or self.d <= 0.0:
            raise ValueError("BOP needs elements, rc > 0 and d > 0")

    @property
    def cutoff(self) -> float:
        """1.5 r_c (Å): the farthest screening atom."""
        return 1.5 * self.rc

    def triplet_cutoffs(self):
        """(first (S, S), second (S, S), ordered): legs i→j up to r_c, i→k up to 1.5 r_c."""
        first, second = _reach_tables(len(self.elements), self.rc)
        return first, second, True

    def atom_parameters(self, params: Params, system: System) -> jax.Array:
        """(N, 8) per-atom parameters in :data:`BOP_PARAMETERS` order (rows of species ≥
        len(elements) are those of element 0 and unused)."""
        table = jnp.stack([jnp.stack([jnp.asarray(params[e][k], dtype=jnp.float64)
                                      for k in BOP_PARAMETERS]) for e in self.elements])
        return table[jnp.clip(system.species, 0, len(self.elements) - 1)]

    def atom_energies(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """E_i (N,) in eV."""
        return bop_atom_energies(self.atom_parameters(params, system), system, nbrs,
                                 self.rc, self.d, len(self.elements))

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV)."""
        return jnp.sum(self.atom_energies(params, system, nbrs))

    def pair_reach(self) -> float:
        """r_c (Å): pairs farther apart matter only as screening legs of a triplet."""
        return self.rc

    def active_triplets(self, vectors, ij, ik, species_i, species_j, species_k):
        """For a fixed geometry: which triplets can contribute (see :func:`active_triplets`)."""
        return active_triplets(vectors, ij, ik, self.rc, len(self.elements), species_i,
                               species_j, species_k)


def active_triplets(vectors: np.ndarray, ij: np.ndarray, ik: np.ndarray, rc: float,
                    n_species: int, species_i: np.ndarray, species_j: np.ndarray,
                    species_k: np.ndarray) -> np.ndarray:
    """(T,) bool, host-side: the triplets (pair slots ``ij``, ``ik`` into the pair vectors
    ``vectors`` (E, 3) Å) that add to the BOP energy of a structure that does not move.

    A triplet contributes if its first leg is a bond (r_ij < r_c) between interacting species
    and either its second leg is a bond too (angular term z_ij) or the atom k screens the bond
    (x = r_ik + r_jk − r_ij < r_c, k of an interacting species).  Every other triplet adds
    exactly 0 to the energy and to all its derivatives at this geometry (f_c and its derivative
    vanish at r_c), so a dataset whose structures never move can drop them: for a Si crystal
    with r_c = 3.9 Å this keeps about a tenth of the triplets that reach 1.5 r_c.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    first, second = vectors[ij], vectors[ik]
    r_ij = np.linalg.norm(first, axis=1)
    r_ik = np.linalg.norm(second, axis=1)
    r_jk = np.linalg.norm(second - first, axis=1)
    live = lambda s: (s >= 0) & (s < n_species)  # noqa: E731
    bond = (r_ij < rc) & live(np.asarray(species_i)) & live(np.asarray(species_j))
    other = live(np.asarray(species_k))
    return bond & other & ((r_ik < rc) | (r_ik + r_jk - r_ij < rc))


@dataclass(frozen=True)
class PINN:
    """BOP whose parameters are per-atom outputs of per-element networks on ``descriptor``.

    descriptor: a descriptor (normally :class:`~rexfit.descriptors.lsp.LSP`; species beyond its
    ``weights`` are invisible to it); elements: species s ↦ elements[s]; hidden: widths of the
    hidden layers; activation: of the hidden layers (the 8 outputs are linear); rc, d (Å): the
    BOP's cutoff and f_c range.  Species ≥ len(elements) do not interact.
    """

    descriptor: object
    elements: tuple[str, ...]
    hidden: tuple[int, ...] = (20, 20)
    activation: str = "tanh"
    rc: float = 5.0
    d: float = 1.5

    full_list = True

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "rc", float(self.rc))
        object.__setattr__(self, "d", float(self.d))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not "
                             f"{self.activation!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("a network needs at least one hidden layer of width ≥ 1")
        if not self.elements or self.rc <= 0.0 or self.d <= 0.0:
            raise ValueError("PINN needs elements, rc > 0 and d > 0")
        weights = getattr(self.descriptor, "weights", None)
        if weights is not None and len(weights) > len(self.elements):
            raise ValueError("the descriptor sees more species than the PINN has elements")

    @property
    def cutoff(self) -> float:
        """max(1.5 r_c, descriptor cutoff) in Å."""
        return max(1.5 * self.rc, float(self.descriptor.cutoff))

    def triplet_cutoffs(self):
        """(first, second, ordered) as for :class:`BOP`, widened to the descriptor's own
        triplet needs if it has any."""
        n = len(self.elements)
        first, second = _reach_tables(n, self.rc)
        method = getattr(self.descriptor, "triplet_cutoffs", None)
        need = None if method is None else method()
        if need is None:
            return first, second, True
        f2, s2, _ = need
        f2 = reach_table(f2, n, 2)
        second = np.maximum(np.broadcast_to(second[:, None, :], (n,) * 3), reach_table(s2, n, 3))
        return np.maximum(first, f2), second, True

    def bop(self) -> BOP:
        """The BOP with the same elements, r_c and d (the PINN with zero networks)."""
        return BOP(self.elements, self.rc, self.d)

    def base_params(self, params: Params) -> Params:
        """The base parameters p⁰ as :class:`BOP` params (named scalars)."""
        return {e: {k: params[e]["base"][n] for n, k in enumerate(BOP_PARAMETERS)}
                for e in self.elements}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of one element's params."""
        widths = (self.descriptor.n_features,) + self.hidden
        shapes: dict[str, tuple[int, ...]] = {"base": (8,)}
        for k in range(1, len(widths)):
            shapes[f"w{k}"] = (widths[k - 1] * widths[k],)
            shapes[f"b{k}"] = (widths[k],)
        shapes["out"] = (self.hidden[-1] * 8,)
        shapes["bias"] = (8,)
        shapes["mean"] = (self.descriptor.n_features,)
        shapes["std"] = (self.descriptor.n_features,)
        return shapes

    def initial_params(self, seed: int = 0, base: Mapping[str, Mapping] | None = None,
                       output_scale: float = 0.0) -> Params:
        """Hidden weights Glorot-uniform (reproducible from ``seed``), zero biases, μ = 0,
        σ_G = 1, "base" from ``base`` ({element: {name: value}} over :data:`BOP_PARAMETERS`).
        The output layer is Glorot-uniform times ``output_scale`` (default 0: the PINN starts
        as the BOP with parameters ``base``)."""
        if base is None:
            raise ValueError("initial_params needs the base BOP parameters of every element")
        stacked = _stack_base(base, self.elements)
        rng = np.random.default_rng(seed)
        widths = (self.descriptor.n_features,) + self.hidden
        out = {}
        for e in self.elements:
            p = {"base": jnp.asarray(stacked[e]), **initial_hidden(rng, widths)}
            limit = np.sqrt(6.0 / (self.hidden[-1] + 8))
            p["out"] = jnp.asarray(output_scale * rng.uniform(-limit, limit, self.hidden[-1] * 8))
            p["bias"] = jnp.zeros(8)
            p["mean"] = jnp.zeros(self.descriptor.n_features)
            p["std"] = jnp.ones(self.descriptor.n_features)
            out[e] = p
        return out

    def _network(self, p, x: jax.Array) -> jax.Array:
        """δp = N_e(x) (M, 8) for descriptor rows x (M, K) with one element's params p."""
        widths = (self.descriptor.n_features,) + self.hidden
        h = hidden_layers(p, x, widths, self.activation)
        w_out = jnp.reshape(p["out"], (self.hidden[-1], 8))
        return h @ w_out + jnp.asarray(p["bias"])[None, :]

    def parameters_from_features(self, params: Params, g: jax.Array,
                                 species: jax.Array) -> jax.Array:
        """Per-atom BOP parameters p⁰ + N_e(G) (M, 8) from descriptor rows ``g`` (M, K);
        rows of species ≥ len(elements) are zero."""
        p = jnp.zeros(g.shape[:-1] + (8,), g.dtype)
        for s, e in enumerate(self.elements):
            own = jnp.asarray(params[e]["base"])[None, :] + self._network(params[e], g)
            p = jnp.where((species == s)[:, None], own, p)
        return p

    def atom_parameters(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, 8) per-atom BOP parameters in :data:`BOP_PARAMETERS` order."""
        g = self.descriptor.features(system, nbrs)
        return self.parameters_from_features(params, g, system.species)

    def atom_energies(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """E_i (N,) in eV."""
        return self.energies_from_geometry(params, self.descriptor.features(system, nbrs),
                                           system, nbrs)

    def energies_from_geometry(self, params: Params, g: jax.Array, system: System,
                               nbrs: NeighborList) -> jax.Array:
        """E_i (N,) in eV with the descriptor rows ``g`` (N, K) given: the BOP with per-atom
        parameters p⁰ + N(g) on ``system``/``nbrs``.  The dataset engine's descriptor kernel
        calls this with precomputed rows and differentiates with respect to both ``g`` and the
        pair vectors."""
        return bop_atom_energies(self.parameters_from_features(params, g, system.species),
                                 system, nbrs, self.rc, self.d, len(self.elements))

    def pair_reach(self) -> float:
        """max(r_c, descriptor cutoff) in Å: farther pairs matter only as screening legs."""
        return max(self.rc, float(self.descriptor.cutoff))

    def active_triplets(self, vectors: np.ndarray, ij: np.ndarray, ik: np.ndarray,
                        species_i: np.ndarray, species_j: np.ndarray,
                        species_k: np.ndarray) -> np.ndarray | None:
        """For a fixed geometry: which triplets can contribute (see :func:`active_triplets`);
        None if the descriptor reads the triplets too (they must all stay)."""
        if getattr(self.descriptor, "triplet_cutoffs", None) is not None:
            return None
        return active_triplets(vectors, ij, ik, self.rc, len(self.elements), species_i,
                               species_j, species_k)

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` a full list with triplets reaching :attr:`cutoff`
        (``rexfit.potentials.lists.build_lists``)."""
        return jnp.sum(self.atom_energies(params, system, nbrs))
