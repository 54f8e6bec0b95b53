"""parameters.xml: write changed values into the job's <potentials>, restart a job from it with
xi:include, and read back exactly the values written (== on floats, not approximately)."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from rexfit.errors import CalculationFailed, Origin
from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.export.parameters_xml import write_parameters_xml
from tests.unit.jobfiles import STRUCTURES, write

JOBS = Path(__file__).resolve().parents[2] / "jobs"
FACTOR = 1.2345678901234567
XI = 'xmlns:xi="http://www.w3.org/2003/XInclude"'


def job_text(potentials: str, header: str = "") -> str:
    """A job without <fitting>: every parameter kind is allowed, fitted or not."""
    return f"""<?xml version="1.0"?>
{header}<job>
  <name>parameters.xml test</name>
  <atom-types><species>Al</species></atom-types>
  <potentials>
{potentials}
  </potentials>
  <structures>
{STRUCTURES}
  </structures>
</job>
"""


def changed(v: float) -> float:
    return v * FACTOR if v != 0 else -0.7071067811865476


def entries_of(path: Path):
    job, _ = load_job(str(path))
    return job, build_potentials(job).entries


def restart(job_path: Path, keep=lambda i, name: i % 3 == 2) -> tuple[dict, dict, str]:
    """Change the values of the entries not kept, write job.rexfit/parameters.xml, restart
    from it; returns (old values, new values read back, parameters.xml text)."""
    job, entries = entries_of(job_path)
    old = {e.name: e.initial for e in entries}
    assert len(old) == len(entries), "DOF names must be unique"
    values = {e.name: changed(e.initial) for i, e in enumerate(entries) if not keep(i, e.name)}
    assert values
    out = job_path.parent / "job.rexfit" / "parameters.xml"
    write_parameters_xml(job, entries, values, str(out))

    text = job_path.read_text(encoding="utf-8")
    include = f'<xi:include href="job.rexfit/parameters.xml" {XI}/>'
    new_text, n = re.subn(r"<potentials>.*?</potentials>", include, text, flags=re.S)
    assert n == 1
    new_path = write(job_path.parent, "restart.xml", new_text)
    _, new_entries = entries_of(new_path)

    new = {e.name: e.initial for e in new_entries}
    assert set(new) == set(old)
    for name, v in old.items():
        expected = values.get(name, v)
        assert new[name] == expected, (name, new[name], expected)
    assert all(e.origin.path == str(out) for e in new_entries)
    return old, values, out.read_text(encoding="utf-8")


def check_file(text: str) -> None:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!-- Written by rexfit')
    assert '<xi:include href="parameters.xml" xmlns:xi="http://www.w3.org/2003/XInclude"/>' in text
    assert "rexfit-source-index" not in text and "xml:base" not in text
    assert "rexfit-parameters-xml-source" not in text


# ----------------------------------------------------------------------------- the flagship job


def test_al_eam_restart(tmp_path):
    shutil.copytree(JOBS / "al-eam", tmp_path / "al-eam")
    job = tmp_path / "al-eam" / "job.xml"
    job_, entries = entries_of(job)
    fitted = {e.name for e in entries if e.fit}
    old, values, text = restart(job, keep=lambda i, name: name not in fitted)
    assert set(values) == fitted == {
        "Al[EAM].V[user-function].A", "Al[EAM].V[user-function].lambda",
        "Al[EAM].rho[user-function].twomu", "Al[EAM].F[user-function].D"}
    check_file(text)
    assert f'<param name="A">{500 * FACTOR!r}</param>' in text
    assert text.count('<param name="h">3</param>') == 2  # unchanged values keep their text
    # Comments of the included potential file are kept, the include itself is expanded.
    assert "<!-- Pair repulsion V(r) = A exp(-lambda r)" in text
    assert "xi:include href=\"potential.xml\"" not in text
    assert text.rstrip().endswith("</potentials>")


def test_unchanged_values_write_the_same_potentials(tmp_path):
    shutil.copytree(JOBS / "al-eam", tmp_path / "al-eam")
    job, entries = entries_of(tmp_path / "al-eam" / "job.xml")
    out = tmp_path / "parameters.xml"
    write_parameters_xml(job, entries, {e.name: e.initial for e in entries}, str(out))
    body = out.read_text(encoding="utf-8").split("-->\n", 1)[1]
    original = (tmp_path / "al-eam" / "potential.xml").read_text(encoding="utf-8")
    assert original.strip() in body


# ----------------------------------------------------------------------------- small jobs


USER_FUNCTIONS = """\
<eam id="Al">
  <mapping>
    <pair-interaction function="V"/>
    <electron-density function="rho"/>
    <embedding-energy function="F"/>
  </mapping>
  <functions>
    <user-function id="V">
      <expression>A * exp(-lambda * r)</expression>
      <param name="A">500</param><param name="lambda">2.73</param>
      <fit-dof><A/><lambda/></fit-dof>
      <screening>
        <user-function id="V_screening">
          <cutoff>6.5</cutoff>
          <expression>1 - 1/(1 + ((r - cutoff) / h)^4)</expression>
          <param name="h"> 3 </param>
          <fit-dof><h/></fit-dof>
        </user-function>
      </screening>
    </user-function>
    <user-function id="rho">
      <expression>exp(-twomu * r)</expression>
      <param name="twomu">1.14</param> <param name="unused">0</param>
      <cutoff>6.5</cutoff>
    </user-function>
    <user-function id="F">
      <input-var>rho</input-var>
      <expression>-D * sqrt(rho)</expression>
      <param name="D">8<!-- eV --></param>
    </user-function>
  </functions>
