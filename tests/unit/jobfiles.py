"""Small job files for tests, written into a temporary directory."""

from __future__ import annotations

from pathlib import Path

EAM_POTENTIAL = """\
<eam id="Al" species-a="*" species-b="*">
  <mapping>
    <pair-interaction species-a="*" species-b="*" function="V"/>
    <electron-density species-a="*" species-b="*" function="rho"/>
    <embedding-energy species="*" function="F"/>
  </mapping>
  <functions>
    <user-function id="V">
      <input-var>r</input-var>
      <expression>A * exp(-lambda * r)</expression>
      <param name="A">500</param>
      <param name="lambda">2.73</param>
      <cutoff>6.5</cutoff>
      <fit-dof><A/><lambda/></fit-dof>
    </user-function>
    <user-function id="rho">
      <input-var>r</input-var>
      <expression>exp(-twomu * r)</expression>
      <param name="twomu">1.14</param>
      <cutoff>6.5</cutoff>
      <fit-dof><twomu/></fit-dof>
    </user-function>
    <user-function id="F">
      <input-var>rho</input-var>
      <expression>-D * sqrt(rho)</expression>
      <param name="D">8</param>
      <fit-dof><D/></fit-dof>
    </user-function>
  </functions>
</eam>
"""

STRUCTURES = """\
<group>
  <fcc-lattice id="fcc" relative-weight="5">
    <atom-type>Al</atom-type>
    <lattice-parameter>4.05</lattice-parameter>
    <properties>
      <lattice-parameter fit="true" target="4.05" min="3" max="5"/>
      <atomic-energy fit="true" target="-3.36"/>
    </properties>
  </fcc-lattice>
</group>
"""


def job_text(potentials: str = EAM_POTENTIAL, structures: str = STRUCTURES,
             extra: str = "") -> str:
    return f"""\
<?xml version="1.0"?>
<job>
  <name>test</name>
  <atom-types><species>Al</species></atom-types>
  <fitting><BFGS max-iter="5"/></fitting>
  <potentials>
{potentials}
  </potentials>
  <structures>
{structures}
  </structures>
{extra}
</job>
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, marker: str, nth: int = 0) -> int:
    """1-based line of the nth occurrence of ``marker`` in ``text``."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(marker, pos + 1)
    return text.count("\n", 0, pos) + 1
