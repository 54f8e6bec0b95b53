"""The C-tilde ``.yace`` file that LAMMPS ``pair_style pace`` (and pyace's
``ACECTildeBasisSet``) read, written from an ACE potential and its params.

Layout: ``elements`` (alphabetical), ``E0`` (zeros: no energy shift), ``deltaSplineBins``,
``embeddings`` {element index: ndensity, FS_parameters, npoti, rho_core_cutoff,
drho_core_cutoff}, ``bonds`` {[i, j]: nradmax, lmax, nradbasemax, radbasename, radparameters,
radcoefficients [n][l][k], prehc, lambdahc, rcut, dcut, rcut_in, dcut_in, inner_cutoff_type}
and ``functions`` {element index: [{mu0, rank, ndensity, num_ms_combs, mus, ns, ls, ms_combs
(flat, rank per combination), ctildes (flat, ndensity per combination)}]}.

C-tilde coefficients: c̃_{m,p} = Σ_B c_{B,p} C^{LS}_{l m} over the B functions of the same
(μ_0, μs, ns, ls) (they differ in LS); the evaluator takes Re(c̃ Π A), so only half of the m
space is written: combinations whose first non-zero m is negative are dropped and those whose
first non-zero m is positive count twice (Π A of −m is the complex conjugate, and the
coefficient is the same because Σl is even).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rexfit.potentials.ace.coupling import ms_combinations
from rexfit.potentials.ace.files import _dumper, _Flow, _FlowMap, _yaml, bond_key


class _FlowKey(tuple):
    """A hashable sequence key written in flow style (``[0, 1]``)."""


def _sign(ms) -> int:
    for m in ms:
        if m:
            return 1 if m > 0 else -1
    return 0


def ctilde_functions(potential, params) -> dict[int, list[dict]]:
    """{element index: [C-tilde function as a dict of the .yace fields]} of ``potential`` at
    ``params``, rank-1 functions first, then in file order."""
    index = {e: s for s, e in enumerate(potential.elements)}
    params = potential.shaped(params)
    merged: dict[tuple, dict] = {}
    for name, funcs in potential.functions:
        coefficients = np.asarray(params["c"][name], dtype=np.float64)
        for (elements, ns, ls, LS, skip), c in zip(funcs, coefficients):
            if skip:
                continue
            key = (index[elements[0]], tuple(index[e] for e in elements[1:]), ns, ls)
            entry = merged.setdefault(key, {})
            ms, cg = ms_combinations(tuple(ls), tuple(LS))
            for m, g in zip(map(tuple, ms.tolist()), cg):
                sign = _sign(m)
                if sign < 0:
                    continue
                weight = 2.0 * g if sign > 0 else g
                entry[m] = entry.get(m, 0.0) + weight * c
    out: dict[int, list[dict]] = {s: [] for s in range(len(potential.elements))}
    for rank1 in (True, False):
        for (mu0, mus, ns, ls), entry in merged.items():
            if (len(ns) == 1) != rank1:
                continue
            combos = sorted(entry)
            out[mu0].append(_FlowMap(
                mu0=mu0, rank=len(ns), ndensity=int(len(next(iter(entry.values())))),
                num_ms_combs=len(combos), mus=_Flow(mus), ns=_Flow(ns), ls=_Flow(ls),
                ms_combs=_Flow(m for combo in combos for m in combo),
                ctildes=_Flow(float(x) for combo in combos for x in entry[combo])))
    return out


def yace_text(potential, params) -> str:
    """The ``.yace`` text of ``potential`` (an :class:`~.model.ACE`) at ``params`` (shaped or
    flat)."""
    params = potential.shaped(params)
    embeddings = {}
    for s, emb in enumerate(potential.embeddings):
        fs = [x for pair in zip(emb.weights, emb.exponents) for x in pair]
        embeddings[s] = _FlowMap(ndensity=emb.ndensity, FS_parameters=_Flow(fs), npoti=emb.kind,
                                 rho_core_cutoff=emb.rho_core_cut,
                                 drho_core_cutoff=emb.drho_core_cut)
    bonds = {}
    for a, ea in enumerate(potential.elements):
        for b, eb in enumerate(potential.elements):
            bond = potential.bonds[a][b]
            crad = np.asarray(params["crad"][bond_key(ea, eb)], dtype=np.float64)
            bonds[_FlowKey((a, b))] = _FlowMap(
                nradmax=int(crad.shape[0]), lmax=int(crad.shape[1] - 1),
                nradbasemax=int(crad.shape[2]), radbasename=bond.basis,
                radparameters=_Flow([bond.lam]),
                radcoefficients=_Flow(_Flow(_Flow(row) for row in n) for n in crad.tolist()),
                prehc=bond.prehc, lambdahc=bond.lambdahc, rcut=bond.rcut, dcut=bond.dcut,
                rcut_in=bond.r_in, dcut_in=bond.delta_in, inner_cutoff_type=bond.inner)
    data = {"elements": _Flow(potential.elements),
            "E0": _Flow([0.0] * len(potential.elements)),
            "deltaSplineBins": potential.delta_spline_bins,
            "embeddings": embeddings, "bonds": bonds,
            "functions": ctilde_functions(potential, params)}
    dumper = _dumper()
    dumper.add_representer(_FlowKey, lambda d, v: d.represent_sequence(
        "tag:yaml.org,2002:seq", list(v), flow_style=True))
    return _yaml().dump(data, Dumper=dumper, sort_keys=False, width=10**6)


def write_yace(path, potential, params) -> None:
    """Write the ``.yace`` file of ``potential`` at ``params`` (for ``pair_style pace``)."""
    Path(path).write_text(yace_text(potential, params))