</eam>"""


def test_user_function_params(tmp_path):
    job = write(tmp_path, "job.xml", job_text(USER_FUNCTIONS))
    old, values, text = restart(job, keep=lambda i, name: False)
    assert "Al[EAM].V[user-function].V_screening[user-function].h" in values
    assert len(values) == 6
    check_file(text)
    # Two parameters on one line, each with its own value; whitespace around a value is kept.
    assert (f'<param name="A">{500 * FACTOR!r}</param>'
            f'<param name="lambda">{2.73 * FACTOR!r}</param>') in text
    assert f'<param name="h"> {3 * FACTOR!r} </param>' in text
    assert f'<param name="D">{8 * FACTOR!r}<!-- eV --></param>' in text


def test_two_params_on_one_line_changed_separately(tmp_path):
    job = write(tmp_path, "job.xml", job_text(USER_FUNCTIONS))
    lam = "Al[EAM].V[user-function].lambda"
    old, values, text = restart(job, keep=lambda i, name: name != lam)
    assert list(values) == [lam]
    assert f'<param name="A">500</param><param name="lambda">{2.73 * FACTOR!r}</param>' in text


SPLINES = """\
<eam id="S">
  <mapping>
    <pair-interaction function="V"/>
    <electron-density function="rho"/>
    <embedding-energy function="F"/>
  </mapping>
  <functions>
    <spline id="V">
      <cutoff>5.0</cutoff>
      <derivative-left>-2.5</derivative-left>
      <nodes>
        <node x="1.5" y="2.0" enabled="true"/> <node x="2.5" y="0.9" enabled="true"/>
        <node x="3.5" y="0.35"/>
        <node x="5.0" y="0.0"/>
      </nodes>
    </spline>
    <spline id="rho">
      <cutoff>5.0</cutoff>
      <nodes>
        <node x="1.5" y="1.0"/>
        <node x="5.0" y="0.0"/>
      </nodes>
      <derivative-right>0.0</derivative-right>
    </spline>
    <poly id="F">
      <coefficients>
        <coeff n="0">0</coeff>
        <coeff n="1" enabled="true">-1.5</coeff> <coeff n="2">0.25</coeff>
      </coefficients>
    </poly>
  </functions>
</eam>"""


def test_splines_and_poly_in_an_included_file(tmp_path):
    header = "<!-- A spline EAM with a polynomial embedding function -->\n"
    write(tmp_path, "potential.xml", header + SPLINES + "\n")
    job = write(tmp_path, "job.xml", job_text(f'    <xi:include href="potential.xml" {XI}/>'))
    old, values, text = restart(job, keep=lambda i, name: False)
    assert set(values) == set(old)
    assert {"S[EAM].V[spline].node[1.5].y", "S[EAM].V[spline].derivative-left",
            "S[EAM].V[spline].derivative-right", "S[EAM].rho[spline].derivative-left",
            "S[EAM].rho[spline].derivative-right", "S[EAM].F[poly].coeff[0]",
            "S[EAM].F[poly].coeff[2]"} <= set(values)
    check_file(text)
    assert header.strip() in text  # the included file's header comment is kept
    # Absent end derivatives (value 0) became elements; present ones were rewritten.
    assert f"<derivative-left>{-2.5 * FACTOR!r}</derivative-left>" in text
    assert text.count("<derivative-left>") == 2 and text.count("<derivative-right>") == 2
    # Two nodes on one line.
    assert (f'<node x="1.5" y="{2.0 * FACTOR!r}" enabled="true"/> '
            f'<node x="2.5" y="{0.9 * FACTOR!r}" enabled="true"/>') in text
    assert (f'<coeff n="1" enabled="true">{-1.5 * FACTOR!r}</coeff> '
            f'<coeff n="2">{0.25 * FACTOR!r}</coeff>') in text


def test_absent_derivatives_stay_absent_when_unchanged(tmp_path):
    job = write(tmp_path, "job.xml", job_text(SPLINES))
    old, values, text = restart(job, keep=lambda i, name: "derivative" in name)
    assert text.count("<derivative-left>") == 1 and text.count("<derivative-right>") == 1
    assert "<derivative-right>0.0</derivative-right>" in text


LJ_AND_EAM = """\
<lennard-jones id="LJ" species-a="*" species-b="*">
  <sigma>2.6</sigma><epsilon>0.01</epsilon>
  <cutoff>6.0</cutoff>
  <fit-dof><sigma/><epsilon/></fit-dof>
