"""pacemaker's regularisation of ACE fits (``<ace><regularization l1 l2 w0-rad w1-rad
w2-rad/>``) and its force weight κ (``<dataset kappa>``).

References, written here from pacemaker's definitions rather than taken from rexfit:

- the loss of pacemaker's TensorPotential backend (``TensorPotential.compute_loss``, loss type
  per-atom; ``ACE.compute_regularization``; ``ACE.compute_smoothness_reg`` with its
  ``integrate``; pyace ``fitadapter.py`` passes L1_coeffs, L2_coeffs, w0_rad, w1_rad, w2_rad):
  (1 − κ) Σ_s w_E,s ((E_s − E*_s)/N_s)² + κ Σ_i w_F,i |F_i − F*_i|² + L1 Σ|c| + L2 Σ c²
  + Σ_m w_m S_m, with S_m the mean over ordered element pairs of
  Δd/r_c² Σ_j d_j² Σ_nl |d^m R_nl/dr^m (d_j)| on 100 points d_j from 1e-10 to r_max − 1e-5;
- the radial bases in NumPy (Chebyshev polynomials from numpy.polynomial) and their radial
  derivatives by central finite differences;
- pyace's B-basis projections (``PyACECalculator.projections``) for the design matrix of a
  linear ACE, and ``numpy.linalg.lstsq`` of the ridge-augmented system;
- central finite differences of the objective for its gradient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C

pyace = pytest.importorskip("pyace")


import rexfit  # noqa: E402
from rexfit.errors import InputErrors  # noqa: E402
from rexfit.job import schema  # noqa: E402
from rexfit.potentials.ace.files import read_bbasis  # noqa: E402
from rexfit.potentials.ace.model import ACE  # noqa: E402
from rexfit.potentials.ace.regularization import smoothness_penalty  # noqa: E402
from tests.support.ace_cases import labelled_cells, linear_basis  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _this_trees_schema(monkeypatch):
    """Validate against this tree's schemas/job.xsd (an editable install may point the
    package's copy elsewhere)."""
    monkeypatch.setattr(schema, "schema_text", lambda: (ROOT / "schemas/job.xsd").read_bytes())
    schema._schema.cache_clear()
    yield
    schema._schema.cache_clear()


TWO = dict(
    elements=["Al", "Cu"],
    embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
                        "ndensity": 2}},
    bonds={"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0,
                   "dcut": 0.01},
           ("Al", "Cu"): {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 4.2,
                          "dcut": 0.01}},
    functions={"ALL": {"nradmax_by_orders": [4, 3, 2], "lmax_by_orders": [0, 2, 1]}},
)


def two_element_potential(tmp_path):
    config = pyace.create_multispecies_basis_config({"deltaSplineBins": 0.001, **TWO})
    config.save(str(tmp_path / "two.yaml"))
    basis = read_bbasis(tmp_path / "two.yaml")
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(11)
    params = {"crad": {k: rng.normal(size=np.shape(v)) for k, v in params["crad"].items()},
              "c": params["c"]}
    return basis, potential, params


def numpy_basis(r, radbase, lam, rc, k):
    """(len(r), k) radial basis as pacemaker's TensorPotential defines it (no taper, no
    inner cutoff), zero for r ≥ r_c."""
    r = np.asarray(r, float)
    if radbase == "ChebExpCos":
        x = 1.0 - 2.0 * (np.exp(-lam * (r / rc - 1.0)) - 1.0) / (np.exp(lam) - 1.0)
        cut = 0.5 * (1.0 + np.cos(np.pi * r / rc))
        g = [cut] + [0.5 * (1.0 - C.chebval(x, [0] * n + [1])) * cut for n in range(1, k)]
    else:  # ChebPow
        x = 2.0 * (1.0 - np.abs(1.0 - r / rc) ** lam) - 1.0
        g = [0.5 - 0.5 * C.chebval(x, [0] * (n + 1) + [1]) for n in range(k)]
    return np.where((r < rc)[:, None], np.stack(g, axis=1), 0.0)


