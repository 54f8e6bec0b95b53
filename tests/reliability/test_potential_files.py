"""Bad numbers in potential files: every number rexfit reads from a potential file is finite,
or the reader stops with ``path:line: message`` at the line of the offending word (exit 2 from
the command line, no traceback).

Fuzz-style: for each reader and a few real files (LAMMPS's own), numbers at seeded random
positions are replaced by nan/inf/garbage; the reader must either report exactly that line or,
if it ignores that word (as LAMMPS does, e.g. the a0 of an EAM element line), read exactly
what it read from the unchanged file.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from rexfit.cli import main
from rexfit.errors import InputError
from rexfit.potentials.adp_files import read_adp_file
from rexfit.potentials.eam_files import read_funcfl, read_setfl
from rexfit.potentials.manybody_files import read_sw_file, read_tersoff_file
from rexfit.potentials.meam_files import read_meam_spline
from rexfit.potentials.snap_files import read_snapcoeff, read_snapparam
from rexfit.potentials.tokens import PotentialFileError
from tests.support.lammps_ref import potentials_dir

ROOT = Path(__file__).resolve().parents[2]
BAD_WORDS = ("nan", "inf", "-inf", "NaN", "1e999", "1.0.0", "x1", "-Infinity")


def _nn_file(directory: Path) -> Path:
    from rexfit.descriptors.acsf import ACSF
    from rexfit.potentials.neural_network import NeuralNetwork
    from rexfit.export.nn import write_model

    model = NeuralNetwork(ACSF(4.2, g2=((0.1, 0.0), (1.0, 2.0)), n_elements=1), ("Si",), (3,),
                          "tanh")
    path = directory / "nn.json"
    write_model(path, model, model.initial_params(seed=1), "test model")
    return path


def _read_nn(path):
    from rexfit.potentials.nn_files import read_model

    return read_model(path)


#: name -> (file: a LAMMPS potential file name, or a function writing one; reader;
#:          lines at the start that are free text (never numbers the reader takes))
READERS = {
    "eam-alloy": ("Cu_mishin1.eam.alloy", read_setfl, 3),
    "eam-alloy-3": ("NiAlH_jea.eam.alloy", read_setfl, 3),
    "eam-fs": ("Fe_mm.eam.fs", lambda p: read_setfl(p, finnis_sinclair=True), 3),
    "funcfl": ("Cu_u3.eam", lambda p: read_funcfl([p]), 1),
    "adp": ("AlCu.adp", read_adp_file, 3),
    "tersoff": ("SiC.tersoff", read_tersoff_file, 0),
    "tersoff-job": (ROOT / "jobs" / "si-tersoff" / "Si.tersoff", read_tersoff_file, 0),
    "sw": ("GaN.sw", read_sw_file, 0),
    "meam-spline": ("TiO.meam.spline", read_meam_spline, 1),
    "meam-spline-old": ("Si_1.meam.spline", read_meam_spline, 1),
    "snapcoeff": ("InP_JCPA2020.snapcoeff", read_snapcoeff, 0),
    "snapparam": ("Mo_Chen_PRM2017.snapparam", read_snapparam, 0),
    "nn-model": (_nn_file, _read_nn, 0),
}
MUTATIONS = 6


def source(name: str, directory: Path) -> Path:
    spec = READERS[name][0]
    if callable(spec):
        return spec(directory)
    src = spec if isinstance(spec, Path) else potentials_dir() / spec
    dst = directory / src.name
    shutil.copyfile(src, dst)
    return dst


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?")


def numbers(text: str, skip: int) -> list[tuple[int, int, int]]:
    """(line, start, end) of every number-looking word after the first ``skip`` lines,
    outside ``#`` comments."""
    out = []
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        body = line.split("#", 1)[0]
        if number > skip:
            for m in _NUMBER.finditer(body):
                before = body[m.start() - 1] if m.start() else " "
                after = body[m.end()] if m.end() < len(body) else " "
                if before in " \t[:,\"" and after in " \t\r\n],}":
                    out.append((number, offset + m.start(), offset + m.end()))
        offset += len(line)
    return out


