"""pacemaker's training data: a gzip-compressed pickled pandas DataFrame written by pandas
itself (columns ase_atoms, energy / energy_corrected, forces, w_energy, w_forces); without
pandas a clear input error (exit 2) that says to install it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from ase import Atoms

from rexfit.cli import main
from rexfit.datasets import readers as R
from rexfit.errors import InputError

CELL = np.array([[4.0, 0.0, 0.0], [0.5, 4.0, 0.0], [0.0, 0.0, 4.25]])


def structures():
    out = []
    for k in range(3):
        a = Atoms("Si2Ge", positions=[[0, 0, 0], [1.25, 1.375 + k / 8, 1.5], [2, 2, 2.5]],
                  cell=CELL, pbc=True)
        out.append(a)
    return out


def forces(k):
    return np.array([[0.125 * k, 0, -0.25], [-0.125 * k, 0, 0.25], [0.0, 0.5, 0.0]])


def write_pacemaker(path, with_energy=True):
    pd = pytest.importorskip("pandas")
    atoms = structures()
    data = {"name": [f"s{k}" for k in range(3)], "ase_atoms": atoms,
            "energy_corrected": [-1.5 - k / 4 for k in range(3)],
            "forces": [forces(k) for k in range(3)],
            "w_energy": [0.5, 0.25, 0.25],
            "w_forces": [np.full(3, 1 / 9.0) for _ in range(3)]}
    if with_energy:
        data["energy"] = [-10.5 - k / 4 for k in range(3)]
    pd.DataFrame(data).to_pickle(path, compression="gzip")
    return atoms


def test_dataframe_written_by_pandas(tmp_path):
    path = tmp_path / "train.pckl.gzip"
    atoms = write_pacemaker(path)
    assert R.detect_format(path) == "pacemaker"
    entries = R.read_dataset(path, use=("energy", "forces"))
    assert [e.energy for e in entries] == [-10.5, -10.75, -11.0]
    for k, (e, a) in enumerate(zip(entries, atoms)):
        np.testing.assert_array_equal(e.positions, a.positions)
        np.testing.assert_array_equal(e.cell, CELL)
        np.testing.assert_array_equal(e.forces, forces(k))
        assert e.stress is None and e.symbols == ("Si", "Si", "Ge")
        np.testing.assert_array_equal(e.info["w_forces"], np.full(3, 1 / 9.0))
        assert e.info["name"] == f"s{k}"
    assert [e.info["w_energy"] for e in entries] == [0.5, 0.25, 0.25]
    corrected = R.read_dataset(path, keys={"energy": "energy_corrected"})
    assert [e.energy for e in corrected] == [-1.5, -1.75, -2.0]
    picked = R.read_dataset(path, select="name=s1|s2", index="1:")
    assert [e.info["name"] for e in picked] == ["s1", "s2"]


def test_energy_corrected_alone_is_the_energy(tmp_path):
    path = tmp_path / "corr.pkl.gz"
    write_pacemaker(path, with_energy=False)
    assert [e.energy for e in R.read_dataset(path)] == [-1.5, -1.75, -2.0]


def test_not_a_dataframe(tmp_path):
    pytest.importorskip("pandas")
    import gzip
    import pickle

    path = tmp_path / "list.pckl.gzip"
    with gzip.open(path, "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(InputError, match="not a pandas DataFrame"):
        R.read_dataset(path)


def test_without_pandas_exit_2_says_install_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "train.pckl.gzip"
    path.write_bytes(b"\x1f\x8b not really")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pandas" else real(name, *a))
    with pytest.raises(InputError, match="pip install pandas"):
        R.read_dataset(path)
    assert main(["dataset-info", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "pip install pandas" in err and "Traceback" not in err
