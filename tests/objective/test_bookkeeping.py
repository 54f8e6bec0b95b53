"""Weighted-residual bookkeeping, property by property, against weights and residuals worked
out by hand (SPEC §4): nested group normalisation, structures without fitted properties left
out, every residual style, a vector property, default tolerances, presets, validation set.
"""

from __future__ import annotations

import numpy as np
import pytest

from rexfit.job import load_job
from rexfit.run import run_job

POSCAR = """two Ar atoms with reference forces
1.0
5.0 0.0 0.0
0.0 5.0 0.0
0.0 0.0 5.0
Ar
2
Cartesian
0.0 0.0 0.0   0.01 -0.02 0.0
3.9 0.2 0.1   -0.01 0.02 0.0
"""

JOB = """<?xml version="1.0"?>
<job>
  {preset}
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="LJ"><sigma>3.4</sigma><epsilon>0.0104</epsilon><cutoff>8.0</cutoff>
    </lennard-jones>
  </potentials>
  <structures>
    <fcc-lattice id="fcc" relative-weight="2">
      <atom-type>Ar</atom-type><lattice-parameter>5.3</lattice-parameter>
      <properties>
        <atomic-energy fit="true" target="-0.08"/>
        <pressure fit="true" target="0.1" relative-weight="1" residual-style="absolute-diff"/>
      </properties>
    </fcc-lattice>
    <diamond-lattice id="unfitted" relative-weight="5">
      <atom-type>Ar</atom-type><lattice-parameter>8.0</lattice-parameter>
      <properties><atomic-energy target="-0.05"/></properties>
    </diamond-lattice>
    <group id="g" relative-weight="1">
      <hcp-lattice id="h" relative-weight="1">
        <atom-type>Ar</atom-type><lattice-parameter>3.75</lattice-parameter><ca-ratio>1.6</ca-ratio>
        <properties>
          <atomic-energy fit="true" target="-0.07" relative-weight="3" residual-style="squared-relative"/>
          <total-energy fit="true" target="-0.15" relative-weight="1" residual-style="absolute-diff"/>
        </properties>
      </hcp-lattice>
      <user-structure id="pair" relative-weight="3">
        <poscar-file>POSCAR</poscar-file>
        <properties><atomic-forces fit="true"/></properties>
      </user-structure>
    </group>
    <hcp-lattice id="val" fit="false">
      <atom-type>Ar</atom-type><lattice-parameter>3.8</lattice-parameter><ca-ratio>1.633</ca-ratio>
      <properties>
        <atomic-energy fit="true" target="-0.075" tolerance="0.02"/>
        <total-volume fit="true" target="45" relative-weight="3"/>
      </properties>
    </hcp-lattice>
  </structures>
</job>
"""

# Hand-worked absolute weights. Top level: fcc (2) and group g (1); 'unfitted' has no fitted
# property and takes no part. Group g: h (1, two atoms) and pair (3).
WEIGHTS = {
    ("fcc", "atomic-energy"): 2 / 3 * 1 / 2,
    ("fcc", "pressure"): 2 / 3 * 1 / 2,
    ("h", "atomic-energy"): 1 / 3 * 1 / 4 * 3 / 4,
    ("h", "total-energy"): 1 / 3 * 1 / 4 * 1 / 4,
    ("pair", "atomic-forces"): 1 / 3 * 3 / 4,
    # validation set, normalised on its own: one structure, weights 1 and 3
    ("val", "atomic-energy"): 1 / 4,
    ("val", "total-volume"): 3 / 4,
}

# tolerance per (structure, property) without preset, and with each preset
TOLERANCES = {
    None: {("fcc", "atomic-energy"): 0.01, ("fcc", "pressure"): 2.0,
           ("h", "atomic-energy"): 0.01, ("h", "total-energy"): 0.01 * 2,
           ("pair", "atomic-forces"): 0.01, ("val", "atomic-energy"): 0.02,
           ("val", "total-volume"): 1.0},
    "balanced": {("fcc", "atomic-energy"): 0.01, ("fcc", "pressure"): 2.0,
                 ("h", "atomic-energy"): 0.01, ("h", "total-energy"): 0.2,
                 ("pair", "atomic-forces"): 0.01, ("val", "atomic-energy"): 0.02,
                 ("val", "total-volume"): 1.0},
    "accurate-energies": {("fcc", "atomic-energy"): 0.005, ("fcc", "pressure"): 2.0,
                          ("h", "atomic-energy"): 0.005, ("h", "total-energy"): 0.1,
                          ("pair", "atomic-forces"): 0.01, ("val", "atomic-energy"): 0.02,
                          ("val", "total-volume"): 1.0},
    "uniform": {("fcc", "atomic-energy"): 1.0, ("fcc", "pressure"): 1.0,
                ("h", "atomic-energy"): 1.0, ("h", "total-energy"): 1.0,
                ("pair", "atomic-forces"): 1.0, ("val", "atomic-energy"): 0.02,
                ("val", "total-volume"): 1.0},
}

STYLE = {("fcc", "pressure"): "abs", ("h", "atomic-energy"): "rel", ("h", "total-energy"): "abs"}


def hand_residual(style, value, target, tol):
    a, t = np.asarray(value, float), np.asarray(target, float)
    if style == "abs":
        r = np.abs(a - t) / tol
    elif style == "rel":
        r = ((a - t) / t) ** 2
    else:
        r = ((a - t) / tol) ** 2
    return float(r.mean())


@pytest.mark.parametrize("preset", [None, "balanced", "accurate-energies", "uniform"])
def test_weighted_residuals_by_hand(tmp_path, preset):
    (tmp_path / "POSCAR").write_text(POSCAR)
    text = JOB.format(preset="" if preset is None else
                      f"<tolerance-preset>{preset}</tolerance-preset>")
    (tmp_path / "job.xml").write_text(text)
    job, _ = load_job(str(tmp_path / "job.xml"))
    r = run_job(job, output_dir=str(tmp_path / "out"), quiet=True)
    st = r["structures"]
    totals = {"training": 0.0, "validation": 0.0}
    for (sid, prop), w in WEIGHTS.items():
        p = st[sid]["properties"][prop]
        tol = TOLERANCES[preset][(sid, prop)]
        assert p["abs_weight"] == pytest.approx(w, rel=1e-14), (sid, prop)
        assert p["tolerance"] == pytest.approx(tol, rel=1e-14), (sid, prop)
        expected = w * hand_residual(STYLE.get((sid, prop), "sq"), p["value"], p["target"], tol)
        assert p["weighted_residual"] == pytest.approx(expected, rel=1e-12), (sid, prop)
        totals[st[sid]["set"]] += expected
    assert "abs_weight" not in st["unfitted"]["properties"]["atomic-energy"]
    assert r["objective"]["training"] == pytest.approx(totals["training"], rel=1e-12)
    assert r["objective"]["validation"] == pytest.approx(totals["validation"], rel=1e-12)
    # the POSCAR force columns are the target of the vector property (6 components averaged)
    assert st["pair"]["properties"]["atomic-forces"]["target"] == [[0.01, -0.02, 0.0],
                                                                    [-0.01, 0.02, 0.0]]
    assert st["val"]["set"] == "validation" and st["h"]["group"] == "g"