def same(a, b) -> bool:
    """Deep equality of what a reader returned (NaN never equals anything)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, str) or a is None:
        return a == b
    try:
        x, y = np.asarray(a), np.asarray(b)
    except Exception:
        return a == b
    if x.dtype.kind in "fiucb":
        return x.shape == y.shape and bool(np.array_equal(x, y))
    return a == b


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """name -> (path of the unchanged file, its text, what the reader returns for it)."""
    out = {}
    for name, (_, reader, _) in READERS.items():
        path = source(name, tmp_path_factory.mktemp(name))
        out[name] = (path, path.read_text(), reader(path))
    return out


CASES = [(name, k) for name in READERS for k in range(MUTATIONS)]


@pytest.mark.parametrize("name,k", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_mutated_number_is_reported_at_its_line(name, k, originals, tmp_path):
    path0, text, expected = originals[name]
    reader, skip = READERS[name][1], READERS[name][2]
    spots = numbers(text, skip)
    rng = np.random.default_rng(1000 + k + 97 * list(READERS).index(name))
    picks = {0: 0, 1: len(spots) - 1}
    index = picks.get(k, int(rng.integers(len(spots))))
    line, start, end = spots[index]
    word = BAD_WORDS[(k + list(READERS).index(name)) % len(BAD_WORDS)]
    path = tmp_path / path0.name
    path.write_text(text[:start] + word + text[end:])
    t0 = time.perf_counter()
    try:
        got = reader(path)
    except PotentialFileError as exc:
        assert isinstance(exc, InputError) and isinstance(exc, ValueError)
        assert str(exc).startswith(f"{path}:{line}: "), (word, line, str(exc))
        assert exc.origin.line == line
        return
    finally:
        assert time.perf_counter() - t0 < 10
    # no error: the reader must not have read that word at all
    assert same(got, expected), f"{word!r} at {path.name}:{line} was read silently"
    pytest.skip(f"{path.name}:{line}: word ignored by the format (as LAMMPS does)")


def test_most_mutations_hit_words_that_are_read(originals, tmp_path):
    """The fuzz above has teeth: in every file, the table values it may pick are read."""
    for name, (path0, text, _) in originals.items():
        reader, skip = READERS[name][1], READERS[name][2]
        spots = numbers(text, skip)
        mid = spots[len(spots) // 2][0]
        line, start, end = next(s for s in spots if s[0] == mid)  # first number of that line
        path = tmp_path / f"{name}-{path0.name}"
        path.write_text(text[:start] + "nan" + text[end:])
        with pytest.raises(PotentialFileError) as info:
            reader(path)
        assert info.value.origin.line == line, (name, str(info.value))


def test_eam_alloy_line_is_the_value_line_not_the_block_end(tmp_path):
    """The reported case: a NaN on line 227 of an eam/alloy table was reported at line 406."""
    path = tmp_path / "Cu.eam.alloy"
    lines = (potentials_dir() / "Cu_mishin1.eam.alloy").read_text().splitlines()
    lines[226] = "nan"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PotentialFileError, match=rf"^{re.escape(str(path))}:227: F\(rho\) of Cu"):
        read_setfl(path)


def test_snapcoeff_line_is_the_coefficient_line(tmp_path):
    """The reported case: a bad coefficient on line 32 was reported at line 5 (its element)."""
    path = tmp_path / "Mo.snapcoeff"
    lines = (potentials_dir() / "Mo_Chen_PRM2017.snapcoeff").read_text().splitlines()
    assert len(lines) >= 32 and lines[31].split()
    lines[31] = "nan " + " ".join(lines[31].split()[1:])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PotentialFileError, match=rf"^{re.escape(str(path))}:32: coefficient"):
        read_snapcoeff(path)


# ----------------------------------------------------------------------------- command line

DIMER = """<?xml version="1.0"?>
<job>
  <name>bad potential file</name>
  <atom-types><species>{el}</species></atom-types>
  <potentials>
{potential}
  </potentials>
  <structures>
    <dimer-structure id="dimer">
      <atom-type-A>{el}</atom-type-A> <atom-type-B>{el}</atom-type-B>
      <atom-distance>2.5</atom-distance>
      <properties><total-energy/></properties>
    </dimer-structure>
  </structures>
