"""Dataset readers: every format read back exactly, units and signs, groups, energy shift,
error messages with file and line, reference energies, energy-based weights, the split."""

from __future__ import annotations

import numpy as np
import pytest

from rexfit.datasets import readers as R
from rexfit.errors import InputError

#: 1 eV/Å³ in GPa (CODATA 2014, as docs/conventions.md); 1 kB = 0.1 GPa.
EV_A3_GPA = 160.21766208
KB = 0.1 / EV_A3_GPA

# Numbers below are dyadic fractions, exact in binary and in ASE's 8-decimal text output.
CELL = np.array([[4.0, 0.0, 0.0], [0.5, 4.0, 0.0], [0.0, 0.0, 4.25]])


def _atoms(symbols, positions, cell=CELL, pbc=True, energy=None, forces=None, stress=None,
           **info):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    a = Atoms(symbols, positions=positions, cell=cell, pbc=pbc)
    if energy is not None or forces is not None or stress is not None:
        a.calc = SinglePointCalculator(a, energy=energy, forces=forces, stress=stress)
    a.info.update(info)
    return a


def _structures():
    return [
        _atoms("Si2", [[0, 0, 0], [1.25, 1.375, 1.5]], energy=-10.5,
               forces=[[0.125, 0.0, -0.25], [-0.125, 0.0, 0.25]],
               stress=[0.0078125, -0.015625, 0.03125, 0.001953125, -0.00390625, 0.0009765625],
               config_type="bulk", tag="a"),
        _atoms("SiGe", [[0.25, 0.5, 0.0], [2.0, 2.125, 2.25]], energy=-9.25,
               forces=[[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0]],
               stress=[0.0, 0.015625, -0.0078125, 0.0, 0.0, 0.00390625],
               config_type="alloy", tag="b"),
        _atoms("Ge3", [[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]], cell=np.zeros((3, 3)), pbc=False,
               energy=-7.0, forces=[[1, 0, 0], [0, 1, 0], [-1, -1, 0]],
               config_type="cluster", tag="c"),
    ]


def _same(entry, atoms):
    assert entry.symbols == tuple(atoms.get_chemical_symbols())
    np.testing.assert_array_equal(entry.positions, atoms.positions)
    np.testing.assert_array_equal(entry.cell, np.asarray(atoms.cell))
    assert entry.pbc == tuple(bool(p) for p in atoms.pbc)
    res = atoms.calc.results
    assert entry.energy == res["energy"]
    np.testing.assert_array_equal(entry.forces, res["forces"])
    if "stress" in res:
        np.testing.assert_array_equal(entry.stress, res["stress"])
    else:
        assert entry.stress is None


def _message(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)


# ---------------------------------------------------------------------------------------------
# extxyz


def test_extxyz_round_trip_with_groups(tmp_path):
    import ase.io

    structs = _structures()
    path = tmp_path / "train.xyz"
    ase.io.write(path, structs, format="extxyz")
    entries = R.read_dataset(path, group_from="comment")
    assert len(entries) == 3
    for e, a in zip(entries, structs):
        _same(e, a)
    assert [e.group for e in entries] == ["bulk", "alloy", "cluster"]
    assert [e.source for e in entries] == [f"{path}#{k}" for k in range(3)]
    assert [e.group for e in R.read_dataset(path, group_from="info:tag")] == ["a", "b", "c"]
    assert all(e.group is None for e in R.read_dataset(path))
    assert not entries[0].positions.flags.writeable


def test_extxyz_virial_becomes_stress(tmp_path):
    w = np.array([[0.5, 0.25, 0.125], [0.25, -1.0, 0.0625], [0.125, 0.0625, 2.0]])
    path = tmp_path / "v.extxyz"
    path.write_text(
        "1\n"
        'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3 '
        f'energy=-3.5 virial="{" ".join(str(x) for x in w.ravel())}" pbc="T T T"\n'
        "Si 0.0 0.0 0.0\n")
    (e,) = R.read_dataset(path)
    voigt = np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
    np.testing.assert_allclose(e.stress, -voigt / 64.0, rtol=0, atol=1e-15)
    assert e.energy == -3.5 and e.forces is None


# ---------------------------------------------------------------------------------------------
# VASP OUTCAR (written by hand in VASP's layout: ASE cannot write it)

