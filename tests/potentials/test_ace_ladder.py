"""ACE ladder fitting and upfit against pyace / pacemaker (PyPI python-ace): the step sizes of
``<ladder step fraction>`` are pacemaker's (``get_actual_ladder_step``), the functions each step
adds are those of pyace's ``extend_multispecies_basis`` in both ladder orders (from empty and
from an initial potential, on a two-element basis up to rank 3 and a one-element basis up to
rank 4); a ladder fit lowers the objective at every step, writes each step's potential (pyace
reads it) and ends with the whole target basis; an ``<initial-potential>`` gives the start
values (pyace's energy of the initial file at the start); bad input is a located error."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pyace = pytest.importorskip("pyace")

from ase.build import bulk  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402
from ase.io import read, write  # noqa: E402
from pyace.basisextension import get_actual_ladder_step  # noqa: E402
from pyace.multispecies_basisextension import (clean_bbasisconfig,  # noqa: E402
                                               extend_multispecies_basis)

import rexfit  # noqa: E402
from rexfit.errors import InputErrors  # noqa: E402
from rexfit.potentials.ace.files import read_bbasis, write_bbasis  # noqa: E402
from rexfit.potentials.ace.ladder import (function_key, plan, start_values,  # noqa: E402
                                          step_size)
from rexfit.potentials.ace.model import ACE  # noqa: E402
from tests.support.ace_cases import ace_job  # noqa: E402

logging.getLogger("pyace").setLevel(logging.WARNING)


def config(elements, nradmax, lmax, rcut=4.5):
    return pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": list(elements),
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1],
                               "ndensity": 1}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": rcut,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": list(nradmax),
                              "lmax_by_orders": list(lmax)}}})


def pyace_keys(bconf) -> dict:
    """{block name: set of function keys} of a pyace BBasisConfiguration."""
    return {b.block_name: {(tuple(f.elements), tuple(f.ns), tuple(f.ls), tuple(f.LS))
                           for f in b.funcspecs} for b in bconf.funcspecs_blocks}


def rexfit_keys(basis, active) -> dict:
    return {b.name: {function_key(b.functions[j]) for j in active.get(b.name, ())}
            for b in basis.blocks if b.functions}


@pytest.mark.parametrize("step,fraction", [(5, None), (None, 0.2), (None, 0.5), (3, 0.25),
                                           (None, None), (1, None), (None, 0.05)])
def test_step_sizes_are_pacemakers(step, fraction):
    """step_size against pacemaker's get_actual_ladder_step for every current size of a
    basis of 57 functions (round-half-even, minimum 1, cut at the end; [int, float]: the
    larger)."""
    param = step if fraction is None else fraction if step is None else [step, fraction]
    for current in range(58):
        assert step_size(step, fraction, current, 57) == \
            get_actual_ladder_step(param, current, 57), (param, current)


def ladder_against_pyace(tmp_path, target, initial, step, fraction, order):
    """Every step of rexfit's plan equals pyace's extension (as function sets per block)."""
    target.save(str(tmp_path / "target.yaml"))
    basis = read_bbasis(tmp_path / "target.yaml")
    blocks = [(b.name, b.functions) for b in basis.blocks if b.functions]
    if initial is None:
        current = target.copy()
        clean_bbasisconfig(current)
        start = {}
    else:
        initial.save(str(tmp_path / "initial.yaml"))
        current = pyace.BBasisConfiguration(str(tmp_path / "initial.yaml"))
        keys = pyace_keys(current)
        start = {name: frozenset(j for j, f in enumerate(fs) if function_key(f)
                                 in keys.get(name, ())) for name, fs in blocks}
    param = step if fraction is None else fraction if step is None else [step, fraction]
    ours = plan(blocks, start, step, fraction, order)
    theirs = []
    final = target.total_number_of_functions
    while True:
        n = get_actual_ladder_step(param, current.total_number_of_functions, final)
        current, grown = extend_multispecies_basis(current, target, order.replace("-", "_"), n,
                                                   return_is_extended=True)
        if not grown:
            break
        theirs.append(pyace_keys(current))
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    for k, (a, b) in enumerate(zip(ours, theirs)):
        mine = rexfit_keys(basis, a)
        assert mine == {name: keys for name, keys in b.items() if name in mine}, k
    assert rexfit_keys(basis, ours[-1]) == {b.name: {function_key(f) for f in b.functions}
                                            for b in basis.blocks if b.functions}
    return len(ours)


@pytest.mark.parametrize("order", ["body-order", "power-order"])
def test_order_and_growth_are_pyaces(tmp_path, order):
    """Two elements up to rank 3 (72 functions in four blocks) and one element up to rank 4
    (42 functions): from empty with an integer, a fractional and a combined step, and from
    an initial potential (a smaller basis of the same kind), the functions of every step are
    pyace's."""
    binary = config(("Al", "Cu"), (3, 2, 1), (0, 1, 1))
    unary = config(("Cu",), (4, 2, 2, 1), (0, 2, 2, 1))
    steps = [ladder_against_pyace(tmp_path, binary, None, 3, None, order),
             ladder_against_pyace(tmp_path, binary, None, None, 0.3, order),
             ladder_against_pyace(tmp_path, unary, None, 2, 0.25, order),
             ladder_against_pyace(tmp_path, unary, config(("Cu",), (2, 1), (0, 1)), 4, None,
                                  order),
             ladder_against_pyace(tmp_path, binary, config(("Al", "Cu"), (2, 1), (0, 1)), None,
                                  None, order)]
    assert steps[-1] == 1 and min(steps[:-1]) > 3  # upfit without a step: one step


