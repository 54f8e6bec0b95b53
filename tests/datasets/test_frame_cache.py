"""Frames ase.io parsed, kept in the cache directory (rexfit.datasets.frame_cache): a second
read of the same file gives the same entries as ase.io's (every field, dtype and value)
without importing ase.io; a changed file or a damaged entry is parsed again; frames an entry
cannot hold are not kept."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import write

from rexfit.datasets import frame_cache
from rexfit.datasets.readers import read_dataset

ROOT = Path(__file__).resolve().parents[2]


def frames():
    """Frames with what extxyz files carry: info of every kind, extra per-atom arrays, energy,
    free energy, forces and stress; a molecule without a cell."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", 3.6 + 0.01 * k, cubic=True).repeat((1, 1, 2))
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.info.update(config_type=f"bulk{k % 2}", step=k, temperature=300.5 + k,
                          relaxed=bool(k % 2), virial=rng.normal(size=(3, 3)))
        atoms.arrays["w_forces"] = rng.random(len(atoms))
        atoms.arrays["REF_forces"] = rng.normal(size=(len(atoms), 3))
        atoms.calc = SinglePointCalculator(
            atoms, energy=-3.5 * len(atoms) + rng.normal(), free_energy=-3.4 * len(atoms),
            forces=rng.normal(size=(len(atoms), 3)), stress=rng.normal(size=6) * 1e-3)
        out.append(atoms)
    water = molecule("H2O")
    water.info["config_type"] = "molecule"
    water.calc = SinglePointCalculator(water, energy=-14.2, forces=np.ones((3, 3)))
    out.append(water)
    return out


def same(a, b) -> None:
    """Entries equal field by field (arrays: dtype, shape and every value)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for field in dataclasses.fields(x):
            u, v = getattr(x, field.name), getattr(y, field.name)
            if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
                assert u.dtype == v.dtype and np.array_equal(u, v), field.name
            elif isinstance(u, dict) or hasattr(u, "items"):
                assert dict(u).keys() == dict(v).keys(), field.name
                for key in dict(u):
                    p, q = u[key], v[key]
                    assert type(p) is type(q), (field.name, key)
                    assert np.array_equal(p, q), (field.name, key)
            else:
                assert type(u) is type(v) and u == v, field.name


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("REXFIT_FRAME_CACHE", raising=False)
    frame_cache.enable(tmp_path / "frames")
    yield tmp_path / "frames"
    frame_cache.enable(None)


@pytest.mark.parametrize("name", ["data.xyz", "data.traj"])
def test_second_read_gives_the_same_entries(tmp_path, cache, name):
    path = tmp_path / name
    write(path, frames())
    # (a trajectory keeps neither the extra arrays nor the info)
    kw = dict(group_from="info:config_type", keys={"forces": "REF_forces"}) \
        if name.endswith(".xyz") else {}
    frame_cache.enable(None)
    parsed = read_dataset(path, **kw)
    frame_cache.enable(cache)
    first = read_dataset(path, **kw)  # parsed and kept
    assert len(list(cache.glob("*.npz"))) == 1
    second = read_dataset(path, **kw)  # read back
    same(parsed, first)
    same(parsed, second)
    same(read_dataset(path), read_dataset(path, format="extxyz" if name.endswith("xyz")
                                          else None))


def test_changed_file_and_damaged_entry_are_parsed_again(tmp_path, cache):
    path = tmp_path / "data.xyz"
    write(path, frames()[:2])
    first = read_dataset(path)
    write(path, frames()[:3])
    changed = read_dataset(path)
    assert len(first) == 2 and len(changed) == 3
    assert len(list(cache.glob("*.npz"))) == 2
    for entry in cache.glob("*.npz"):
        entry.write_bytes(b"not an npz")
    again = read_dataset(path)
    same(changed, again)


def test_frames_with_constraints_are_not_kept(tmp_path, cache):
    atoms = frames()[0]
    atoms.set_constraint(FixAtoms(indices=[0]))
    path = tmp_path / "fixed.traj"
    write(path, [atoms])
    read_dataset(path)
    assert not list(cache.glob("*.npz"))


def test_a_run_reading_its_frames_back_does_not_import_ase_io(tmp_path):
    """Two processes read the same file with the cache on: the first imports ase.io, the
    second does not."""
    path = tmp_path / "data.xyz"
    write(path, frames())
    code = ("import sys; from rexfit.datasets import frame_cache; "
            "from rexfit.datasets.readers import read_dataset; "
            f"frame_cache.enable({str(tmp_path / 'frames')!r}); "
            f"print(len(read_dataset({str(path)!r})), 'ase.io' in sys.modules)")
    env = {"REXFIT_FRAME_CACHE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout.split() for _ in range(2)]
    assert outs == [["5", "True"], ["5", "False"]]
