"""The potential family registry: every family on it is in the XSD with its parameters, is
built by the one family builder, has a unique type name, is named as a string only in its own
module, and reading a job imports no JAX."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rexfit.job import build, language
from rexfit.job.schema import describe
from rexfit.potentials import registry

PACKAGE = Path(__file__).resolve().parents[2] / "rexfit"


def below(tag: str, depth: int = 2) -> set[str]:
    """Elements up to ``depth`` levels below ``tag`` in the XSD."""
    out, level = set(), {tag}
    for _ in range(depth):
        level = {c for t in level for c in describe().children_of(t)}
        out |= level
    return out


@pytest.mark.parametrize("family", registry.FAMILIES, ids=lambda f: f.element)
def test_family_is_in_the_schema_and_built_by_the_family_builder(family):
    assert family.element in describe().children_of("potentials")
    assert build.POTENTIALS[family.element] is build._family_potential
    children = describe().children_of(family.element)
    if family.dof_groups:  # <fit-dof> names groups of coefficients, documented in the XSD
        doc = describe().elements[(family.element, "fit-dof")].doc
        assert all(f"<{group}/>" in doc for group in family.parameters), (family.element, doc)
        assert family.build_model is not None and family.coefficient_file
    elif family.parameter_file is not None:
        # the values are in a LAMMPS file the job names; <fit-dof> selects them by name
        assert {"param-file", "fit-dof"} <= children
        assert family.build_model is not None and family.pair_style
        assert family.parameter_text is not None  # the export layer writes the fitted file
    elif family.build_model is not None and "fit-dof" in children:
        # tables read from a LAMMPS file (<tabulated-eam>): <fit-dof> names them
        assert "param-file" in children
    else:
        assert set(family.parameters) <= below(family.element)
    if family.mapping_roles:  # built from the job's <functions> by its <mapping>
        assert {"functions", "mapping"} <= children
        assert set(family.mapping_roles) <= describe().children_of("mapping")
        assert family.build_mapped is not None
    assert set(family.exports) <= children
    assert {element for element, _ in family.sampled_exports} <= set(family.exports)
    assert family.neighbours in ("pairs", "full", "triplets")
    assert language.POTENTIAL_TYPE[family.element] == family.type_name


def test_type_names_are_unique():
    names = list(language.POTENTIAL_TYPE.values())
    assert len(names) == len(set(names))


def test_only_the_family_module_names_its_element():
    """No module switches on a registered family's element: its string appears only in the
    family's own module."""
    # the same word as a value of another file format (ACE's inner_cutoff_type: zbl), spelled
    # once in the module that reads that format
    other_formats = {"zbl": {"potentials/ace/radial.py"}}
    for family in registry.FAMILIES:
        pattern = re.compile(rf"""["']{re.escape(family.element)}["']""")
        users = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
                 if pattern.search(p.read_text(encoding="utf-8"))]
        users = [u for u in users if u not in other_formats.get(family.element, ())]
        assert len(users) == 1 and users[0].startswith("potentials/"), (family.element, users)


def test_reading_a_job_imports_no_jax():
    code = ("import sys, rexfit.job.build, rexfit.potentials.registry; "
            "print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
