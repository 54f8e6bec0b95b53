"""<dataset> in the job language: schema, checks with file and line, nested weights with a
dataset member, reading its files into training and validation entries."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from rexfit.cli import main
from rexfit.job import load_job
from rexfit.model.datasets import load_dataset
from rexfit.objective.weights import absolute_weights

POTENTIAL = ('<lennard-jones id="LJ" species-a="*" species-b="*"><sigma>2.1</sigma>'
             '<epsilon>0.4</epsilon><cutoff>5.0</cutoff></lennard-jones>')


def job(tmp_path, dataset, species=("Si",)):
    types = "".join(f"<species>{sp}</species>" for sp in species)
    text = (f"<job><name>d</name><atom-types>{types}</atom-types>"
            f"<potentials>{POTENTIAL}</potentials><structures>"
            '<diamond-lattice id="dia" relative-weight="3"><atom-type>Si</atom-type>'
            '<lattice-parameter>5.43</lattice-parameter><properties>'
            '<atomic-energy fit="true" target="-4.3"/></properties></diamond-lattice>'
            f"{dataset}</structures></job>")
    path = tmp_path / "job.xml"
    path.write_text(text)
    return path


def write_data(path, n, groups=None):
    frames = []
    for k in range(n):
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = SinglePointCalculator(atoms, energy=-34.0 + 0.1 * k,
                                           forces=np.full((8, 3), 0.01 * k),
                                           stress=np.zeros(6))
        if groups is not None:
            atoms.info["group"] = groups[k]
        frames.append(atoms)
    write(path, frames, format="extxyz")


def test_dataset_weights_and_entries(tmp_path):
    write_data(tmp_path / "data.xyz", 10, groups=["a"] * 5 + ["b"] * 5)
    path = job(tmp_path, """<dataset id="data" validation-fraction="0.2" seed="4">
        <file group-from="comment">data.xyz</file>
        <reference-energy species="Si">-0.5</reference-energy>
        <energy-weighting scale="0.05"/>
        <properties><atomic-energy relative-weight="3"/><atomic-forces/></properties>
        </dataset>""")
    spec, problems = load_job(str(path))
    assert not [p for p in problems if p.severity == "error"]
    (ds,) = spec.all_datasets()
    assert [s.id for s in spec.all_structures()] == ["dia"]
    w = absolute_weights(spec.structures)
    # the dataset is one member of weight 1 next to the diamond's 3; energy:forces = 3:1
    assert w[("dia", "atomic-energy")] == pytest.approx(0.75)
    assert w[("data", "atomic-energy")] == pytest.approx(0.25 * 0.75)
    assert w[("data", "atomic-forces")] == pytest.approx(0.25 * 0.25)
    assert absolute_weights(spec.structures, validation=True) == {
        ("data", "atomic-energy"): pytest.approx(0.75), ("data", "atomic-forces"): pytest.approx(0.25)}
    loaded = load_dataset(ds, ("Si",))
    train, val = loaded.of("training"), loaded.of("validation")
    assert len(train) == 8 and len(val) == 2
    assert sorted(e.entry.group for e in val) == ["a", "b"]  # one per group (stratified)
    again = load_dataset(ds, ("Si",))
    assert [e.entry.source for e in again.entries] == [e.entry.source for e in loaded.entries]
    for e in loaded.entries:  # reference energies subtracted: E − 8 × (−0.5)
        assert e.energy == pytest.approx(e.entry.energy + 4.0)
    assert np.mean([e.weight for e in train]) == pytest.approx(1.0)
    low = min(train, key=lambda e: e.entry.energy)
    assert low.weight == max(e.weight for e in train)


@pytest.mark.parametrize("dataset, message", [
    ('<dataset id="d"><file format="tiff">data.xyz</file></dataset>', "not a dataset format"),
    ('<dataset id="d" validation-fraction="1.5"><file>data.xyz</file></dataset>',
     "validation-fraction must be in [0, 1)"),
    ('<dataset id="d"><validation-file>data.xyz</validation-file></dataset>',
     "needs at least one <file>"),
    ('<dataset id="d"><file group-from="title">data.xyz</file></dataset>', "group-from must be"),
    ('<dataset id="d"><file>data.xyz</file><properties><C11/></properties></dataset>',
     "expected one of: atomic-energy, atomic-forces, stress"),
    ('<dataset id="d"><file>missing.xyz</file></dataset>', "missing.xyz"),
    ('<dataset id="dia"><file>data.xyz</file></dataset>', "used twice"),
])
def test_dataset_errors_name_file_and_line(tmp_path, capsys, dataset, message):
    write_data(tmp_path / "data.xyz", 2)
    path = job(tmp_path, dataset)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and f"{path}:1:" in err, err


def test_entries_with_undeclared_species_stop_the_run(tmp_path, capsys):
    atoms = bulk("Ge", "diamond", 5.6, cubic=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-30.0)
    write(tmp_path / "ge.xyz", [atoms], format="extxyz")
    path = job(tmp_path, '<dataset id="d"><file>ge.xyz</file></dataset>')
    code = main([str(path), "-q", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "species Ge, which are not in <atom-types>" in err
    assert not (tmp_path / "out").exists()
