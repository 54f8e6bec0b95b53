"""ACE spline tables built on the host: the NumPy node values and derivatives
(:func:`radial_basis_nodes`, :func:`core_repulsion_nodes`) against rexfit's differentiable JAX
functions and their JAX derivatives, the tables against the tables JAX built before (jvp of
the JAX functions at the nodes), the node values against pyace's own radial basis, and the
set-up running no JAX program."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit import timing
from rexfit.potentials.ace.files import read_bbasis
from rexfit.potentials.ace.model import ACE
from rexfit.potentials.ace.radial import (Bond, core_repulsion, core_repulsion_nodes,
                                          radial_basis, radial_basis_nodes, spline_nodes,
                                          spline_table)

ROOT = Path(__file__).resolve().parents[2]

#: (basis, λ) × (inner cutoff, r_in, δ_in): every radial basis with every inner-cutoff mode
#: (the zbl mode with δ_in = 0 has its inner cutoff at 1 Å)
BASES = [("ChebExpCos", 5.25), ("ChebPow", 2.0), ("ChebPow", 3.7), ("SBessel", 5.25)]
INNER = [("density", 0.0, 0.0), ("distance", 2.3, 0.5), ("zbl", 2.3, 0.5), ("zbl", 2.3, 0.0)]
BONDS = [Bond(b, lam, 4.5, 0.3, r_in, d_in, inner, 50.0, 1.0, 8, (13, 29))
         for b, lam in BASES for inner, r_in, d_in in INNER]


def _name(bond):
    return f"{bond.basis}-{bond.lam}-{bond.inner}-{bond.delta_in}"


def _jax_nodes(bond, r):
    """(g, dg, V, dV) of the JAX functions at ``r``, derivatives by forward-mode autodiff."""
    r = jnp.asarray(r)
    g, dg = jax.jvp(lambda x: radial_basis(x, bond, bond.nradbase), (r,), (jnp.ones_like(r),))
    v, dv = jax.jvp(lambda x: core_repulsion(x, bond), (r,), (jnp.ones_like(r),))
    return tuple(np.asarray(a) for a in (g, dg, v, dv))


def _close(ours, ref, scale):
    """Largest |ours − ref| / (|ref| + scale) (per column scale)."""
    return float((np.abs(ours - ref) / (np.abs(ref) + scale)).max())


@pytest.mark.parametrize("bond", BONDS, ids=_name)
def test_host_nodes_agree_with_the_jax_functions(bond):
    """Values and derivatives at the table's nodes and at random distances from 0.5 Å
    (including both cutoffs' transition regions) agree with the JAX functions and their
    autodiff derivatives to a few 10⁻¹⁶ of each function's size.  (Below that the SBessel
    derivative, sinc' as the evaluator writes it, cancels: 10⁻¹³ of its size at 1 mÅ.)"""
    r, _, scale = spline_nodes(bond.rcut, 0.001)
    rng = np.random.default_rng(1)
    r = np.concatenate([r[r >= 0.5], rng.uniform(0.5, bond.rcut + 0.2, 3000)])
    g, dg = radial_basis_nodes(r, bond, bond.nradbase)
    v, dv = core_repulsion_nodes(r, bond)
    jg, jdg, jv, jdv = _jax_nodes(bond, r)
    assert g.shape == jg.shape == dg.shape == (len(r), bond.nradbase)
    assert np.abs(g).max() > 0.1 and np.abs(v).max() > 1.0  # real functions
    # g_k and g_k' are bounded: errors relative to each function's largest value
    assert _close(g, jg, np.abs(jg).max(axis=0)) < 4e-15, np.abs(g - jg).max()
    assert _close(dg, jdg, np.abs(jdg).max(axis=0)) < 4e-15, np.abs(dg - jdg).max()
    # the repulsion grows like 1/r at short range: relative to itself plus its size beyond 1 Å
    far = r >= 1.0
    assert _close(v, jv, 1e-1 * np.abs(jv[far]).max()) < 4e-15
    assert _close(dv, jdv, 1e-1 * np.abs(jdv[far]).max()) < 4e-15
    # zero at and beyond the outer cutoff, and below r_in − δ_in (distance and zbl modes)
    out = r >= bond.rcut
    assert out.any() and not g[out].any() and not dg[out].any() and not v[out].any()
    if bond.inner == "distance":
        low = r <= bond.r_in - bond.delta_in
        assert low.any() and not g[low].any() and not dg[low].any()


def _todays_table(bond, delta):
    """The table as rexfit built it before the host version: JAX values and forward-mode
    derivatives at the nodes, then the evaluator's Hermite coefficients."""
    r, nodes, scale = spline_nodes(bond.rcut, delta)
    g, dg, v, dv = _jax_nodes(bond, r)

    def hermite(f0, d0):
        d0 = d0 * (1.0 / scale)
        f1 = np.concatenate([f0[1:], np.zeros_like(f0[:1])])
        d1 = np.concatenate([d0[1:], np.zeros_like(d0[:1])])
        return np.stack([f0, d0, 3.0 * (f1 - f0) - d1 - 2.0 * d0, -2.0 * (f1 - f0) + d1 + d0],
                        axis=-1)

    return hermite(g, dg), hermite(v[:, None], dv[:, None])


@pytest.mark.parametrize("bond", BONDS[::3] + BONDS[1::5], ids=_name)
def test_tables_agree_with_the_jax_built_tables(bond):
    """The host tables equal the JAX-built ones to round-off: every coefficient of rows 1..M
    (the rows the evaluator uses) within 10⁻¹⁴ of its function's size (the repulsion: of
    its value at the node), row 0 finite."""
    delta = 0.001
    g_ref, hc_ref = _todays_table(bond, delta)
    g = spline_table(lambda r: radial_basis_nodes(r, bond, bond.nradbase), bond.rcut, delta)
    hc = spline_table(lambda r: [a[:, None] for a in core_repulsion_nodes(r, bond)],
                      bond.rcut, delta)
    _, nodes, scale = spline_nodes(bond.rcut, delta)
    assert g.nodes == hc.nodes == nodes == int(bond.rcut / delta) and g.scale == scale
    assert g.coefficients.shape == g_ref.shape == (nodes + 1, bond.nradbase, 4)
    assert hc.coefficients.shape == hc_ref.shape == (nodes + 1, 1, 4)
    assert np.isfinite(g.coefficients).all() and np.isfinite(hc.coefficients).all()
    size = np.abs(g_ref[1:, :, 0]).max(axis=0)[:, None]  # each g_k's largest value
    assert (np.abs(g.coefficients[1:] - g_ref[1:]) <= 1e-14 * size).all()
    far = spline_nodes(bond.rcut, delta)[0] >= 1.0
    hsize = np.abs(hc_ref[far, 0, 0]).max()
    # (c_2, c_3 of the steep short-range repulsion are small differences of large values:
    # their round-off is measured against the value at the node)
    assert (np.abs(hc.coefficients[1:] - hc_ref[1:])
            <= 1e-14 * (np.abs(hc_ref[1:, :, :1]) + 0.1 * hsize)).all()


def _pyace_radial(tmp_path, basis, lam, inner, r_in, delta_in):
    pyace = pytest.importorskip("pyace")
    bonds = {"ALL": {"radbase": basis, "radparameters": [lam], "rcut": 4.5, "dcut": 0.1,
                     "r_in": r_in, "delta_in": delta_in, "inner_cutoff_type": inner,
                     "core-repulsion": [1.0, 1.0]}}
    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Al"], "bonds": bonds,
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1],
                               "ndensity": 1}},
        "functions": {"ALL": {"nradmax_by_orders": [6, 2], "lmax_by_orders": [0, 1]}}})
    config.save(str(tmp_path / "basis.yaml"))
    return pyace.ACEBBasisSet(str(tmp_path / "basis.yaml")).radial_functions


