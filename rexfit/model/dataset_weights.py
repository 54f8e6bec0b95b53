"""Per-entry weights of a ``<dataset>`` from its ``<group-weight>`` children and per-frame weight
keys (``weight-key``, ``energy-weight-key``, ``forces-weight-key``, ``stress-weight-key``).

Every factor multiplies the squared residuals of its quantity (none is normalised):

    w_P(e) = w_group(e) · w_group,P(e) · k(e) · k_P(e)

with the group's ``weight`` and its ``energy``/``forces``/``stress`` factor, and the per-frame
values k (all quantities) and k_P (one quantity; the forces' may be one number per atom).
Energy-based weighting, when the dataset has it, multiplies on top (see
:mod:`rexfit.model.datasets`).  Problems are :class:`~rexfit.errors.InputError` located at the
``<dataset>``/``<group-weight>`` element or the ``<file>`` the frame came from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from rexfit.datasets.readers import SELECT_GROUP_KEYS, Entry, detect_format
from rexfit.errors import InputError, Origin
from rexfit.job import spec as s

#: Per-frame group keys looked up (first found) when a dataset has group weights and an
#: entry's file gave it no group: the ones <file group="..."> selects by.
DEFAULT_GROUP_KEYS = SELECT_GROUP_KEYS
#: Quantities a weight key may weight ("all": every quantity of the entry).
KEY_ATTRIBUTE = {"all": "weight-key", "energy": "energy-weight-key",
                 "forces": "forces-weight-key", "stress": "stress-weight-key"}
#: Entries named at most in one message.
MAX_NAMED = 3


@dataclass(frozen=True, eq=False)
class EntryWeights:
    """The weights of one entry: its group, the factor of all its quantities and one factor
    per quantity ("energy", "stress": float; "forces": float or (N,) per atom)."""

    group: str | None = None
    weight: float = 1.0
    quantity: dict = field(default_factory=dict)


class FrameKeys:
    """Per-frame values (extxyz info keys and per-atom arrays, ASE database key-value pairs
    and data) of dataset entries, each file read at most once.

    An entry's own ``info`` (the readers' per-frame metadata) is looked at first; a key not
    there (an extxyz per-atom array, say) is looked up in the file, read again with ASE
    (extxyz and ASE databases)."""

    def __init__(self) -> None:
        self._frames: dict[str, list] = {}

    def value(self, entry: Entry, key: str, fmt: str | None):
        """The value of ``key`` for ``entry`` (a number, a string or an array), or None."""
        for name in ("info", "arrays"):
            own = getattr(entry, name, None)
            if isinstance(own, Mapping) and key in own:
                return own[key]
        path, sep, where = entry.source.rpartition("#")
        if not sep:
            return None  # POSCAR / PYFIT-FF blocks ("path:LINE") carry no keys
        try:
            fmt = fmt or detect_format(path)
        except InputError:
            return None
        if fmt == "db" and where.startswith("id="):
            row = self._db_rows(path).get(int(where[3:]))
            if row is None:
                return None
            pairs, data = row
            return pairs.get(key, data.get(key))
        if fmt in ("extxyz", "xyz") and where.isdigit():
            frames = self._extxyz(path)
            k = int(where)
            if k >= len(frames):
                return None
            info, arrays = frames[k]
            return info.get(key, arrays.get(key))
        return None

    def _extxyz(self, path: str) -> list:
        if path not in self._frames:
            import ase.io

            self._frames[path] = [(dict(a.info), dict(a.arrays))
                                  for a in ase.io.read(path, index=":", format="extxyz")]
        return self._frames[path]

    def _db_rows(self, path: str) -> dict:
        if path not in self._frames:
            from ase.db import connect

            with connect(path) as db:
                self._frames[path] = {row.id: (dict(row.key_value_pairs), dict(row.data))
                                      for row in db.select()}
        return self._frames[path]


def _named(sources: list[str]) -> str:
    more = f" and {len(sources) - MAX_NAMED} more" if len(sources) > MAX_NAMED else ""
    return ", ".join(sources[:MAX_NAMED]) + more


def _number(value, what: str, entry: Entry, origin: Origin, natoms: int | None = None):
    """``value`` as a finite weight ≥ 0 (a float, or with ``natoms`` possibly (natoms,))."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} of entry {entry.source} is {value!r}, not a number",
                         origin) from None
    if arr.size == 1:
        out = float(arr.reshape(-1)[0])
        ok = math.isfinite(out) and out >= 0
    elif natoms is not None and arr.size == natoms:
        out = arr.reshape(natoms).copy()
        out.setflags(write=False)
        ok = bool(np.all(np.isfinite(out)) and np.all(out >= 0))
    else:
        shape = "one number" + (f" or {natoms} (one per atom)" if natoms is not None else "")
        raise InputError(f"{what} of entry {entry.source} has {arr.size} values; expected "
                         f"{shape}", origin)
    if not ok:
        raise InputError(f"{what} of entry {entry.source} must be finite and ≥ 0, got "
                         f"{value!r}", origin)
    return out


