"""Selection on <file>: ASE index syntax, groups (config_type by default, group-from
otherwise), info-key patterns; several <file> elements on one file; a selection that keeps
nothing, and a fitted quantity no entry carries, stop the job (exit 2) naming the file and the
job line."""

from __future__ import annotations

import re
import warnings

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rexfit.cli import main
from rexfit.datasets import readers as R
from rexfit.errors import InputError, InputErrors, InputWarning
from rexfit.job import load_job
from rexfit.model.datasets import load_dataset

KINDS = ["bulk_fcc", "bulk_bcc", "surface_111", "vacancy", "bulk_hcp", "surface_100"]


def frames():
    out = []
    for k, kind in enumerate(KINDS):
        a = Atoms("Cu2", positions=[[0, 0, 0], [1.5, 1.5 + k / 16, 1.5]], cell=3.5 * np.eye(3),
                  pbc=True)
        a.calc = SinglePointCalculator(a, energy=-7.0 + k / 8, forces=np.full((2, 3), k / 4),
                                       stress=np.full(6, k / 64))
        a.info.update(config_type=kind.split("_")[0], kind=kind, k=k)
        out.append(a)
    return out


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "cu.xyz"
    ase.io.write(path, frames(), format="extxyz")
    return path


@pytest.mark.parametrize("index", [":", "0:4", "::2", "-2:", "1:-1:2", "3", "-1", "::-1"])
def test_index_is_ases(data, index):
    want = ase.io.read(data, index)
    want = want if isinstance(want, list) else [want]
    got = R.read_dataset(data, index=index)
    assert [e.info["k"] for e in got] == [a.info["k"] for a in want]


def test_groups_from_config_type_and_group_from(data):
    got = R.read_dataset(data, groups="surface vacancy")
    assert [e.info["k"] for e in got] == [2, 3, 5]
    got = R.read_dataset(data, groups=["bulk_hcp"], group_from="info:kind")
    assert [e.group for e in got] == ["bulk_hcp"]
    got = R.read_dataset(data, groups="bulk", index="1:")
    assert [e.info["k"] for e in got] == [1, 4]


def test_info_patterns(data):
    def ks(select):
        return [e.info["k"] for e in R.read_dataset(data, select=select)]

    assert ks("kind=bulk*") == [0, 1, 4]
    assert ks("kind=bulk_?cc") == [0, 1]
    assert ks("kind=surface*|vacancy") == [2, 3, 5]
    assert ks("config_type!=bulk") == [2, 3, 5]
    assert ks("config_type=surface kind=*100") == [5]
    assert ks("k=[24]") == [2, 4]


def test_selection_that_keeps_nothing_names_the_file_and_what_is_there(data):
    with pytest.raises(InputError) as exc:
        R.read_dataset(data, groups="liquid")
    msg = str(exc.value)
    assert str(data) in msg and 'group="liquid" matches none of the 6 frames' in msg
    assert "bulk (3), surface (2), vacancy (1)" in msg
    with pytest.raises(InputError, match="values of kind: bulk_fcc"):
        R.read_dataset(data, select="kind=liquid*")
    with pytest.raises(InputError, match="no frame has the info key 'phase'"):
        R.read_dataset(data, select="phase=solid")
    with pytest.raises(InputError, match="has 6 frames .* no frame 6"):
        R.read_dataset(data, index="6")
    with pytest.raises(InputError, match="no 'nothing' info key to take the group from"):
        R.read_dataset(data, groups="a", group_from="info:nothing")


@pytest.mark.parametrize("bad", ["1.5", "a:b", "1:2:3:4", "::0", ""])
def test_bad_index_is_refused(bad):
    if bad == "":
        assert R.parse_selection(bad, None, None).index is None
        return
    with pytest.raises(InputError, match="index="):
        R.parse_index(bad)


@pytest.mark.parametrize("bad", ["config_type", "=bulk", "kind=", "__import__('os')"])
def test_bad_select_is_refused(bad):
    with pytest.raises(InputError, match="select="):
        R.parse_select(bad)


