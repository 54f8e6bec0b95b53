"""Data-dependent starting point of neural-network potentials: descriptor normalisation and
per-element energies from the training set.

A network started from random weights (no ``<model-file>``) gets, before the fit:

* per element e, the mean μ_e and spread σ_e of every descriptor component over the training
  atoms of element e (the network sees (B − μ)/σ; these constants are not fitted);
* per element, the output bias ε_e from the least-squares fit E_s ≈ Σ_e n_{s,e} ε_e of the
  training energies (so the network starts at the right energy scale and learns the rest).

The statistics come from the descriptor rows the dataset engine precomputed (descriptor
kernel); without them (no training dataset, or a kernel that does not keep descriptors) the
network keeps μ = 0, σ = 1 and bias 0, and the log says so.
"""

from __future__ import annotations

import numpy as np

from rexfit.datasets import descriptor_kernel as dk
from rexfit.potentials.neural_network import NeuralNetwork, feature_statistics


def initialise_networks(job, space, datasets: dict) -> list[str]:
    """Set μ, σ and the starting output biases of every freshly initialised network of the
    job in ``space.pm.params`` (and the fit's starting point); returns log lines."""
    pm = space.pm
    terms = dict(pm.potential.terms)
    lines = []
    for pot in job.potentials:
        if pot.kind != "neural-network" or dict(pot.options).get("model-file"):
            continue
        model = terms[pot.id]
        if not isinstance(model, NeuralNetwork):
            continue
        engines = [t.engine for (_, set_name), t in datasets.items()
                   if set_name == "training" and t.engine.kernel == "descriptor"]
        if not engines:
            lines.append(f"Neural network '{pot.id}': no training dataset with precomputed "
                         "descriptors; inputs are not normalised (μ = 0, σ = 1)")
            continue
        index = dk.models(pm.potential).index(model)
        species, rows = zip(*(engine.descriptor_rows(index) for engine in engines))
        species, rows = np.concatenate(species), np.concatenate(rows)
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
        params = pm.params[pot.id]
        for k, element in enumerate(model.elements):
            mine = rows[species == k]
            mean, std = feature_statistics(mine) if len(mine) else (
                np.zeros(rows.shape[1]), np.ones(rows.shape[1]))
            params[element] = dict(params[element], mean=mean, std=std, bias=float(eps[k]))
            try:
                space.set_initial((pot.id, element, "bias"), float(eps[k]))
            except KeyError:  # the bias is not fitted
                pass
        lines.append(f"Neural network '{pot.id}': descriptors normalised over {len(rows)} "
                     "training atoms; starting atomic energies "
                     + ", ".join(f"{e} {v:.6g} eV" for e, v in zip(model.elements, eps)))
    return lines
