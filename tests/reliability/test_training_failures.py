"""Failed training computations are named: when the objective or the residuals are not finite
the training phase exits 3 naming each structure (with its file:line) or dataset entry (with
its file and frame) whose part is not finite, which property, why if it can tell (a failed
relaxation, atoms on top of each other), and the parameter values — as the output phase does;
never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from tests.support.cli import line_of, run_cli

ROOT = Path(__file__).resolve().parents[2]

LJ = """<lennard-jones id="ArAr" species-a="*" species-b="*">
      <sigma>3.40</sigma>
      <epsilon>0.0104</epsilon>
      <cutoff>8.5</cutoff>
      <fit-dof><sigma min="3.0" max="4.0"/><epsilon/></fit-dof>
    </lennard-jones>"""

JOB = """<?xml version="1.0" encoding="UTF-8"?>
<job>
  <name>failures</name>
  <atom-types><species>{species}</species></atom-types>
  <potentials>
    {potential}
  </potentials>
  <structures>
    <fcc-lattice id="fcc">
      <atom-type>{species}</atom-type>
      <lattice-parameter>{a}</lattice-parameter>
      <properties><atomic-energy fit="true" target="{energy}"/></properties>
    </fcc-lattice>
{structures}
  </structures>
  <fitting>{minimizer}</fitting>
