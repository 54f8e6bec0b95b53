"""``rexfit.run`` from Python (SPEC §2a): the numbers and files of the command line, jobs given
as XML text with a base directory, input errors as :class:`rexfit.InputErrors` naming
``path:line``, an ASE calculator of the result, and 64-bit in a fresh interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

import rexfit
from rexfit.cli import main

ROOT = Path(__file__).resolve().parents[2]
AL_EAM = ROOT / "jobs" / "al-eam" / "job.xml"
AR_LJ = ROOT / "jobs" / "ar-lj" / "job.xml"

#: A tiny fit whose potential comes from a file next to it (a relative xi:include).
POTENTIAL = """<potentials>
  <lennard-jones id="ArAr" species-a="*" species-b="*">
    <sigma>3.40</sigma><epsilon>0.0104</epsilon><cutoff>7.0</cutoff>
    <fit-dof><sigma min="3.0" max="4.0"/><epsilon min="0.005" max="0.02"/></fit-dof>
  </lennard-jones>
</potentials>
"""
JOB = """<job>
  <name>tiny Ar</name>
  <atom-types><species>Ar</species></atom-types>
  <xi:include href="potential.xml" xmlns:xi="http://www.w3.org/2003/XInclude"/>
  <structures>
    <fcc-lattice id="fcc">
      <atom-type>Ar</atom-type>
      <lattice-parameter>5.3</lattice-parameter>
      <properties>
        <atomic-energy fit="true" target="-0.080"/>
        <C11 fit="true" target="4.0"/>
      </properties>
    </fcc-lattice>
  </structures>
  <fitting><BFGS conv-threshold="1e-12" max-iter="50"/></fitting>
