"""FitSNAP JSON and mlearn's pymatgen-dict JSON, written here following each format's
documented layout from energies, forces and pressures that LAMMPS computes (Si.sw from the
lammps package) on a strained, rattled triclinic cell: read back, the stress must be LAMMPS's
(eV/Å³, tensile positive, Voigt xx yy zz yz xz xy) to the precision of the unit constants —
which checks FitSNAP's kB / bar and mlearn's kbar, their sign (pressure, positive =
compressive) and mlearn's component order xx yy zz xy xz yz."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rexfit.datasets import readers as R
from rexfit.errors import InputError
from tests.support.lammps_ref import lammps_compute, potentials_dir


@pytest.fixture(scope="module")
def reference():
    """(positions, cell, LAMMPS Reference, pressure tensor in bar as LAMMPS prints it)."""
    from ase.build import bulk

    a = bulk("Si", "diamond", a=5.43, cubic=True)
    cell = np.asarray(a.cell) @ np.array([[1.01, 0.02, -0.015], [0.0, 0.99, 0.025],
                                          [0.01, 0.0, 1.02]])
    rng = np.random.default_rng(7)
    frac = a.get_scaled_positions() + rng.normal(scale=0.01, size=(len(a), 3))
    pos = frac @ cell
    ref = lammps_compute(pos, cell, [0] * len(a), (True, True, True), "sw",
                         [f"* * {potentials_dir() / 'Si.sw'} Si"])
    nktv2p = 1.6021765e6                       # LAMMPS metal units: eV/Å³ → bar
    pressure_bar = -ref.virial / abs(np.linalg.det(cell)) * nktv2p
    assert np.all(np.abs(ref.stress) > 1e-4)   # every component matters for the order check
    return pos, cell, ref, pressure_bar


def fitsnap_file(path, pos, cell, ref, stress, style="kB", comment=True, **extra):
    data = {"AtomTypes": ["Si"] * len(pos), "Positions": pos.tolist(),
            "Lattice": cell.tolist(), "Energy": ref.energy, "Forces": ref.forces.tolist(),
            "Stress": stress.tolist(), "NumAtoms": len(pos), **extra}
    doc = {"Dataset": {"AtomTypeStyle": "chemicalsymbol", "Data": [data],
                       "EnergyStyle": "electronvolt", "ForcesStyle": "electronvoltperangstrom",
                       "LatticeStyle": "angstrom", "PositionsStyle": "angstrom",
                       **({"StressStyle": style} if style else {})}}
    text = json.dumps(doc, indent=2)
    path.write_text(("# a comment line, as FitSNAP's examples have\n" if comment else "") + text)


def check(entry, pos, cell, ref):
    np.testing.assert_allclose(entry.positions, pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(entry.cell, cell, rtol=0, atol=1e-12)
    assert entry.energy == pytest.approx(ref.energy, abs=1e-9)
    np.testing.assert_allclose(entry.forces, ref.forces, rtol=0, atol=1e-9)
    # the two codes' eV/Å³ → bar constants differ by 1e-7 relative
    np.testing.assert_allclose(entry.stress, ref.stress, rtol=1e-6, atol=0)


@pytest.mark.parametrize("style, factor", [("kB", 1e-3), (None, 1.0), ("bar", 1.0)])
def test_fitsnap_json_stress_is_lammps_pressure(tmp_path, reference, style, factor):
    pos, cell, ref, p_bar = reference
    path = tmp_path / "Si_0.json"
    fitsnap_file(path, pos, cell, ref, p_bar * factor, style=style, comment=style != "bar")
    assert R.detect_format(path) == "fitsnap"
    (e,) = R.read_dataset(path, use=("energy", "forces", "stress"))
    check(e, pos, cell, ref)
    assert e.info["NumAtoms"] == len(pos)


def test_fitsnap_directory_groups_by_folder(tmp_path, reference):
    pos, cell, ref, p_bar = reference
    for group, n in (("Bulk", 2), ("Strained", 3)):
        (tmp_path / "JSON" / group).mkdir(parents=True)
        for k in range(n):
            fitsnap_file(tmp_path / "JSON" / group / f"{group}_{k}.json", pos, cell, ref,
                         p_bar / 1000)
    entries = R.read_dataset(tmp_path / "JSON")
    assert [e.info["group"] for e in entries] == ["Bulk"] * 2 + ["Strained"] * 3
    assert [e.info["group"] for e in R.read_dataset(tmp_path / "JSON", groups="Strained")] \
        == ["Strained"] * 3
    check(entries[4], pos, cell, ref)


def test_fitsnap_unknown_unit_and_bad_stress(tmp_path, reference):
    pos, cell, ref, p_bar = reference
    path = tmp_path / "x.json"
    fitsnap_file(path, pos, cell, ref, p_bar, style="furlongs")
    with pytest.raises(InputError, match="StressStyle 'furlongs'"):
        R.read_dataset(path)
    fitsnap_file(path, pos, cell, ref, p_bar[0])
    with pytest.raises(InputError, match="full 3×3"):
        R.read_dataset(path)


def mlearn_doc(pos, cell, ref, p_bar, fractional=False, group="Elastic"):
    sites = [{"species": [{"element": "Si", "occu": 1}], "label": "Si",
              **({"abc": (x @ np.linalg.inv(cell)).tolist()} if fractional
                 else {"xyz": x.tolist(), "abc": [9.0, 9.0, 9.0]})} for x in pos]
    p = p_bar / 1000.0                                         # kbar
    virial = [p[0, 0], p[1, 1], p[2, 2], p[0, 1], p[0, 2], p[1, 2]]  # xx yy zz xy xz yz
    return {"structure": {"@module": "pymatgen.core.structure", "@class": "Structure",
                          "charge": 0, "lattice": {"matrix": cell.tolist()}, "sites": sites},
            "num_atoms": len(pos), "group": group, "tag": "train",
            "outputs": {"energy": ref.energy, "forces": ref.forces.tolist(),
                        "virial_stress": virial}}


def test_mlearn_json_stress_order_sign_and_units(tmp_path, reference):
    pos, cell, ref, p_bar = reference
    path = tmp_path / "training.json"
    path.write_text(json.dumps([mlearn_doc(pos, cell, ref, p_bar),
                                mlearn_doc(pos, cell, ref, p_bar, True, "AIMD")]))
    assert R.detect_format(path) == "mlearn"
    entries = R.read_dataset(path)
    for e in entries:
        check(e, pos, cell, ref)
    assert [e.info["group"] for e in entries] == ["Elastic", "AIMD"]
    assert [e.info["group"] for e in R.read_dataset(path, groups="AIMD")] == ["AIMD"]


def test_mlearn_bad_virial_stress(tmp_path, reference):
    pos, cell, ref, p_bar = reference
    doc = mlearn_doc(pos, cell, ref, p_bar)
    doc["outputs"]["virial_stress"] = [1.0, 2.0, 3.0]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([doc]))
    with pytest.raises(InputError, match="expected 6 numbers"):
        R.read_dataset(path)


def test_fitsnap_directory_as_a_job_file(tmp_path, reference):
    from rexfit.job import load_job
    from rexfit.model.datasets import load_dataset

    pos, cell, ref, p_bar = reference
    (tmp_path / "JSON" / "Bulk").mkdir(parents=True)
    fitsnap_file(tmp_path / "JSON" / "Bulk" / "a.json", pos, cell, ref, p_bar / 1000)
    job = tmp_path / "job.xml"
    job.write_text(
        "<job><name>j</name><atom-types><species>Si</species></atom-types><potentials>"
        '<lennard-jones id="LJ" species-a="*" species-b="*"><sigma>2.1</sigma>'
        "<epsilon>0.4</epsilon><cutoff>5.0</cutoff></lennard-jones></potentials><structures>"
        '<dataset id="d"><file group="Bulk">JSON</file><properties><atomic-energy/>'
        "<stress/></properties></dataset></structures></job>")
    spec, _ = load_job(str(job))
    (ds,) = spec.all_datasets()
    assert ds.files[0].path == str(tmp_path / "JSON")
    (entry,) = load_dataset(ds, ("Si",)).entries
    check(entry.entry, pos, cell, ref)
