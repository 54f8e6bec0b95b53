"""Templates that read a data file say where to find one, and validate with that very file
(``rexfit validate``): the example data under jobs/ placed next to the printed job under the
name the job reads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from rexfit.cli import TEMPLATES, main

ROOT = Path(__file__).resolve().parents[2]

#: Elements of a job that name a file it reads.
FILE_ELEMENTS = ("file", "param-file", "atoms-file", "poscar-file", "coeff-file", "model-file")


def template_text(kind: str, capsys) -> str:
    assert main(["template", kind]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", TEMPLATES)
def test_template_points_to_example_data_and_validates_with_it(kind, tmp_path, capsys):
    text = template_text(kind, capsys)
    body = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    reads = re.findall(r"<(%s)\b[^>]*>([^<]+)</\1>" % "|".join(FILE_ELEMENTS), body)
    comments = " ".join(re.findall(r"<!--(.*?)-->", text, flags=re.S))
    examples = re.findall(r"\bjobs/[\w./-]+\w", comments)
    if not reads:
        assert not examples
        return
    (_, name), = reads  # each of these templates reads one file
    assert examples, f"the {kind} template reads {name} but says nowhere where to find one"
    species = set(re.findall(r"<species\b[^>]*>\s*(\w+)\s*</species>", body))
    for example in examples:
        assert (ROOT / example).is_file(), example
        if example.endswith(".xyz"):  # data of the template's elements
            from ase.io import read

            found = {s for atoms in read(ROOT / example, ":") for s in atoms.symbols}
            assert found <= species, (example, found, species)
        else:
            assert all(s in (ROOT / example).read_text() for s in species)
    shutil.copyfile(ROOT / examples[0], tmp_path / name.strip())
    (tmp_path / "job.xml").write_text(text, encoding="utf-8")
    assert main(["validate", str(tmp_path / "job.xml")]) == 0, capsys.readouterr().err
    assert "valid" in capsys.readouterr().out
