"""The Buckingham family against LAMMPS ``pair_style buck``: energies, forces and stresses of
rattled two-species cells (single structures and the dataset engine's analytic kernel), the
parameter gradient against finite differences, a fit that recovers the parameters LAMMPS
energies were made with, the exported LAMMPS file read back by LAMMPS, and located errors for
bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rexfit
from rexfit.datasets.engine import DatasetObjective
from rexfit.datasets.items import Item
from rexfit.errors import InputErrors
from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials import registry
from rexfit.potentials.buckingham import Buckingham
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.lammps_ref import lammps_compute
from tests.support.structures import crystal, make_cases

# the acceptance tolerances of the family (absolute)
E_TOL, F_TOL, S_TOL = 1e-9, 1e-8, 1e-6  # eV/atom, eV/Å, GPa

CUTOFF = 6.0
SPECIES = ("Mg", "O")
#: (species a, species b) -> (A eV, rho Å, C eV Å⁶): MgO-like, every parameter non-zero
PAIRS = {(0, 1): (1284.38, 0.29969, 1.5), (1, 1): (9547.96, 0.21916, 32.0),
         (0, 0): (700.0, 0.25, 0.5)}


def potential_and_params(pairs=PAIRS, cutoff=CUTOFF):
    tags = {k: SPECIES[k[0]] + SPECIES[k[1]] for k in pairs}
    pot = Buckingham(cutoff, len(SPECIES), tuple((a, b, tags[(a, b)]) for a, b in pairs))
    params = {tags[k]: {"A": jnp.float64(v[0]), "rho": jnp.float64(v[1]),
                        "C": jnp.float64(v[2])} for k, v in pairs.items()}
    return pot, params


def lammps_coeffs(pairs=PAIRS):
    """``pair_coeff`` lines (without the command) for every type pair, 0 for unlisted ones."""
    out = []
    for i in range(len(SPECIES)):
        for j in range(i, len(SPECIES)):
            a, rho, c = pairs.get((i, j), (0.0, 1.0, 0.0))
            out.append(f"{i + 1} {j + 1} {a!r} {rho!r} {c!r}")
    return out


#: one jitted evaluation for every test (a program per potential and shape)
_EVAL = jax.jit(evaluate, static_argnums=0)


def ours(pot, params, pos, cell, species, pbc=(True,) * 3):
    system = make_system(pos, cell, species, pbc=pbc)
    nbrs = build_neighbor_list(system, pot.cutoff, 0.3, half=True)
    return _EVAL(pot, params, system, nbrs)


def deviations(ev, ref, natoms, periodic=True):
    """(energy per atom, max force, max stress) deviations in eV/atom, eV/Å, GPa."""
    de = abs(float(ev.energy) - ref.energy) / natoms
    df = float(np.abs(np.asarray(ev.forces)[:natoms] - ref.forces).max())
    ds = float(np.abs(np.asarray(ev.stress) - ref.stress).max()) * EV_PER_A3_TO_GPA \
        if periodic else 0.0
    return de, df, ds


def rocksalt(seed=3):
    return crystal("MgO", 4.21, 1, "rocksalt", seed=seed, strain=0.03, rattle=0.12)


def triclinic(seed=7):
    (c,) = [c for c in make_cases(a=3.0, ntypes=2, seed=seed) if c.name == "strained_triclinic"]
    return c.positions, c.cell, c.species


def two_atom_small(seed=8):
    (c,) = [c for c in make_cases(a=3.0, ntypes=2, seed=seed) if c.name == "two_atom_small"]
    return c.positions, c.cell, c.species


# --------------------------------------------------------------------------- LAMMPS parity


@pytest.mark.parametrize("make", [rocksalt, triclinic, two_atom_small])
@pytest.mark.parametrize("listed", ["all pairs", "no Mg-Mg"])
def test_energy_forces_stress_match_lammps(make, listed):
    """Rattled rocksalt (8 atoms), a strained triclinic 32-atom cell and a 2-atom cell much
    smaller than the cutoff; with every pair listed, and with Mg-Mg left out (no
    interaction: LAMMPS gets A = C = 0)."""
    pairs = PAIRS if listed == "all pairs" else {k: v for k, v in PAIRS.items() if k != (0, 0)}
    pot, params = potential_and_params(pairs)
    pos, cell, species = make()
    ref = lammps_compute(pos, cell, species, (True,) * 3, f"buck {CUTOFF}",
                         lammps_coeffs(pairs), len(SPECIES))
    de, df, ds = deviations(ours(pot, params, pos, cell, species), ref, len(pos))
    assert np.abs(ref.forces).max() > 0.1 and abs(ref.energy) > 0.1  # a real test
    assert de <= E_TOL and df <= F_TOL and ds <= S_TOL, (de, df, ds)


def test_cluster_matches_lammps_and_cutoff_is_not_shifted():
    """A non-periodic cluster; and a dimer just inside and just outside the cutoff: LAMMPS
    ``buck`` (no ``pair_modify shift``) jumps from V(rc) to 0."""
    pot, params = potential_and_params()
    (c,) = [c for c in make_cases(a=3.0, ntypes=2, seed=9) if c.name == "cluster"]
    ref = lammps_compute(c.positions, c.cell, c.species, c.pbc, f"buck {CUTOFF}",
                         lammps_coeffs(), 2)
    de, df, _ = deviations(ours(pot, params, c.positions, c.cell, c.species, c.pbc), ref,
                           c.natoms, periodic=False)
    assert de <= E_TOL and df <= F_TOL, (de, df)
    for r in (CUTOFF - 1e-6, CUTOFF + 1e-6):
        pos = np.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]])
        ref = lammps_compute(pos, np.zeros((3, 3)), [0, 1], (False,) * 3, f"buck {CUTOFF}",
                             lammps_coeffs(), 2)
        ev = ours(pot, params, pos, np.zeros((3, 3)), np.array([0, 1]), (False,) * 3)
        assert abs(float(ev.energy) - ref.energy) <= 1e-12
        assert (ref.energy != 0.0) == (r < CUTOFF)


def test_dataset_kernel_matches_lammps():
    """The dataset engine uses the family's analytic kernel; its energies, forces and
    stresses are LAMMPS's."""
    pot, params = potential_and_params()
    structures = [rocksalt(11), triclinic(12), two_atom_small(13)]
    items = [Item(p, c, s, (True,) * 3, energy=0.0, name=f"s{k}")
             for k, (p, c, s) in enumerate(structures)]
    obj = DatasetObjective(pot, items)
    assert obj.kernel == "analytic"
    for (pos, cell, species), pred in zip(structures, obj.predictions(params)):
        ref = lammps_compute(pos, cell, species, (True,) * 3, f"buck {CUTOFF}",
                             lammps_coeffs(), 2)
        assert abs(pred.energy - ref.energy) / len(pos) <= E_TOL
        assert np.abs(pred.forces - ref.forces).max() <= F_TOL
        assert np.abs(pred.stress - ref.stress).max() * EV_PER_A3_TO_GPA <= S_TOL


