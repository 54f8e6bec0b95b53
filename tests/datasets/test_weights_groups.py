"""Weights inside one <dataset>: <group-weight> (groups from the file, else config_type),
per-frame weight keys (one number per entry, or per atom for forces), energy weighting on top;
each entry's objective term written out from its predictions (pacemaker's loss with
w_energy/w_forces and kappa as an example); the per-entry reports; bad input located."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from rexfit.cli import main
from rexfit.datasets.readers import energy_weights
from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.objective.objective import Objective
from rexfit.objective.parameters import ParameterSpace
from tests.support.structures import crystal

GROUPS = ("bulk", "bulk", "surface", "bulk", "surface", "md")


def _frames(seed=0):
    """Six 4-atom Cu cells with random targets, config_type, a per-frame 'weight' and
    pacemaker's w_energy (per frame) and w_forces (per atom)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, group in enumerate(GROUPS):
        pos, cell, _ = crystal("Cu", 3.61, seed=k, rattle=0.08)
        atoms = Atoms("Cu4", positions=pos, cell=cell, pbc=True)
        atoms.info.update(config_type=group, weight=0.5 + k, w_energy=rng.uniform(0.1, 1.0))
        atoms.arrays["w_forces"] = rng.uniform(0.0, 1.0, 4)
        atoms.calc = SinglePointCalculator(
            atoms, energy=-14.0 + rng.normal(0, 0.3), forces=rng.normal(0, 0.3, (4, 3)),
            stress=rng.normal(0, 0.01, 6))
        frames.append(atoms)
    return frames


JOB = """<job><name>w</name><atom-types><species>Cu</species></atom-types>
<potentials><lennard-jones id="LJ" species-a="*" species-b="*"><sigma>2.3</sigma>
<epsilon>0.4</epsilon><cutoff>4.5</cutoff></lennard-jones></potentials>
<structures>
<dataset id="d" {attrs}><file>{file}</file>
{body}
</dataset>
</structures></job>"""


def _write(path, frames):
    """``frames`` as extxyz, or as pacemaker's pickled DataFrame (path *.pckl.gzip)."""
    if path.name.endswith(".pckl.gzip"):
        pd = pytest.importorskip("pandas")
        pd.DataFrame({"ase_atoms": frames,
                      "energy": [a.get_potential_energy() for a in frames],
                      "forces": [a.get_forces() for a in frames],
                      "w_energy": [a.info["w_energy"] for a in frames],
                      "w_forces": [a.arrays["w_forces"] for a in frames]}
                     ).to_pickle(path, compression="gzip")
    else:
        write(path, frames, format="extxyz")


def _terms(tmp_path, attrs="", body="", file="d.xyz"):
    _write(tmp_path / file, _frames())
    path = tmp_path / "job.xml"
    path.write_text(JOB.format(attrs=attrs, body=body, file=file))
    job, problems = load_job(str(path))
    assert not [p for p in problems if p.severity == "error"]
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    ev = objective.evaluate(space.u0(), grad=False)
    term = objective.datasets[("d", "training")]
    return ev.datasets[("d", "training")], term, term.records(ev.params)


def _check_records(value, records):
    """The records' weighted residuals add up to the dataset's objective."""
    total = sum(p["weighted_residual"] for r in records for p in r["properties"].values()
                if "weighted_residual" in p)
    assert total == pytest.approx(value, rel=1e-12)


def test_group_weights_weight_key_and_energy_weighting(tmp_path):
    body = """<energy-weighting scale="0.1"/>
      <group-weight group="bulk" energy="100" forces="2" stress="0.5"/>
      <group-weight group="surface" weight="3"/>
      <properties><atomic-energy/><atomic-forces/><stress/></properties>"""
    value, term, records = _terms(tmp_path, 'weight-key="weight"', body)
    frames = read(tmp_path / "d.xyz", index=":")
    ew = energy_weights([e.entry for e in term.entries], 0.1)
    n = len(frames)
    expected = 0.0
    for k, (r, atoms) in enumerate(zip(records, frames)):
        group = atoms.info["config_type"]
        assert r["group"] == group  # from config_type: the file gave no group
        entry_w = ew[k] * {"surface": 3.0}.get(group, 1.0) * atoms.info["weight"]
        assert r["relative_weight"] == pytest.approx(entry_w, rel=1e-12)
        per_q = {"bulk": (100.0, 2.0, 0.5)}.get(group, (1.0, 1.0, 1.0))
        p = r["properties"]
        residuals = [
            ((p["atomic-energy"]["value"] - p["atomic-energy"]["target"]) / 0.01) ** 2,
            np.mean(((np.array(p["atomic-forces"]["value"])
                      - np.array(p["atomic-forces"]["target"])) / 0.01) ** 2),
            np.mean(((np.array(p["stress"]["value"]) - np.array(p["stress"]["target"])) / 2.0)
                    ** 2)]
        for name, q, res in zip(("atomic-energy", "atomic-forces", "stress"), per_q, residuals):
            w = term.weights[name] * entry_w * q / n
            assert p[name]["abs_weight"] == pytest.approx(w, rel=1e-12)
            assert p[name]["weighted_residual"] == pytest.approx(w * res, rel=1e-10)
            expected += w * res
    assert value == pytest.approx(expected, rel=1e-10)
    _check_records(value, records)