_OUTCAR_HEAD = """\
 vasp.6.3.2 18Jan22 (build Mar 08 2022 12:00:00) complex

 executed on             LinuxIFC date 2024.01.15  10:00:00
 running on    4 total cores
 POSCAR found :  2 types and       3 ions
 POTCAR:    PAW_PBE Si 05Jan2001
 POTCAR:    PAW_PBE Ge_d 06Sep2000
 POTCAR:    PAW_PBE Si 05Jan2001
   VRHFIN =Si: s p
   TITEL  = PAW_PBE Si 05Jan2001
 POTCAR:    PAW_PBE Ge_d 06Sep2000
   VRHFIN =Ge: s p d
   TITEL  = PAW_PBE Ge_d 06Sep2000

 Dimension of arrays:
   number of dos      NEDOS =    301   number of ions     NIONS =      3
   ions per type =               2   1

------------------------------------------------------------------------------------------------


"""

_OUTCAR_STEP = """\
------------------------------------- Iteration    {step}(   1)  -----------------------------------

    POTLOK:  cpu time    0.0123: real time    0.0125
    eigenvalue-minimisations  :    64
    total energy-change (2. order) : 0.1234567E-05  (-0.8765432E-06)

  FORCE on cell =-STRESS in cart. coord.  units (eV):
  Direction    XX          YY          ZZ          XY          YZ          ZX
  --------------------------------------------------------------------------------------
  Total       1.23456    -0.32100     0.40000     0.15000    -0.07500     0.02500
  in kB      {kb}
  external pressure =        4.42 kB  Pullay stress =        0.00 kB

 VOLUME and BASIS-vectors are now :
 -----------------------------------------------------------------------------
  energy-cutoff  :      245.35
  volume of cell :       68.00
      direct lattice vectors                 reciprocal lattice vectors
{cell}
  length of vectors
     4.000000000  4.031128874  4.250000000     0.252015748  0.250000000  0.235294118


 POSITION                                       TOTAL-FORCE (eV/Angst)
 -----------------------------------------------------------------------------------
{atoms}
 -----------------------------------------------------------------------------------
    total drift:                                0.000000      0.000000      0.000000


------------------------------------------------------------------------------------------------



  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)
  ---------------------------------------------------
  free  energy   TOTEN  =       {toten:.8f} eV

  energy  without entropy=      {ewo:.8f}  energy(sigma->0) =      {e0:.8f}

"""

_OUTCAR_STEPS = [
    dict(kb=[12.5, -3.25, 4.0, 1.5, -0.75, 0.25], toten=-12.75, ewo=-12.5, e0=-12.625,
         pos=[[0.0, 0.0, 0.0], [1.25, 1.375, 1.5], [2.5, 2.0, 0.75]],
         forces=[[0.125, 0.0, -0.25], [-0.125, 0.0625, 0.25], [0.0, -0.0625, 0.0]]),
    dict(kb=[-2.0, 0.5, 1.0, 0.0, 0.25, -0.5], toten=-12.875, ewo=-12.75, e0=-12.8125,
         pos=[[0.0625, 0.0, 0.0], [1.25, 1.375, 1.4375], [2.5, 2.0, 0.8125]],
         forces=[[0.0625, 0.0, -0.125], [-0.0625, 0.03125, 0.125], [0.0, -0.03125, 0.0]]),
]


def _write_outcar(path, steps=_OUTCAR_STEPS):
    text = _OUTCAR_HEAD
    recip = np.linalg.inv(CELL).T
    cell = "\n".join(f"  {a[0]:14.9f}{a[1]:13.9f}{a[2]:13.9f}  {b[0]:13.9f}{b[1]:13.9f}"
                     f"{b[2]:13.9f}" for a, b in zip(CELL, recip))
    for k, s in enumerate(steps, 1):
        atoms = "\n".join(f" {p[0]:12.5f} {p[1]:12.5f} {p[2]:12.5f}    {f[0]:13.6f} "
                          f"{f[1]:13.6f} {f[2]:13.6f}" for p, f in zip(s["pos"], s["forces"]))
        kb = "".join(f"{x:12.5f}" for x in s["kb"])
        text += _OUTCAR_STEP.format(step=k, kb=kb, cell=cell, atoms=atoms, toten=s["toten"],
                                    ewo=s["ewo"], e0=s["e0"])
    path.write_text(text)


def _kb_to_ase(kb):
    """VASP prints XX YY ZZ XY YZ ZX in kB, positive = compressive; ASE: xx yy zz yz xz xy in
    eV/Å³, positive = tensile."""
    xx, yy, zz, xy, yz, zx = kb
    return -KB * np.array([xx, yy, zz, yz, zx, xy])


