"""ABOP (Albe–Erhart form) read from LAMMPS Tersoff files: equal to LAMMPS ``tersoff`` on the same
file, the SPEC §3 conversion and its inverse, classic mode, the written file, and parameter
derivatives against finite differences."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import evaluate
from rexfit.potentials import abop_family
from rexfit.potentials.abop import (
    ABOP,
    ABOP_PARAMETERS,
    TWO_BODY,
    from_tersoff,
    tersoff_entries,
    to_tersoff,
)
from rexfit.potentials.manybody_files import (
    TERSOFF_PARAMETERS,
    params_from_entries,
    read_tersoff_file,
    write_tersoff_file,
)
from rexfit.structures.system import make_system
from tests.potentials.test_tersoff import E_TOL, F_TOL, S_TOL, compare_with_lammps
from tests.support.lammps_ref import potentials_dir
from tests.support.structures import crystal

GAN = dict(name="GaN", symbols="wurtzite", a=3.189, c=5.185, repeat=2, seed=8, cubic=False)


def test_conversion_follows_the_published_relations():
    """λ1 = β√(2S), λ2 = β√(2/S), A = D0/(S−1)e^{λ1 r0}, B = S·D0/(S−1)e^{λ2 r0}, h_T = −h,
    λ3 = 2μ, worked by hand for the Fe ABOP numbers (Müller, Erhart, Albe 2007)."""
    fe = dict(D0=1.5, S=2.0693, r0=2.29, beta=1.4, beta2=1.0, powern=1.0, gamma=0.0115751,
              c=1.2898716, d=0.3413219, h=-0.26, twomu=0.0, m=1.0, bigr=3.15, bigd=0.2)
    params = {"FeFeFe": {k: jnp.float64(v) for k, v in fe.items()}}
    t = {k: float(v) for k, v in to_tersoff(params, ("Fe",))["FeFeFe"].items()}
    lam1 = 1.4 * math.sqrt(2 * 2.0693)
    lam2 = 1.4 * math.sqrt(2 / 2.0693)
    assert t["lambda1"] == pytest.approx(lam1, rel=1e-15)
    assert t["lambda2"] == pytest.approx(lam2, rel=1e-15)
    assert t["A"] == pytest.approx(1.5 / 1.0693 * math.exp(lam1 * 2.29), rel=1e-14)
    assert t["B"] == pytest.approx(2.0693 * 1.5 / 1.0693 * math.exp(lam2 * 2.29), rel=1e-14)
    assert t["costheta0"] == 0.26 and t["lambda3"] == 0.0
    assert (t["R"], t["D"], t["beta"], t["n"]) == (3.15, 0.2, 1.0, 1.0)
    back = from_tersoff(to_tersoff(params, ("Fe",)), ("Fe",))["FeFeFe"]
    for k, v in fe.items():
        assert float(back[k]) == pytest.approx(v, rel=1e-13, abs=1e-15), k


@pytest.mark.parametrize("classic", [False, True])
def test_abop_from_a_file_equals_lammps_tersoff_on_that_file(classic):
    """GaN.tersoff (an ABOP-form file whose ijk lines carry the i–k pair's three-body values,
    so classic mode reads it the same)."""
    path = potentials_dir() / "GaN.tersoff"
    potential, params = ABOP.from_file(path, ["Ga", "N"], classic=classic)
    de, df, ds = compare_with_lammps(potential, params, crystal(**GAN), path)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


def test_classic_mode_takes_three_body_values_from_the_ik_pair(tmp_path):
    """With ijk lines changed, classic mode ignores them (uses ikk): it equals LAMMPS on the
    original file, while the non-classic ABOP equals LAMMPS on the changed file."""
    original = potentials_dir() / "GaN.tersoff"
    entries = read_tersoff_file(original)
    for (i, j, k), v in entries.items():
        if j != k:
            v.update(gamma=v["gamma"] * 1.7, c=v["c"] * 0.8, costheta0=v["costheta0"] + 0.1,
                     R=v["R"] - 0.05)
    changed = tmp_path / "GaN_changed.tersoff"
    write_tersoff_file(changed, entries)
    structure = crystal(**GAN)
    classic, cp = ABOP.from_file(changed, ["Ga", "N"], classic=True)
    de, df, ds = compare_with_lammps(classic, cp, structure, original)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)
    plain, pp = ABOP.from_file(changed, ["Ga", "N"], classic=False)
    de, df, ds = compare_with_lammps(plain, pp, structure, changed)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)
    de_other, _, _ = compare_with_lammps(plain, pp, structure, original)
    assert de_other > 1e-4  # the changed lines matter


def test_written_file_is_read_back_by_lammps_and_carries_the_abop_values(tmp_path):
    path = potentials_dir() / "GaN.tersoff"
    potential, params = ABOP.from_file(path, ["Ga", "N"])
    params = {t: dict(v) for t, v in params.items()}
    params["GaNN"]["D0"] = params["NGaGa"]["D0"] = params["GaNN"]["D0"] * 1.05  # one pair
    params["GaGaGa"]["gamma"] = params["GaGaGa"]["gamma"] * 0.9
    out = tmp_path / "GaN_abop.tersoff"
    out.write_text(abop_family.FAMILY.parameter_text(potential, params, ["test"]))
    text = out.read_text()
    assert f"D0={float(params['GaNN']['D0'])!r}" in text
    de, df, ds = compare_with_lammps(potential, params, crystal(**GAN), out)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)
    again, params2 = ABOP.from_file(out, ["Ga", "N"])
    for tag, values in tersoff_entries(potential, params).items():
        reread = params_from_entries(read_tersoff_file(out), ("Ga", "N"), TERSOFF_PARAMETERS)
        for name in TERSOFF_PARAMETERS:
            assert float(reread["".join(tag)][name]) == values[name]


def test_a_pair_entry_without_abop_form_is_refused(tmp_path):
    entries = read_tersoff_file(potentials_dir() / "GaN.tersoff")
    entries[("Ga", "N", "N")]["lambda2"] = entries[("Ga", "N", "N")]["lambda1"] + 0.1
    bad = tmp_path / "bad.tersoff"
    write_tersoff_file(bad, entries)
    with pytest.raises(ValueError, match="Ga N N has no ABOP form"):
        ABOP.from_file(bad, ["Ga", "N"])


@pytest.mark.parametrize("classic", [False, True])
def test_parameter_gradients_match_finite_differences(classic):
    """∂E, ∂F, ∂σ with respect to every ABOP parameter that enters (m is discrete)."""
    path = potentials_dir() / "GaN.tersoff"
    potential, params = ABOP.from_file(path, ["Ga", "N"], classic=classic)
    pos, cell, species = crystal(name="GaN", symbols="wurtzite", a=3.0, c=4.9, seed=3,
                                 rattle=0.12, cubic=False)
    system = make_system(pos, cell, species)
    nbrs = potential.neighbor_list(system, 0.3)

    def observables(p):
        r = evaluate(potential, p, system, nbrs)
        return jnp.concatenate([r.energy[None], r.forces.reshape(-1), r.stress.reshape(-1)])

    jac = jax.jacfwd(observables)(params)
    checked = 0
    for tag in params:
        for name in params[tag]:
            if name == "m":
                continue
            exact = np.asarray(jac[tag][name])
            value = float(params[tag][name])
            h = 1e-6 * max(abs(value), 1.0)

            def at(delta):
                p = {t: dict(v) for t, v in params.items()}
                p[tag][name] = jnp.float64(value + delta)
                return np.asarray(observables(p))

            fd = (at(h) - at(-h)) / (2 * h)
            scale = max(np.abs(fd).max(), 1e-3)
            assert np.abs(exact - fd).max() < 2e-6 * scale, (tag, name)
            checked += np.abs(exact).max() > 0
    assert checked >= 20  # most parameters move something


def test_family_parameter_names_are_the_potentials():
    assert set(abop_family.PARAMETERS) == set(ABOP_PARAMETERS)
    assert abop_family.PAIR_PARAMETERS <= set(TWO_BODY) | abop_family.CUTOFF_PARAMETERS
    assert abop_family.CUTOFF_PARAMETERS <= set(ABOP_PARAMETERS) - set(TWO_BODY)
