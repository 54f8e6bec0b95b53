"""Class 9 of issue 17: the Python API never computes in float32 by accident.  In a fresh
interpreter (the test process has 64-bit mode on already), ``rexfit.run.run_job`` on
jobs/al-eam with ``no_fit=True`` gives the numbers of the command line exactly, and importing
rexfit in any order with JAX gives 64-bit arrays — without ``import rexfit`` importing JAX."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _numbers(results: dict) -> dict:
    """The computed numbers of a results.json (no timings)."""
    props = {(sid, name): p["value"] for sid, st in results["structures"].items()
             for name, p in st["properties"].items()}
    return {"objective": results["objective"], "properties": props}


def test_run_job_from_python_equals_the_command_line(tmp_path):
    job = ROOT / "jobs/al-eam/job.xml"
    api_out, cli_out = tmp_path / "api", tmp_path / "cli"
    shown = _python(f"""
        import json
        from rexfit.job import load_job
        from rexfit.run import run_job
        import jax.numpy as jnp
        job, _ = load_job({str(job)!r})
        r = run_job(job, output_dir={str(api_out)!r}, no_fit=True, quiet=True)
        print(json.dumps({{"dtype": str(jnp.asarray(1.0).dtype),
                           "training": r["objective"]["training"]}}))
        """)
    seen = json.loads(shown.strip().splitlines()[-1])
    assert seen["dtype"] == "float64"
    done = subprocess.run([sys.executable, "-m", "rexfit", str(job), "--no-fit", "-q",
                           "--output-dir", str(cli_out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    api = json.loads((api_out / "results.json").read_text())
    cli = json.loads((cli_out / "results.json").read_text())
    assert seen["training"] == api["objective"]["training"]
    assert _numbers(api) == _numbers(cli)  # identical, not approximately equal


def test_every_import_order_computes_in_64_bit():
    out = _python("""
        import sys
        import rexfit
        assert "jax" not in sys.modules, "import rexfit must stay cheap (no JAX)"
        import jax.numpy as jnp
        print(jnp.asarray(1.0).dtype, jnp.ones(3).dtype)
        """)
    assert out.split() == ["float64", "float64"]
    out = _python("""
        import jax
        import jax.numpy as jnp
        before = str(jnp.asarray(1.0).dtype)
        import rexfit.physics.relax  # a computing module, imported directly
        print(before, jnp.asarray(1.0).dtype)
        """)
    assert out.split() == ["float32", "float64"]  # JAX's default, then rexfit's