LINEAR = ("Cu",), (3, 1), (0, 1)  # 5 functions: 3 of rank 1, 2 of rank 2


def random_potential(tmp_path, name, elements, nradmax, lmax, seed, crad=False):
    """A pyace-built basis with random function (and, with ``crad``, radial) coefficients,
    written by rexfit as ``name``; returns its path."""
    config(elements, nradmax, lmax).save(str(tmp_path / "raw.yaml"))
    basis = read_bbasis(tmp_path / "raw.yaml")
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(seed)
    c = {k: rng.normal(size=np.shape(v)) for k, v in params["c"].items()}
    r = {k: (np.asarray(v) + 0.3 * rng.normal(size=np.shape(v))) if crad else v
         for k, v in params["crad"].items()}
    write_bbasis(tmp_path / name, potential.to_bbasis(basis, {"crad": r, "c": c}))
    return tmp_path / name


def cells(path, reference, count=4, seed=3):
    """``count`` strained, rattled 4-atom Cu cells labelled by pyace (``reference``)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(count):
        atoms = bulk("Cu", "fcc", 3.5 + 0.07 * k, cubic=True)
        atoms.set_cell(np.round(atoms.cell[:] @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))), 8),
                       scale_atoms=True)
        atoms.positions = np.round(atoms.positions + rng.normal(0, 0.1, (4, 3)), 8)
        atoms.calc = pyace.PyACECalculator(str(reference))
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(),
                                           forces=atoms.get_forces(),
                                           stress=atoms.get_stress())
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


def job_text(param_file, extra="", fitting="", structures=None) -> str:
    structures = structures or """    <dataset id="cu">
      <file>cu.xyz</file>
      <properties><atomic-energy tolerance="0.001"/><stress tolerance="10"/></properties>
    </dataset>"""
    return ace_job(param_file, structures, extra, fitting, name="Cu ACE ladder")


def test_ladder_fit_lowers_the_objective_and_ends_with_the_target(tmp_path):
    """Five functions, three per step (3, 5), each step one <linear-solve> on pyace-labelled
    cells (the first step's Jacobian padded to four directions): the objective falls at every step (it starts where the last ended: new functions
    enter at zero), every step's file holds that step's functions in pyace's body order, and
    pyace's energies and forces from it have the RMSE rexfit measured at the end of that step;
    the last step recovers the labelling coefficients and the fitted file has the whole
    target basis."""
    truth = random_potential(tmp_path, "truth.yaml", *LINEAR, seed=5)
    cells(tmp_path / "cu.xyz", truth)
    extra = '<ladder step="3"/><fit-dof><coefficients/></fit-dof>'
    (tmp_path / "job.xml").write_text(job_text("truth.yaml", extra,
                                               "<fitting><linear-solve/></fitting>"))
    res = rexfit.run(tmp_path / "job.xml", tmp_path / "out", plots=False)
    steps = res.results["fit"]["ladder"]
    assert [s["functions"] for s in steps] == [[3], [5]]
    assert [s["added"] for s in steps] == [[3], [2]]
    losses = [res.results["fit"]["history"][0][1]] + [s["objective"] for s in steps]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 1e-12 * losses[0]
    target = read_bbasis(truth)
    want = np.array([f.c[0] for f in target.block("Cu").functions])
    got = np.array([res.parameters[f"Cu[ACE].c{k + 1}[Cu]"] for k in range(5)])
    np.testing.assert_allclose(got, want, atol=1e-8)
    sizes = []
    labelled = read(tmp_path / "cu.xyz", index=":")
    for k, step in enumerate(steps):
        path = tmp_path / "out" / f"Cu.ladder{k + 1}.yaml"
        assert step["files"] == [path.name]
        sizes.append(len(read_bbasis(path).block("Cu").functions))
        # pyace on the step's file gives the errors rexfit measured at the end of that step
        calc = pyace.PyACECalculator(str(path))
        de, df = [], []
        for atoms in labelled:
            other = atoms.copy()
            other.calc = calc
            de.append((other.get_potential_energy() - atoms.get_potential_energy()) / 4)
            df.append(other.get_forces() - atoms.get_forces())
        measured = [p for p in res.results["fit"]["progress"] if p["ladder_step"] == k + 1][-1]
        rmse = measured["rmse"]["training"]
        assert abs(np.sqrt(np.mean(np.square(de))) - rmse["energy_per_atom"]) \
            <= 1e-9 * rmse["energy_per_atom"] + 1e-12
        assert abs(np.sqrt(np.mean(np.square(df))) - rmse["forces"]) <= 1e-7 * rmse["forces"] + 1e-12
    assert sizes == [3, 5]
    first = {function_key(f) for f in read_bbasis(tmp_path / "out" / "Cu.ladder1.yaml")
             .block("Cu").functions}
    assert first == {function_key(f) for f in target.block("Cu").functions[:3]}  # rank 1
    fitted = read_bbasis(tmp_path / "out" / "Cu.fitted.yaml").block("Cu").functions
    assert [function_key(f) for f in fitted] == [function_key(f) for f in
                                                target.block("Cu").functions]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["fit"]["ladder"] == steps


def test_ladder_steps_share_their_programs(tmp_path, caplog):
    """Five steps of one function (BFGS, two iterations each) compile the dataset's loss
    programs once, not once per step: every step evaluates the same potential (the missing
    coefficients held at zero) with the same objective."""
    import jax

    truth = random_potential(tmp_path, "truth.yaml", *LINEAR, seed=7)
    cells(tmp_path / "cu.xyz", truth, count=2)
    extra = '<ladder step="1"/><fit-dof><coefficients/></fit-dof>'
    (tmp_path / "job.xml").write_text(job_text("truth.yaml", extra,
                                               '<fitting><BFGS max-iter="2"/></fitting>'))
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="jax._src.interpreters.pxla"):
            res = rexfit.run(tmp_path / "job.xml", tmp_path / "out", plots=False)
    finally:
        jax.config.update("jax_log_compiles", False)
    assert [s["functions"] for s in res.results["fit"]["ladder"]] == [[1], [2], [3], [4], [5]]
    compiled = [r.getMessage().split()[1] for r in caplog.records
                if r.getMessage().startswith("Compiling jit(_loss")]
    assert compiled and len(compiled) == len(set(compiled)), compiled


FCC = """    <fcc-lattice id="fcc">
      <atom-type>Cu</atom-type>
      <lattice-parameter>3.58</lattice-parameter>
      <properties><atomic-energy/></properties>
    </fcc-lattice>"""


def test_upfit_starts_from_the_initial_potential(tmp_path):
    """<initial-potential> (a smaller basis, random function and radial coefficients) under a
    larger target basis (random radial coefficients too, nradbase 3 against 2): the start
    values are the initial file's for the functions and radial rows it has, zero for the
    other functions, and the energy at the start is pyace's energy of the initial file."""
    initial = random_potential(tmp_path, "initial.yaml", ("Cu",), (2, 2), (0, 1), seed=1,
                               crad=True)
    target = random_potential(tmp_path, "target.yaml", ("Cu",), (3, 3, 1), (0, 1, 1), seed=2,
                              crad=True)
    extra = "<initial-potential>initial.yaml</initial-potential>" \
            "<fit-dof><coefficients/><crad/></fit-dof>"
    (tmp_path / "job.xml").write_text(job_text("target.yaml", extra, structures=FCC))
    res = rexfit.run(tmp_path / "job.xml", tmp_path / "out", no_fit=True, plots=False)
    old = read_bbasis(initial)
    new = read_bbasis(target)
    old_c = {function_key(f): f.c[0] for f in old.block("Cu").functions}
    for k, f in enumerate(new.block("Cu").functions):
        value = res.parameters[f"Cu[ACE].c{k + 1}[Cu]"]
        assert value == old_c.get(function_key(f), 0.0), (k, f)
    assert sum(function_key(f) in old_c for f in new.block("Cu").functions) == len(old_c) == 8
    crad_old = np.asarray(old.block("Cu").radcoefficients)  # (2, 2, 2)
    crad_new = np.asarray(new.block("Cu").radcoefficients)  # (3, 2, 3)
    start = np.array([res.parameters[f"Cu[ACE].crad{k + 1}[CuCu]"]
                      for k in range(crad_new.size)]).reshape(crad_new.shape)
    np.testing.assert_array_equal(start[:2, :2, :2], crad_old)
    np.testing.assert_array_equal(start[:2, :2, 2], 0.0)
    np.testing.assert_array_equal(start[2], crad_new[2])
    atoms = bulk("Cu", "fcc", 3.58)
    atoms.calc = pyace.PyACECalculator(str(initial))
    energy = res.results["structures"]["fcc"]["properties"]["atomic-energy"]["value"]
    assert abs(energy - atoms.get_potential_energy()) < 1e-10