def pacemaker_smoothness(basis, crad, weights):
    """w0 S_0 + w1 S_1 + w2 S_2 of pacemaker (see the module docstring), the r-derivatives of
    the radial functions by central differences."""
    bonds = {}
    for blk in basis.blocks:
        if blk.rcut is not None:
            bonds[tuple(blk.elements)] = blk
    elements = sorted({e for pair in bonds for e in pair})
    pairs = [(a, b) for a in elements for b in elements]
    r_max = max(b.rcut for b in bonds.values())
    d = np.linspace(1e-10, r_max - 1e-5, 100)
    dx = d[1] - d[0]
    s = np.zeros(3)
    for a, b in pairs:
        blk = bonds.get((a, b)) or bonds.get((b, a)) or bonds[(a,)]
        c = np.asarray(crad["-".join(sorted((a, b)))])
        k = c.shape[2]

        def radial(r, blk=blk, c=c, k=k):
            g = numpy_basis(r, blk.radbase, blk.radparameters[0], blk.rcut, k)
            return np.einsum("jk,nlk->jnl", g, c)

        # steps that stay on one side of the cutoff (the last point is 1e-5 Å below it)
        h1 = 1e-6
        h2 = np.where(d < blk.rcut, np.minimum(1e-4, 0.5 * (blk.rcut - d)), 1e-4)
        values = [radial(d),
                  (radial(d + h1) - radial(d - h1)) / (2 * h1),
                  (radial(d + h2) - 2 * radial(d) + radial(d - h2)) / h2[:, None, None]**2]
        for m, v in enumerate(values):
            s[m] += np.sum(d**2 * np.sum(np.abs(v), axis=(1, 2))) * dx / blk.rcut**2
    return float(np.dot(weights, s / len(pairs))), s / len(pairs)


def test_radial_smoothness_is_pacemakers(tmp_path):
    """rexfit's w0 S_0 + w1 S_1 + w2 S_2 of a two-element basis (ChebExpCos bonds of 5 Å, a
    ChebPow Al–Cu bond of 4.2 Å) with random radial coefficients equals pacemaker's formula
    evaluated here in NumPy (finite-difference derivatives: 1e-6 relative)."""
    basis, potential, params = two_element_potential(tmp_path)
    weights = np.array([0.3, 0.02, 1e-3])
    expected, parts = pacemaker_smoothness(basis, params["crad"], weights)
    assert np.all(parts > 0) and len(potential.crad_shapes) == 3
    value = float(smoothness_penalty(potential, *weights)(params))
    assert value == pytest.approx(expected, rel=1e-6)
    for m in range(3):  # each term alone
        one = np.eye(3)[m]
        got = float(smoothness_penalty(potential, *one)(params))
        assert got == pytest.approx(parts[m], rel=2e-6), m


# ---------------------------------------------------------------------------- jobs

def linear_case(tmp_path, count=6):
    """(start.yaml: a linear ACE of 10 functions with random coefficients, frames labelled
    by pyace with other coefficients and 0.05 eV, eV/Å of noise, written to cu.xyz)."""
    rng = np.random.default_rng(4)
    truth_file, _, start = linear_basis(tmp_path, rng)
    frames = labelled_cells(tmp_path / "cu.xyz", truth_file, count, rng, noise=0.05,
                            stress=False)
    return start, frames


def job_text(yaml, regularization="", fitting="<linear-solve/>", dataset_attrs="",
             properties='<atomic-energy tolerance="1"/>', fit_dof="<coefficients/>") -> str:
    return f"""<job>
  <atom-types><species>Cu</species></atom-types>
  <potentials>
    <ace id="Cu">
      <param-file>{yaml}</param-file>
      <fit-dof>{fit_dof}</fit-dof>
      {regularization}
    </ace>
  </potentials>
  <structures>
    <dataset id="cu" {dataset_attrs}>
      <file>cu.xyz</file>
      <properties>{properties}</properties>
    </dataset>
  </structures>
  <fitting>{fitting}</fitting>
</job>
"""


def run(tmp_path, text, name="job.xml", **kw):
    job = tmp_path / name
    job.write_text(text)
    return rexfit.run(job, tmp_path / (name + ".out"), **kw)


def coefficients(res, n=10):
    return np.array([res.parameters[f"Cu[ACE].c{k + 1}[Cu]"] for k in range(n)])


