"""Class 8 of issue 17: output files are readable per the umask (not the 0600 of the atomic
write's temporary file), and each exported potential file is written once."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rexfit.cli import main
from rexfit.files import atomic_write, current_umask, write_json, write_text

ROOT = Path(__file__).resolve().parents[2]

JOB = """<?xml version="1.0"?>
<job>
  <name>Si SW, small</name>
  <atom-types><species>Si</species></atom-types>
  <potentials>
    <stillinger-weber id="Si" species-a="*" species-b="*">
      <param-file>Si_start.sw</param-file>
      <fit-dof><A min="6" max="8"/><B min="0.5" max="0.7"/></fit-dof>
      {export}
    </stillinger-weber>
  </potentials>
  <structures>
    <diamond-lattice id="diamond">
      <atom-type>Si</atom-type>
      <lattice-parameter>5.43</lattice-parameter>
      <output file="final/diamond.xyz" format="extxyz"/>
      <properties>
        <atomic-energy fit="true" target="-4.40"/>
        <bulk-modulus fit="true" target="98"/>
      </properties>
    </diamond-lattice>
  </structures>
  <fitting><BFGS conv-threshold="1e-12" max-iter="3"/></fitting>
</job>
"""
EXPORT = "<export-potential>Si_fitted.sw</export-potential>"


def _job(tmp_path: Path, export: str = EXPORT) -> Path:
    shutil.copy(ROOT / "jobs/si-sw-dataset/Si_start.sw", tmp_path / "Si_start.sw")
    path = tmp_path / "job.xml"
    path.write_text(JOB.format(export=export))
    return path


def _modes(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): stat.S_IMODE(p.stat().st_mode)
            for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_output_files_follow_the_umask(tmp_path, umask):
    job = _job(tmp_path)
    out = tmp_path / "out"
    # the umask is set inside the child (no preexec_fn: forking a process that runs JAX warns)
    run_with_umask = ("import os, runpy, sys; os.umask(int(sys.argv.pop(1), 8)); "
                      "sys.argv[0] = 'rexfit'; runpy.run_module('rexfit', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", run_with_umask, oct(umask)[2:], str(job), "-q",
                           "--output-dir", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    modes = _modes(out)
    expected = {"log.txt", "results.json", "parameters.xml", "Si_fitted.sw",
                "final/diamond.xyz"}
    assert expected <= set(modes)
    assert {name: oct(m) for name, m in modes.items()} == \
        {name: oct(0o666 & ~umask) for name in modes}


def test_atomic_writes_and_plots_follow_the_umask(tmp_path):
    from matplotlib.figure import Figure

    from rexfit.report.plots import save_figure

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        write_text(str(tmp_path / "a.txt"), "a\n")
        write_json(str(tmp_path / "b.json"), {"b": 1})
        atomic_write(str(tmp_path / "c.sw"), lambda tmp: Path(tmp).write_text("c\n"))
        save_figure(Figure(), str(tmp_path / "d.png"))
    finally:
        os.umask(old)
    assert current_umask() == old
    assert _modes(tmp_path) == {n: 0o640 for n in ("a.txt", "b.json", "c.sw", "d.png")}


def test_an_exported_parameter_file_is_written_once(tmp_path, capsys):
    """With <export-potential>, the fitted .sw file is that export, and parameters.xml
    points to it; a restart from parameters.xml gives the fitted objective again."""
    job = _job(tmp_path)
    out = tmp_path / "out"
    assert main([str(job), "-q", "--output-dir", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir() if p.name.endswith(".sw"))
    assert files == ["Si_fitted.sw"]
    params = (out / "parameters.xml").read_text()
    assert "<param-file>Si_fitted.sw</param-file>" in params
    res = json.loads((out / "results.json").read_text())
    a = res["parameters"]["Si[SW].A"]
    assert a["value"] != a["initial"] and repr(a["value"]) in (out / "Si_fitted.sw").read_text()
    text = job.read_text()
    start, end = text.index("<potentials>"), text.index("</potentials>") + len("</potentials>")
    again = tmp_path / "again.xml"
    again.write_text(text[:start] + '<xi:include href="out/parameters.xml" '
                     'xmlns:xi="http://www.w3.org/2003/XInclude"/>' + text[end:])
    assert main([str(again), "-q", "--no-fit", "--output-dir", str(tmp_path / "again")]) == 0
    res2 = json.loads((tmp_path / "again/results.json").read_text())
    assert res2["objective"]["training"] == pytest.approx(res["objective"]["training"],
                                                          rel=1e-12)


def test_without_an_export_the_fitted_file_is_id_fitted_ext(tmp_path):
    job = _job(tmp_path, export="")
    out = tmp_path / "out"
    assert main([str(job), "-q", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".sw")) == ["Si.fitted.sw"]
    assert "<param-file>Si.fitted.sw</param-file>" in (out / "parameters.xml").read_text()
