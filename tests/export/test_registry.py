"""The export registry names only potential kinds and export elements the job language has,
and every potential whose fitted values live in a file of its own has a writer for it."""

from __future__ import annotations

from pathlib import Path

from rexfit.export.registry import (
    FITTED_FILES,
    SAMPLED_WRITERS,
    WITH_PARAMETERS,
    after_output,
)
from rexfit.job.language import POTENTIAL_TYPE
from rexfit.potentials import registry

SCHEMA = (Path(__file__).resolve().parents[2] / "schemas" / "job.xsd").read_text()


def test_kinds_and_elements_are_the_job_languages():
    assert set(FITTED_FILES) <= set(POTENTIAL_TYPE)
    for family in registry.FAMILIES:  # exports sampled after the output phase
        for element, file_kind in family.sampled_exports:
            assert element in family.exports and f'name="{element}"' in SCHEMA
            assert after_output(element, family.element) is SAMPLED_WRITERS[file_kind]


def test_each_fitted_file_is_also_its_export():
    # an <export-potential> of these is written with parameters.xml, which then names it;
    # the other exports written with it are those of registered families (LAMMPS commands)
    assert set(FITTED_FILES) <= set(WITH_PARAMETERS)
    assert set(WITH_PARAMETERS) - set(FITTED_FILES) == {
        f.element for f in registry.FAMILIES if f.write_lammps is not None}
    assert all(after_output("export-potential", kind) is None for kind in FITTED_FILES)
    assert after_output("export-adp-file", "adp") is not None
    assert after_output("export-potential", "eam") is None  # not written: a clear error


def test_registered_parameter_file_families_write_their_file():
    # a family whose values live in a LAMMPS parameter file (Stillinger–Weber) writes its
    # fitted values to a file of that extension, named by parameters.xml's <param-file>
    families = [f for f in registry.FAMILIES if f.parameter_file is not None]
    assert families
    for f in families:
        ext, element, _ = FITTED_FILES[f.element]
        assert (ext, element) == (f.parameter_file, "param-file")