def test_l2_is_linear_solves_ridge_and_shrinks_the_coefficients(tmp_path):
    """<regularization l2="λ"/> with <linear-solve>: the coefficients equal numpy.linalg.lstsq
    of the energy rows (pyace's projections summed per cell / N, × √(1/n)) stacked on √λ·I
    (1e-8), their norm is smaller than the unregularised solution's, and results.json reports
    λ Σ c² as the regularisation term; <least-squares> finds the same coefficients (1e-7)."""
    start, frames = linear_case(tmp_path)
    plain = run(tmp_path, job_text(start.name), "plain.xml")
    lam = 1e-3
    ridge = run(tmp_path, job_text(start.name, f'<regularization l2="{lam!r}"/>'), "ridge.xml")
    calc = pyace.PyACECalculator(str(start))
    rows, rhs = [], []
    n = len(frames)
    for atoms in frames:
        e_ref = atoms.get_potential_energy()
        other = atoms.copy()
        other.calc = calc
        other.get_potential_energy()
        rows.append(np.asarray(calc.projections).sum(axis=0) / len(atoms) / np.sqrt(n))
        rhs.append(e_ref / len(atoms) / np.sqrt(n))
    a, b = np.array(rows), np.array(rhs)
    assert a.shape == (n, 10)  # fewer cells than functions: the ridge decides the rest
    aug = np.vstack([a, np.sqrt(lam) * np.eye(10)])
    expected = np.linalg.lstsq(aug, np.concatenate([b, np.zeros(10)]), rcond=None)[0]
    got = coefficients(ridge)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
    unreg = coefficients(plain)
    assert np.linalg.norm(got) < 0.5 * np.linalg.norm(unreg)
    reg = ridge.results["objective"]["regularization"]
    assert reg["l2"] == pytest.approx(lam * np.sum(got**2), rel=1e-10)
    assert "regularization" not in plain.results["objective"]
    # <least-squares> takes the same term as residual rows √λ·c: the same minimum
    squares = run(tmp_path, job_text(start.name, f'<regularization l2="{lam!r}"/>',
                                     '<least-squares ftol="1e-15" xtol="1e-15" gtol="1e-15"/>'),
                  "squares.xml")
    np.testing.assert_allclose(coefficients(squares), expected, rtol=0, atol=1e-7)


def test_kappa_splits_energy_and_forces_as_pacemaker(tmp_path):
    """kappa = 0.3 with summed force components and δ = 1: the dataset's objective is
    pacemaker's (1 − κ) Σ_s w_E ((E − E*)/N)² + κ Σ_i w_F |F − F*|² with rexfit's uniform
    weights w = 1/n; it equals the job with relative weights 0.7 and 0.3 given by hand."""
    start, frames = linear_case(tmp_path, count=3)
    props = '<atomic-energy tolerance="1"/><atomic-forces tolerance="1"/>'
    res = run(tmp_path, job_text(start.name, fitting='<BFGS max-iter="1"/>',
                                 dataset_attrs='kappa="0.3" component-residuals="sum"',
                                 properties=props), no_fit=True)
    loss = 0.0
    records = [r for r in res.results["structures"].values() if r.get("dataset") == "cu"]
    assert len(records) == 3
    for r in records:
        p = r["properties"]
        de = p["atomic-energy"]["value"] - p["atomic-energy"]["target"]
        df = np.array(p["atomic-forces"]["value"]) - np.array(p["atomic-forces"]["target"])
        loss += (0.7 * de**2 + 0.3 * np.sum(df * df)) / 3
    assert res.results["objective"]["training"] == pytest.approx(loss, rel=1e-10)
    by_hand = '<atomic-energy tolerance="1" relative-weight="0.7"/>' \
              '<atomic-forces tolerance="1" relative-weight="0.3"/>'
    other = run(tmp_path, job_text(start.name, fitting='<BFGS max-iter="1"/>',
                                   dataset_attrs='component-residuals="sum"',
                                   properties=by_hand), "hand.xml", no_fit=True)
    assert other.results["objective"]["training"] == pytest.approx(loss, rel=1e-12)


def test_kappa_auto_is_pacemakers_formula(tmp_path):
    """kappa="auto": κ = σ_E²/(σ_E² + σ_F²) as pacemaker's GeneralACEFit computes it (pandas'
    std of the energies per atom, n − 1; NumPy's std of the force magnitudes of all atoms, n),
    from the training entries; the objective is then (1 − κ) ΔE² + κ Σ|ΔF|² per entry / n."""
    from ase.io import read

    start, _ = linear_case(tmp_path, count=3)
    frames = read(tmp_path / "cu.xyz", index=":")  # the values as the file holds them
    e = np.array([a.get_potential_energy() / len(a) for a in frames])
    f = np.concatenate([np.linalg.norm(a.get_forces(), axis=1) for a in frames])
    kappa = np.std(e, ddof=1) ** 2 / (np.std(e, ddof=1) ** 2 + np.std(f) ** 2)
    props = '<atomic-energy tolerance="1"/><atomic-forces tolerance="1"/>'
    res = run(tmp_path, job_text(start.name, fitting='<BFGS max-iter="1"/>',
                                 dataset_attrs='kappa="auto" component-residuals="sum"',
                                 properties=props), no_fit=True)
    loss = 0.0
    for r in res.results["structures"].values():
        p = r["properties"]
        de = p["atomic-energy"]["value"] - p["atomic-energy"]["target"]
        df = np.array(p["atomic-forces"]["value"]) - np.array(p["atomic-forces"]["target"])
        loss += ((1 - kappa) * de**2 + kappa * np.sum(df * df)) / 3
    assert 0.0 < kappa < 1.0
    assert res.results["objective"]["training"] == pytest.approx(loss, rel=1e-10)
    log = (tmp_path / "job.xml.out" / "log.txt").read_text()
    assert f"kappa auto = {kappa:.6g}" in log


