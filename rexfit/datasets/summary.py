"""What a dataset file holds, in a few lines: the ``rexfit dataset-info`` summary."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from rexfit.datasets.readers import SELECT_GROUP_KEYS, Entry


def describe(entries: Sequence[Entry], name: str, fmt: str) -> list[str]:
    """Lines saying how many frames and atoms, which species and groups, which quantities the
    frames carry, the range of the energy per atom and the info keys."""
    n = len(entries)
    natoms = np.array([e.natoms for e in entries])
    lines = [f"{name} ({fmt}): {n} frame{'s' if n != 1 else ''}",
             f"  atoms: {natoms.min()} to {natoms.max()} per frame, {natoms.sum()} in all"]
    species = Counter(s for e in entries for s in e.symbols)
    lines.append("  species: " + ", ".join(f"{s} {c}" for s, c in sorted(species.items())))
    lines.append("  groups" + _groups(entries))
    has = {q: sum(getattr(e, q) is not None for e in entries)
           for q in ("energy", "forces", "stress")}
    lines.append("  frames with " + ", ".join(f"{q} {c}" for q, c in has.items())
                 + f" (of {n})")
    periodic = sum(all(e.pbc) for e in entries)
    lines.append(f"  periodic in 3 directions: {periodic} of {n}")
    per_atom = [e.energy / e.natoms for e in entries if e.energy is not None]
    if per_atom:
        lines.append(f"  energy per atom: {min(per_atom):.6g} to {max(per_atom):.6g} eV/atom")
    fmax = [float(np.abs(e.forces).max()) for e in entries if e.forces is not None]
    if fmax:
        lines.append(f"  largest force component: {max(fmax):.4g} eV/Å")
    keys = Counter(k for e in entries for k in e.info)
    if keys:
        lines.append("  info keys: " + ", ".join(f"{k} ({c})" for k, c in sorted(keys.items())))
    return lines


def _groups(entries: Sequence[Entry]) -> str:
    if any(e.group is not None for e in entries):
        c, where = Counter(e.group for e in entries), ""
    else:
        key = next((k for k in SELECT_GROUP_KEYS if any(k in e.info for e in entries)), None)
        if key is None:
            return ": none (no group-from, no config_type or group info key)"
        c, where = Counter(e.info.get(key) for e in entries), f" ({key})"
    return where + ": " + ", ".join(f"{'(none)' if g is None else g} {k}"
                                    for g, k in c.items())
