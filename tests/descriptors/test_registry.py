"""The descriptor registry: every record is in the XSD (inside <neural-network> and <pinn>; the
linear-model ones inside <linear-model>), reading a job builds its typed settings spec without
JAX, the model builds the descriptor object from it, and a model file stores and rebuilds it
exactly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rexfit.descriptors import registry
from rexfit.job import load_job
from rexfit.job.schema import describe

#: One small setting of each descriptor element (its XML inside a network).
SETTINGS = {
    "acsf": '<acsf rcut="4.0"><g2 eta="0.1 1" rs="0"/><g5 eta="0.1" zeta="1 2" '
            'lambda="1 -1"/></acsf>',
    "wacsf": '<wacsf rcut="4.0"><g2 eta="0.1" rs="0 2"/><g4 eta="0.1" zeta="1" lambda="1"/>'
             '</wacsf>',
    "lsp": '<lsp rn="1.5 2.5" sigma="0.8" rcut="4.2" d="1.5" ls="0 1 2"/>',
    "power-spectrum": '<power-spectrum nmax="2" lmax="2" rcut="4.2"/>',
    "ead": '<ead lmax="1" eta="0.4 1.1" rs="0 1.5" rcut="4.2"/>',
    "bispectrum": '<bispectrum twojmax="2" rcutfac="4.2"/>',
}


def test_every_descriptor_has_a_setting_here():
    assert set(SETTINGS) == set(registry.BY_ELEMENT)


@pytest.mark.parametrize("record", registry.DESCRIPTORS, ids=lambda d: d.element)
def test_descriptor_is_in_the_schema(record):
    info = describe()
    for model in ("neural-network", "pinn"):
        assert record.element in info.children_of(model)
    assert (record.element in info.children_of("linear-model")) == record.linear_model


def _job(tmp_path, element):
    radius = ' radius="0.5"' if registry.BY_ELEMENT[element].needs_radius else ""
    text = (f'<job><name>d</name><atom-types><species>Si</species></atom-types><potentials>'
            f'<neural-network id="nn" hidden="3">{SETTINGS[element]}'
            f'<element species="Si"{radius}/><fit-dof><weights/></fit-dof></neural-network>'
            '</potentials><structures><diamond-lattice id="d"><atom-type>Si</atom-type>'
            '<lattice-parameter>5.43</lattice-parameter><properties>'
            '<atomic-energy fit="true" target="-4.3"/></properties></diamond-lattice>'
            '</structures></job>')
    path = tmp_path / "job.xml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("element", sorted(SETTINGS))
def test_spec_descriptor_and_model_file_round_trip(tmp_path, element):
    from rexfit.model.potentials import build_potentials
    from rexfit.potentials.nn_files import descriptor_from_dict, descriptor_to_dict

    job, errors = load_job(str(_job(tmp_path, element)))
    assert not [e for e in errors if not getattr(e, "warning", False)], errors
    spec = job.potentials[0].family_spec
    assert spec.descriptor == element
    hash(spec.descriptor_spec)  # typed and frozen
    model = dict(build_potentials(job).potential.terms)["nn"]
    record = registry.BY_ELEMENT[element]
    assert type(model.descriptor) is record.load_class()
    assert descriptor_from_dict(descriptor_to_dict(model.descriptor)) == model.descriptor


def test_only_the_records_name_a_descriptor_element():
    """Nothing switches on a descriptor's element: its string appears in records.py only."""
    package = Path(__file__).resolve().parents[2] / "rexfit"
    for record in registry.DESCRIPTORS:
        pattern = re.compile(rf"""["']{re.escape(record.element)}["']""")
        users = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
                 if pattern.search(p.read_text(encoding="utf-8"))]
        assert users == ["descriptors/records.py"], (record.element, users)


def test_reading_the_registry_imports_no_jax():
    code = ("import sys, rexfit.descriptors.registry; print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
