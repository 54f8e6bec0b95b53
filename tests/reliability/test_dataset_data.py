"""Silent empty or partial dataset data: an entry that brings nothing the dataset fits (data
under several other codes' names, no energy at all, a stress without a cell) stops the run
with exit 2 and ``file:line: message`` naming the frame, the keys it has and the attribute
that names them; data under one other code's name (REF_energy, ...) is found; with
``energy-key``/``forces-key``/``stress-key`` the same data fit exactly as under ASE's own
names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from rexfit.cli import main
from rexfit.datasets import readers as R
from rexfit.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "jobs" / "si-sw-dataset"
NFRAMES = 4

JOB = """<?xml version="1.0"?>
<job>
  <name>dataset data</name>
  <atom-types><species>Si</species></atom-types>
  <potentials>
    <stillinger-weber id="Si" species-a="*" species-b="*">
      <param-file>Si_start.sw</param-file>
      <fit-dof><A/></fit-dof>
    </stillinger-weber>
  </potentials>
  <structures>
    <dataset id="si">
      <file{attrs}>{file}</file>
      <properties>{properties}</properties>
    </dataset>
  </structures>
  <fitting><BFGS max-iter="2"/></fitting>
</job>
"""
ALL = "<atomic-energy/><atomic-forces/><stress/>"


def frames():
    """The first NFRAMES frames of the example dataset (8-atom periodic Si cells)."""
    return ase.io.read(DATA / "si.xyz", f":{NFRAMES}")


def renamed(atoms_list, energy=None, forces=None, stress=None, only=None):
    """Frames with their data moved from ASE's names to info keys/arrays of other names
    (None: dropped); ``only``: indices of the frames changed (default all)."""
    out = []
    for k, a in enumerate(atoms_list):
        a = a.copy()
        calc = a.calc if hasattr(a, "calc") else None
        res = dict(atoms_list[k].calc.results)
        a.calc = None
        if only is not None and k not in only:
            a.calc = SinglePointCalculator(a, **res)
        else:
            if energy:
                a.info[energy] = res["energy"]
            if forces:
                a.arrays[forces] = res["forces"]
            if stress:
                a.info[stress] = res["stress"]
        del calc
        out.append(a)
    return out


def frame_line(k: int, natoms: int = 8) -> int:
    return k * (natoms + 2) + 1


def write_job(tmp_path, atoms_list, attrs="", properties=ALL, name="data.xyz"):
    shutil.copyfile(DATA / "Si_start.sw", tmp_path / "Si_start.sw")
    ase.io.write(tmp_path / name, atoms_list, format="extxyz")
    job = tmp_path / "job.xml"
    job.write_text(JOB.format(attrs=attrs, file=name, properties=properties))
    return job


def run(job, capsys, *extra):
    code = main([str(job), "-q", "--output-dir", str(job.parent / "out"), *extra])
    return code, capsys.readouterr().err


def assert_input_error(code, err, file, line, *fragments):
    assert code == 2, err
    assert "Traceback" not in err, err
    hits = [ln for ln in err.splitlines() if ln.startswith(f"{file}:{line}: ")]
    assert hits, f"no error at {file}:{line}: in {err!r}"
    assert any(all(f in h for f in fragments) for h in hits), (fragments, hits)


STYLES = {  # name: (energy key, forces key, stress key) as written by the code named
    "pacemaker-mace": ("REF_energy", "REF_forces", "REF_stress"),
    "dft": ("DFT_energy", "DFT_forces", None),
    "corrected": ("energy_corrected", "forces_dft", None),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_data_under_one_other_name_is_found(style, tmp_path):
    """A file that uses exactly one of the names other codes give the data is read as if
    the data were under ASE's names."""
    e, f, s = STYLES[style]
    ase.io.write(tmp_path / "data.xyz", renamed(frames(), e, f, s), format="extxyz")
    got = R.read_dataset(tmp_path / "data.xyz", use=("energy", "forces") + (("stress",) if s
                                                                          else ()))
    for entry, atoms in zip(got, frames()):
        assert entry.energy == atoms.calc.results["energy"]
        np.testing.assert_array_equal(entry.forces, atoms.calc.results["forces"])
        assert (entry.stress is None) == (s is None)


def test_data_under_two_other_names_is_an_error_naming_them(tmp_path, capsys):
    """Two candidate names in one file are not guessed between: exit 2 naming them."""
    atoms = renamed(frames(), "REF_energy", "REF_forces", "REF_stress")
    for a in atoms:
        a.info["DFT_energy"] = a.info["REF_energy"]
        a.arrays["DFT_forces"] = a.arrays["REF_forces"]
        a.info["DFT_stress"] = a.info["REF_stress"]
    job = write_job(tmp_path, atoms)
    code, err = run(job, capsys)
    path = tmp_path / "data.xyz"
    assert_input_error(code, err, path, 1, "frame 0 has no energy, forces or stress",
                       f"{NFRAMES} of {NFRAMES} entries", "REF_energy", "DFT_forces",
                       'energy-key="', 'forces-key="', 'stress-key="')
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("k", [1, NFRAMES - 1])
def test_one_frame_without_data_is_named_with_its_line(k, tmp_path, capsys):
    job = write_job(tmp_path, renamed(frames(), only={k}))  # frame k: all data dropped
    code, err = run(job, capsys)
    assert_input_error(code, err, tmp_path / "data.xyz", frame_line(k),
                       f"frame {k} has no energy, forces or stress", "holds no reference data")