# --------------------------------------------------------------------------- derivatives


def test_parameter_gradient_matches_finite_differences():
    """dE/dA, dE/drho, dE/dC of every pair (and of the stress) vs central differences."""
    pot, params = potential_and_params()
    pos, cell, species = rocksalt(5)
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, pot.cutoff, 0.3, half=True)
    energy = jax.jit(lambda p: pot.energy(p, system, nbrs))
    grad = jax.grad(energy)(params)
    for tag in params:
        for name in ("A", "rho", "C"):
            x = float(params[tag][name])
            h = 1e-6 * abs(x)

            def at(v, tag=tag, name=name):
                return float(energy({**params, tag: {**params[tag], name: jnp.float64(v)}}))

            fd = (at(x + h) - at(x - h)) / (2 * h)
            assert float(grad[tag][name]) == pytest.approx(fd, rel=1e-6, abs=1e-9), (tag, name)
            assert abs(fd) > 1e-6, (tag, name)  # each parameter matters in this cell


# --------------------------------------------------------------------------- job: fit, export


def job_xml(a_mgo, rho_mgo, c_oo, lattice, targets, export=True):
    """A job fitting A and rho of Mg-O and C of O-O to atomic energies of B1 MgO."""
    structures = "\n".join(
        f"""    <B1-lattice id="B1-{k}">
      <atom-type-A>Mg</atom-type-A><atom-type-B>O</atom-type-B>
      <lattice-parameter>{a}</lattice-parameter>
      <properties><atomic-energy fit="true" target="{e!r}" tolerance="0.001"/></properties>
    </B1-lattice>""" for k, (a, e) in enumerate(zip(lattice, targets)))
    mgmg, mgo, oo = PAIRS[(0, 0)], PAIRS[(0, 1)], PAIRS[(1, 1)]
    return f"""<job>
  <name>MgO Buckingham</name>
  <atom-types><species>Mg</species><species>O</species></atom-types>
  <potentials>
    <buckingham id="MgO">
      <cutoff>{CUTOFF}</cutoff>
      <pair species-a="Mg" species-b="O">
        <A>{a_mgo}</A>
        <rho>{rho_mgo}</rho>
        <C>{mgo[2]}</C>
        <fit-dof><A/><rho/></fit-dof>
      </pair>
      <pair species-a="O" species-b="O">
        <A>{oo[0]}</A> <rho>{oo[1]}</rho> <C>{c_oo}</C>
        <fit-dof><C min="0" max="100"/></fit-dof>
      </pair>
      <pair species-a="Mg" species-b="Mg">
        <A>{mgmg[0]}</A><rho>{mgmg[1]}</rho><C>{mgmg[2]}</C>
      </pair>
      {"<export-potential>MgO.buck</export-potential>" if export else ""}
    </buckingham>
  </potentials>
  <structures>
{structures}
  </structures>
  <fitting><BFGS conv-threshold="1e-14" max-iter="200"/></fitting>
</job>
"""