@pytest.mark.parametrize("file", ["d.xyz", "d.pckl.gzip"])
def test_pacemaker_loss_with_w_energy_w_forces_and_kappa(tmp_path, file):
    """pacemaker (TensorPotential ``compute_loss``, loss type per-atom): (1 − κ) Σ_s w_E,s
    ((E_s − E*_s)/N_s)² + κ Σ_atoms w_F,i |F_i − F*_i|²; rexfit adds the uniform 1/n."""
    kappa = 0.3
    body = f"""<properties><atomic-energy relative-weight="{1 - kappa!r}" tolerance="1"/>
      <atomic-forces relative-weight="{kappa!r}" tolerance="1"/></properties>"""
    value, term, records = _terms(
        tmp_path, 'component-residuals="sum" energy-weight-key="w_energy" '
                  'forces-weight-key="w_forces"', body, file)
    # the weights as the file holds them (extxyz rounds per-atom arrays)
    frames = read(tmp_path / "d.xyz", index=":") if file == "d.xyz" else _frames()
    loss = 0.0
    for r, atoms in zip(records, frames):
        p = r["properties"]
        de = p["atomic-energy"]["value"] - p["atomic-energy"]["target"]
        df = np.array(p["atomic-forces"]["value"]) - np.array(p["atomic-forces"]["target"])
        loss += (1 - kappa) * atoms.info["w_energy"] * de ** 2
        loss += kappa * np.sum(atoms.arrays["w_forces"] * np.sum(df * df, axis=1))
        assert p["atomic-forces"]["atom_weights"] == pytest.approx(atoms.arrays["w_forces"])
        assert r["relative_weight"] == 1.0
    assert value == pytest.approx(loss / len(frames), rel=1e-10)
    _check_records(value, records)


@pytest.mark.parametrize("attrs, body, message, line", [
    ("", '<group-weight group="liquid" energy="2"/>',
     "<group-weight group='liquid'>: no entry of dataset 'd' is in this group; its entries' "
     "groups are bulk, md, surface", 6),
    ("", '<group-weight group="bulk" forces="-1"/>', "forces must be a number ≥ 0", 6),
    ('weight-key="w_missing"', "", "weight-key=\"w_missing\": 6 of 6 entries have no "
     "per-frame value 'w_missing'", 5),
    ('forces-weight-key="config_type"', "", "is 'bulk', not a number", 5),
])
def test_bad_weights_are_located_input_errors(tmp_path, capsys, attrs, body, message, line):
    write(tmp_path / "d.xyz", _frames(), format="extxyz")
    path = tmp_path / "job.xml"
    path.write_text(JOB.format(attrs=attrs, body=body, file="d.xyz"))
    code = main([str(path), "-q", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and f"{path}:{line}:" in err, err
    assert not (tmp_path / "out").exists()


def test_weight_key_missing_in_some_frames_and_negative_values(tmp_path, capsys):
    frames = _frames()
    del frames[2].info["weight"]
    frames[4].info["w_energy"] = -1.0
    write(tmp_path / "d.xyz", frames, format="extxyz")
    path = tmp_path / "job.xml"
    for attrs, message in (('weight-key="weight"', "1 of 6 entries have no per-frame value "
                            "'weight' (" + f"{tmp_path / 'd.xyz'}#2)"),
                           ('energy-weight-key="w_energy"', "energy-weight-key=\"w_energy\" "
                            f"of entry {tmp_path / 'd.xyz'}#4 must be finite and ≥ 0")):
        path.write_text(JOB.format(attrs=attrs, body="", file="d.xyz"))
        code = main([str(path), "-q", "--output-dir", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and f"{path}:5:" in err, err