JOB = """<?xml version="1.0"?>
<job>
  <name>selection</name>
  <atom-types><species>Cu</species></atom-types>
  <potentials>
    <lennard-jones id="lj" species-a="*" species-b="*">
      <epsilon>0.4</epsilon><sigma>2.3</sigma><cutoff>3.0</cutoff>
    </lennard-jones>
  </potentials>
  <structures>
    <dataset id="d">
{files}
      <properties>{props}</properties>
    </dataset>
  </structures>
</job>
"""


def job(tmp_path, files, props="<atomic-energy/><atomic-forces/>"):
    path = tmp_path / "job.xml"
    path.write_text(JOB.format(files=files, props=props))
    return path


def test_one_file_two_selections_in_a_job(tmp_path, data):
    path = job(tmp_path, '      <file group="bulk">cu.xyz</file>\n'
                         '      <file select="kind=surface*" index="::-1">cu.xyz</file>')
    spec, _ = load_job(str(path))
    (ds,) = spec.all_datasets()
    assert [(f.groups, f.select, f.index) for f in ds.files] == [
        (("bulk",), None, None), ((), "kind=surface*", "::-1")]
    loaded = load_dataset(ds, ("Cu",))
    assert [e.entry.info["k"] for e in loaded.entries] == [0, 1, 4, 5, 2]


def file_line(path: str) -> int:
    with open(path) as fh:
        text = fh.read()
    return text[:text.index("<file")].count("\n") + 1


def test_empty_selection_in_a_job_names_the_file_element(tmp_path, data):
    path = job(tmp_path, '      <file group="liquid">cu.xyz</file>')
    spec, _ = load_job(str(path))
    with pytest.raises(InputErrors) as exc:
        load_dataset(spec.all_datasets()[0], ("Cu",))
    (err,) = exc.value.errors
    assert err.origin.path == str(path) and err.origin.line == file_line(str(path))
    assert str(data) in err.message and "matches none" in err.message


@pytest.mark.parametrize("attrs, message", [
    ('index="1:x"', "index="), ('select="kind"', "select="), ('group=" "', "group is empty"),
    ('format="nonsense"', "not a dataset format"),
])
def test_bad_selection_attributes_fail_validation(tmp_path, data, capsys, attrs, message):
    path = job(tmp_path, f"      <file {attrs}>cu.xyz</file>")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"job\.xml:{file_line(str(path))}: <file> .*{re.escape(message)}", err), err


def test_fitted_quantity_no_entry_has_is_an_error(tmp_path):
    structs = frames()
    for a in structs:
        a.calc = SinglePointCalculator(a, energy=a.calc.results["energy"])
    ase.io.write(tmp_path / "e.xyz", structs, format="extxyz")
    path = job(tmp_path, "      <file>e.xyz</file>")
    spec, _ = load_job(str(path))
    with pytest.raises(InputErrors) as exc, pytest.warns(InputWarning, match="forces missing"):
        load_dataset(spec.all_datasets()[0], ("Cu",))
    (err,) = exc.value.errors
    assert "fits forces (<atomic-forces/>) but no entry of its files (e.xyz) has forces" \
        in err.message
    text = path.read_text()
    assert err.origin.line == text[:text.index("<atomic-forces")].count("\n") + 1


def test_frames_lacking_a_quantity_warn_at_their_line(tmp_path):
    structs = frames()
    structs[4].calc = SinglePointCalculator(structs[4], energy=-1.0)
    ase.io.write(tmp_path / "p.xyz", structs, format="extxyz")
    path = job(tmp_path, "      <file>p.xyz</file>")
    spec, _ = load_job(str(path))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loaded = load_dataset(spec.all_datasets()[0], ("Cu",))
    assert len(loaded.entries) == 6
    (w,) = [r.message for r in record if isinstance(r.message, InputWarning)]
    assert w.error.origin.path == str(tmp_path / "p.xyz") and w.error.origin.line == 4 * 4 + 1
    assert "forces missing in 1 of 6 entries (frame 4); they fit energy" in w.error.message


def test_groups_without_any_group_key(tmp_path):
    structs = frames()
    for a in structs:
        a.info.clear()
    path = tmp_path / "plain.xyz"
    ase.io.write(path, structs, format="extxyz")
    with pytest.raises(InputError, match='no frame of the file has a group .*group-from='):
        R.read_dataset(path, groups="bulk")
