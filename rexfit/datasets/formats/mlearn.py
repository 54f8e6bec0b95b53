"""pymatgen Structure dicts with DFT outputs, as the mlearn benchmark data publishes them
(Zuo et al., J. Phys. Chem. A 124, 731 (2020); ``data/<element>/training.json``).

Layout: a JSON list of ``{"structure": Structure.as_dict(), "outputs": {"energy", "forces",
"virial_stress"}, "group", "description", "tag", "num_atoms", ...}``.  The structure dict is
parsed here without pymatgen: ``lattice.matrix`` (rows are the lattice vectors, Å), each of
``sites`` with ``xyz`` (Cartesian, Å) or else ``abc`` (fractional) and ``species[0].element``.
``energy`` is the total energy (eV), ``forces`` (N, 3) eV/Å.

``virial_stress`` holds six numbers in kbar, in the order xx yy zz xy xz yz (LAMMPS's pxx pyy
pzz pxy pxz pyz, not VASP's xx yy zz xy yz zx) with the pressure sign (positive = compressive,
as VASP and LAMMPS print it); rexfit's stress is σ = −virial_stress × 0.1 GPa, reordered.  The
order and sign were checked against LAMMPS with mlearn's published Mo SNAP on the Mo elastic
structures (docs/datasets-formats.md).  A single object (one structure) is read too.
"""

from __future__ import annotations

import json

import numpy as np

from rexfit.datasets.formats.record import KBAR, Frame, scalar_info
from rexfit.errors import InputError, Origin

#: Position in ``virial_stress`` of rexfit's Voigt components xx yy zz yz xz xy.
VOIGT_FROM_MLEARN = (0, 1, 2, 5, 4, 3)


def read(path: str) -> list[Frame]:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", Origin(path, exc.lineno)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the file: {exc}") from None
    docs = obj if isinstance(obj, list) else [obj]
    frames = []
    for k, doc in enumerate(docs):
        what = f"item {k}"
        if not isinstance(doc, dict) or not isinstance(doc.get("structure"), dict):
            raise InputError(f"{path}: {what} is not a {{\"structure\": ..., \"outputs\": ...}} "
                             "object as mlearn writes")
        positions, cell, symbols = _structure(doc["structure"], path, what)
        out = doc.get("outputs") or {}
        if not isinstance(out, dict):
            raise InputError(f"{path}: {what}: outputs is not an object")
        stress = None
        if out.get("virial_stress") is not None:
            try:
                v = np.asarray(out["virial_stress"], dtype=float)
            except (TypeError, ValueError):
                raise InputError(f"{path}: {what}: virial_stress is not numeric") from None
            if v.shape != (6,):
                raise InputError(f"{path}: {what}: virial_stress has shape {v.shape}, "
                                 "expected 6 numbers (xx yy zz xy xz yz, kbar)")
            stress = -v[list(VOIGT_FROM_MLEARN)] * KBAR
        info = scalar_info({q: v for q, v in doc.items() if q not in ("structure", "outputs")})
        frame = Frame(positions, cell, (True, True, True), symbols, out.get("energy"),
                      out.get("forces"), stress, None, f"{path}#{k}", what, k, info=info,
                      named=dict(out))
        frame.extra = (tuple(sorted(str(q) for q in out)), ())
        frame.keys_kind = ("outputs", None)
        frames.append(frame)
    return frames


def _structure(s: dict, path: str, what: str):
    try:
        cell = np.asarray(s["lattice"]["matrix"], dtype=float)
        sites = s["sites"]
        symbols = [site["species"][0]["element"] for site in sites]
        if all("xyz" in site for site in sites):
            positions = np.asarray([site["xyz"] for site in sites], dtype=float)
        else:
            positions = np.asarray([site["abc"] for site in sites], dtype=float) @ cell
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: {what}: not a pymatgen Structure dict (lattice.matrix, "
                         f"sites[].xyz or abc, sites[].species[].element): {exc!r}") from None
    if any(len(site["species"]) != 1 for site in sites):
        raise InputError(f"{path}: {what}: a site with several species (disorder) cannot be "
                         "fitted")
    return positions, cell, symbols
