"""FitSNAP's JSON training files (its ``JSON`` scraper; ``tools/VASP2JSON.py`` writes them).

Layout: an optional first comment line, then ``{"Dataset": {"Data": [{...}], "<Q>Style": unit,
...}}``; each item of ``Data`` is one structure with ``AtomTypes`` (chemical symbols),
``Positions`` ((N, 3), Cartesian), ``Lattice`` (3×3, rows are the lattice vectors), ``Energy``
(total), ``Forces`` ((N, 3)) and optionally ``Stress`` (3×3).  FitSNAP converts each quantity
from the unit its ``<Q>Style`` names into LAMMPS metal units (eV, Å, eV/Å, bar); without a style
the value is taken to be in metal units already (``fitsnap3lib/io/sections/scraper.py``).

``Stress`` is the pressure tensor, positive = compressive: ``VASP2JSON.py`` copies VASP's
``in kB`` line unchanged with ``StressStyle: "kB"``, and FitSNAP fits it to LAMMPS's pressure
(bar).  rexfit's stress (tensile positive, eV/Å³) is therefore σ = −Stress × unit.

A directory is read as FitSNAP reads its data path: every ``*.json`` below it, in sorted order,
each structure's group (``info["group"]``) the name of the directory holding its file.
"""

from __future__ import annotations

import json
import os

import numpy as np

from rexfit.datasets.formats.record import BAR, Frame, scalar_info
from rexfit.errors import InputError, Origin

# FitSNAP's unit names (fitsnap3lib/units/*.py) with their value in eV, Å, eV/Å and bar.
_RY, _HA, _BOHR = 13.6056980659, 27.2114, 0.52917721067121
UNITS = {
    "Energy": {**dict.fromkeys(("metal", "ev", "electron_volt", "electronvolt"), 1.0),
               **dict.fromkeys(("atomic", "hartree", "ha", "eh"), _HA),
               **dict.fromkeys(("ryd", "rydberg", "ry"), _RY)},
    "Positions": {**dict.fromkeys(("metal", "angstrom", "angstroms", "ang"), 1.0),
                  **dict.fromkeys(("atomic", "bohr", "au"), _BOHR)},
    "Forces": {**dict.fromkeys(("metal", "electronvoltperangstrom", "ev_per_angstrom",
                                "ev_per_ang"), 1.0),
               **dict.fromkeys(("atomic", "hartree_per_bohr", "ha_per_bohr", "ha_per_au"),
                               51.422)},
    "Stress": {**dict.fromkeys(("metal", "bars", "bar"), 1.0),
               **dict.fromkeys(("kbar", "kb"), 1000.0),
               "atm": 1.01325, "pa": 1e-5, "kpa": 0.01, "gpa": 1e4},
}
UNITS["Lattice"] = UNITS["Positions"]
_CORE = ("AtomTypes", "Positions", "Lattice", "Energy", "Forces", "Stress")


def read(path: str) -> list[Frame]:
    if os.path.isdir(path):
        files = []
        for root, dirs, names in os.walk(path):
            dirs.sort()
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".json")]
        if not files:
            raise InputError(f"{path}: the directory holds no *.json file")
        frames = []
        for f in files:
            group = os.path.basename(os.path.dirname(f))
            for fr in _read_file(f):
                fr.info.setdefault("group", group)
                fr.index = len(frames)
                frames.append(fr)
        return frames
    return _read_file(path)


def _load(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the file: {exc}") from None
    skipped = 0
    if not text.lstrip().startswith("{"):        # FitSNAP skips a first comment line
        first, _, text = text.partition("\n")
        skipped = 1
    try:
        return json.loads(text), skipped
    except json.JSONDecodeError as exc:
        raise InputError(f"not FitSNAP JSON: {exc.msg}",
                         Origin(path, exc.lineno + skipped)) from None


def _read_file(path: str) -> list[Frame]:
    obj, _ = _load(path)
    ds = obj.get("Dataset") if isinstance(obj, dict) else None
    if not isinstance(ds, dict) or not isinstance(ds.get("Data"), list):
        raise InputError(f"{path}: not FitSNAP JSON: expected {{\"Dataset\": {{\"Data\": "
                         "[...], ...}}")
    frames = []
    for k, d in enumerate(ds["Data"]):
        what = f"structure {k}" if len(ds["Data"]) > 1 else "the structure"
        if not isinstance(d, dict):
            raise InputError(f"{path}: {what} of Data is not an object")
        styles = {**{q[:-5]: v for q, v in ds.items() if q.endswith("Style")},
                  **{q[:-5]: v for q, v in d.items() if q.endswith("Style")}}
        missing = [q for q in ("AtomTypes", "Positions", "Lattice") if q not in d]
        if missing:
            raise InputError(f"{path}: {what} has no {', '.join(missing)}")

        def unit(q):
            name = str(styles.get(q, "metal"))
            table = UNITS[q]
            if name.lower() not in table:
                raise InputError(f"{path}: {q}Style '{name}' is not a unit rexfit knows for "
                                 f"{q} (known: {', '.join(sorted(set(table)))})")
            return table[name.lower()]

        def array(q):
            try:
                return np.asarray(d[q], dtype=float) * unit(q)
            except (TypeError, ValueError):
                raise InputError(f"{path}: {what}: {q} is not numeric") from None

        energy = None
        if d.get("Energy") is not None:
            try:
                energy = float(d["Energy"]) * unit("Energy")
            except (TypeError, ValueError):
                raise InputError(f"{path}: {what}: Energy {d['Energy']!r} is not a number") \
                    from None
        forces = array("Forces") if d.get("Forces") is not None else None
        stress = None
        if d.get("Stress") is not None:
            s = array("Stress")
            if s.shape != (3, 3):
                raise InputError(f"{path}: {what}: Stress has shape {s.shape}; FitSNAP JSON "
                                 "gives the full 3×3 tensor")
            stress = -s * BAR
        info = {**scalar_info({q: v for q, v in ds.items() if not q.endswith("Style")
                               and q != "Data"}),
                **scalar_info({q: v for q, v in d.items() if q not in _CORE})}
        source = f"{path}#{k}" if len(ds["Data"]) > 1 else path
        frame = Frame(array("Positions"), array("Lattice"), (True, True, True),
                      [str(x) for x in d["AtomTypes"]], energy, forces, stress, None, source,
                      what if len(ds["Data"]) > 1 else os.path.basename(path), k, info=info,
                      named={q: v for q, v in d.items() if q not in ("AtomTypes", "Positions",
                                                                      "Lattice")})
        frame.extra = (tuple(sorted(q for q in d if q not in _CORE)), ())
        frame.keys_kind = ("keys", None)
        frames.append(frame)
    return frames
