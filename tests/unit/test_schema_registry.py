"""The XSD and the builders' registries describe the same language, and the generated
job-file reference is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from rexfit.job import build, language
from rexfit.job.reference import render
from rexfit.job.schema import describe
from rexfit.potentials import registry

ROOT = Path(__file__).resolve().parents[2]


def children(tag: str) -> set[str]:
    return describe().children_of(tag)


def test_potentials_registry_matches_schema():
    assert set(build.POTENTIALS) == children("potentials")


def test_functions_registry_matches_schema():
    assert set(build.FUNCTIONS) == children("functions")
    for container in ("sum", "product", "screening"):
        assert set(build.FUNCTIONS) <= children(container)


def test_function_elements_table_matches_the_registry():
    assert language.FUNCTION_ELEMENTS == set(build.FUNCTIONS)


@pytest.mark.parametrize("kind", sorted(language.ANALYTIC_FUNCTIONS))
def test_analytic_function_parameters_match_schema(kind):
    declared = children(kind) - {"cutoff", "screening", "fit-dof"}
    assert set(language.ANALYTIC_FUNCTIONS[kind]) == declared


def test_structures_registry_matches_schema():
    assert set(build.STRUCTURES) | {"group", "dataset"} == children("structures")
    assert children("group") == children("structures")


def test_properties_registry_matches_schema():
    assert set(language.PROPERTIES) == children("properties")


def test_relax_dofs_match_schema():
    assert set(language.RELAX_DOFS) == children("relax") == children("relax-dof")


def test_minimizers_match_schema():
    assert set(build.MINIMIZERS) | {"tolerance-preset"} == children("fitting")


def test_mapping_roles_match_schema():
    roles = {r for family in registry.FAMILIES for r in family.mapping_roles}
    assert roles == children("mapping")


def test_lennard_jones_parameters_match_schema():
    assert children("lennard-jones") == {"sigma", "epsilon", "cutoff", "fit-dof"}


def test_every_element_is_documented():
    undocumented = sorted({tag for (_, tag), info in describe().elements.items() if not info.doc})
    assert undocumented == []


def test_reference_doc_is_current():
    on_disk = (ROOT / "docs" / "job-reference.md").read_text(encoding="utf-8")
    assert on_disk == render(), "regenerate: python -m rexfit.job.reference > docs/job-reference.md"
