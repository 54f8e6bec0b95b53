"""How the ``rexfit`` process ends after a job: at once (``os._exit``) once its output is
flushed and the exit handlers ran, without Python's teardown of the imported modules; with the
objects the imports made frozen for the garbage collector during the run.  ``main(argv)``
called from Python (argv given) ends nothing and freezes nothing."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

from rexfit import cli
from tests.support.cli import ROOT, short_lj_job

TIMEOUT = 180

#: a module-level object of the child's __main__ that says when Python's teardown destroys it,
#: and an exit handler that says when it runs
PROBES = """
    import atexit

    class Probe:
        def __del__(self):
            print("MARK: module teardown", flush=True)

    probe = Probe()
    atexit.register(lambda: print("MARK: exit handler", flush=True))
    """


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    script = textwrap.dedent(PROBES) + textwrap.dedent(f"""
        import sys
        from rexfit.cli import main
        sys.argv = ["rexfit"] + {argv!r}
        sys.exit(main())
        """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=ROOT)


def test_a_job_ends_its_process_without_module_teardown(tmp_path):
    job = short_lj_job(tmp_path, 2)
    out = tmp_path / "out"
    proc = _run([str(job), "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr
    # everything written and printed, the exit handlers run, the modules left alone
    assert "Results written to" in proc.stdout
    assert "MARK: exit handler" in proc.stdout
    assert "MARK: module teardown" not in proc.stdout
    assert json.loads((out / "results.json").read_text())["fit"]["iterations"] >= 1
    assert "Time:" in (out / "log.txt").read_text()


def test_the_exit_code_of_a_failed_job_is_kept(tmp_path):
    proc = _run([str(tmp_path / "missing.xml"), "-q"])
    assert proc.returncode == cli.EXIT_INPUT
    assert "missing.xml" in proc.stderr and "Traceback" not in proc.stderr
    assert "MARK: exit handler" in proc.stdout
    assert "MARK: module teardown" not in proc.stdout


def test_a_command_without_a_job_exits_as_python_does():
    proc = _run(["template", "lj"])
    assert proc.returncode == 0 and "<job>" in proc.stdout
    assert "MARK: exit handler" in proc.stdout and "MARK: module teardown" in proc.stdout


def test_imported_objects_are_frozen_only_when_the_process_ends_after_the_job(
        tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(1))
    job = short_lj_job(tmp_path, 2)
    assert cli.main([str(job), "-q", "--no-fit", "--output-dir", str(tmp_path / "a")]) == 0
    assert calls == []  # called from Python: the caller's objects stay collectable
    assert cli.cmd_run([str(job), "-q", "--no-fit", "--output-dir", str(tmp_path / "b")],
                       command_line=True) == 0
    assert calls == [1]
