"""The objective's exact gradient through relaxations against central finite differences.

The job relaxes an fcc lattice parameter (fitted, with C11/C12/C44), a hcp lattice (a and c/a),
a diamond lattice parameter held at its bound, a 7-atom vacancy cell whose atoms relax
(relaxed-ion elastic constants fitted) and a sheared 4-atom cell whose shape relaxes.
Finite differences re-relax every structure from scratch at each displaced parameter set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.objective.objective import Objective
from rexfit.objective.parameters import ParameterSpace

ROOT = Path(__file__).resolve().parents[2]


def _cell_xml(atoms) -> str:
    cell = "".join(f'<a{k + 1} x="{float(v[0])!r}" y="{float(v[1])!r}" z="{float(v[2])!r}"/>'
                   for k, v in enumerate(np.asarray(atoms.cell)))
    inline = "".join(f'<atom type="Al" x="{float(p[0])!r}" y="{float(p[1])!r}" z="{float(p[2])!r}"/>'
                     for p in atoms.positions)
    return f"<cell>{cell}<atoms>{inline}</atoms></cell>"


def make_job(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    vac = bulk("Al", "fcc", a=4.0, cubic=True).repeat((2, 1, 1))
    del vac[3]
    vac.positions += rng.normal(0, 0.05, vac.positions.shape)
    sheared = bulk("Al", "fcc", a=4.05, cubic=True)
    sheared.set_cell(np.asarray(sheared.cell) @ (np.eye(3) + [[0.01, 0.02, 0], [0.02, -0.01, 0],
                                                              [0, 0, 0.015]]), scale_atoms=True)
    potential = (ROOT / "jobs/al-eam/potential.xml").read_text()
    text = f"""<?xml version="1.0"?>
<job>
  <fitting><BFGS max-iter="1"/></fitting>
  <atom-types><species>Al</species></atom-types>
  <potentials>{potential}</potentials>
  <structures>
    <fcc-lattice id="fcc" relative-weight="3">
      <atom-type>Al</atom-type><lattice-parameter>4.05</lattice-parameter>
      <properties>
        <lattice-parameter fit="true" target="4.05" min="3" max="5"/>
        <atomic-energy fit="true" target="-3.36"/>
        <C11 fit="true" target="114"/><C12 fit="true" target="61.9"/><C44 fit="true" target="31.6"/>
      </properties>
    </fcc-lattice>
    <hcp-lattice id="hcp">
      <atom-type>Al</atom-type><lattice-parameter>2.9</lattice-parameter><ca-ratio>1.63</ca-ratio>
      <relax><lattice-parameter/><ca-ratio/><atom-coordinates/></relax>
      <properties><atomic-energy fit="true" target="-3.33"/><C33 fit="true" target="60"/></properties>
    </hcp-lattice>
    <diamond-lattice id="diamond">
      <atom-type>Al</atom-type><lattice-parameter>6.5</lattice-parameter>
      <properties>
        <lattice-parameter fit="true" target="6.0" min="6.2" max="7.0"/>
        <atomic-energy fit="true" target="-2.36"/>
      </properties>
    </diamond-lattice>
    <user-structure id="vacancy">
      {_cell_xml(vac)}
      <relax><atom-coordinates/></relax>
      <properties>
        <atomic-energy fit="true" target="-3.2"/>
        <C11 fit="true" target="100"/><C12 fit="true" target="60"/><C44 fit="true" target="30"/>
        <pressure fit="true" target="0.5" residual-style="absolute-diff" tolerance="0.1"/>
      </properties>
    </user-structure>
    <user-structure id="sheared">
      {_cell_xml(sheared)}
      <relax><cell-shape/><atom-coordinates/></relax>
      <properties>
        <atomic-energy fit="true" target="-3.3" residual-style="squared-relative"/>
        <total-volume fit="true" target="66.0" tolerance="1.0"/>
      </properties>
    </user-structure>
  </structures>
</job>
"""
    path = tmp_path / "job.xml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def objective(tmp_path_factory):
    job, _ = load_job(str(make_job(tmp_path_factory.mktemp("grad"))))
    pm = build_potentials(job)
    return Objective(job, ParameterSpace(pm, job.constraints))


def test_relaxations_are_real(objective):
    ev = objective.evaluate(objective.space.u0(), grad=False, fresh=True)
    res = ev.structures
    assert all(r.relaxed.converged for r in res.values()), {k: r.relaxed.message
                                                             for k, r in res.items()}
    # diamond wants a lattice parameter below 6.2: held at its bound, and said so.
    assert res["diamond"].relaxed.at_bound == ["lattice-parameter"]
    assert res["diamond"].relaxed.dofs["lattice-parameter"] == 6.2
    # the vacancy cell's atoms and the sheared cell's shape moved.
    assert np.abs(res["vacancy"].relaxed.x).max() > 1e-3
    assert np.abs(res["sheared"].relaxed.x[:6]).max() > 1e-3
    assert res["fcc"].relaxed.dofs["lattice-parameter"] != 4.05
    # relaxed-ion elastic constants differ from clamped-ion ones for the vacancy cell.
    from rexfit.physics import elastic

    r = res["vacancy"].relaxed
    params = objective.space.tree(objective.space.u0())
    c0 = elastic.clamped_ion_elastic_constants(objective.terms["vacancy"].potential, params,
                                               r.system, r.nbrs)
    c = elastic.relaxed_ion_elastic_constants(objective.terms["vacancy"].potential, params,
                                              r.system, r.nbrs)
    assert abs(float(c0[0, 0] - c[0, 0])) * 160.2 > 1.0


def test_gradient_matches_central_differences(objective):
    u = objective.space.u0() * np.array([1.01, 0.99, 1.02, 0.98])
    ev = objective.evaluate(u, fresh=True)
    h = 1e-5
    for k in range(objective.space.size):
        up, um = u.copy(), u.copy()
        up[k] += h
        um[k] -= h
        fd = (objective.evaluate(up, grad=False, fresh=True).value
              - objective.evaluate(um, grad=False, fresh=True).value) / (2 * h)
        assert ev.grad[k] == pytest.approx(fd, rel=1e-5), k


def test_gradient_per_structure_group(objective):
    """Each structure's term alone also has the right gradient (the sum could hide errors
    of opposite sign)."""
    u = objective.space.u0()
    h = 1e-5
    for sid in ("hcp", "vacancy", "sheared", "diamond"):
        others = {k: v for k, v in objective.sets.items()}
        try:
            for k in objective.sets:
                objective.sets[k] = "training" if k == sid else "off"
            g = objective.evaluate(u, fresh=True).grad
            for k in range(objective.space.size):
                up, um = u.copy(), u.copy()
                up[k] += h
                um[k] -= h
                fd = (objective.evaluate(up, grad=False, fresh=True).value
                      - objective.evaluate(um, grad=False, fresh=True).value) / (2 * h)
                assert g[k] == pytest.approx(fd, rel=1e-5, abs=1e-7 * np.abs(g).max()), (sid, k)
        finally:
            objective.sets.update(others)
