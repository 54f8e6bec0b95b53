"""Structures are data: lattices of the same layout share their compiled programs.

sc, bcc and fcc lattices that relax their lattice parameter (one atom each) differ only in
data (cell and positions as a lattice form, DOF values, bounds, targets, weights) and in
wanted properties that do not change the program (fcc's total-volume), so the
relaxation program and the term program are traced once for all three; their neighbour lists
are given equal capacities. The results are those of each structure on its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit import timing
from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.objective.objective import Objective
from rexfit.objective.parameters import ParameterSpace
from rexfit.physics.relax import RelaxProblem, relax
from rexfit.structures import lattices

JOB = """<?xml version="1.0"?>
<job>
  <fitting><BFGS max-iter="1"/></fitting>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="ArAr" species-a="*" species-b="*">
      <sigma>3.40</sigma><epsilon>0.0104</epsilon><cutoff>8.5</cutoff>
      <fit-dof><sigma/><epsilon/></fit-dof>
    </lennard-jones>
  </potentials>
  <structures>
    <sc-lattice id="sc">
      <atom-type>Ar</atom-type><lattice-parameter>3.6</lattice-parameter>
      <relax><lattice-parameter/></relax>
      <properties><lattice-parameter min="3.0" max="4.5"/>
        <atomic-energy fit="true" target="-0.06"/></properties>
    </sc-lattice>
    <bcc-lattice id="bcc" relative-weight="2">
      <atom-type>Ar</atom-type><lattice-parameter>4.2</lattice-parameter>
      <relax><lattice-parameter/></relax>
      <properties><lattice-parameter min="3.5" max="5.0"/>
        <atomic-energy fit="true" target="-0.07"/></properties>
    </bcc-lattice>
    <fcc-lattice id="fcc" relative-weight="3">
      <atom-type>Ar</atom-type><lattice-parameter>5.2</lattice-parameter>
      <relax><lattice-parameter/></relax>
      <properties><lattice-parameter min="4.5" max="6.0"/>
        <atomic-energy fit="true" target="-0.08"/><total-volume/></properties>
    </fcc-lattice>
  </structures>
