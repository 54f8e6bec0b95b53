"""pacemaker's training data: a pickled pandas DataFrame, usually gzip-compressed
(``*.pckl.gzip``), one row per structure.

Columns read: ``ase_atoms`` (the structure), ``energy`` (total energy, eV), ``forces``
((N, 3) eV/Å), ``energy_corrected`` (energy minus the free-atom energies, eV: used as the
energy when there is no ``energy`` column, or with ``energy-key``), ``w_energy`` (per-structure
weight) and ``w_forces`` ((N,) per-atom force weights), carried in ``Entry.info``; other scalar
columns (``name``, ...) go to ``info`` too.  pandas is needed to unpickle the file; it is not a
dependency of rexfit.  Unpickling runs code from the file: read only files you trust.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np

from rexfit.datasets.formats.record import Frame, scalar_info
from rexfit.errors import InputError

#: Columns that are reference data rather than metadata.
_DATA = ("ase_atoms", "energy", "forces", "stress", "energy_corrected")
_GZIP_MAGIC = b"\x1f\x8b"


def read(path: str) -> list[Frame]:
    if importlib.util.find_spec("pandas") is None:
        raise InputError(f"{path}: reading pacemaker's pickled DataFrame needs pandas, which "
                         "is not installed: pip install pandas (or convert the file to extxyz "
                         "where pandas is installed)")
    import pandas as pd

    with open(path, "rb") as fh:
        magic = fh.read(2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = pd.read_pickle(path, compression="gzip" if magic == _GZIP_MAGIC else None)
    except Exception as exc:  # pickle, gzip and pandas raise many types
        raise InputError(f"{path}: cannot read the file as pacemaker's pickled DataFrame: "
                         f"{str(exc) or type(exc).__name__}") from None
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{path}: the pickle holds a {type(df).__name__}, not a pandas "
                         "DataFrame as pacemaker writes")
    if "ase_atoms" not in df.columns:
        raise InputError(f"{path}: the DataFrame has no 'ase_atoms' column (columns: "
                         f"{', '.join(map(str, df.columns))})")
    columns = [str(c) for c in df.columns]
    frames = []
    for k, (label, row) in enumerate(df.iterrows()):
        atoms = row["ase_atoms"]
        what = f"row {k} (index {label})"
        if not hasattr(atoms, "get_chemical_symbols"):
            raise InputError(f"{path}: {what}: ase_atoms is a {type(atoms).__name__}, not an "
                             "ASE Atoms object")
        res = atoms.calc.results if getattr(atoms, "calc", None) is not None else {}
        energy = _value(row, "energy", res.get("energy"))
        forces = _value(row, "forces", res.get("forces"))
        info = {**scalar_info(atoms.info), **scalar_info(
            {c: row[c] for c in columns if c not in _DATA and c != "w_forces"})}
        if "w_forces" in columns and _present(row["w_forces"]):
            info["w_forces"] = np.asarray(row["w_forces"], dtype=float)
        alternatives = {"energy": {}, "forces": {}, "stress": {}}
        if "energy_corrected" in columns and _present(row["energy_corrected"]):
            alternatives["energy"]["energy_corrected"] = row["energy_corrected"]
        others = {c: row[c] for c in columns if c != "ase_atoms" and _present(row[c])}
        frame = Frame(atoms.positions, np.asarray(atoms.cell), atoms.pbc,
                      atoms.get_chemical_symbols(), energy, forces, None, None,
                      f"{path}#{k}", what, k, info=info, alternatives=alternatives,
                      named=others)
        frame.extra = (tuple(sorted(others)), ())
        frame.keys_kind = ("columns", None)
        frames.append(frame)
    return frames


def _present(v) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and np.isnan(v):
        return False
    return True


def _value(row, column: str, default):
    if column in row.index and _present(row[column]):
        return row[column]
    return default
