"""ACE extrapolation grades of a set of structures: the active set selected from the training
structures' atoms and the largest γ of every structure (:mod:`rexfit.potentials.ace.active_set`).

Structures are (name, system, neighbour list or None, is training) tuples; a missing list is
built here
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


def ace_grades(ace, params, structures, *, full: bool, tol: float, max_iters: int,
               n_species: int) -> Grades:
    """Active set of the ACE potential ``ace`` (its ``params``) from the atoms of the
    training structures and the largest γ of each structure; ``structures``: (name, system,
    nbrs or None, is training) tuples.  :class:`~rexfit.potentials.ace.active_set.
    ActiveSetError` when the training atoms cannot give an active set."""
    rows = []
    for _, system, nbrs, _ in structures:
        system, nbrs = _prepared(ace, system, nbrs, n_species)
        proj = AS.compiled_projections(ace, params, system, nbrs, full)
        rows.append(AS.element_rows(ace, proj, system, full))
    sizes = AS.projection_sizes(ace, full)
    chosen = {e: np.concatenate([np.zeros((0, sizes[e]))]
                                + [r[e] for r, t in zip(rows, structures) if t[3]])
              for e in ace.elements}
    active = AS.build(ace, chosen, full, tol, max_iters)
    worst = {t[0]: AS.max_gamma(active, r) for r, t in zip(rows, structures)}
    return Grades(active, worst, {e: len(v) for e, v in chosen.items()})