def b1_energy_lammps(a, pair_style=f"buck {CUTOFF}", coeffs=None):
    """LAMMPS energy per atom of perfect rocksalt MgO (ASE's 8-atom cubic cell)."""
    pos, cell, species = crystal("MgO", a, 1, "rocksalt", strain=0.0, rattle=0.0)
    ref = lammps_compute(pos, cell, species, (True,) * 3, pair_style,
                         coeffs or lammps_coeffs(), 2)
    return ref.energy / len(pos)


def test_fit_recovers_lammps_parameters_and_export_reads_back(tmp_path):
    """Targets: LAMMPS energies at the PAIRS parameters.  The fit starts 5-8 % away and must
    find them; parameters.xml holds the fitted values; the exported file, read by LAMMPS,
    gives the energies rexfit reports."""
    lattice = (3.9, 4.1, 4.3, 4.5)
    targets = [b1_energy_lammps(a) for a in lattice]
    truth = (PAIRS[(0, 1)][0], PAIRS[(0, 1)][1], PAIRS[(1, 1)][2])
    res = rexfit.run(job_xml(1200.0, 0.31, 30.0, lattice, targets), tmp_path / "out")
    p = res.parameters
    fitted = (p["MgO[Buckingham].A[MgO]"], p["MgO[Buckingham].rho[MgO]"],
              p["MgO[Buckingham].C[OO]"])
    np.testing.assert_allclose(fitted, truth, rtol=1e-5)
    assert res.results["objective"]["training"] < 1e-6
    # parameters.xml: the fitted values in the <pair> elements
    xml = (tmp_path / "out" / "parameters.xml").read_text()
    assert re.search(rf"<A>{re.escape(repr(fitted[0]))}</A>", xml), xml
    assert re.search(rf"<C>{re.escape(repr(fitted[2]))}</C>", xml), xml
    # the exported LAMMPS commands reproduce rexfit's energies in LAMMPS
    lines = (tmp_path / "out" / "MgO.buck").read_text().splitlines()
    style = [ln.split(None, 1)[1] for ln in lines if ln.startswith("pair_style")]
    coeffs = [ln.split(None, 1)[1] for ln in lines if ln.startswith("pair_coeff")]
    assert style == [f"buck {CUTOFF!r}"] and len(coeffs) == 3
    for k, a in enumerate(lattice):
        value = res.results["structures"][f"B1-{k}"]["properties"]["atomic-energy"]["value"]
        assert abs(b1_energy_lammps(a, style[0], coeffs) - value) <= E_TOL