def test_outcar_every_ionic_step(tmp_path):
    path = tmp_path / "OUTCAR"
    _write_outcar(path)
    entries = R.read_dataset(path)
    assert len(entries) == 2
    for e, s in zip(entries, _OUTCAR_STEPS):
        assert e.symbols == ("Si", "Si", "Ge")
        assert e.pbc == (True, True, True)
        np.testing.assert_array_equal(e.cell, CELL)
        np.testing.assert_array_equal(e.positions, s["pos"])
        np.testing.assert_array_equal(e.forces, s["forces"])
        assert e.energy == s["e0"]
        np.testing.assert_allclose(e.stress, _kb_to_ase(s["kb"]), rtol=1e-9, atol=0)
    # sign: +12.5 kB along xx in the OUTCAR is compression, i.e. negative ASE stress
    assert entries[0].stress[0] < 0 and entries[0].stress[5] < 0
    assert [e.source for e in entries] == [f"{path}#0", f"{path}#1"]
    free = R.read_dataset(path, energy_key="free_energy")
    assert [e.energy for e in free] == [-12.75, -12.875]


# ---------------------------------------------------------------------------------------------
# vasprun.xml (hand-written in VASP's layout)


def _vasprun(steps):
    def varray(name, rows):
        return (f'   <varray name="{name}" >\n'
                + "".join(f"    <v> {' '.join(f'{x:16.8f}' for x in r)} </v>\n" for r in rows)
                + "   </varray>\n")

    def structure(name, frac):
        attr = f' name="{name}"' if name else ""
        return (f"  <structure{attr} >\n   <crystal>\n" + varray("basis", CELL)
                + '    <i name="volume">     68.00000000 </i>\n   </crystal>\n'
                + varray("positions", frac) + "  </structure>\n")

    def energy(s, e0):
        return ("   <energy>\n"
                f'    <i name="e_fr_energy">   {s["toten"]:16.8f} </i>\n'
                f'    <i name="e_wo_entrp">    {s["ewo"]:16.8f} </i>\n'
                f'    <i name="e_0_energy">    {e0:16.8f} </i>\n'
                "   </energy>\n")

    inv = np.linalg.inv(CELL)
    text = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n'
            ' <generator>\n  <i name="program" type="string">vasp </i>\n'
            '  <i name="version" type="string">6.3.2  </i>\n </generator>\n'
            ' <kpoints>\n  <varray name="kpointlist" >\n'
            "   <v>       0.00000000       0.00000000       0.00000000 </v>\n  </varray>\n"
            '  <varray name="weights" >\n   <v>       1.00000000 </v>\n  </varray>\n'
            " </kpoints>\n"
            ' <parameters>\n  <separator name="electronic" >\n'
            '   <i name="ENCUT">    245.35000000</i>\n  </separator>\n </parameters>\n'
            " <atominfo>\n  <atoms>       3 </atoms>\n  <types>       2 </types>\n"
            '  <array name="atoms" >\n   <dimension dim="1">ion</dimension>\n'
            '   <field type="string">element</field>\n   <field type="int">atomtype</field>\n'
            "   <set>\n    <rc><c>Si</c><c>   1</c></rc>\n    <rc><c>Si</c><c>   1</c></rc>\n"
            "    <rc><c>Ge</c><c>   2</c></rc>\n   </set>\n  </array>\n </atominfo>\n")
    text += structure("initialpos", np.array(steps[0]["pos"]) @ inv)
    for s in steps:
        kb = s["kb"]  # XX YY ZZ XY YZ ZX → full symmetric 3×3 as VASP writes it
        m = [[kb[0], kb[3], kb[5]], [kb[3], kb[1], kb[4]], [kb[5], kb[4], kb[2]]]
        text += (" <calculation>\n  <scstep>\n" + energy(s, s["e0"]) + "  </scstep>\n"
                 + structure(None, np.array(s["pos"]) @ inv) + varray("forces", s["forces"])
                 + varray("stress", m)
                 # VASP writes a wrong e_0_energy here; ASE takes the one of the last scstep
                 + energy(s, 0.0) + " </calculation>\n")
    text += structure("finalpos", np.array(steps[-1]["pos"]) @ inv) + "</modeling>\n"
    return text


