"""Any format ase.io reads, by name or by ASE's own detection (binary ASE trajectories among
them); reference data under other codes' names (REF_energy, DFT_energy, energy_corrected)
found when a file uses exactly one of them; per-frame metadata carried on each entry."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rexfit.datasets import readers as R
from rexfit.errors import InputError

CELL = np.array([[4.0, 0.0, 0.0], [0.5, 4.0, 0.0], [0.0, 0.0, 4.25]])


def frames(n=4):
    """Dyadic numbers: exact in binary, in text and in a trajectory."""
    out = []
    for k in range(n):
        a = Atoms("SiGe", positions=[[0, 0, 0], [1.25 + k / 8, 1.375, 1.5]], cell=CELL,
                  pbc=True)
        a.calc = SinglePointCalculator(
            a, energy=-10.5 + k / 4, forces=[[0.125 * k, 0, -0.25], [-0.125 * k, 0, 0.25]],
            stress=[0.0078125, -0.015625, 0.03125, 0.001953125 * k, -0.00390625, 0.0])
        a.info.update(config_type="bulk" if k % 2 == 0 else "surface", weight=1.0 + k)
        out.append(a)
    return out


def check_same(entries, atoms_list):
    assert len(entries) == len(atoms_list)
    for e, a in zip(entries, atoms_list):
        assert e.symbols == tuple(a.get_chemical_symbols())
        np.testing.assert_array_equal(e.positions, a.positions)
        np.testing.assert_array_equal(e.cell, np.asarray(a.cell))
        assert e.energy == a.calc.results["energy"]
        np.testing.assert_array_equal(e.forces, a.calc.results["forces"])
        np.testing.assert_array_equal(e.stress, a.calc.results["stress"])


def test_binary_trajectory_by_extension_and_by_name(tmp_path):
    import ase.io

    structs = frames()
    path = tmp_path / "train.traj"
    ase.io.write(path, structs)
    assert R.detect_format(path) == "ase:traj"
    check_same(R.read_dataset(path), structs)
    check_same(R.read_dataset(path, format="traj"), structs)
    other = tmp_path / "train.bin"             # no telling extension: ASE looks at the content
    other.write_bytes(path.read_bytes())
    check_same(R.read_dataset(other), structs)
    assert R.read_dataset(path)[2].source == f"{path}#2"


def test_ase_json_database_and_format_names_mapped_to_own_readers(tmp_path):
    import ase.io

    structs = frames(3)
    path = tmp_path / "set.json"
    ase.io.write(path, structs, format="json")
    assert R.detect_format(path) == "ase:json"
    check_same(R.read_dataset(path), structs)
    xyz = tmp_path / "x.data"
    ase.io.write(xyz, structs, format="extxyz")
    check_same(R.read_dataset(xyz, format="extxyz"), structs)
    assert R.resolve_format(str(xyz), "vasp-out") == "outcar"
    assert R.resolve_format(str(xyz), "traj") == "ase:traj"
    assert R.is_format_name("lammps-dump-text") and not R.is_format_name("nonsense")


def test_unreadable_binary_is_an_input_error(tmp_path):
    path = tmp_path / "broken.traj"
    path.write_bytes(b"\x00\xff" * 50)
    with pytest.raises(InputError) as exc:
        R.read_dataset(path, format="traj")
    assert str(path) in str(exc.value) and "cannot read the file as traj" in str(exc.value)


def test_info_carries_group_and_weight(tmp_path):
    import ase.io

    path = tmp_path / "w.xyz"
    ase.io.write(path, frames(), format="extxyz")
    entries = R.read_dataset(path)
    assert [e.info["weight"] for e in entries] == [1.0, 2.0, 3.0, 4.0]
    assert [e.info["config_type"] for e in entries] == ["bulk", "surface"] * 2
    with pytest.raises(TypeError):
        entries[0].info["weight"] = 5.0        # read-only


def renamed(structs, **names):
    """Frames with energy/forces/stress moved to info keys/arrays named by ``names``."""
    out = []
    for a in structs:
        res = dict(a.calc.results)
        b = a.copy()
        b.calc = None
        for q, name in names.items():
            if q == "forces":
                b.arrays[name] = res[q]
            else:
                b.info[name] = res[q]
        out.append(b)
    return out


@pytest.mark.parametrize("energy, forces, stress", [
    ("REF_energy", "REF_forces", "REF_stress"),
    ("DFT_energy", "DFT_forces", None),
    ("energy_corrected", "forces_dft", None),
])
def test_other_codes_names_are_found_when_unambiguous(tmp_path, energy, forces, stress):
    import ase.io

    structs = frames()
    names = {"energy": energy, "forces": forces, **({"stress": stress} if stress else {})}
    path = tmp_path / "ref.xyz"
    ase.io.write(path, renamed(structs, **names), format="extxyz")
    entries = R.read_dataset(path)
    for e, a in zip(entries, structs):
        assert e.energy == a.calc.results["energy"]
        np.testing.assert_array_equal(e.forces, a.calc.results["forces"])
        if stress:
            np.testing.assert_array_equal(e.stress, a.calc.results["stress"])
        else:
            assert e.stress is None


def test_two_candidate_names_are_not_guessed(tmp_path):
    import ase.io

    structs = renamed(frames(), energy="REF_energy")
    for a in structs:
        a.info["DFT_energy"] = a.info["REF_energy"] + 1.0
    path = tmp_path / "two.xyz"
    ase.io.write(path, structs, format="extxyz")
    assert all(e.energy is None for e in R.read_dataset(path))
    picked = R.read_dataset(path, keys={"energy": "DFT_energy"})
    assert [e.energy for e in picked] == [a.info["DFT_energy"] for a in structs]
    with pytest.raises(InputError) as exc:
        R.read_dataset(path, use=("energy",))
    assert 'energy-key="' in str(exc.value)


def test_ase_energy_wins_over_candidates(tmp_path):
    import ase.io

    structs = frames()
    for a in structs:
        a.info["REF_energy"] = 99.0
    path = tmp_path / "both.xyz"
    ase.io.write(path, structs, format="extxyz")
    assert [e.energy for e in R.read_dataset(path)] == [a.calc.results["energy"]
                                                         for a in structs]


def test_frames_lacking_a_used_quantity_warn_with_counts(tmp_path):
    import ase.io

    structs = frames()
    for k in (1, 3):
        res = dict(structs[k].calc.results)
        del res["stress"]
        structs[k].calc = SinglePointCalculator(structs[k], **res)
    path = tmp_path / "partial.xyz"
    ase.io.write(path, structs, format="extxyz")
    with pytest.warns(Warning) as record:
        entries = R.read_dataset(path, use=("energy", "forces", "stress"))
    assert len(entries) == 4
    (w,) = record
    assert "stress missing in 2 of 4 entries (frame 1, frame 3)" in str(w.message)
    assert w.message.error.origin.line == 1 + 4      # frame 1 starts after 2 + 2 lines
    got = []
    R.read_dataset(path, use=("energy", "stress"), warn=got.append)
    assert len(got) == 1 and got[0].severity == "warning"
    R.read_dataset(path, use=("energy", "forces"), warn=got.append)   # nothing missing
    assert len(got) == 1
