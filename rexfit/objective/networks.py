"""Data-dependent starting point of neural-network potentials: descriptor normalisation and
per-element energies from the training set.

A network started from random weights (no ``<model-file>``) gets, before the fit:

* per element e, the mean μ_e and spread σ_e of every descriptor component over the training
  atoms of element e (the network sees (B − μ)/σ; these constants are not fitted);
* per element, the output bias ε_e from the least-squares fit E_s ≈ Σ_e n_{s,e} ε_e of the
  training energies (so the network starts at the right energy scale and learns the rest).

The statistics come from the descriptor rows the dataset engine precomputed (descriptor
kernel), or else from the descriptor evaluated on the training entries; without a training
dataset the network keeps μ = 0, σ = 1 and bias 0, and the log says so.  A PINN gets μ and σ
only: its energy scale is that of its base BOP.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from rexfit.datasets import descriptor_kernel as dk
from rexfit.potentials.lists import build_lists
from rexfit.potentials.neural_network import NeuralNetwork, feature_statistics
from rexfit.potentials.pinn import PINN
from rexfit.structures.neighbors import bucket_size
from rexfit.structures.system import make_system, pad_system


@dataclass(frozen=True)
class _Reader:
    """A descriptor as something ``build_lists`` makes a full list for (with its triplets)."""

    descriptor: object
    full_list = True

    @property
    def cutoff(self) -> float:
        return self.descriptor.cutoff

    def triplet_cutoffs(self):
        method = getattr(self.descriptor, "triplet_cutoffs", None)
        return None if method is None else method()


def _rows_of_items(descriptor, items, n_species: int):
    """(species, rows) of every atom of ``items``, the descriptor evaluated directly (one
    compilation per padded shape)."""
    reader = _Reader(descriptor)
    features = jax.jit(descriptor.features)
    species, rows = [], []
    for item in items:
        system = make_system(item.positions, item.cell, item.species, item.pbc)
        n = system.natoms
        padded = pad_system(system, bucket_size(n, 8))
        nbrs = build_lists(reader, padded, 0.0, n_species=n_species)
        rows.append(np.asarray(features(padded, nbrs))[:n])
        species.append(np.asarray(system.species))
    return np.concatenate(species), np.concatenate(rows)


def initialise_networks(job, pm, datasets: dict) -> tuple[dict, dict, list[str]]:
    """The data-dependent start of every freshly initialised network of the job (no
    ``<model-file>``): (the params tree with its μ, σ and output biases set — a new tree,
    ``pm.params`` is not changed —, {path: starting value} of the output biases, log lines).
    A PINN gets μ and σ only (its energy scale is that of its base BOP)."""
    terms = dict(pm.potential.terms)
    new = dict(pm.params)
    starts: dict[tuple, float] = {}
    lines = []
    for pot in job.potentials:
        model = terms[pot.id]
        if not isinstance(model, (NeuralNetwork, PINN)) or \
                getattr(pot.family_spec, "model_file", None):
            continue
        training = [t.engine for (_, set_name), t in datasets.items() if set_name == "training"]
        engines = [e for e in training if e.kernel == "descriptor"]
        if isinstance(model, NeuralNetwork) and engines and len(engines) == len(training):
            index = dk.models(pm.potential).index(model)
            species, rows = zip(*(engine.descriptor_rows(index) for engine in engines))
            species, rows = np.concatenate(species), np.concatenate(rows)
        elif training:
            items = [it for engine in training for it in engine.items]
            species, rows = _rows_of_items(model.descriptor, items, len(pm.species))
        else:
            lines.append(f"Network '{pot.id}': no training dataset; inputs are not "
                         "normalised (μ = 0, σ = 1)")
            continue
        counts, energies = [], []
        for engine in engines:
            for item in engine.items:
                if item.energy is None:
                    continue
                s = np.asarray(item.species)
                counts.append([np.count_nonzero(s == k) for k in range(len(model.elements))])
                energies.append(float(item.energy))
        eps = np.zeros(len(model.elements))
        if energies:
            eps = np.linalg.lstsq(np.asarray(counts, float), np.asarray(energies), rcond=None)[0]
        params = dict(new[pot.id])
        network = isinstance(model, NeuralNetwork)
        for k, element in enumerate(model.elements):
            mine = rows[species == k]
            mean, std = feature_statistics(mine) if len(mine) else (
                np.zeros(rows.shape[1]), np.ones(rows.shape[1]))
            params[element] = dict(params[element], mean=mean, std=std)
            if network:
                params[element]["bias"] = float(eps[k])
                starts[(pot.id, element, "bias")] = float(eps[k])
        new[pot.id] = params
        lines.append(f"Network '{pot.id}': descriptors normalised over {len(rows)} training "
                     "atoms" + ("; starting atomic energies " + ", ".join(
                         f"{e} {v:.6g} eV" for e, v in zip(model.elements, eps))
                         if network else ""))
    return new, starts, lines