</job>
"""


def _objective(tmp_path):
    path = tmp_path / "job.xml"
    path.write_text(JOB)
    job, _ = load_job(path)
    pm = build_potentials(job)
    space = ParameterSpace(pm, job.constraints)
    return job, pm, space, Objective(job, space)


def _traces(before, after, name):
    """Traces of the programs called ``name`` (or, for "_term", of any term program)."""
    names = [k for k in after.programs if k == name or (name == "_term" and k.startswith(name))]
    return sum(after.programs[k][0] - before.programs.get(k, [0])[0] for k in names)


def test_lattices_of_one_layout_share_programs(tmp_path):
    job, pm, space, objective = _objective(tmp_path)
    problems = [objective.terms[sid].problem for sid in ("sc", "bcc", "fcc")]
    assert len({p.layout for p in problems}) == 1
    assert len({id(p._room) for p in problems}) == 1  # one set of list capacities
    assert len({objective.terms[sid].key for sid in ("sc", "bcc", "fcc")}) == 1
    timing.install()
    before = timing.snapshot()
    ev = objective.evaluate(space.u0(), grad=True)
    objective.evaluate(space.u0(), grad=False, fresh=True)
    after = timing.snapshot()
    assert _traces(before, after, "_newton") == 1
    assert _traces(before, after, "_term") == 1  # the value-only evaluation reuses it
    # each structure as if alone: relaxed with its own builder, energy per atom
    params = space.tree(jnp.asarray(space.u0()))
    for sid, builder in (("sc", lattices.sc), ("bcc", lattices.bcc), ("fcc", lattices.fcc)):
        res = ev.structures[sid]
        a = res.relaxed.dofs["lattice-parameter"]
        system = builder(a, 0)
        np.testing.assert_array_equal(np.asarray(res.relaxed.system.cell),
                                      np.asarray(system.cell))
        nbrs = res.relaxed.nbrs
        e = float(pm.potential.energy(params, system, nbrs))
        assert abs(float(res.properties["atomic-energy"]) - e) <= 1e-14 * abs(e)
        grad_a = jax.grad(lambda t: pm.potential.energy(params, builder(t, 0), nbrs))(a)
        assert res.relaxed.converged, (sid, res.relaxed.message)
        assert res.relaxed.at_bound or abs(float(grad_a)) < 1e-8, (sid, res.relaxed.message)
        assert set(res.properties) >= {"lattice-parameter", "atomic-energy"}
        assert "ca-ratio" not in res.properties and "atom-distance" not in res.properties


def test_shared_relaxation_matches_a_problem_of_its_own(tmp_path):
    """The relaxation of one structure does not depend on which others share its program."""
    job, pm, space, objective = _objective(tmp_path)
    params = space.tree(jnp.asarray(space.u0()))
    alone = RelaxProblem(objective.models["bcc"], pm.potential)
    shared = objective.terms["bcc"].problem
    r1 = relax(alone, pm.potential, params)
    r2 = relax(shared, pm.potential, params)
    assert r1.converged and r2.converged
    np.testing.assert_allclose(r1.x, r2.x, rtol=1e-14, atol=0)


def test_lists_have_room_for_the_lower_bounds(tmp_path):
    """A relaxation that runs to a lattice parameter's lower bound needs no larger neighbour
    list, so it does not compile its programs again."""
    from rexfit.potentials.lists import build_lists
    from rexfit.physics.relax import SKIN

    job, pm, space, objective = _objective(tmp_path)
    for sid in ("sc", "bcc", "fcc"):
        problem = objective.terms[sid].problem
        dense = build_lists(pm.potential, problem.host_system(problem.lower[:1]), SKIN)
        assert dense.capacity <= problem._room[0]
        assert problem.neighbors(problem.lower[:1]).capacity == problem._room[0]


def test_no_room_for_a_corner_far_denser_than_the_given_geometry():
    """Room for the bounds' densest corner is made only up to DENSE_ROOM_FACTOR times the
    slots of the given geometry: every structure sharing the capacities computes over them
    (jobs/fe-abop: hcp at a = 2.2 Å, c/a = 1.4 needs 8x the triplets of the given cell)."""
    from pathlib import Path

    from rexfit.physics.relax import DENSE_ROOM_FACTOR, SKIN
    from rexfit.potentials.lists import build_lists

    root = Path(__file__).resolve().parents[2]
    job, _ = load_job(str(root / "jobs" / "fe-abop" / "job.xml"))
    pm = build_potentials(job)
    objective = Objective(job, ParameterSpace(pm, job.constraints))
    problems = [t.problem for t in objective.terms.values()]
    assert len({id(p._room) for p in problems}) == 1  # one set of capacities
    given = [build_lists(p.potential, p.host_system(p.x0), SKIN) for p in problems]
    largest = max(g.triplets.capacity for g in given)
    assert problems[0]._room[1] <= DENSE_ROOM_FACTOR * largest
    hcp = objective.terms["hcp"].problem
    corner = np.array(hcp.x0, float)
    corner[:hcp.n_lat] = hcp.lower[:hcp.n_lat]
    dense = build_lists(hcp.potential, hcp.host_system(corner), SKIN)
    assert dense.triplets.capacity > problems[0]._room[1]  # no room made for it


MIXED = """<?xml version="1.0"?>
<job>
  <fitting><BFGS max-iter="1"/></fitting>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="ArAr" species-a="*" species-b="*">
      <sigma>3.40</sigma><epsilon>0.0104</epsilon><cutoff>7.0</cutoff>
      <fit-dof><sigma/><epsilon/></fit-dof>
    </lennard-jones>
  </potentials>
  <structures>
    <fcc-lattice id="fcc">
      <atom-type>Ar</atom-type><lattice-parameter>5.3</lattice-parameter>
      <properties><atomic-energy fit="true" target="-0.08"/>
        <C11 fit="true" target="4.0"/><C44 fit="true" target="2.0"
          residual-style="squared-relative"/><bulk-modulus/></properties>
    </fcc-lattice>
    <hcp-lattice id="hcp">
      <atom-type>Ar</atom-type><lattice-parameter>3.8</lattice-parameter>
      <ca-ratio>1.60</ca-ratio>
      <relax><lattice-parameter/><ca-ratio/><atom-coordinates/></relax>
      <properties><lattice-parameter min="3.2" max="4.4"/><ca-ratio min="1.4" max="1.9"/>
        <atomic-energy fit="true" target="-0.08"/></properties>
    </hcp-lattice>
    <diamond-lattice id="diamond" fit="false">
      <atom-type>Ar</atom-type><lattice-parameter>7.9</lattice-parameter>
      <relax><atom-coordinates/></relax>
      <properties><atomic-energy/><C12/></properties>
    </diamond-lattice>
    <dimer-structure id="dimer">
      <atom-type>Ar</atom-type><atom-distance>3.9</atom-distance>
      <relax><atom-distance/></relax>
      <properties><atom-distance min="3.0" max="5.0"/>
        <total-energy fit="true" target="-0.010"/></properties>
    </dimer-structure>
  </structures>