@pytest.mark.parametrize("basis,lam,inner,r_in,delta_in", [
    ("ChebPow", 2.0, "density", 0.0, 0.0), ("ChebPow", 3.7, "distance", 2.3, 0.5),
    ("ChebExpCos", 5.25, "distance", 2.3, 0.5), ("SBessel", 5.25, "zbl", 2.3, 0.5)])
def test_node_values_agree_with_pyace(tmp_path, basis, lam, inner, r_in, delta_in):
    """g_k and g_k' at every node r_1..r_M as pyace's radial basis computes them (the values
    its tables are built from): equal to a few units in the last place of each function's
    size (ChebPow with λ = 2 and no inner cutoff: bit for bit on the machines tried)."""
    radial = _pyace_radial(tmp_path, basis, lam, inner, r_in, delta_in)
    k = radial.nradbase
    r, nodes, _ = spline_nodes(4.5, 0.001)
    ref_g, ref_dg = np.empty((nodes, k)), np.empty((nodes, k))
    for n in range(1, nodes + 1):
        radial.radbase(lam, 4.5, 0.1, basis, float(r[n]), r_in, delta_in)
        ref_g[n - 1], ref_dg[n - 1] = radial.gr[:k], radial.dgr[:k]
    bond = Bond(basis, lam, 4.5, 0.1, r_in, delta_in, inner, 1.0, 1.0, k, (13, 13))
    g, dg = radial_basis_nodes(r[1:], bond, k)
    assert np.abs(ref_g).max() > 0.1
    assert (np.abs(g - ref_g) <= 4e-15 * np.abs(ref_g).max(axis=0)).all()
    assert (np.abs(dg - ref_dg) <= 4e-15 * np.abs(ref_dg).max(axis=0)).all()


def test_building_an_ace_runs_no_jax_program():
    """The tables of an ACE (cu-ace-fit's basis) are NumPy work: building them traces and
    compiles nothing and moves no array between host and device."""
    basis = read_bbasis(ROOT / "jobs" / "cu-ace-fit" / "Cu_start.yaml")
    potential, _ = ACE.from_bbasis(basis)
    timing.install()
    before = timing.snapshot()
    with jax.transfer_guard("disallow"):
        tables = potential._build_tables()
    after = timing.snapshot()
    assert (after.traces, after.compile_requests) == (before.traces, before.compile_requests)
    assert np.array_equal(tables.g_spline, potential.tables.g_spline)
    assert tables.g_spline.shape[1] == int(5.0 / basis.delta_spline_bins) + 1
    assert np.abs(tables.g_spline[:, 1:, :, 0]).max() > 0.1
    assert math.isclose(float(tables.scale[0]), (tables.g_spline.shape[1] - 1) / 5.0)