</job>
"""


def _comparable(results):
    """results.json without what depends on the clock (``timing`` and every ``seconds``)."""
    if isinstance(results, dict):
        return {k: _comparable(v) for k, v in results.items() if k not in ("timing", "seconds")}
    if isinstance(results, list):
        return [_comparable(v) for v in results]
    return results


def _cli(*args) -> dict:
    code = main([*map(str, args), "-q", "--no-plots"])
    assert code == 0
    out = Path(args[args.index("--output-dir") + 1])
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def al_eam(tmp_path_factory):
    """jobs/al-eam at its given parameters, run by the API and by the command line."""
    tmp = tmp_path_factory.mktemp("al-eam")
    res = rexfit.run(AL_EAM, tmp / "api", no_fit=True, plots=False)
    cli = _cli(AL_EAM, "--no-fit", "--output-dir", tmp / "cli")
    return res, cli


def test_api_equals_the_command_line(al_eam):
    res, cli = al_eam
    on_disk = json.loads(Path(res.files["results.json"]).read_text())
    assert res.results == on_disk  # the dictionary is the file
    assert _comparable(res.results) == _comparable(cli)  # identical numbers, not close ones
    assert res.objective == cli["objective"]["training"]
    assert isinstance(res.objective, float)
    assert res.parameters == {k: v["value"] for k, v in cli["parameters"].items()}
    assert res.fit is None and not res.interrupted
    fcc = res.structures["fcc"]
    assert fcc.set == "training" and fcc.natoms == 1
    assert fcc["lattice-parameter"] == cli["structures"]["fcc"]["properties"][
        "lattice-parameter"]["value"]
    assert set(res.properties("validation")) == {
        sid for sid, st in cli["structures"].items() if st["set"] == "validation"}


def test_calculator_gives_the_energy_of_the_results(al_eam):
    res, _ = al_eam
    fcc = res.structures["fcc"]
    atoms = bulk("Al", "fcc", a=fcc["lattice-parameter"])  # the relaxed primitive cell
    atoms.calc = res.calculator()
    energy = atoms.get_potential_energy()
    assert energy == pytest.approx(fcc["atomic-energy"] * fcc.natoms, rel=1e-12, abs=1e-12)
    assert np.abs(atoms.get_forces()).max() < 1e-10


def test_xml_text_with_base_dir_equals_the_command_line(tmp_path):
    (tmp_path / "potential.xml").write_text(POTENTIAL)
    (tmp_path / "job.xml").write_text(JOB)
    res = rexfit.run(JOB, base_dir=tmp_path, max_iter=2)
    try:
        assert Path(res.output_dir).is_dir() and not Path(res.output_dir).is_relative_to(
            tmp_path)  # output_dir=None for a text job: a temporary directory
        assert sorted(os.listdir(tmp_path)) == ["job.xml", "potential.xml"]  # none left behind
        cli = _cli(tmp_path / "job.xml", "--max-iter", "2", "--output-dir", tmp_path / "cli")
        assert _comparable(res.results) == _comparable(cli)
        assert res.fit["iterations"] == 2
        assert res.objective < res.initial_objective
        assert set(res.fitted_parameters) == {"ArAr[LJ].sigma", "ArAr[LJ].epsilon"}
        [pred] = res.predictions()
        assert pred.id == "fcc" and pred.energy[1] == pytest.approx(-0.080)
        copied = res.export(tmp_path / "export")
        assert [Path(p).name for p in copied] == ["parameters.xml"]
    finally:
        shutil.rmtree(res.output_dir, ignore_errors=True)


def test_bad_input_raises_input_errors_with_file_and_line(tmp_path):
    (tmp_path / "potential.xml").write_text(POTENTIAL.replace("<epsilon>0.0104", "<epsilon>x"))
    text = JOB.replace('<atomic-energy fit="true"', '<atomic-energy fit="maybe"')
    with pytest.raises(rexfit.InputErrors) as info:
        rexfit.run(text, base_dir=tmp_path, no_fit=True)
    lines = [e.format() for e in info.value.errors]
    bad_attr = 1 + text.splitlines().index(next(ln for ln in text.splitlines() if "maybe" in ln))
    assert any(ln.startswith(f"<string>:{bad_attr}: ") for ln in lines), lines
    assert any(ln.startswith(f"{tmp_path / 'potential.xml'}:3: ") for ln in lines), lines
    assert os.listdir(tmp_path) == ["potential.xml"]  # the hidden job file is gone
    job = tmp_path / "job.xml"
    job.write_text(text)
    with pytest.raises(rexfit.InputErrors) as info:
        rexfit.run(job, tmp_path / "out", no_fit=True)
    assert any(e.format().startswith(f"{job}:{bad_attr}: ") for e in info.value.errors)
    assert not (tmp_path / "out").exists()  # nothing computed, nothing written


def test_failed_computation_raises_calculation_failed(tmp_path):
    import jax

    try:
        jax.devices("gpu")
        pytest.skip("this machine has a GPU")
    except RuntimeError:
        pass
    with pytest.raises(rexfit.CalculationFailed, match="no GPU"):
        rexfit.run(AR_LJ, tmp_path / "out", no_fit=True, device="gpu")


def test_fresh_interpreter_computes_in_float64(tmp_path, al_eam):
    """``import rexfit`` alone (no x64 set by anyone): the API's numbers are the 64-bit ones
    of this process, ``rexfit.run`` is callable and still the module, and ``rexfit.ase``
    imports no JAX until it is used."""
    res, _ = al_eam
    code = textwrap.dedent(f"""
        import json, sys
        import rexfit.ase  # quick: no JAX until a calculator is made
        assert "jax" not in sys.modules
        import rexfit
        assert callable(rexfit.run) and "rexfit.run" in sys.modules
        from rexfit.run import run_job  # the module's contents are still there
        import rexfit.run
        assert rexfit.run is sys.modules["rexfit.run"] and callable(rexfit.run)
        res = rexfit.run({str(AL_EAM)!r}, {str(tmp_path / "out")!r}, no_fit=True,
                         plots=False)
        import jax, jax.numpy as jnp
        calc = res.calculator()
        print(json.dumps({{"dtype": str(jnp.asarray(1.0).dtype), "objective": res.objective,
                          "values": res.properties(), "calculator": sorted(
                              {{str(x.dtype) for x in jax.tree_util.tree_leaves(calc.params)}})}}))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["dtype"] == "float64" and seen["calculator"] == ["float64"]
    assert seen["objective"] == res.objective
    assert seen["values"] == json.loads(json.dumps(res.properties()))
