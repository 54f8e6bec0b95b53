"""<snap>, <linear-model> and <zbl> in the job language: bad input stops with file:line and a
message saying what to fix (exit code 2, nothing written)."""

from __future__ import annotations

import pytest

from rexfit.cli import main

SNAPPARAM = "rcutfac 4.6\ntwojmax 4\nrfac0 0.99363\nrmin0 0\nquadraticflag 0\nbzeroflag 0\n"


def job(tmp_path, potentials, species=("Mo",)):
    (tmp_path / "Mo.snapparam").write_text(SNAPPARAM)
    (tmp_path / "W.snapcoeff").write_text("1 6\nW 0.5 1\n" + "0\n" * 6)
    types = "".join(f"<species>{sp}</species>" for sp in species)
    text = (f"<job><name>d</name><atom-types>{types}</atom-types>\n"
            f"<potentials>\n{potentials}\n</potentials><structures>"
            '<bcc-lattice id="bcc"><atom-type>Mo</atom-type>'
            '<lattice-parameter>3.15</lattice-parameter><properties>'
            '<atomic-energy fit="true" target="-6.8"/></properties></bcc-lattice>'
            "</structures></job>")
    path = tmp_path / "job.xml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("potentials, message", [
    ('<snap id="m"><element species="Mo" radius="0.5"/></snap>',
     "needs its descriptor settings"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file><element species="Mo"/></snap>',
     "needs a radius"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file></snap>',
     "needs a <coeff-file> (.snapcoeff) or <element species=...>"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file><descriptor twojmax="4" '
     'rcutfac="4.6"/><element species="Mo" radius="0.5"/></snap>',
     "either a <param-file> or a <descriptor>"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file><element species="Mo" radius="0.5"/>'
     '<fit-dof><alpha/></fit-dof></snap>', "parameters: beta0, beta, gamma"),
    ('<linear-model id="m"><element species="Mo"/></linear-model>',
     "needs exactly one descriptor element"),
    ('<zbl id="z" inner="4.0" outer="3.0"/>', "inner (4 Å) must be smaller than outer"),
    ('<zbl id="z" inner="1.0" outer="3.0" species-a="Mo"/>', "acts between all species"),
])
def test_checks_name_file_and_line(tmp_path, capsys, potentials, message):
    path = job(tmp_path, potentials)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and f"{path}:3:" in err, err


@pytest.mark.parametrize("potentials, species, message", [
    ('<snap id="m"><param-file>Mo.snapparam</param-file><element species="Mo" radius="0.5"/>'
     '<fit-dof><gamma/></fit-dof></snap>', ("Mo",), "this model has no gamma"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file><element species="Mo" radius="0.5"/>'
     '<fit-dof><beta tag="W"/></fit-dof></snap>', ("Mo", "W"),
     "tag 'W' is not an element of this model"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file><element species="W" radius="0.5"/>'
     '</snap>', ("Mo", "W"), "must be the first species of <atom-types>"),
    ('<zbl id="z" inner="1.0" outer="3.0"/>', ("Mo", "X"), "species 'X' is not a chemical"),
    ('<snap id="m"><param-file>Mo.snapparam</param-file><coeff-file>W.snapcoeff</coeff-file>'
     '</snap>', ("Mo",), "W.snapcoeff has no entries for species Mo"),
])
def test_model_errors_stop_the_run(tmp_path, capsys, potentials, species, message):
    path = job(tmp_path, potentials, species)
    out = tmp_path / "out"
    code = main([str(path), "-q", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (out / "results.json").exists()


PINN = ('<pinn id="p" rc="4.0" d="1.2" hidden="4" seed="2">'
        '<lsp rn="2.2 2.8 3.4" sigma="0.5" rcut="4.0" d="1.2" ls="0 2"/>'
        '<element species="Mo"/>{base}<fit-dof><weights/><base/></fit-dof></pinn>')
BASE = ('<base species="Mo" A="7.5" B="6.15" alpha="2.48" beta="1.73" a="0.3" h="-0.33" '
        'lambda="1.5" sigma="1.0"/>')


def test_pinn_job_builds_the_base_bop(tmp_path, capsys):
    """A fresh <pinn> (output layer zero) is the BOP with its <base> parameters; without
    <base> the job is refused."""
    import jax.numpy as jnp
    import numpy as np

    from rexfit.job import load_job
    from rexfit.model.potentials import build_potentials
    from rexfit.physics.properties import evaluate
    from rexfit.potentials.lists import build_lists
    from rexfit.potentials.pinn import BOP
    from rexfit.structures.system import make_system
    from tests.support.structures import crystal

    spec, problems = load_job(str(job(tmp_path, PINN.format(base=BASE))))
    assert not [p for p in problems if p.severity == "error"]
    pm = build_potentials(spec)
    (_, pinn), = pm.potential.terms
    names = [e.name for e in pm.entries]
    assert "p[PINN].base.0[Mo]" in names and "p[PINN].w1.0[Mo]" in names
    assert not any(".bias" in n for n in names)  # <bias/> not listed: not fitted
    pos, cell, species = crystal("Mo", 3.15, seed=3)
    system = make_system(pos, cell, species)
    ours = evaluate(pinn, pm.params["p"], system, build_lists(pinn, system, 0.3))
    bop = BOP(("Mo",), 4.0, 1.2)
    base = dict(A=7.5, B=6.15, alpha=2.48, beta=1.73, a=0.3, h=-0.33, sigma=1.0)
    base["lambda"] = 1.5
    ref = evaluate(bop, {"Mo": {k: jnp.float64(v) for k, v in base.items()}}, system,
                   build_lists(bop, system, 0.3))
    assert float(ours.energy) == float(ref.energy)
    np.testing.assert_allclose(ours.forces, ref.forces, rtol=0, atol=1e-12)

    path = job(tmp_path, PINN.format(base=""))
    assert main(["validate", str(path)]) == 2
    assert "needs <base species='Mo'" in capsys.readouterr().err
