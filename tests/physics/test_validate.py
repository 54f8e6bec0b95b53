"""<validate-potentials/>: finite-difference checks of forces, stress and <derivative>."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import pytest

from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.physics.properties import energy
from rexfit.physics.validate import (
    MAX_ATOMS,
    check_function_derivatives,
    check_structure,
    validate_potentials,
)
from rexfit.potentials.pair import LennardJones
from rexfit.structures import lattices
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.structures import make_cases
from tests.unit.jobfiles import job_text, line_of, write

# V is a sum whose part and screening are user functions (walked recursively); the embedding
# derivative is the one the tests break.
EAM_WITH_DERIVATIVES = """\
<eam id="Al" species-a="*" species-b="*">
  <mapping>
    <pair-interaction species-a="*" species-b="*" function="V"/>
    <electron-density species-a="*" species-b="*" function="rho"/>
    <embedding-energy species="*" function="F"/>
  </mapping>
  <functions>
    <sum id="V">
      <user-function id="Vrep">
        <input-var>r</input-var>
        <expression>A * exp(-lambda * r)</expression>
        <derivative>-lambda * A * exp(-lambda * r)</derivative>
        <param name="A">500</param>
        <param name="lambda">2.73</param>
        <cutoff>6.5</cutoff>
      </user-function>
      <screening>
        <user-function id="cut">
          <input-var>r</input-var>
          <expression>(r - cutoff)^4 / (h^4 + (r - cutoff)^4)</expression>
          <derivative>4 * h^4 * (r - cutoff)^3 / (h^4 + (r - cutoff)^4)^2</derivative>
          <param name="h">1.5</param>
          <cutoff>6.5</cutoff>
        </user-function>
      </screening>
    </sum>
    <user-function id="rho">
      <input-var>r</input-var>
      <expression>exp(-twomu * r)</expression>
      <derivative>-twomu * exp(-twomu * r)</derivative>
      <param name="twomu">1.14</param>
      <cutoff>6.5</cutoff>
    </user-function>
    <user-function id="F">
      <input-var>rho</input-var>
      <expression>-D * sqrt(rho)</expression>
      <derivative>DERIVATIVE_OF_F</derivative>
      <param name="D">8</param>
      <fit-dof><D/></fit-dof>
    </user-function>
  </functions>
</eam>
"""

STRUCTURES = """\
<group>
  <fcc-lattice id="fcc">
    <atom-type>Al</atom-type>
    <lattice-parameter>4.05</lattice-parameter>
    <properties><atomic-energy fit="true" target="-3.36"/></properties>
  </fcc-lattice>
