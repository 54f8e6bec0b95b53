"""Bad job files: exit code 2, `file:line: message` naming the right file, no traceback,
nothing written. Each case is a small job with one (or several) deliberate mistakes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rexfit.cli import main
from tests.unit.jobfiles import EAM_POTENTIAL, STRUCTURES, job_text, line_of, write

XI = 'xmlns:xi="http://www.w3.org/2003/XInclude"'


def run(capsys, path, *extra) -> tuple[int, list[str]]:
    code = main([str(path), *extra])
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()]


def assert_error(capsys, path, file, line, *fragments):
    """The run fails with exit 2 and reports an error at file:line containing the fragments."""
    code, lines = run(capsys, path)
    assert code == 2, lines
    assert not any("Traceback" in ln for ln in lines)
    prefix = f"{file}:{line}: "
    hits = [ln for ln in lines if ln.startswith(prefix)]
    assert hits, f"no error at {prefix!r} in {lines}"
    assert any(all(f in ln for f in fragments) for ln in hits), (fragments, hits)
    # Nothing computed, nothing written: the output directory does not exist.
    out_dir = os.path.join(os.path.dirname(path), os.path.splitext(os.path.basename(path))[0] + ".rexfit")
    assert not os.path.exists(out_dir)
    return lines


def test_valid_job_passes(tmp_path, capsys):
    path = write(tmp_path, "job.xml", job_text())
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "valid (1 structure, 4 fitted parameters)" in out.out


def test_malformed_xml(tmp_path, capsys):
    text = job_text().replace("<name>test</name>", "<name>test</nam>")
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "</nam>"), "malformed XML")


def test_empty_file(tmp_path, capsys):
    path = write(tmp_path, "job.xml", "")
    assert_error(capsys, path, path, 1, "empty")


def test_unknown_element(tmp_path, capsys):
    text = job_text(extra="  <fiting/>")
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "<fiting/>"), "<fiting>", "unknown")


def test_unknown_attribute(tmp_path, capsys):
    text = job_text(structures=STRUCTURES.replace('id="fcc"', 'id="fcc" colour="red"'))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, 'colour="red"'), "unknown attribute 'colour'",
                 "relative-weight")


def test_non_numeric_number(tmp_path, capsys):
    text = job_text(structures=STRUCTURES.replace(
        "<lattice-parameter>4.05</lattice-parameter>",
        "<lattice-parameter>four</lattice-parameter>"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, ">four<"), "'four'", "not a number")


def test_non_numeric_attribute(tmp_path, capsys):
    text = job_text(structures=STRUCTURES.replace('target="-3.36"', 'target="-3.3x"'))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "-3.3x"), "target", "not a number")


def test_missing_include(tmp_path, capsys):
    text = job_text(potentials=f'<xi:include href="nothere.xml" {XI}/>')
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "nothere.xml"), "included file not found",
                 "nothere.xml")


def test_include_cycle(tmp_path, capsys):
    a = f'<group>\n  <xi:include href="b.xml" {XI}/>\n</group>\n'
    b = f'<group>\n\n  <xi:include href="a.xml" {XI}/>\n</group>\n'
    write(tmp_path, "a.xml", a)
    bpath = write(tmp_path, "b.xml", b)
    text = job_text(structures=f'<xi:include href="a.xml" {XI}/>')
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, bpath, 3, "include cycle", "a.xml -> b.xml -> a.xml")


def test_error_inside_included_file_names_that_file(tmp_path, capsys):
    pot = EAM_POTENTIAL.replace('<param name="D">8</param>', '<param name="D" unit="eV">8</param>')
    ppath = write(tmp_path, "potential.xml", pot)
    text = job_text(potentials=f'<xi:include href="potential.xml" {XI}/>')
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, ppath, line_of(pot, 'unit="eV"'), "unknown attribute 'unit'")


def test_semantic_error_inside_nested_include(tmp_path, capsys):
    sub = tmp_path / "sub"
    sub.mkdir()
    inner = STRUCTURES.replace("<atom-type>Al</atom-type>", "<atom-type>Cu</atom-type>")
    ipath = write(sub, "inner.xml", inner)
    write(sub, "outer.xml", f'<group>\n<xi:include href="inner.xml" {XI}/>\n</group>\n')
    text = job_text(structures=f'<xi:include href="sub/outer.xml" {XI}/>')
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, ipath, line_of(inner, "Cu"), "species 'Cu' is not declared")


def test_undeclared_species(tmp_path, capsys):
    text = job_text(structures=STRUCTURES.replace("<atom-type>Al</atom-type>",
                                                  "<atom-type>Cu</atom-type>"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, ">Cu<"), "'Cu'", "not declared", "Al")


def test_mapping_to_unknown_function(tmp_path, capsys):
    text = job_text(potentials=EAM_POTENTIAL.replace('function="rho"', 'function="dens"'))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, 'function="dens"'), "'dens'", "not defined",
                 "F, V, rho")


def test_fit_dof_for_unknown_parameter(tmp_path, capsys):
    text = job_text(potentials=EAM_POTENTIAL.replace("<fit-dof><D/></fit-dof>",
                                                     "<fit-dof><E/></fit-dof>"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "<E/>"), "'E'", "not a parameter", "D")


@pytest.mark.parametrize("value", ["0", "-2.0"])
def test_non_positive_cutoff(tmp_path, capsys, value):
    text = job_text(potentials=EAM_POTENTIAL.replace("<cutoff>6.5</cutoff>",
                                                     f"<cutoff>{value}</cutoff>", 1))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, f"<cutoff>{value}"), "cutoff", "positive")


def test_non_positive_lattice_parameter(tmp_path, capsys):
    text = job_text(structures=STRUCTURES.replace("<lattice-parameter>4.05</lattice-parameter>",
                                                  "<lattice-parameter>-4.05</lattice-parameter>"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, ">-4.05<"), "lattice-parameter", "positive")


def test_min_larger_than_max(tmp_path, capsys):
    text = job_text(potentials=EAM_POTENTIAL.replace("<A/>", '<A min="900" max="100"/>'))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, 'min="900"'), "min (900)", "max (100)")


@pytest.mark.parametrize("value", ["NaN", "INF", "-INF"])
def test_non_finite_target(tmp_path, capsys, value):
    text = job_text(structures=STRUCTURES.replace('target="-3.36"', f'target="{value}"'))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, f'target="{value}"'), "finite")


def test_expression_syntax_error(tmp_path, capsys):
    text = job_text(potentials=EAM_POTENTIAL.replace("A * exp(-lambda * r)",
                                                     "A * exp(-lambda * r"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "A * exp(-lambda * r<"), "<expression>",
                 "column 8", "unclosed '('")


def test_expression_unknown_name(tmp_path, capsys):
    text = job_text(potentials=EAM_POTENTIAL.replace("A * exp(-lambda * r)",
                                                     "A * exp(-lamda * r)"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "lamda"), "column 10", "'lamda'", "lambda")


def test_expression_error_on_later_line_of_multiline_text(tmp_path, capsys):
    text = job_text(potentials=EAM_POTENTIAL.replace(
        "<expression>-D * sqrt(rho)</expression>",
        "<expression>\n        -D *\n        sqrt(rhoo)\n      </expression>"))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "sqrt(rhoo)"), "column 14", "'rhoo'")


@pytest.mark.parametrize("expression", [
    "__import__('os').system('touch {marker}')",
    "A.__class__.__bases__",
    "lambda r: open('{marker}', 'w')",
    "[x for x in (1,)]",
    "exec('open(\"{marker}\", \"w\")')",
])
def test_expression_outside_grammar_runs_nothing(tmp_path, capsys, expression):
    marker = tmp_path / "pwned"
    expr = expression.format(marker=marker).replace("&", "&amp;").replace("<", "&lt;")
    text = job_text(potentials=EAM_POTENTIAL.replace("A * exp(-lambda * r)", expr))
    path = write(tmp_path, "job.xml", text)
    code, lines = run(capsys, path)
    assert code == 2
    assert any(ln.startswith(f"{path}:{line_of(text, expr[:10])}: <expression> column") for ln in lines), lines
    assert not marker.exists()


def test_missing_structure_file(tmp_path, capsys):
    structures = """<user-structure id="s1">
      <poscar-file>POSCAR_missing</poscar-file>
      <properties><atomic-energy fit="true" target="-3.0"/></properties>
    </user-structure>"""
    text = job_text(structures=structures)
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "POSCAR_missing"), "file not found",
                 "POSCAR_missing")


def test_missing_param_file(tmp_path, capsys):
    pot = '<tersoff id="Si"><param-file>Si.tersoff</param-file></tersoff>'
    text = job_text(potentials=pot)
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "<param-file>"), "file not found")


def test_several_semantic_errors_reported_at_once(tmp_path, capsys):
    pot = (EAM_POTENTIAL.replace('function="rho"', 'function="dens"')
           .replace("<A/>", '<A min="2" max="1"/>'))
    structures = STRUCTURES.replace("<atom-type>Al</atom-type>", "<atom-type>Cu</atom-type>")
    text = job_text(potentials=pot, structures=structures)
    path = write(tmp_path, "job.xml", text)
    code, lines = run(capsys, path)
    assert code == 2
    located = {ln.split(": ", 1)[0] for ln in lines}
    for marker in ('function="dens"', 'min="2"', ">Cu<"):
        assert f"{path}:{line_of(text, marker)}" in located, (marker, lines)


def test_several_schema_errors_reported_at_once(tmp_path, capsys):
    structures = (STRUCTURES.replace('id="fcc"', 'id="fcc" colour="red"')
                  .replace('target="-3.36"', 'target="abc"'))
    text = job_text(structures=structures)
    path = write(tmp_path, "job.xml", text)
    code, lines = run(capsys, path)
    assert code == 2
    located = {ln.split(": ", 1)[0] for ln in lines}
    for marker in ('colour="red"', 'target="abc"'):
        assert f"{path}:{line_of(text, marker)}" in located, (marker, lines)


def test_target_outside_dof_range_is_a_warning(tmp_path, capsys):
    text = job_text(structures=STRUCTURES.replace('target="4.05" min="3" max="5"',
                                                  'target="5.5" min="3" max="5"'))
    path = write(tmp_path, "job.xml", text)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 0
    line = line_of(text, 'target="5.5"')
    assert f"{path}:{line}: warning: " in err
    assert "outside the DOF's own range [3:5]" in err


def test_duplicate_ids(tmp_path, capsys):
    structures = STRUCTURES.replace("</group>", STRUCTURES.split("\n", 1)[1])
    text = job_text(structures=structures)
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, 'id="fcc"', 1), "'fcc'", "used twice")


def test_command_line_exit_code_and_no_traceback(tmp_path):
    """The real console entry point: exit code 2, located message, no traceback."""
    text = job_text(extra="  <fiting/>")
    path = write(tmp_path, "job.xml", text)
    proc = subprocess.run([sys.executable, "-m", "rexfit", str(path)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{path}:{line_of(text, '<fiting/>')}: " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["job.xml"]
    proc = subprocess.run([sys.executable, "-m", "rexfit", str(path), "--traceback"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_job_file_that_does_not_exist(tmp_path, capsys):
    code, lines = run(capsys, tmp_path / "nothere.xml")
    assert code == 2
    assert lines == [f"{tmp_path / 'nothere.xml'}: file not found"]


def test_root_element_must_be_job(tmp_path, capsys):
    path = write(tmp_path, "job.xml", "<eam id='x'/>\n")
    code, lines = run(capsys, path)
    assert code == 2 and lines and lines[0].startswith(f"{path}:1: ")


def test_mapping_role_of_another_family(tmp_path, capsys):
    """The roles an <eam> mapping takes come from its family record: a u-function is ADP's."""
    text = job_text(potentials=EAM_POTENTIAL.replace(
        '<embedding-energy species="*" function="F"/>',
        '<embedding-energy species="*" function="F"/>\n'
        '    <u-function species-a="*" species-b="*" function="V"/>'))
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "<u-function"), "<u-function>",
                 "not part of a <eam> mapping", "embedding-energy")


def test_meam_with_both_a_file_and_functions(tmp_path, capsys):
    """Reported when the job is read (validate), at the <meam> element."""
    write(tmp_path, "Ti.meam.spline", "# not read\n")
    meam = (EAM_POTENTIAL.replace("<eam ", "<meam ").replace("</eam>", "</meam>")
            .replace('id="Al"', 'id="M"')
            .replace("<mapping>", "<param-file>Ti.meam.spline</param-file>\n  <mapping>"))
    text = job_text(potentials=meam)
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "<meam "), "<meam id='M'>",
                 "either a <param-file> or <functions>")


def test_funcfl_table_without_species(tmp_path, capsys):
    write(tmp_path, "Al.eam", "# not read\n")
    text = job_text(potentials='<tabulated-eam id="T" style="eam">\n'
                               '  <param-file>Al.eam</param-file>\n</tabulated-eam>')
    path = write(tmp_path, "job.xml", text)
    assert_error(capsys, path, path, line_of(text, "<param-file>"), "style='eam'",
                 "'species' attribute")
