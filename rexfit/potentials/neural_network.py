"""Atomic neural-network potentials (Behler–Parrinello form): per-element feed-forward networks
on per-atom descriptor rows, atomic energies summed.

    E = Σ_i N_{e_i}((B_i − μ) / σ),    N_e(x) = w_out · a(… a(W_1 x + b_1) …) + b_out

with e_i the element of atom i, B_i its descriptor row (:mod:`rexfit.descriptors`), μ and σ
per-feature normalisation constants (from the training set, see
:func:`feature_statistics`; not fitted), hidden layers with activation a (tanh, sigmoid,
softplus or linear) and a linear output.  Forces and stresses come from the exact derivative of
E.  The model has the interface of :class:`rexfit.potentials.snap.DescriptorModel`
(``descriptor``, ``energies_from_features``), so the dataset engine's descriptor kernel trains
it on precomputed descriptors.

params: {element: {"w1": (K·h1,), "b1": (h1,), …, "wN": (h_{N−1}·h_N,), "bN": (h_N,),
"out": (h_N,), "bias": (), "mean": (K,), "std": (K,)}} — weight matrices stored flat
(row-major, input index slowest) so that every weight is one fit DOF.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "linear": lambda x: x,
}

#: Leaves of an element's params that are trained (the others are normalisation constants).
TRAINED = ("w", "b", "out", "bias")


@dataclass(frozen=True)
class NeuralNetwork:
    """Per-element networks on ``descriptor`` (species s ↦ elements[s]); ``hidden`` layer
    widths, ``activation`` of the hidden layers.  Species ≥ len(elements) contribute nothing
    (and descriptors treat them as no neighbour).  Needs a full neighbour list."""

    descriptor: object
    elements: tuple[str, ...]
    hidden: tuple[int, ...] = (30, 30)
    activation: str = "tanh"

    full_list = True

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not "
                             f"{self.activation!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("a network needs at least one hidden layer of width ≥ 1")

    @property
    def cutoff(self) -> float:
        return self.descriptor.cutoff

    def triplet_cutoffs(self):
        """The descriptor's triplet needs (ACSF with G4 terms), else None."""
        method = getattr(self.descriptor, "triplet_cutoffs", None)
        return None if method is None else method()

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of one element's params."""
        widths = (self.descriptor.n_features,) + self.hidden
        shapes: dict[str, tuple[int, ...]] = {}
        for k in range(1, len(widths)):
            shapes[f"w{k}"] = (widths[k - 1] * widths[k],)
            shapes[f"b{k}"] = (widths[k],)
        shapes["out"] = (self.hidden[-1],)
        shapes["bias"] = ()
        shapes["mean"] = (self.descriptor.n_features,)
        shapes["std"] = (self.descriptor.n_features,)
        return shapes

    def initial_params(self, seed: int = 0, energy_shift: float = 0.0) -> Params:
        """Random weights (Glorot-uniform), zero biases, output bias ``energy_shift``
        (eV/atom), normalisation μ = 0, σ = 1; reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        widths = (self.descriptor.n_features,) + self.hidden
        out = {}
        for e in self.elements:
            p = initial_hidden(rng, widths)
            limit = np.sqrt(6.0 / (self.hidden[-1] + 1))
            p["out"] = jnp.asarray(rng.uniform(-limit, limit, self.hidden[-1]))
            p["bias"] = jnp.float64(energy_shift)
            p["mean"] = jnp.zeros(self.descriptor.n_features)
            p["std"] = jnp.ones(self.descriptor.n_features)
            out[e] = p
        return out

    def _network(self, p, x):
        """N_e(x) for rows x (M, K) with one element's params p → (M,)."""
        widths = (self.descriptor.n_features,) + self.hidden
        return hidden_layers(p, x, widths, self.activation) @ p["out"] + p["bias"]

    def energies_from_features(self, params: Params, b, species, mask) -> jax.Array:
        """Per-atom energies (M,) from descriptor rows ``b`` (M, K): each element's network on
        all rows, the atom's own chosen (one pass per element)."""
        n = len(self.elements)
        e = jnp.zeros(b.shape[:-1], b.dtype)
        for s, element in enumerate(self.elements):
            e = jnp.where(species == s, self._network(params[element], b), e)
        present = mask & (species >= 0) & (species < n)
        return jnp.where(present, e, 0.0)

    def atom_energies(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        b = self.descriptor.features(system, nbrs)
        return self.energies_from_features(params, b, system.species, system.mask)

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total energy (eV); ``nbrs`` a full list reaching :attr:`cutoff` (with the
        descriptor's triplets if it needs them)."""
        return jnp.sum(self.atom_energies(params, system, nbrs))


def initial_hidden(rng: np.random.Generator, widths: tuple[int, ...]) -> dict:
    """Hidden layers "w1", "b1", … for layer widths (K, h1, …, hN): Glorot-uniform weights
    (flat, row-major, input index slowest), zero biases, drawn layer by layer from ``rng``."""
    p = {}
    for k in range(1, len(widths)):
        limit = np.sqrt(6.0 / (widths[k - 1] + widths[k]))
        p[f"w{k}"] = jnp.asarray(rng.uniform(-limit, limit, widths[k - 1] * widths[k]))
        p[f"b{k}"] = jnp.zeros(widths[k])
    return p


def hidden_layers(p, x: jax.Array, widths: tuple[int, ...], activation: str) -> jax.Array:
    """The last hidden layer's output (M, h_N) for descriptor rows x (M, K): normalised by
    p["mean"], p["std"], then the layers "w1", "b1", … of widths (K, h1, …, hN)."""
    act = ACTIVATIONS[activation]
    h = (x - jnp.asarray(p["mean"])[None, :]) / jnp.asarray(p["std"])[None, :]
    for k in range(1, len(widths)):
        w = jnp.reshape(p[f"w{k}"], (widths[k - 1], widths[k]))
        h = act(h @ w + jnp.asarray(p[f"b{k}"])[None, :])
    return h


def feature_statistics(rows: np.ndarray, floor: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) per feature of descriptor rows (M, K); σ is at least ``floor`` × max(1, |μ|) so
    that constant features do not divide by zero."""
    rows = np.asarray(rows, dtype=np.float64)
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    return mean, np.maximum(std, floor * np.maximum(1.0, np.abs(mean)))