</group>
"""

F_LABEL = "Al[EAM].F[user-function]"


def _job(tmp_path, derivative_of_f: str):
    text = job_text(EAM_WITH_DERIVATIVES.replace("DERIVATIVE_OF_F", derivative_of_f),
                    STRUCTURES, extra="  <validate-potentials/>")
    path = write(tmp_path, "job.xml", text)
    job, _ = load_job(str(path))
    return job, path, text


def _rattled_fcc(a=4.05, seed=3):
    """2×2×2 conventional fcc cells (32 atoms), triclinically strained and rattled."""
    case = make_cases(a=a, seed=seed)[0]  # "strained_triclinic"
    return make_system(case.positions, case.cell, case.species, case.pbc)


@dataclass(frozen=True)
class ScaledForces:
    """A deliberately inconsistent potential: the energy of ``inner``, but every gradient
    through the positions multiplied by ``factor`` (a custom JVP)."""

    inner: object
    factor: float = 1.5

    @property
    def cutoff(self):
        return self.inner.cutoff

    def energy(self, params, system, nbrs):
        factor = self.factor

        @jax.custom_jvp
        def same(x):
            return x

        @same.defjvp
        def _(primals, tangents):
            return primals[0], factor * tangents[0]

        return self.inner.energy(params, system.replace(positions=same(system.positions)), nbrs)


# ----------------------------------------------------------------------------- structures


def test_eam_structure_passes(tmp_path):
    job, _, _ = _job(tmp_path, "-0.5 * D / sqrt(rho)")
    pm = build_potentials(job)
    system = _rattled_fcc()
    nbrs = build_neighbor_list(system, pm.cutoff, 0.5)
    result = check_structure(pm.potential, pm.params, system, nbrs)
    assert result["atoms_checked"] == MAX_ATOMS
    assert result["force_scale"] > 0.05  # the rattle gives real forces to compare
    assert result["force_error"] < 1e-8
    assert result["stress_scale"] > 0.1  # GPa
    assert result["stress_error"] < 1e-6


def test_lj_cluster_has_no_stress_check():
    lj = LennardJones(cutoff=6.0)
    params = {"sigma": np.float64(2.3), "epsilon": np.float64(0.1)}
    rng = np.random.default_rng(0)
    pos = np.array([[0.0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [0, 0, 2.6], [2.6, 2.6, 0]])
    system = make_system(pos + rng.normal(0, 0.05, pos.shape), 20 * np.eye(3),
                         pbc=(False, False, False))
    nbrs = build_neighbor_list(system, lj.cutoff, 0.5)
    result = check_structure(lj, params, system, nbrs)
    assert result["atoms_checked"] == 5
    assert result["stress_error"] is None and result["stress_scale"] is None
    assert result["force_scale"] > 0.01
    assert result["force_error"] < 1e-9


def test_inconsistent_forces_are_detected():
    lj = LennardJones(cutoff=6.0)
    params = {"sigma": np.float64(2.5), "epsilon": np.float64(0.1)}
    system = _rattled_fcc(a=3.9)
    nbrs = build_neighbor_list(system, lj.cutoff, 0.5)
    good = check_structure(lj, params, system, nbrs)
    bad = check_structure(ScaledForces(lj), params, system, nbrs)
    assert good["force_error"] < 1e-8 and good["stress_error"] < 1e-6
    # autodiff forces are 1.5× the true ones, finite differences see the true energy
    assert bad["force_error"] == pytest.approx(0.5 * good["force_scale"], rel=1e-6)
    assert bad["stress_error"] > 1e-2


def test_energy_jump_at_a_hard_cutoff_is_not_a_false_alarm():
    """Unshifted LJ: six neighbours 1e-6 Å inside the cutoff, so the energy jumps within reach
    of every central stencil; the one-sided stencils must still see the smooth side."""
    lj = LennardJones(cutoff=6.0)
    params = {"sigma": np.float64(2.5), "epsilon": np.float64(0.1)}
    system = lattices.sc(6.0 - 1e-6)
    nbrs = build_neighbor_list(system, lj.cutoff, 0.5)
    e_in = float(energy(lj, params, system, nbrs))
    e_out = float(energy(lj, params, lattices.sc(6.0 + 1e-6), nbrs))
    assert abs(e_in - e_out) > 1e-3  # the jump is really there
    result = check_structure(lj, params, system, nbrs)
    assert result["stress_scale"] > 1e-3  # GPa
    assert result["stress_error"] < 1e-6
    assert result["force_error"] < 1e-9


# ----------------------------------------------------------------------------- derivatives


def test_correct_derivatives_pass(tmp_path):
    job, _, _ = _job(tmp_path, "-0.5 * D / sqrt(rho)")
    results = check_function_derivatives(job)
    labels = [r[0] for r in results]
    assert labels == ["Al[EAM].V[functionSum].Vrep[user-function]",
                      "Al[EAM].V[functionSum].cut[user-function]",
                      "Al[EAM].rho[user-function]", F_LABEL]
    for label, error, x, _ in results:
        assert error < 1e-12, label
        assert np.isfinite(x)


def test_wrong_derivative_is_detected(tmp_path):
    job, path, text = _job(tmp_path, "-D / sqrt(rho)")  # missing the factor 1/2
    results = {r[0]: r for r in check_function_derivatives(job)}
    label, error, x, origin = results[F_LABEL]
    assert error == pytest.approx(1.0)
    assert 0.01 < x < 2.0  # rho is sampled on (0.01, 2)
    assert origin.line == line_of(text, '<user-function id="F">')
    assert str(origin.path).endswith("job.xml")
    others = [r for k, r in results.items() if k != F_LABEL]
    assert all(r[1] < 1e-12 for r in others)

    pm = build_potentials(job)
    system = lattices.fcc(4.05)
    nbrs = build_neighbor_list(system, pm.cutoff, 0.5)
    lines, passed = validate_potentials(job, pm, [("fcc", system, nbrs)])
    assert not passed
    assert len(lines) == 1 + 4
    assert "structure 'fcc'" in lines[0] and lines[0].endswith("PASS")
    failing = [line for line in lines if line.endswith("FAIL")]
    assert len(failing) == 1 and F_LABEL in failing[0] and str(path) in failing[0]


def test_validate_potentials_passes(tmp_path):
    job, _, _ = _job(tmp_path, "-0.5 * D / sqrt(rho)")
    pm = build_potentials(job)
    items = []
    for sid, system in [("fcc", lattices.fcc(4.05)), ("rattled", _rattled_fcc())]:
        items.append((sid, system, build_neighbor_list(system, pm.cutoff, 0.5)))
    lines, passed = validate_potentials(job, pm, items)
    assert passed, "\n".join(lines)
    assert len(lines) == 2 + 4
    assert all(line.endswith("PASS") for line in lines)
