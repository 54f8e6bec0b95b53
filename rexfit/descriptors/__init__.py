"""Atomic descriptors: per-atom feature vectors of an atom's neighbourhood as pure, differentiable
JAX functions of a structure (SNAP bispectrum, SO(3) power spectrum, embedded-atom density).

Every descriptor is a frozen, hashable dataclass (a static ``jit`` argument) with

* ``cutoff`` (Å): the largest neighbour distance it reads;
* ``n_features``: the length K of an atom's feature vector;
* ``features(system, nbrs)`` → (N, K) float64, one row per atom slot, zero rows for padding
  atoms; ``nbrs`` is a full neighbour list (``half=False``) reaching at least ``cutoff``.

Forces and stresses of models built on them come from autodiff of the energy.
"""