def test_frames_with_only_unfitted_data(tmp_path, capsys):
    job = write_job(tmp_path, renamed(frames(), forces="forces", only={2}),
                    properties="<atomic-energy/>")
    # frame 2 keeps only its forces (written back under ASE's name); the dataset fits energy
    code, err = run(job, capsys)
    assert_input_error(code, err, tmp_path / "data.xyz", frame_line(2),
                       "frame 2 has only forces", "<atomic-forces/>")


def test_stress_without_cell_is_an_error(tmp_path, capsys):
    atoms = frames()
    mol = atoms[2].copy()
    res = dict(atoms[2].calc.results)
    mol.set_cell(np.zeros((3, 3)))
    mol.pbc = False
    mol.calc = SinglePointCalculator(mol, **res)
    atoms[2] = mol
    job = write_job(tmp_path, atoms)
    code, err = run(job, capsys)
    assert_input_error(code, err, tmp_path / "data.xyz", frame_line(2),
                       "frame 2", "stress but no periodic cell")


def test_named_key_missing_everywhere(tmp_path, capsys):
    job = write_job(tmp_path, renamed(frames(), "REF_energy", "REF_forces"),
                    attrs=' energy-key="REF_energy" forces-key="REF_force"')
    code, err = run(job, capsys)
    assert_input_error(code, err, tmp_path / "data.xyz", 1, 'forces-key="REF_force"',
                       "REF_forces")


def test_keys_on_a_format_without_names(tmp_path, capsys):
    shutil.copyfile(DATA / "Si_start.sw", tmp_path / "Si_start.sw")
    ase.io.write(tmp_path / "POSCAR", frames()[0], format="vasp")
    job = tmp_path / "job.xml"
    job.write_text(JOB.format(attrs=' energy-key="E"', file="POSCAR", properties=ALL))
    code, err = run(job, capsys)
    assert code == 2 and "Traceback" not in err
    assert "energy-key: a poscar file stores no data under names of its own" in err


def test_empty_key_attribute_is_invalid(tmp_path, capsys):
    job = write_job(tmp_path, frames(), attrs=' energy-key=" "')
    code = main(["validate", str(job)])
    err = capsys.readouterr().err
    assert code == 2 and re.search(r"job\.xml:\d+: <file> energy-key is empty", err), err


def test_renamed_keys_fit_exactly_as_ase_names(tmp_path, capsys):
    """The same frames under REF_* keys with energy-key/forces-key/stress-key give the same
    objective as under ASE's names."""
    values = {}
    for case, (atoms, attrs) in {
        "ase": (frames(), ""),
        "ref": (renamed(frames(), "REF_energy", "REF_forces", "REF_stress"),
                ' energy-key="REF_energy" forces-key="REF_forces" stress-key="REF_stress"'),
    }.items():
        d = tmp_path / case
        d.mkdir()
        job = write_job(d, atoms, attrs=attrs)
        code, err = run(job, capsys, "--no-fit")
        assert code == 0, err
        values[case] = json.loads((d / "out" / "results.json").read_text())["objective"]
    assert values["ref"]["training"] == values["ase"]["training"] > 0


def test_reader_keys_in_an_ase_database(tmp_path):
    import ase.db

    atoms = frames()
    path = tmp_path / "data.db"
    with ase.db.connect(path) as db:
        for a in atoms:
            res = a.calc.results
            plain = a.copy()
            plain.calc = None
            db.write(plain, key_value_pairs={"REF_energy": res["energy"]},
                     data={"REF_forces": res["forces"]})
    named = R.read_dataset(path, keys={"energy": "REF_energy", "forces": "REF_forces"},
                           use=("energy", "forces"))
    found = R.read_dataset(path, use=("energy", "forces"))   # the only REF_* names: found
    for got in (named, found):
        for e, a in zip(got, atoms):
            assert e.energy == a.calc.results["energy"]
            np.testing.assert_array_equal(e.forces, a.calc.results["forces"])


# ----------------------------------------------------------------------------- fuzzed numbers

BAD = ("nan", "inf", "x1", "-inf", "NaN", "1e999")


def atom_lines(text: str) -> list[tuple[int, int]]:
    """(line, frame start line) of every atom line of an extxyz text."""
    lines = text.splitlines()
    out, k = [], 0
    while k < len(lines):
        n = int(lines[k].split()[0])
        out += [(k + 3 + i, k + 1) for i in range(n)]
        k += n + 2
    return out


@pytest.mark.parametrize("k", range(6))
def test_bad_number_in_extxyz_names_its_line(k, tmp_path):
    text = (DATA / "si.xyz").read_text()
    spots = atom_lines(text)
    rng = np.random.default_rng(50 + k)
    line, start = spots[int(rng.integers(len(spots)))]
    column = 1 + int(rng.integers(6))  # x y z fx fy fz
    word = BAD[k]
    lines = text.splitlines()
    words = lines[line - 1].split()
    words[column] = word
    lines[line - 1] = " ".join(words)
    path = tmp_path / "bad.xyz"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        R.read_dataset(path, use=("energy", "forces"))
    err = info.value
    assert err.origin is not None and err.origin.path == str(path)
    if word == "x1":  # not a number: ASE's parse error, at the line of the word
        assert err.origin.line == line, str(err)
    else:  # a number that is not finite: the frame's line, and the atom's line in the text
        assert err.origin.line == start, str(err)
        assert f"(line {line})" in err.message and "not finite" in err.message, str(err)


def test_bad_force_stops_the_command_line(tmp_path, capsys):
    atoms = frames()
    atoms[1].calc.results["forces"][3, 1] = np.nan
    job = write_job(tmp_path, atoms)
    code, err = run(job, capsys)
    assert_input_error(code, err, tmp_path / "data.xyz", frame_line(1),
                       "frame 1: forces of atom 3", f"(line {frame_line(1) + 5})")