</job>
"""

#: name -> (element, potential XML naming {file}, file (LAMMPS name or path), extra files)
JOBS = {
    "tersoff": ("Si", '<tersoff id="p" species-a="*" species-b="*"><param-file>{file}'
                      "</param-file></tersoff>", ROOT / "jobs" / "si-tersoff" / "Si.tersoff"),
    "abop": ("Fe", '<abop id="p" species-a="*" species-b="*"><param-file>{file}</param-file>'
                   "</abop>", ROOT / "jobs" / "fe-abop" / "Fe.tersoff"),
    "sw": ("Si", '<stillinger-weber id="p" species-a="*" species-b="*"><param-file>{file}'
                 "</param-file></stillinger-weber>", "Si.sw"),
    "eam-alloy": ("Cu", '<tabulated-eam id="p" style="eam/alloy"><param-file>{file}'
                        "</param-file></tabulated-eam>", "Cu_mishin1.eam.alloy"),
    "adp": ("Cu", '<adp id="p" species-a="*" species-b="*"><param-file>{file}</param-file>'
                  "</adp>", "AlCu.adp"),
    "snapcoeff": ("Mo", '<snap id="p"><param-file>Mo_Chen_PRM2017.snapparam</param-file>'
                        "<coeff-file>{file}</coeff-file></snap>", "Mo_Chen_PRM2017.snapcoeff"),
    "snapparam": ("Mo", '<snap id="p"><param-file>{file}</param-file>'
                        "<coeff-file>Mo_Chen_PRM2017.snapcoeff</coeff-file></snap>",
                  "Mo_Chen_PRM2017.snapparam"),
    "meam-spline": ("Ti", '<meam id="p" species-a="*" species-b="*"><param-file>{file}'
                          "</param-file></meam>", "Ti.meam.spline"),
}
#: (job, 1-based line, word index on that line) of the number made bad
JOB_MUTATIONS = [("tersoff", None, 5), ("abop", None, 9), ("sw", None, 4),
                 ("eam-alloy", 227, 0), ("eam-alloy", 5, 3), ("adp", 9000, 0),
                 ("snapcoeff", 32, 0), ("snapparam", "rcutfac", 1),
                 ("meam-spline", None, 1)]


def data_line(text: str, line: int | str | None) -> int:
    """``line``, the first line starting with the word ``line``, or the last line that holds
    data (not a comment)."""
    lines = text.splitlines()
    if isinstance(line, int):
        return line
    if isinstance(line, str):
        return next(k + 1 for k, ln in enumerate(lines) if ln.split()[:1] == [line])
    return max(k + 1 for k, ln in enumerate(lines) if ln.split("#", 1)[0].split())


@pytest.mark.parametrize("case", JOB_MUTATIONS)
def test_command_line_exit_2_at_the_line(case, tmp_path, capsys):
    name, line, word_index = case
    el, potential, file = JOBS[name]
    src = file if isinstance(file, Path) else potentials_dir() / file
    for extra in ("Mo_Chen_PRM2017.snapparam", "Mo_Chen_PRM2017.snapcoeff"):
        if name.startswith("snap"):
            shutil.copyfile(potentials_dir() / extra, tmp_path / extra)
    text = src.read_text()
    line = data_line(text, line)
    lines = text.splitlines()
    words = lines[line - 1].split()
    words[word_index] = "nan"
    lines[line - 1] = " ".join(words)
    (tmp_path / src.name).write_text("\n".join(lines) + "\n")
    job = tmp_path / "job.xml"
    job.write_text(DIMER.format(el=el, potential=potential.format(file=src.name)))
    t0 = time.perf_counter()
    code = main([str(job), "--no-fit", "-q", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 60
    assert code == 2, err
    assert "Traceback" not in err
    assert re.search(rf"{re.escape(src.name)}:{line}: ", err), err
    assert err.count(src.name) == 1, err  # named once, with its line
    assert "finite" in err, err
