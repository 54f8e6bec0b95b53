"""ACE extrapolation grades of a set of structures: the active set selected from the training
structures' atoms and the largest γ of every structure (:mod:`rexfit.potentials.ace.active_set`).

Structures are (name, system, neighbour list or None) triples; a missing list is built here
(full, reaching the ACE cutoff), and systems are padded to bucket sizes so that a dataset of
many sizes compiles a few programs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rexfit.potentials.ace import active_set as AS


@dataclass(frozen=True, eq=False)
class Grades:
    """The active set of one ACE potential and the largest γ of every structure (by name);
    ``atoms``: {element: training atoms the active set was chosen from}."""

    active_set: AS.ActiveSet
    max_gamma: dict
    atoms: dict


def _prepared(ace, system, nbrs, n_species: int):
    """(system, nbrs) padded to bucket sizes with a full list reaching the ACE cutoff."""
    from rexfit.potentials.lists import build_lists
    from rexfit.structures.neighbors import bucket_size
    from rexfit.structures.system import pad_system

    if nbrs is not None and not nbrs.half:
        return system, nbrs
    system = pad_system(system, bucket_size(system.natoms, 8))
    return system, build_lists(ace, system, 0.0, n_species=n_species)


def ace_grades(ace, params, training, structures, *, full: bool, tol: float,
               max_iters: int, n_species: int) -> Grades:
    """Active set of the ACE potential ``ace`` (its ``params``) from the atoms of
    ``training`` and the largest γ of each of ``structures`` (both lists of (name, system,
    nbrs or None)); :class:`~rexfit.potentials.ace.active_set.ActiveSetError` when the
    training atoms cannot give one."""
    prepared = {}

    def get(name, system, nbrs):
        if name not in prepared:
            prepared[name] = _prepared(ace, system, nbrs, n_species)
        return prepared[name]

    chosen = AS.per_element(ace, params, (get(*t) for t in training), full)
    active = AS.build(ace, chosen, full, tol, max_iters)
    inverse = {e: np.asarray(v) for e, v in active.inverse.items()}
    worst = {}
    for name, system, nbrs in structures:
        system, nbrs = get(name, system, nbrs)
        proj = AS.compiled_projections(ace, params, system, nbrs, full)
        grade = AS.gamma(ace, AS.ActiveSet(active.elements, inverse, full), proj, system)
        worst[name] = float(np.max(np.asarray(grade), initial=0.0))
    return Grades(active, worst, {e: len(v) for e, v in chosen.items()})