def test_vasprun_every_ionic_step(tmp_path):
    path = tmp_path / "vasprun.xml"
    path.write_text(_vasprun(_OUTCAR_STEPS))
    entries = R.read_dataset(path)
    assert len(entries) == 2
    for e, s in zip(entries, _OUTCAR_STEPS):
        assert e.symbols == ("Si", "Si", "Ge")
        np.testing.assert_array_equal(e.cell, CELL)
        # vasprun.xml holds fractional coordinates with 8 decimals
        np.testing.assert_allclose(e.positions, s["pos"], rtol=0, atol=1e-7)
        np.testing.assert_array_equal(e.forces, s["forces"])
        assert e.energy == pytest.approx(s["e0"], abs=1e-12)
        np.testing.assert_allclose(e.stress, _kb_to_ase(s["kb"]), rtol=1e-9, atol=0)
    free = R.read_dataset(path, energy_key="free_energy")
    assert [e.energy for e in free] == [-12.75, -12.875]


# ---------------------------------------------------------------------------------------------
# ASE database


def test_ase_db_rows_and_key_value_groups(tmp_path):
    import ase.db

    structs = _structures()
    path = tmp_path / "data.db"
    with ase.db.connect(path) as db:
        for a in structs:
            db.write(a, config_type=a.info["config_type"], phase=a.info["tag"])
    entries = R.read_dataset(path, group_from="info:phase")
    assert len(entries) == 3
    for e, a in zip(entries, structs):
        _same(e, a)
    assert [e.group for e in entries] == ["a", "b", "c"]
    assert [e.source for e in entries] == [f"{path}#id={k}" for k in (1, 2, 3)]
    assert [e.group for e in R.read_dataset(path, group_from="comment")] == [
        "bulk", "alloy", "cluster"]


def test_ase_db_pyxtal_ff_data_keys(tmp_path):
    import ase.db

    a = _structures()[0]
    path = tmp_path / "pyxtal.db"
    with ase.db.connect(path) as db:
        db.write(_atoms("Si2", a.positions),
                 data={"dft_energy": -10.5, "dft_force": a.calc.results["forces"]})
    (e,) = R.read_dataset(path, require=("energy", "forces"))
    assert e.energy == -10.5
    np.testing.assert_array_equal(e.forces, a.calc.results["forces"])


def test_not_an_ase_db_is_refused_untouched(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match="not an ASE database"):
        R.read_dataset(path)
    assert path.read_bytes() == before
    path.write_text("hello")
    with pytest.raises(InputError, match="cannot read"):
        R.read_dataset(path)


# ---------------------------------------------------------------------------------------------
# POSCAR with force columns


