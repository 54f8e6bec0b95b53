"""Error metrics and plots in the output phase: results.json metrics equal the metrics recomputed
from the written predictions; --plots writes the PNGs; jobs without reference data get none."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from rexfit.cli import main

POTENTIAL = ('<lennard-jones id="LJ" species-a="*" species-b="*"><sigma>2.3</sigma>'
             '<epsilon>0.2</epsilon><cutoff>5.0</cutoff></lennard-jones>')


def test_metrics_match_written_predictions_and_plots_exist(tmp_path):
    rng = np.random.default_rng(0)
    structures = []
    for k, fit in enumerate(["true", "true", "false"]):
        atoms = bulk("Cu", "fcc", 3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 - k, forces=rng.normal(0, .1, (4, 3)),
                                           stress=rng.normal(0, 1e-3, 6))
        write(tmp_path / f"s{k}.xyz", atoms, format="extxyz")
        structures.append(
            f'<user-structure id="s{k}" fit="{fit}"><atoms-file>s{k}.xyz</atoms-file>'
            '<properties><total-energy fit="true"/><atomic-forces fit="true"/>'
            '<stress fit="true"/></properties></user-structure>')
    (tmp_path / "job.xml").write_text(
        f"<job><name>m</name><atom-types><species>Cu</species></atom-types>"
        f"<potentials>{POTENTIAL}</potentials><structures>{''.join(structures)}</structures></job>")
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--plots", "--output-dir", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    for set_name, ids in (("training", ["s0", "s1"]), ("validation", ["s2"])):
        props = [res["structures"][i]["properties"] for i in ids]
        f = np.concatenate([np.ravel(p["atomic-forces"]["value"]) for p in props])
        f_ref = np.concatenate([np.ravel(p["atomic-forces"]["target"]) for p in props])
        assert m[set_name]["all"]["forces"]["rmse"] == pytest.approx(
            np.sqrt(np.mean((f - f_ref) ** 2)), rel=1e-12)
        assert m[set_name]["all"]["forces"]["max"] == pytest.approx(np.abs(f - f_ref).max())
        e = np.array([p["total-energy"]["value"] / 4 for p in props])
        e_ref = np.array([p["total-energy"]["target"] / 4 for p in props])
        assert m[set_name]["all"]["energy_per_atom"]["mae"] == pytest.approx(
            np.mean(np.abs(e - e_ref)), rel=1e-12)
    log = (out / "log.txt").read_text()
    assert "Error metrics" in log
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert "parity_forces.png" in pngs and "errors_energy_per_atom.png" in pngs
    for name in pngs:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_jobs_without_reference_data_have_no_metrics(tmp_path):
    (tmp_path / "job.xml").write_text(
        f"<job><name>m</name><atom-types><species>Cu</species></atom-types>"
        f"<potentials>{POTENTIAL}</potentials><structures><fcc-lattice id='f'>"
        "<atom-type>Cu</atom-type><lattice-parameter>3.6</lattice-parameter><properties>"
        "<atomic-energy fit='true' target='-3.5'/></properties></fcc-lattice></structures></job>")
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["metrics"] is None
    assert not (out / "plots").exists()


def test_fitted_energy_without_any_target_is_an_input_error(tmp_path, capsys):
    write(tmp_path / "plain.xyz", bulk("Cu", "fcc", 3.6, cubic=True), format="extxyz")
    (tmp_path / "job.xml").write_text(
        f"<job><name>m</name><atom-types><species>Cu</species></atom-types>"
        f"<potentials>{POTENTIAL}</potentials><structures><user-structure id='u'>"
        "<atoms-file>plain.xyz</atoms-file><properties><atomic-energy fit='true'/>"
        "</properties></user-structure></structures></job>")
    out = tmp_path / "out"
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "property atomic-energy: fit='true' but there is no target" in err
    assert not out.exists()