</job>
"""


@pytest.mark.parametrize("clamped", [False, True], ids=["relaxed-ion", "clamped-ion"])
def test_structures_of_different_layouts_share_programs_and_keep_their_values(tmp_path,
                                                                               clamped):
    """Lattices and a (non-periodic) dimer with different atom counts, relaxed DOFs (none;
    a, c/a and coordinates; coordinates; the atom distance), wanted and fitted properties
    share one relaxation program and one term program (:func:`share_programs`; elastic
    constants computed for all), and every value, property and gradient is the one each
    structure has with programs of its own. ``clamped``: the diamond lattice (which relaxes
    its atoms) wants no elastic constant, so none of the structures that want them relaxes
    its atoms, and the shared program takes no tangents along the atoms."""
    from rexfit.physics.named import CLAMPED_IONS

    path = tmp_path / "job.xml"
    path.write_text(MIXED.replace("<C12/>", "") if clamped else MIXED)
    job, _ = load_job(path)
    pm = build_potentials(job)
    space = ParameterSpace(pm, job.constraints)
    shared, alone = Objective(job, space), Objective(job, space, share=False)
    ids = ("fcc", "hcp", "diamond", "dimer")
    assert len({shared.terms[sid].problem.layout for sid in ids}) == 1  # one relaxation
    assert len({shared.terms[sid].key for sid in ids}) == 1  # one term program
    assert len({alone.terms[sid].key for sid in ids}) == 4
    assert (CLAMPED_IONS in shared.terms["fcc"].key.wanted) == clamped
    assert shared.terms["diamond"].problem.layout.move  # the layout lets atoms move
    u = np.asarray(space.u0(), float) * 1.01
    timing.install()
    before = timing.snapshot()
    a = shared.evaluate(u, grad=True, sets=("training", "validation"))
    after = timing.snapshot()
    # one relaxation program (none if the other case of this test traced it already)
    assert _traces(before, after, "_newton") <= 1
    assert _traces(before, after, "_term") == 1
    b = alone.evaluate(u, grad=True, sets=("training", "validation"))
    assert abs(a.value - b.value) <= 1e-12 * abs(b.value)
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10, atol=1e-14 * np.abs(b.grad).max())
    for sid in ids:
        ra, rb = a.structures[sid], b.structures[sid]
        assert set(ra.properties) == set(rb.properties), sid
        if sid == "dimer":  # computed in the periodic program, not reported
            assert "total-volume" not in ra.properties and "stress" not in ra.properties
        for name, value in rb.properties.items():
            np.testing.assert_allclose(np.asarray(ra.properties[name]), np.asarray(value),
                                       rtol=1e-10, atol=1e-12, err_msg=f"{sid} {name}")
        assert ra.relaxed.dofs == pytest.approx(rb.relaxed.dofs, rel=1e-12)
        assert ra.relaxed.message == rb.relaxed.message
    # the least-squares residuals and Jacobian too
    ra, ja = shared.residuals(u)
    rb, jb = alone.residuals(u)
    np.testing.assert_allclose(ra, rb, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ja, jb, rtol=1e-9, atol=1e-12 * np.abs(jb).max())