</job>
"""

OVERLAP = """    <user-structure id="pair">
      <cell>
        <a1 x="6" y="0" z="0"/><a2 x="0" y="6" z="0"/><a3 x="0" y="0" z="6"/>
        <atoms>
          <atom type="Ar" x="0" y="0" z="0"/>
          <atom type="Ar" x="3" y="3" z="0"/>
          <atom type="Ar" x="3" y="3" z="0"/>
        </atoms>
      </cell>
      <properties><total-energy fit="true" target="-0.1"/></properties>
    </user-structure>"""

DATASET = """    <dataset id="frames">
      <file>frames.xyz</file>
      <properties><atomic-energy/><atomic-forces/></properties>
    </dataset>"""

BFGS = '<BFGS max-iter="2"/>'
LSQ = '<least-squares max-iter="2"/>'


def lj_job(tmp_path, structures, minimizer=BFGS):
    text = JOB.format(species="Ar", potential=LJ, a="5.26", energy="-0.080",
                      structures=structures, minimizer=minimizer)
    path = tmp_path / "job.xml"
    path.write_text(text)
    return path, text


def run(capsys, tmp_path, path, *extra, limit=40.0) -> tuple[int, str]:
    return run_cli(capsys, tmp_path, path, *extra, limit=limit)


def overlapping_frames(tmp_path, bad=(1,)):
    """frames.xyz: three rattled 4-atom fcc argon cells; in the frames ``bad`` atom 3 sits
    on atom 2."""
    out = []
    for k, a in enumerate((5.2, 5.3, 5.4)):
        atoms = bulk("Ar", "fcc", a=a, cubic=True)
        atoms.rattle(0.05, seed=k)
        if k in bad:
            atoms.positions[2] = atoms.positions[1]
        atoms.info["energy"] = -0.3 + 0.01 * k
        atoms.arrays["forces"] = np.zeros((len(atoms), 3))
        out.append(atoms)
    write(tmp_path / "frames.xyz", out, format="extxyz")


PARAMETERS = "fitted parameters: ArAr[LJ].sigma = 3.4, ArAr[LJ].epsilon = 0.0104"


@pytest.mark.parametrize("minimizer, headline", [
    (BFGS, "the objective is not finite at the given parameters:"),
    (LSQ, "the residuals are not finite at the given parameters:"),
])
def test_overlapping_atoms_in_a_user_structure(capsys, tmp_path, minimizer, headline):
    path, text = lj_job(tmp_path, OVERLAP, minimizer)
    code, err = run(capsys, tmp_path, path)
    assert code == 3, err
    assert headline in err
    line = line_of(text, '<user-structure id="pair"')
    assert f"structure 'pair' ({path}:{line}): total-energy" in err
    assert "atoms 2 and 3 are 0 Å apart" in err
    assert "structure 'fcc'" not in err  # the finite one is not blamed
    assert PARAMETERS in err


@pytest.mark.parametrize("minimizer, headline", [
    (BFGS, "the objective is not finite at the given parameters:"),
    (LSQ, "the residuals are not finite at the given parameters:"),
])
def test_overlapping_atoms_in_a_dataset_frame(capsys, tmp_path, minimizer, headline):
    overlapping_frames(tmp_path, bad=(1,))
    path, _ = lj_job(tmp_path, DATASET, minimizer)
    code, err = run(capsys, tmp_path, path)
    assert code == 3, err
    assert headline in err
    source = tmp_path / "frames.xyz"
    assert f"dataset 'frames', entry frames#1 ({source}#1): energy, forces not finite" in err
    assert "atoms 2 and 3 are 0 Å apart" in err
    assert "frames#0" not in err and "frames#2" not in err
    assert PARAMETERS in err


def test_overlapping_atoms_in_a_dataset_frame_output_phase(capsys, tmp_path):
    """Without a fit the output phase names the entries (it used to raise a ValueError in the
    metrics table)."""
    overlapping_frames(tmp_path, bad=(0, 2))
    path, _ = lj_job(tmp_path, DATASET)
    code, err = run(capsys, tmp_path, path, "--no-fit")
    assert code == 3, err
    source = tmp_path / "frames.xyz"
    for k in (0, 2):
        assert (f"dataset 'frames', entry frames#{k} ({source}#{k}): non-finite energy, "
                "forces at the current parameters; atoms 2 and 3 are 0 Å apart") in err
    assert "frames#1" not in err


def test_nan_user_function(capsys, tmp_path):
    """An embedding function sqrt(rho - 1000) is NaN for every real density."""
    potential = (ROOT / "jobs" / "al-eam" / "potential.xml").read_text()
    assert "-D * sqrt(rho)" in potential
    potential = potential.replace("-D * sqrt(rho)", "-D * sqrt(rho - 1000)").replace(
        "-D / (2 * sqrt(rho))", "-D / (2 * sqrt(rho - 1000))")
    path, text = _eam_job(tmp_path, potential)
    code, err = run(capsys, tmp_path, path, limit=60.0)
    assert code == 3, err
    line = line_of(text, '<fcc-lattice id="fcc"')
    assert "the objective is not finite at the given parameters:" in err
    assert f"structure 'fcc' ({path}:{line}): atomic-energy = nan" in err
    assert "Al[EAM].F[user-function].D = 8" in err
    assert "Al[EAM].V[user-function].A = 500" in err


def _eam_job(tmp_path, potential, minimizer=BFGS):
    text = JOB.format(species="Al", potential=potential, a="4.05", energy="-3.36",
                      structures="", minimizer=minimizer)
    path = tmp_path / "job.xml"
    path.write_text(text)
    return path, text


@pytest.mark.parametrize("minimizer, fragment", [
    (BFGS, "the objective's gradient is not finite at the given parameters:"),
    (LSQ, "the residuals are not finite at the given parameters:"),
])
def test_non_finite_parameter_derivative(capsys, tmp_path, minimizer, fragment):
    """V = sqrt(A) exp(−λr) at A = 0: the energy is finite, its derivative in A is not."""
    potential = (ROOT / "jobs" / "al-eam" / "potential.xml").read_text()
    for old, new in (("A * exp(-lambda * r)", "sqrt(A) * exp(-lambda * r)"),
                     ('<param name="A">500</param>', '<param name="A">0</param>')):
        assert old in potential
        potential = potential.replace(old, new)
    path, text = _eam_job(tmp_path, potential, minimizer)
    code, err = run(capsys, tmp_path, path, limit=60.0)
    assert code == 3, err
    assert fragment in err
    line = line_of(text, '<fcc-lattice id="fcc"')
    named = {BFGS: "its derivative with respect to Al[EAM].V[user-function].A is not finite",
             LSQ: "the parameter derivative of atomic-energy is not finite"}[minimizer]
    assert f"structure 'fcc' ({path}:{line}): {named}" in err
    assert "Al[EAM].V[user-function].A = 0" in err