def test_upfit_with_a_ladder_starts_from_the_initial_functions(tmp_path):
    """<initial-potential> (3 of the 5 functions) and <ladder fraction="0.3"
    order="power-order">, BFGS: round(0.3 × 3) = 1 function per step, first the rank-1
    n = 3 (power 4) and then the rank-2 l = 1 one (power 6); the first step starts at the
    initial potential (pyace's energy errors of its file) and no step raises the objective."""
    initial = random_potential(tmp_path, "initial.yaml", ("Cu",), (2, 1), (0, 0), seed=1)
    truth = random_potential(tmp_path, "truth.yaml", *LINEAR, seed=5)
    cells(tmp_path / "cu.xyz", truth, count=3)
    extra = ('<initial-potential>initial.yaml</initial-potential>'
             '<ladder fraction="0.3" order="power-order"/><fit-dof><coefficients/></fit-dof>')
    (tmp_path / "job.xml").write_text(job_text("truth.yaml", extra,
                                               '<fitting><BFGS max-iter="4"/></fitting>'))
    res = rexfit.run(tmp_path / "job.xml", tmp_path / "out", plots=False)
    steps = res.results["fit"]["ladder"]
    assert [s["functions"] for s in steps] == [[4], [5]]
    losses = [res.results["fit"]["history"][0][1]] + [s["objective"] for s in steps]
    assert all(b <= a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0], losses
    old = {function_key(f) for f in read_bbasis(initial).block("Cu").functions}
    first = {function_key(f) for f in read_bbasis(tmp_path / "out" / "Cu.ladder1.yaml")
             .block("Cu").functions}
    assert first - old == {(("Cu", "Cu"), (3,), (0,), ())}
    errors = []  # the start is the initial potential: pyace's errors of its file
    for atoms in read(tmp_path / "cu.xyz", index=":"):
        other = atoms.copy()
        other.calc = pyace.PyACECalculator(str(initial))
        errors.append((other.get_potential_energy() - atoms.get_potential_energy()) / 4)
    start = res.results["fit"]["progress"][0]["rmse"]["training"]["energy_per_atom"]
    assert abs(start - np.sqrt(np.mean(np.square(errors)))) < 1e-9 * start