</lennard-jones>
<eam id="E">
  <mapping>
    <pair-interaction function="V"/>
    <electron-density function="rho"/>
    <embedding-energy function="F"/>
  </mapping>
  <functions>
    <sum id="V">
      <morse-A id="m"><D0>0.4</D0><r0>2.5</r0><alpha>1.4</alpha></morse-A>
      <constant id="c"><const>0.05</const></constant>
      <screening>
        <XpowN-cutoff id="s"><cutoff>5.0</cutoff><h>1.5</h><N>4</N></XpowN-cutoff>
      </screening>
    </sum>
    <user-function id="rho">
      <expression>exp(-b * r)</expression>
      <param name="b">1.1</param>
      <cutoff>5.0</cutoff>
    </user-function>
    <user-function id="F">
      <input-var>rho</input-var>
      <expression>-D * sqrt(rho)</expression>
      <param name="D">2</param>
    </user-function>
  </functions>
</eam>"""


def test_two_potentials_lennard_jones_and_analytic(tmp_path):
    job = write(tmp_path, "job.xml", job_text(LJ_AND_EAM))
    const = "E[EAM].V[functionSum].c[constant].const"
    old, values, text = restart(job, keep=lambda i, name: name == const)
    assert {"LJ[LJ].sigma", "LJ[LJ].epsilon", "E[EAM].V[functionSum].m[morse-A].D0",
            "E[EAM].V[functionSum].s[XpowN-cutoff].h"} <= set(values)
    check_file(text)
    assert f"<sigma>{2.6 * FACTOR!r}</sigma><epsilon>{0.01 * FACTOR!r}</epsilon>" in text
    assert "<cutoff>6.0</cutoff>" in text and "<const>0.05</const>" in text


def test_several_potentials_elements_are_merged(tmp_path):
    lj, eam = LJ_AND_EAM.split("</lennard-jones>\n")
    text = job_text(lj + "</lennard-jones>").replace(
        "  <structures>", f"  <potentials>\n{eam}\n  </potentials>\n  <structures>")
    job = write(tmp_path, "job.xml", text)
    job_, entries = entries_of(job)
    values = {e.name: changed(e.initial) for e in entries}
    out = tmp_path / "job.rexfit" / "parameters.xml"
    write_parameters_xml(job_, entries, values, str(out))
    new_text = re.sub(r"<potentials>.*</potentials>",
                      f'<xi:include href="job.rexfit/parameters.xml" {XI}/>', text, flags=re.S)
    _, new_entries = entries_of(write(tmp_path, "restart.xml", new_text))
    assert {e.name: e.initial for e in new_entries} == values


# ----------------------------------------------------------------------------- files and errors


def test_param_files_resolve_from_the_output_directory(tmp_path):
    shutil.copytree(JOBS / "si-tersoff", tmp_path / "si")
    job, _ = load_job(str(tmp_path / "si" / "job.xml"))
    out = tmp_path / "si" / "job.rexfit" / "parameters.xml"
    write_parameters_xml(job, [], {}, str(out))
    text = out.read_text(encoding="utf-8")
    assert "<param-file>../Si.tersoff</param-file>" in text
    assert "<export-potential>Si_fitted.tersoff</export-potential>" in text  # output-relative
    job_text_ = (tmp_path / "si" / "job.xml").read_text(encoding="utf-8")
    restarted = re.sub(r"<potentials>.*?</potentials>",
                       f'<xi:include href="job.rexfit/parameters.xml" {XI}/>', job_text_,
                       flags=re.S)
    new, _ = load_job(str(write(tmp_path / "si", "restart.xml", restarted)))
    assert new.potentials[0].param_file == job.potentials[0].param_file


def test_unknown_parameter_raises(tmp_path):
    job_path = write(tmp_path, "job.xml", job_text(USER_FUNCTIONS))
    job, entries = entries_of(job_path)
    out = tmp_path / "parameters.xml"
    with pytest.raises(CalculationFailed, match=r"Al\[EAM\]\.V\[user-function\]\.B"):
        write_parameters_xml(job, entries, {"Al[EAM].V[user-function].B": 1.0}, str(out))
    assert not out.exists()


def test_parameter_not_in_the_file_raises(tmp_path):
    job_path = write(tmp_path, "job.xml", job_text(USER_FUNCTIONS))
    job, entries = entries_of(job_path)
    moved = [dataclasses.replace(e, origin=Origin(e.origin.path, e.origin.line + 1))
             if e.name.endswith(".twomu") else e for e in entries]
    with pytest.raises(CalculationFailed, match=r"Al\[EAM\]\.rho\[user-function\]\.twomu"):
        write_parameters_xml(job, moved, {"Al[EAM].rho[user-function].twomu": 1.0},
                             str(tmp_path / "parameters.xml"))
    assert not (tmp_path / "parameters.xml").exists()


def test_non_finite_value_raises(tmp_path):
    job_path = write(tmp_path, "job.xml", job_text(USER_FUNCTIONS))
    job, entries = entries_of(job_path)
    with pytest.raises(CalculationFailed, match=r"F\[user-function\]\.D.*nan"):
        write_parameters_xml(job, entries, {"Al[EAM].F[user-function].D": float("nan")},
                             str(tmp_path / "parameters.xml"))