def entry_weights(ds: s.DatasetSpec, entries: list[Entry], origins: list[Origin],
                  formats: list[str | None]) -> list[EntryWeights]:
    """The :class:`EntryWeights` of ``entries`` (read from the files with ``origins`` and
    ``formats``, one per entry) under the group weights and weight keys of ``ds``."""
    if not ds.group_weights and not ds.weight_keys:
        return [EntryWeights(group=e.group) for e in entries]
    keys = FrameKeys()
    groups: list[str | None] = [e.group for e in entries]
    if ds.group_weights:  # entries without a group from their file: config_type, group
        for k, e in enumerate(entries):
            for key in DEFAULT_GROUP_KEYS:
                if groups[k] is not None:
                    break
                value = keys.value(e, key, formats[k])
                groups[k] = None if value is None else str(value)
        present = {g for g in groups if g is not None}
        for gw in ds.group_weights:
            if gw.group not in present:
                found = (f"its entries' groups are {', '.join(sorted(present))}" if present else
                         "no entry has a group: name where groups come from with group-from "
                         f"on the <file> (or store a {DEFAULT_GROUP_KEYS[0]} key in each "
                         "frame)")
                raise InputError(f"<group-weight group='{gw.group}'>: no entry of dataset "
                                 f"'{ds.id}' is in this group; {found}", gw.origin)
    by_group = {gw.group: gw for gw in ds.group_weights}
    values: dict[str, list] = {}
    for quantity, key in ds.weight_keys:
        attr = KEY_ATTRIBUTE[quantity]
        found = [keys.value(e, key, fmt) for e, fmt in zip(entries, formats)]
        missing = [k for k, v in enumerate(found) if v is None]
        if missing:
            first = missing[0]
            where = os.path.basename(entries[first].source.rpartition("#")[0]
                                     or entries[first].source)
            raise InputError(
                f"dataset '{ds.id}': {attr}=\"{key}\": {len(missing)} of {len(entries)} entries "
                f"have no per-frame value '{key}' ({_named([entries[k].source for k in missing])}); "
                f"give every frame of {where} a '{key}' key or remove {attr}", ds.origin)
        what = f"{attr}=\"{key}\""
        values[quantity] = [
            _number(v, what, e, origins[k], e.natoms if quantity == "forces" else None)
            for k, (e, v) in enumerate(zip(entries, found))]
    out = []
    for k, e in enumerate(entries):
        gw = by_group.get(groups[k])
        weight = 1.0 if gw is None else gw.weight
        if "all" in values:
            weight *= values["all"][k]
        quantity = {}
        for q in ("energy", "forces", "stress"):
            factor = 1.0 if gw is None else getattr(gw, q)
            if q in values:
                factor = factor * values[q][k]
            quantity[q] = factor
        out.append(EntryWeights(group=groups[k], weight=weight, quantity=quantity))
    return out