def test_poscar_written_by_ase_with_force_columns(tmp_path):
    import ase.io

    a = _structures()[1]
    path = tmp_path / "POSCAR"
    ase.io.write(path, a, format="vasp", direct=False)
    lines = path.read_text().splitlines()
    first = next(k for k, ln in enumerate(lines) if ln.strip().lower().startswith("cart")) + 1
    forces = a.calc.results["forces"]
    for k in range(2):
        lines[first + k] += "   " + "  ".join(f"{x:.6f}" for x in forces[k])
    path.write_text("\n".join(lines) + "\n")
    (e,) = R.read_dataset(path)
    assert e.symbols == ("Si", "Ge")
    np.testing.assert_allclose(e.positions, a.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(e.cell, CELL, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(e.forces, forces)
    assert e.energy is None and e.stress is None
    assert e.source == f"{path}:1"


def test_contcar_direct_selective_dynamics_and_scale(tmp_path):
    path = tmp_path / "CONTCAR"
    path.write_text(
        "FCC Al with forces\n"
        "   2.0\n"
        "  2.0 0.0 0.0\n  0.0 2.0 0.0\n  0.0 0.0 2.0\n"
        "  Al\n  2\n"
        "Selective dynamics\n"
        "Direct\n"
        "  0.0 0.0 0.0  T T F   0.5 -0.25 0.0\n"
        "  0.5 0.5 0.0  T T T  -0.5  0.25 0.0\n"
        "\n"
        "  0.0 0.0 0.0\n  0.0 0.0 0.0\n")   # CONTCAR velocities: ignored
    (e,) = R.read_dataset(path, group_from="comment")
    np.testing.assert_array_equal(e.cell, 4.0 * np.eye(3))
    np.testing.assert_array_equal(e.positions, [[0, 0, 0], [2, 2, 0]])
    np.testing.assert_array_equal(e.forces, [[0.5, -0.25, 0], [-0.5, 0.25, 0]])
    assert e.group == "FCC"
    # VASP 4 layout (no species line) needs the species from the caller
    path.write_text("x\n1.0\n4 0 0\n0 4 0\n0 0 4\n1 1\nCartesian\n0 0 0\n2 2 2\n")
    with pytest.raises(InputError, match="no species line"):
        R.read_dataset(path)
    (e,) = R.read_dataset(path, species=["Cu", "Au"])
    assert e.symbols == ("Cu", "Au")


# ---------------------------------------------------------------------------------------------
# PYFIT-FF dataset file

_PYFIT = """\
DC-ISO  a=5.43 equilibrium
1.0
  5.43 0.0 0.0
  0.0 5.43 0.0
  0.0 0.0 5.43
Si
2
Cartesian
  0.0 0.0 0.0
  1.3575 1.3575 1.3575
-10.75

DC-ISO  a=5.50
1.0
  5.5 0.0 0.0
  0.0 5.5 0.0
  0.0 0.0 5.5
Si
2
Cartesian
  0.0 0.0 0.0
  1.375 1.375 1.375
-10.625
FCC-ISO  a=3.85
1.0
  0.0 1.925 1.925
  1.925 0.0 1.925
  1.925 1.925 0.0
Si
1
Cartesian
  0.0 0.0 0.0
   -4.5
"""


def test_pyfit_groups_energies_and_shift(tmp_path):
    path = tmp_path / "train.dat"
    path.write_text(_PYFIT)
    entries = R.read_dataset(path, group_from="comment", energy_shift_per_atom=0.25)
    assert [e.group for e in entries] == ["DC-ISO", "DC-ISO", "FCC-ISO"]
    assert [e.energy for e in entries] == [-10.75 + 2 * 0.25, -10.625 + 2 * 0.25, -4.5 + 0.25]
    assert [e.source for e in entries] == [f"{path}:1", f"{path}:13", f"{path}:24"]
    np.testing.assert_array_equal(entries[1].positions, [[0, 0, 0], [1.375] * 3])
    np.testing.assert_array_equal(entries[2].cell[0], [0.0, 1.925, 1.925])
    assert all(e.forces is None and e.stress is None for e in entries)
    unshifted = R.read_dataset(path, format="PyFit")
    assert [e.energy for e in unshifted] == [-10.75, -10.625, -4.5]
    assert all(e.group is None for e in unshifted)


@pytest.mark.parametrize("broken, line, words", [
    # energy line missing after the first block: the next comment line is not a number
    (lambda t: t.replace("-10.75\n", ""), 12, "DFT energy"),
    # a coordinate line with two numbers
    (lambda t: t.replace("  1.375 1.375 1.375", "  1.375 1.375"), 22, "coordinates of atom 2"),
    # an extra atom line: its coordinates would be read as the energy
    (lambda t: t.replace("  0.0 0.0 0.0\n   -4.5", "  0.0 0.0 0.0\n 0.5 0.5 0.5\n   -4.5"),
     33, "one number"),
    # counts and species disagree
    (lambda t: t.replace("Si\n1\n", "Si Ge\n1\n"), 30, "1 atom counts for 2 species"),
    (lambda t: t.replace("Si\n1\n", "Qq\n1\n"), 29, "not a chemical element"),
    (lambda t: t.replace("Cartesian\n  0.0 0.0 0.0\n   -4.5", "Cartesian\n  0.0 0.0 0.0\n"),
     33, "ends where the structure's DFT energy"),
    (lambda t: t.replace("  0.0 5.5 0.0\n", "  0.0 5.5 zero\n"), 16, "lattice-vector"),
])
def test_pyfit_errors_name_file_and_line(tmp_path, broken, line, words):
    path = tmp_path / "bad.dat"
    path.write_text(broken(_PYFIT))
    with pytest.raises(InputError) as exc:
        R.read_dataset(path)
    assert exc.value.origin is not None
    assert (exc.value.origin.path, exc.value.origin.line) == (str(path), line)
    assert words in exc.value.message


def test_pyfit_bad_coordinate_mode(tmp_path):
    path = tmp_path / "bad.dat"
    path.write_text(_PYFIT.replace("Cartesian\n  0.0 0.0 0.0\n  1.375", "Fractional\n  0.0 0.0 "
                                   "0.0\n  1.375"))
    with pytest.raises(InputError) as exc:
        R.read_dataset(path)
    assert exc.value.origin.line == 20 and "'Direct' or 'Cartesian'" in exc.value.message
    assert str(exc.value).startswith(f"{path}:20: POSCAR starting at line 13")


# ---------------------------------------------------------------------------------------------
# detection and other errors


@pytest.mark.parametrize("name, fmt", [
    ("train.xyz", "extxyz"), ("a.extxyz", "extxyz"), ("OUTCAR", "outcar"),
    ("OUTCAR.relax", "outcar"), ("vasprun.xml", "vasprun"), ("vasprun-md.xml", "vasprun"),
    ("set.db", "db"), ("POSCAR", "poscar"), ("CONTCAR_3", "poscar"), ("bcc.vasp", "poscar"),
    ("train.dat", "pyfit"),
])
def test_format_detection(name, fmt):
    assert R.detect_format(f"/some/dir/{name}") == fmt


def test_undetectable_and_unknown_formats_name_the_accepted_ones(tmp_path):
    path = tmp_path / "data.unknown"
    path.write_text("neither a name nor a content ASE knows\n")
    with pytest.raises(InputError) as exc:
        R.read_dataset(path)
    assert all(f in exc.value.message for f in R.FORMATS)
    assert "any format name ASE reads" in exc.value.message
    with pytest.raises(InputError) as exc:
        R.read_dataset(path, format="no-such-format")
    assert "unknown dataset format 'no-such-format'" in exc.value.message
    assert all(f in exc.value.message for f in R.FORMATS)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        R.read_dataset(tmp_path / "nothing.xyz")
    for name in ("empty.dat", "empty.xyz", "POSCAR"):
        (tmp_path / name).write_text("")
        with pytest.raises(InputError, match="no structures") as exc:
            R.read_dataset(tmp_path / name)
        assert exc.value.origin.line == 1


def test_required_quantity_names_the_frame_and_its_line(tmp_path):
    import ase.io

    structs = _structures()
    path = tmp_path / "t.xyz"
    ase.io.write(path, structs, format="extxyz")
    with pytest.raises(InputError) as exc:
        R.read_dataset(path, require=["energy", "stress"])
    # frame 2 (the cluster) has no stress; frames have 4 + 4 lines before it
    assert exc.value.origin.line == 9
    assert "stress is required but missing in 1 of 3 structures (frame 2)" in exc.value.message
    with pytest.raises(InputError, match="unknown required quantity"):
        R.read_dataset(path, require=["virial"])


def test_group_errors(tmp_path):
    import ase.io

    path = tmp_path / "t.xyz"
    ase.io.write(path, _structures(), format="extxyz")
    with pytest.raises(InputError) as exc:
        R.read_dataset(path, group_from="info:phase")
    assert exc.value.origin.line == 1 and "frame 0" in exc.value.message
    with pytest.raises(InputError, match="'comment' or 'info:KEY'"):
        R.read_dataset(path, group_from="tag")
    out = tmp_path / "OUTCAR"
    _write_outcar(out)
    with pytest.raises(InputError, match="carries no comment"):
        R.read_dataset(out, group_from="comment")


def test_garbage_outcar_is_an_input_error(tmp_path):
    path = tmp_path / "OUTCAR"
    path.write_text("this is not an OUTCAR\n")
    with pytest.raises(InputError) as exc:
        R.read_dataset(path)
    assert str(path) in str(exc.value) and "outcar" in str(exc.value)


def test_non_finite_force_in_extxyz(tmp_path):
    path = tmp_path / "n.xyz"
    path.write_text(
        "1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:forces:R:3 "
        "energy=-1.0 pbc=\"T T T\"\nSi 0 0 0 0 0 0\n"
        "1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:forces:R:3 "
        "energy=-1.0 pbc=\"T T T\"\nSi 0 0 0 nan 0 0\n")
    with pytest.raises(InputError) as exc:
        R.read_dataset(path)
    assert exc.value.origin.line == 4 and "frame 1: forces" in exc.value.message


# ---------------------------------------------------------------------------------------------
# reference energies, weights, split


def _entry(symbols, energy, group=None):
    n = len(symbols)
    return R.Entry(np.zeros((n, 3)), np.eye(3), (True,) * 3, tuple(symbols), energy, None,
                   None, group, f"mem#{energy}")


def test_reference_energies():
    es = [_entry("Si Si".split(), -10.0), _entry("Si Ge Ge".split(), -12.5)]
    ref = R.reference_energies(es, {"Si": -1.0, "Ge": -0.5})
    np.testing.assert_array_equal(ref, [-8.0, -10.5])
    with pytest.raises(InputError, match="Ge"):
        R.reference_energies(es, {"Si": -1.0})
    with pytest.raises(InputError, match="no energy"):
        R.reference_energies([_entry(["Si"], None)], {"Si": 0.0})


def test_energy_weights_formula_and_normalisation():
    # energies per atom: -5, -4.5, -3  → ΔE = 0, 0.5, 2 eV/atom
    es = [_entry(["Si"] * 2, -10.0), _entry(["Si"] * 4, -18.0), _entry(["Si"], -3.0)]
    w = R.energy_weights(es, 0.5)
    u = np.array([1.0, 0.25, (0.5 / 2.5) ** 2])
    np.testing.assert_allclose(w, u * 3 / u.sum(), rtol=1e-14)
    assert w.mean() == pytest.approx(1.0)
    assert w[0] > w[1] > w[2]
    w = R.energy_weights(es, 0.5, form="exponential")
    u = np.exp(-np.array([0.0, 0.5, 2.0]) / 0.5)
    np.testing.assert_allclose(w, u * 3 / u.sum(), rtol=1e-14)
    w = R.energy_weights(es, 0.5, max_above_min=1.0)
    assert w[2] == 0.0 and w.mean() == pytest.approx(1.0)
    # with references, the per-atom energies compared are cohesive ones
    mixed = [_entry(["Si"], -5.0), _entry(["Ge"], -4.0)]
    np.testing.assert_allclose(R.energy_weights(mixed, 1.0, per_element={"Si": -5.0,
                                                                          "Ge": -4.0}), [1, 1])
    with pytest.raises(InputError, match="positive"):
        R.energy_weights(es, 0.0)
    with pytest.raises(InputError, match="every structure"):
        R.energy_weights(es + [_entry(["Si"], None)], 1.0)


def test_split_is_deterministic_and_stratified():
    es = ([_entry(["Si"], -float(k), "A") for k in range(20)]
          + [_entry(["Si"], -float(k), "B") for k in range(10)]
          + [_entry(["Si"], -float(k), "C") for k in range(1)])
    tr, va = R.split(es, 0.2, seed=7)
    tr2, va2 = R.split(es, 0.2, seed=7)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(31))
    groups = [es[k].group for k in va]
    assert groups.count("A") == 4 and groups.count("B") == 2 and groups.count("C") == 0
    tr3, va3 = R.split(es, 0.2, seed=8)
    assert va3.tolist() != va.tolist() and len(va3) == len(va)
    # at least one training entry, even for a large fraction and a single entry
    tr, va = R.split(es[:1], 0.9, seed=0)
    assert tr.tolist() == [0] and va.tolist() == []
    tr, va = R.split(es, 0.0, seed=0)
    assert len(va) == 0 and len(tr) == 31
    # without groups: one stratum
    plain = [_entry(["Si"], -float(k)) for k in range(10)]
    tr, va = R.split(plain, 0.3, seed=1)
    assert len(va) == 3 and len(tr) == 7
    with pytest.raises(InputError):
        R.split(plain, 1.0, seed=1)


def test_split_keeps_extreme_volumes_in_training():
    """keep_extreme_volumes: per group, the smallest and largest volume per atom train; with
    a fraction that would take every other entry, the validation set is drawn from the rest."""
    def entry(scale, group):
        return R.Entry(np.zeros((2, 3)), scale * np.eye(3), (True,) * 3, ("Si", "Si"), -1.0,
                       None, None, group, f"mem#{scale}{group}")

    scales = [3.0, 2.5, 4.0, 3.2, 3.7, 2.9]
    es = [entry(s, "A") for s in scales] + [entry(s, "B") for s in scales[:3]]
    for seed in range(5):
        tr, va = R.split(es, 0.9, seed=seed, keep_extreme_volumes=True)
        assert {1, 2, 7, 8} <= set(tr.tolist())  # 2.5 and 4.0 of A and of B
        assert len(va) == 4 + 1  # every other entry of A, the middle one of B
    tr, va = R.split(es, 0.9, seed=0)
    assert not {1, 2} <= set(tr.tolist()) or not {7, 8} <= set(tr.tolist())