# --------------------------------------------------------------------------- bad input


def _errors(xml: str) -> list[str]:
    with pytest.raises(InputErrors) as info:
        rexfit.run(xml, no_fit=True)
    return [str(e) for e in info.value.errors]


def test_bad_input_is_reported_with_file_and_line():
    lattice, targets = (4.2,), (-1.0,)
    good = job_xml(1200.0, 0.31, 30.0, lattice, targets, export=False)
    cases = {
        "duplicate pair": (good.replace('<pair species-a="Mg" species-b="Mg">',
                                        '<pair species-a="O" species-b="Mg">'),
                           "listed twice", '<pair species-a="O" species-b="Mg">'),
        "unknown species": (good.replace('species-a="Mg" species-b="Mg"',
                                         'species-a="Mg" species-b="Al"'),
                            "species 'Al' is not declared", 'species-b="Al"'),
        "wildcard": (good.replace('species-a="Mg" species-b="Mg"', 'species-a="Mg" species-b="*"'),
                     "name one declared species", 'species-b="*"'),
        "rho": (good.replace("<rho>0.31</rho>", "<rho>-0.31</rho>"),
                "must be a positive number", "<rho>-0.31</rho>"),
        "fit-dof": (good.replace("<fit-dof><A/><rho/></fit-dof>", "<fit-dof><B/></fit-dof>"),
                    "not a parameter of", "<fit-dof><B/>"),
        "tag": (good.replace("<fit-dof><A/><rho/></fit-dof>", '<fit-dof><A tag="OO"/></fit-dof>'),
                "no tag here", '<A tag="OO"/>'),
        "missing C": (good.replace(f"<C>{PAIRS[(0, 1)][2]}</C>", ""), "needs a <C> value",
                      '<pair species-a="Mg" species-b="O">'),
    }
    for what, (xml, message, fragment) in cases.items():
        assert xml != good, what
        errors = _errors(xml)
        line = xml[:xml.index(fragment)].count("\n") + 1
        assert any(message in e and f":{line}:" in e for e in errors), (what, line, errors)


def test_family_is_registered_with_its_schema_entry():
    """The record is on the registry, and its parameters are the elements of <pair> in the
    XSD (schemas/job.xsd)."""
    from rexfit.job.schema import describe

    family = registry.family("buckingham")
    assert family is not None and family.write_lammps is not None
    assert "buckingham" in describe().children_of("potentials")
    assert describe().children_of("pair") == set(family.parameters) | {"fit-dof"}
    assert Path(__file__).resolve().parents[2].joinpath("docs", "buckingham.md").exists()


def test_validate_names_the_pairs(tmp_path):
    """`rexfit validate` says which species pairs a <buckingham> acts between."""
    job = tmp_path / "job.xml"
    job.write_text(job_xml(1200.0, 0.31, 30.0, (4.2,), (-5.0,), export=False))
    proc = subprocess.run([sys.executable, "-m", "rexfit", "validate", "-v", str(job)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "potential 'MgO' <buckingham> pairs Mg-O, O-O, Mg-Mg" in proc.stdout, proc.stdout