def expect_error(tmp_path, xml: str, message: str, *, no_fit=False, line_of=None):
    (tmp_path / "job.xml").write_text(xml)
    with pytest.raises(InputErrors) as info:
        rexfit.run(tmp_path / "job.xml", tmp_path / "out", no_fit=no_fit)
    errors = [str(e) for e in info.value.errors]
    assert any(message in e for e in errors), errors
    if line_of is not None:
        line = xml[:xml.index(line_of)].count("\n") + 1
        assert any(message in e and f":{line}" in e for e in errors), (line, errors)


def test_bad_ladder_and_initial_potential_input_is_located(tmp_path):
    """Bad step, fraction and order; two ladders; a ladder whose coefficients are not fitted;
    an initial potential with a function the target lacks, or a missing file."""
    truth = random_potential(tmp_path, "truth.yaml", *LINEAR, seed=5)
    random_potential(tmp_path, "bigger.yaml", ("Cu",), (3, 2), (0, 2), seed=6)
    cells(tmp_path / "cu.xyz", truth, count=1)
    fit = "<fitting><linear-solve/></fitting>"
    dofs = "<fit-dof><coefficients/></fit-dof>"
    for bad, message in (('<ladder step="0"/>', "an integer of at least 1"),
                         ('<ladder fraction="1.5"/>', "between 0 and 1"),
                         ('<ladder order="size"/>', "order"),
                         ('<ladder/><ladder step="2"/>', "takes one <ladder>")):
        expect_error(tmp_path, job_text("truth.yaml", bad + dofs, fit), message,
                     line_of="<ladder")
    expect_error(tmp_path, job_text("truth.yaml", '<ladder step="2"/><fit-dof><crad/></fit-dof>',
                                    fit), "list <coefficients/>", line_of="<ace")
    expect_error(tmp_path, job_text("truth.yaml", "<initial-potential>bigger.yaml"
                                    "</initial-potential>" + dofs, fit),
                 "are not in the target basis", line_of="<ace")
    expect_error(tmp_path, job_text("truth.yaml", "<initial-potential>none.yaml"
                                    "</initial-potential>" + dofs, fit), "none.yaml",
                 line_of="<initial-potential>")


def test_start_values_refuse_other_densities(tmp_path):
    """An initial potential with another number of densities cannot be a start."""
    target = read_bbasis(random_potential(tmp_path, "t.yaml", *LINEAR, seed=1))
    potential, params = ACE.from_bbasis(target)
    pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.5,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [2], "lmax_by_orders": [0]}}}).save(
            str(tmp_path / "two.yaml"))
    with pytest.raises(ValueError, match="densities"):
        start_values(target, params["crad"], params["c"], read_bbasis(tmp_path / "two.yaml"))
