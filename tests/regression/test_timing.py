"""Where a run's time goes: results.json ``timing`` (SPEC §2), the compilation cache across
processes, and the heartbeat that speaks while a run is silent."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rexfit.report.heartbeat import Heartbeat
from rexfit.timing import Clock

ROOT = Path(__file__).resolve().parents[2]

JOB = """<job><name>fcc LJ</name><atom-types><species>Ar</species></atom-types>
  <potentials><lennard-jones id="LJ" species-a="*" species-b="*"><sigma>3.4</sigma>
    <epsilon>0.0104</epsilon><cutoff>7.0</cutoff></lennard-jones></potentials>
  <structures><fcc-lattice id="fcc"><atom-type>Ar</atom-type>
    <lattice-parameter>5.3</lattice-parameter>
    <properties><atomic-energy/><C11/></properties></fcc-lattice></structures></job>"""

KEYS = {"import", "setup", "compile", "fit", "output", "total", "programs_traced",
        "programs_compiled", "compile_cache_hits", "programs_loaded"}


def _run(job: Path, out: Path, cache: Path) -> dict:
    # as users run it: traced programs kept too
    env = dict(os.environ, REXFIT_CACHE_DIR=str(cache), REXFIT_PROGRAM_CACHE="1")
    proc = subprocess.run([sys.executable, "-m", "rexfit", str(job), "-q", "--output-dir",
                           str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "results.json").read_text())["timing"]


def test_second_process_compiles_nothing(tmp_path):
    job = tmp_path / "job.xml"
    job.write_text(JOB)
    cache = tmp_path / "cache"
    first = _run(job, tmp_path / "one", cache)
    second = _run(job, tmp_path / "two", cache)
    assert set(first) == KEYS and set(second) == KEYS
    assert first["programs_compiled"] > 0 and first["programs_traced"] > 0
    assert first["compile_cache_hits"] == 0
    # an unchanged job: every program comes from the cache (SPEC §2)
    assert second["programs_compiled"] == 0
    assert second["compile_cache_hits"] == first["programs_compiled"]
    assert first["programs_loaded"] == 0 and second["programs_loaded"] > 0
    for t in (first, second):
        assert all(t[k] >= 0 for k in KEYS)
        parts = t["import"] + t["setup"] + t["compile"] + t["fit"] + t["output"]
        assert parts <= t["total"] + 0.05


def test_clock_takes_compilation_out_of_phases():
    import jax
    import jax.numpy as jnp

    clock = Clock()
    clock.phase("setup")
    jax.jit(lambda x: jnp.sin(x) * 3.0 + jnp.cos(x) ** 2)(jnp.arange(7.0))  # a new program
    time.sleep(0.05)
    t = clock.report()
    assert t["programs_traced"] >= 1
    assert t["compile"] > 0
    assert t["setup"] >= 0.04


class _Log:
    def __init__(self):
        self.last_output = time.monotonic()
        self.fit_started = False


def test_heartbeat_speaks_only_after_a_silence():
    log, clock, stream = _Log(), Clock(), io.StringIO()
    clock.phase("setup")
    with Heartbeat(log, clock, quiet_after=0.2, every=0.2, stream=stream, tty=False):
        for _ in range(8):  # output every 0.05 s: never silent long enough
            time.sleep(0.05)
            log.last_output = time.monotonic()
        assert stream.getvalue() == ""
        time.sleep(0.8)  # silent
    lines = stream.getvalue().splitlines()
    assert lines and all("preparing" in line and "programs traced" in line for line in lines)
    assert 1 <= len(lines) <= 4