def test_gradient_with_every_term_matches_finite_differences(tmp_path):
    """The training objective with l1, l2 and the three smoothness weights, coefficients and
    radial coefficients fitted: its value is the data part plus the terms as defined, and its
    gradient equals central differences (1e-6 relative)."""
    from rexfit.job import load_job
    from rexfit.model.potentials import build_potentials
    from rexfit.objective.objective import Objective
    from rexfit.objective.parameters import ParameterSpace

    start, frames = linear_case(tmp_path, count=2)
    reg = '<regularization l1="1e-3" l2="2e-3" w0-rad="1e-2" w1-rad="1e-3" w2-rad="1e-4"/>'
    text = job_text(start.name, reg, '<BFGS max-iter="1"/>', fit_dof="<coefficients/><crad/>",
                    properties='<atomic-energy tolerance="0.1"/><atomic-forces/>')
    (tmp_path / "job.xml").write_text(text)
    job, _ = load_job(tmp_path / "job.xml")
    space = ParameterSpace(build_potentials(job), job.constraints)
    objective = Objective(job, space)
    u = space.u0() * (1.0 + 0.01 * np.random.default_rng(3).normal(size=space.size))
    ev = objective.evaluate(u)
    p = space.values(u)
    is_c = np.array([e.path[1] == "c" for e in space.fitted])
    assert ev.regularization["l1"] == pytest.approx(1e-3 * np.abs(p[is_c]).sum(), rel=1e-12)
    assert ev.regularization["l2"] == pytest.approx(2e-3 * (p[is_c] ** 2).sum(), rel=1e-12)
    smooth = float(smoothness_penalty(read_potential(start), 1e-2, 1e-3, 1e-4)(
        ev.params["Cu"]))
    assert ev.regularization["Cu: radial smoothness"] == pytest.approx(smooth, rel=1e-12)
    data = sum(objective.evaluate(u, grad=False).datasets.values())
    assert ev.value == pytest.approx(data + sum(ev.regularization.values()), rel=1e-12)
    rng = np.random.default_rng(5)
    picks = np.concatenate([np.flatnonzero(is_c)[:3], np.flatnonzero(~is_c)[:3]])
    for k in picks:
        h = 1e-6 * max(1.0, abs(u[k]))
        up, down = u.copy(), u.copy()
        up[k] += h
        down[k] -= h
        fd = (objective.evaluate(up, grad=False).value
              - objective.evaluate(down, grad=False).value) / (2 * h)
        assert ev.grad[k] == pytest.approx(fd, rel=1e-6, abs=1e-9 * abs(ev.value)), (k, rng)


def read_potential(path):
    return ACE.from_bbasis(read_bbasis(path))[0]


@pytest.mark.parametrize("reg, attrs, props, fitting, message", [
    ('<regularization l2="-1"/>', "", None, None, "l2 must be a finite number ≥ 0"),
    ('<regularization l1="1"/><regularization l2="1"/>', "", None, None,
     "has 2 <regularization> elements"),
    ("", 'kappa="1.5"', None, None, "kappa must be in [0, 1]"),
    ("", 'kappa="often"', None, None, "kappa"),
    ("", 'kappa="0.5"', '<atomic-energy relative-weight="2"/><atomic-forces/>', None,
     "relative-weight and the dataset's kappa both set its weight"),
    ("", 'kappa="0.5"', '<atomic-energy/>', None, "does not fit it: add <atomic-forces/>"),
    ('<regularization l1="1e-3"/>', "", None, "<least-squares/>",
     "is a sum of absolute values, not of squares"),
    ('<regularization w1-rad="1e-3"/>', "", None, "<linear-solve/>",
     "has a radial smoothness term"),
])
def test_bad_input_is_a_located_error(tmp_path, reg, attrs, props, fitting, message):
    start, _ = linear_case(tmp_path, count=1)
    kw = {} if props is None else {"properties": props}
    text = job_text(start.name, reg, fitting or "<linear-solve/>", attrs, **kw)
    with pytest.raises(InputErrors) as info:
        run(tmp_path, text)
    errors = [str(e) for e in info.value.errors]
    assert any(message in e and "job.xml:" in e for e in errors), errors
