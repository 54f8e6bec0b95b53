"""Function-built potentials through the whole job → model path, against independent
NumPy/SciPy evaluations: a dimer's energy is V(r) + 2 F(ρ(r)), so every function kind the
builder wires (spline, sum, product, morse, constant, screening) is checked at once; and
superimposed potentials add."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from rexfit.cli import main

JOB = """<?xml version="1.0"?>
<job><atom-types><species>Cu</species></atom-types>
<potentials>
  <eam id="E">
    <mapping>
      <pair-interaction function="V"/>
      <electron-density function="rho"/>
      <embedding-energy function="F"/>
    </mapping>
    <functions>
      <sum id="V">
        <morse-A id="m"><D0>0.4</D0><r0>2.5</r0><alpha>1.4</alpha></morse-A>
        <constant id="c"><const>0.05</const></constant>
        <screening><XpowN-cutoff id="s"><cutoff>5.0</cutoff><h>1.5</h><N>4</N></XpowN-cutoff></screening>
      </sum>
      <spline id="rho">
        <cutoff>5.0</cutoff>
        <derivative-left>-2.0</derivative-left>
        <derivative-right>0</derivative-right>
        <nodes>
          <node x="1.5" y="2.0"/> <node x="2.5" y="0.9"/> <node x="3.5" y="0.35"/>
          <node x="5.0" y="0.0"/>
        </nodes>
      </spline>
      <product id="F">
        <constant id="k"><const>-1.2</const></constant>
        <user-function id="sq"><input-var>rho</input-var><expression>sqrt(rho)</expression></user-function>
      </product>
    </functions>
  </eam>
  {extra}
</potentials>
<structures>
  <dimer-structure id="d"><atom-type>Cu</atom-type><atom-distance>{r}</atom-distance>
    <properties><total-energy/></properties></dimer-structure>
</structures></job>
"""

LJ = ('<lennard-jones id="L"><sigma>2.2</sigma><epsilon>0.1</epsilon><cutoff>6.0</cutoff>'
      '</lennard-jones>')


def reference(r: float, with_lj: bool) -> float:
    x = (r - 5.0) / 1.5
    screen = x**4 / (1 + x**4) if r < 5.0 else 0.0
    v = (0.4 * (np.exp(-2 * 1.4 * (r - 2.5)) - 2 * np.exp(-1.4 * (r - 2.5))) + 0.05) * screen
    rho = CubicSpline([1.5, 2.5, 3.5, 5.0], [2.0, 0.9, 0.35, 0.0], bc_type=((1, -2.0), (1, 0.0)))
    e = v + 2 * (-1.2 * np.sqrt(float(rho(r))))
    if with_lj:
        e += 4 * 0.1 * ((2.2 / r) ** 12 - (2.2 / r) ** 6)
    return e


@pytest.mark.parametrize("r", [2.1, 2.9, 4.2])
@pytest.mark.parametrize("with_lj", [False, True])
def test_dimer_energy(tmp_path, r, with_lj):
    (tmp_path / "job.xml").write_text(JOB.format(r=r, extra=LJ if with_lj else ""))
    assert main([str(tmp_path / "job.xml"), "-q", "--output-dir", str(tmp_path / "out")]) == 0
    res = json.loads((tmp_path / "out/results.json").read_text())
    e = res["structures"]["d"]["properties"]["total-energy"]["value"]
    assert e == pytest.approx(reference(r, with_lj), rel=1e-12)
    names = set(res["parameters"])
    assert "E[EAM].V[functionSum].m[morse-A].D0" in names
    assert "E[EAM].rho[spline].node[2.5].y" in names
    assert "E[EAM].V[functionSum].s[XpowN-cutoff].h" in names
