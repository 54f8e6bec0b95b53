"""Issue 17, "Also": results.json says what was relaxed.  ``relaxed`` is true on every
property computed at a relaxed structure; ``relaxation`` names the relaxed DOFs;
``relaxation_status``/``relaxation_converged`` are null when nothing was relaxed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rexfit.cli import main

ROOT = Path(__file__).resolve().parents[2]

EXTRA = """
    <sc-lattice id="sc" fit="false">
      <atom-type>Ar</atom-type>
      <lattice-parameter>3.6</lattice-parameter>
      <properties><atomic-energy/><lattice-parameter/></properties>
    </sc-lattice>
    <hcp-lattice id="hcp-ca" fit="false">
      <atom-type>Ar</atom-type>
      <lattice-parameter>3.75</lattice-parameter>
      <relax><ca-ratio/></relax>
      <properties><atomic-energy/><lattice-parameter/><ca-ratio min="1.4" max="1.8"/></properties>
    </hcp-lattice>
  </structures>"""


def test_relaxation_fields(tmp_path, capsys):
    shutil.copytree(ROOT / "jobs/ar-lj", tmp_path / "ar-lj")
    path = tmp_path / "ar-lj/job.xml"
    path.write_text(path.read_text().replace("</structures>", EXTRA, 1))
    out = tmp_path / "out"
    assert main([str(path), "--no-fit", "-q", "--output-dir", str(out)]) == 0
    st = json.loads((out / "results.json").read_text())["structures"]

    fcc = st["fcc"]  # its lattice parameter is fitted, so it relaxes
    assert (fcc["relaxation"], fcc["relaxation_status"], fcc["relaxation_converged"]) == \
        ("lattice-parameter", "converged", True)
    assert all(p["relaxed"] for p in fcc["properties"].values())
    assert fcc["properties"]["lattice-parameter"]["value"] != 5.26  # really relaxed

    dimer = st["dimer"]
    assert dimer["relaxation"] == "atom-distance" and dimer["relaxation_converged"] is True

    sc = st["sc"]  # nothing relaxed: nothing to converge
    assert (sc["relaxation"], sc["relaxation_status"], sc["relaxation_converged"]) == \
        ("none", None, None)
    assert not any(p["relaxed"] for p in sc["properties"].values())

    hcp = st["hcp-ca"]  # c/a relaxed, the lattice parameter kept
    assert hcp["relaxation"] == "ca-ratio" and hcp["relaxation_converged"] is True
    props = hcp["properties"]
    assert props["ca-ratio"]["relaxed"] and props["atomic-energy"]["relaxed"]
    assert props["lattice-parameter"]["relaxed"] is False
    assert props["lattice-parameter"]["value"] == 3.75

    log = (out / "log.txt").read_text()
    # the atomicrex "(relaxed)" mark stays on the relaxed DOFs only
    fcc_block = log[log.index("Structure 'fcc':"):log.index("Structure 'dimer':")]
    assert "(relaxed)" in next(l for l in fcc_block.splitlines() if "lattice-parameter:" in l)
    assert "(relaxed)" not in next(l for l in fcc_block.splitlines() if "atomic-energy:" in l)
