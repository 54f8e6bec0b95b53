"""User structures: inline cells, POSCAR files with force columns and extxyz files with
energy, forces and stress are read with their reference data; the same crystal written three
ways gives the energy of the equivalent lattice element."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from rexfit.cli import main

POTENTIAL = """
  <lennard-jones id="LJ"><sigma>2.3</sigma><epsilon>0.4</epsilon><cutoff>6.0</cutoff></lennard-jones>
"""


def job(structures: str) -> str:
    return f"""<?xml version="1.0"?>
<job><atom-types><species>Cu</species></atom-types>
<potentials>{POTENTIAL}</potentials>
<structures>{structures}</structures></job>
"""


def run(tmp_path, structures: str) -> dict:
    (tmp_path / "job.xml").write_text(job(structures))
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(tmp_path / "out")]) == 0
    return json.loads((tmp_path / "out/results.json").read_text())["structures"]


def test_three_ways_to_write_one_crystal(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.write(tmp_path / "POSCAR", format="vasp", direct=True)
    atoms.write(tmp_path / "cu.xyz", format="extxyz")
    cell = "".join(f'<a{k + 1} x="{v[0]}" y="{v[1]}" z="{v[2]}"/>' for k, v in enumerate(atoms.cell))
    inline = "".join(f'<atom type="Cu" x="{p[0]}" y="{p[1]}" z="{p[2]}"/>' for p in atoms.positions)
    res = run(tmp_path, f"""
      <fcc-lattice id="lattice"><atom-type>Cu</atom-type><lattice-parameter>3.6</lattice-parameter></fcc-lattice>
      <user-structure id="poscar"><poscar-file>POSCAR</poscar-file></user-structure>
      <user-structure id="xyz"><atoms-file format="extxyz">cu.xyz</atoms-file></user-structure>
      <user-structure id="inline"><cell>{cell}<atoms>{inline}</atoms></cell></user-structure>""")
    e = res["lattice"]["properties"]["atomic-energy"]["value"]
    for sid in ("poscar", "xyz", "inline"):
        assert res[sid]["natoms"] == 4
        assert res[sid]["properties"]["atomic-energy"]["value"] == pytest.approx(e, rel=1e-12)


def test_poscar_force_columns_are_targets(tmp_path):
    rng = np.random.default_rng(0)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    forces = rng.normal(0, 0.1, (4, 3))
    lines = ["rattled Cu", "1.0"] + [" ".join(map(str, v)) for v in atoms.cell] + ["Cu", "4", "Direct"]
    lines += [" ".join(map(str, list(f) + list(fr)))
              for f, fr in zip(atoms.get_scaled_positions(), forces)]
    (tmp_path / "POSCAR").write_text("\n".join(lines) + "\n")
    res = run(tmp_path, """<user-structure id="s"><poscar-file>POSCAR</poscar-file>
        <properties><atomic-forces fit="true"/></properties></user-structure>""")
    p = res["s"]["properties"]["atomic-forces"]
    np.testing.assert_allclose(p["target"], forces, rtol=1e-15)
    np.testing.assert_allclose(p["value"], 0.0, atol=1e-10)  # ideal fcc: zero forces


def test_extxyz_reference_data(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    stress = np.array([0.01, 0.02, 0.03, 0.001, 0.002, 0.003])  # eV/Å³
    atoms.calc = SinglePointCalculator(atoms, energy=-13.0, forces=np.zeros((4, 3)),
                                       stress=stress)
    atoms.write(tmp_path / "cu.xyz", format="extxyz")
    res = run(tmp_path, """<user-structure id="s"><atoms-file>cu.xyz</atoms-file>
        <properties><total-energy fit="true" target="-13.0"/><stress/></properties></user-structure>""")
    props = res["s"]["properties"]
    np.testing.assert_allclose(props["stress"]["target"], stress * 160.21766208, rtol=1e-14)
    assert props["total-energy"]["target"] == -13.0


def test_structure_with_undeclared_species_in_file(tmp_path, capsys):
    bulk("Ni", "fcc", a=3.5, cubic=True).write(tmp_path / "ni.xyz", format="extxyz")
    (tmp_path / "job.xml").write_text(job('<user-structure id="s"><atoms-file>ni.xyz</atoms-file></user-structure>'))
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(tmp_path / "out")]) == 2
    assert "Ni" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
