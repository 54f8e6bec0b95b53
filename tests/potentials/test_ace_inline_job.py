"""ACE with its basis described in the job: ``<basis>`` (pacemaker's keys as XML) and
``<basis-file>`` (pacemaker's input YAML).  A small job fits, parameters.xml names the fitted
B-basis file in place of the ``<basis>``, that file holds the generated functions with the
fitted coefficients, and the job restarted from parameters.xml gives the same results; the
YAML form and the XML form describe the same basis; bad descriptions are located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rexfit
from rexfit.errors import InputErrors
from rexfit.job import load_job
from rexfit.potentials.ace.basis import generate_basis
from rexfit.potentials.ace.files import read_bbasis
from rexfit.potentials.ace_family import _basis

BASIS = """<basis delta-spline-bins="0.001">
        <elements>Cu Al</elements>
        <embedding npot="FinnisSinclairShiftedScaled" fs-parameters="1 1" ndensity="1"/>
        <bond elements="ALL" radbase="SBessel" radparameters="5.25" rcut="4.5" dcut="0.01"/>
        <bond elements="Al Cu" rcut="4.2" r-in="1.2" delta-in="0.4"/>
        <functions elements="UNARY" nradmax-by-orders="3 2 1" lmax-by-orders="0 1 1"/>
        <functions elements="BINARY" nradmax-by-orders="2 1" lmax-by-orders="0 1"/>
        <functions number-of-functions-per-element="7"/>
      </basis>"""

#: the same description as pacemaker's input.yaml writes it
PACEMAKER_INPUT = """cutoff: 4.5
seed: 42
potential:
  deltaSplineBins: 0.001
  elements: [Cu, Al]
  embeddings:
    ALL: {npot: FinnisSinclairShiftedScaled, fs_parameters: [1, 1], ndensity: 1}
  bonds:
    ALL: {radbase: SBessel, radparameters: [5.25], rcut: 4.5, dcut: 0.01}
    AlCu: {rcut: 4.2, r_in: 1.2, delta_in: 0.4}
  functions:
    number_of_functions_per_element: 7
    UNARY: {nradmax_by_orders: [3, 2, 1], lmax_by_orders: [0, 1, 1]}
    BINARY: {nradmax_by_orders: [2, 1], lmax_by_orders: [0, 1]}
fit:
  loss: {kappa: 0.3}
"""

STRUCTURES = """<structures>
    <fcc-lattice id="fcc">
      <atom-type>Cu</atom-type>
      <lattice-parameter>3.6</lattice-parameter>
      <properties><atomic-energy fit="true" target="-3.5"/></properties>
    </fcc-lattice>
    <L12-lattice id="l12">
      <atom-type-A>Al</atom-type-A><atom-type-B>Cu</atom-type-B>
      <lattice-parameter>3.8</lattice-parameter>
      <properties><atomic-energy fit="true" target="-3.7"/></properties>
    </L12-lattice>
  </structures>"""


def job_text(source: str, potentials: str | None = None, fitting: bool = True) -> str:
    potentials = potentials or f"""<potentials>
    <ace id="ace">
      {source}
      <fit-dof><coefficients/></fit-dof>
    </ace>
  </potentials>"""
    fit = '<fitting><BFGS max-iter="3"/></fitting>' if fitting else ""
    return f"""<job xmlns:xi="http://www.w3.org/2001/XInclude">
  <name>CuAl inline ACE</name>
  <atom-types><species>Cu</species><species>Al</species></atom-types>
  {potentials}
  {STRUCTURES}
  {fit}
</job>
"""


def test_inline_basis_fits_and_parameters_xml_reads_back(tmp_path):
    job = tmp_path / "job.xml"
    job.write_text(job_text(BASIS))
    res = rexfit.run(job, tmp_path / "out")
    assert res.results["objective"]["training"] < 1e-3 * res.results["objective"]["initial"]
    out = tmp_path / "out"
    xml = (out / "parameters.xml").read_text()
    assert re.search(r"<param-file>ace\.fitted\.yaml</param-file>", xml)
    assert "<basis" not in xml and "<fit-dof><coefficients/></fit-dof>" in xml
    fitted = read_bbasis(out / "ace.fitted.yaml")
    generated = _basis(load_job(str(job))[0].potentials[0].family_spec)
    assert [(b.name, [(f.elements, f.ns, f.ls, f.LS) for f in b.functions])
            for b in fitted.blocks] == \
        [(b.name, [(f.elements, f.ns, f.ls, f.LS) for f in b.functions])
         for b in generated.blocks]
    assert [len(b.functions) for b in generated.blocks] == [3, 3, 3, 3]  # 7·2 // 4
    for block in fitted.blocks:  # the fitted coefficients, by their DOF names
        tag = block.name.replace(" ", "")
        for k, f in enumerate(block.functions, start=1):
            assert f.c[0] == res.parameters[f"ace[ACE].c{k}[{tag}]"]
    # restarted from parameters.xml: the fitted file, the same energies
    again = tmp_path / "again.xml"
    again.write_text(job_text("", potentials='<xi:include href="out/parameters.xml"/>',
                              fitting=False))
    res2 = rexfit.run(again, tmp_path / "out2")
    for sid in ("fcc", "l12"):
        e1 = res.results["structures"][sid]["properties"]["atomic-energy"]["value"]
        e2 = res2.results["structures"][sid]["properties"]["atomic-energy"]["value"]
        assert abs(e1 - e2) < 1e-12, (sid, e1, e2)


def test_basis_file_describes_the_same_basis(tmp_path):
    """pacemaker's input.yaml (its potential: section; the rest is not read) and the XML
    <basis> generate the same basis; pyace is not needed."""
    (tmp_path / "input.yaml").write_text(PACEMAKER_INPUT)
    inline, from_file = tmp_path / "inline.xml", tmp_path / "file.xml"
    inline.write_text(job_text(BASIS))
    from_file.write_text(job_text("<basis-file>input.yaml</basis-file>"))
    a = _basis(load_job(str(inline))[0].potentials[0].family_spec)
    b = _basis(load_job(str(from_file))[0].potentials[0].family_spec)
    assert a == b
    bond = a.block("Al", "Cu")
    assert (bond.rcut, bond.r_in, bond.delta_in) == (4.2, 1.2, 0.4)
    assert a.block("Cu").rcut == 4.5
    config = {"elements": ["Al", "Cu"],
              "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                                     "fs_parameters": [1, 1], "ndensity": 1}},
              "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.5,
                                "dcut": 0.01}, "Al Cu": {"rcut": 4.2, "r_in": 1.2,
                                                         "delta_in": 0.4}},
              "functions": {"UNARY": {"nradmax_by_orders": [3, 2, 1],
                                      "lmax_by_orders": [0, 1, 1]},
                            "BINARY": {"nradmax_by_orders": [2, 1], "lmax_by_orders": [0, 1]},
                            "number_of_functions_per_element": 7}}
    assert generate_basis(config) == a


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


BAD = [
    # (replace in BASIS, by, message, line of)
    ('<bond elements="Al Cu"', '<bond elements="Al Zr"', "Zr is neither a keyword",
     'elements="Al Zr"'),
    (' rcut="4.5" dcut', ' dcut', "has no rcut", '<bond elements="ALL"'),
    ('nradmax-by-orders="2 1" lmax', 'lmax', "needs nradmax-by-orders and lmax-by-orders",
     '<functions elements="BINARY"'),
    ('<functions elements="BINARY"', '<functions elements="UNARY"', "given twice",
     'lmax-by-orders="0 1"/>'),
    ('<functions number-of-functions-per-element="7"/>',
     '<functions number-of-functions-per-element="1"/>', "leaves no function",
     "number-of-functions-per-element"),
    ('lmax-by-orders="0 1 1"', 'lmax-by-orders="0 1 1 0 0 0"', "nradmax-by-orders and "
     "lmax-by-orders need one entry per rank", '<functions elements="UNARY"'),
    ('npot="FinnisSinclairShiftedScaled"', 'npot="Linear"', "npot", "<embedding"),
    ('<bond elements="Al Cu" rcut="4.2"', '<bond elements="Al Cu" rcut="4.2" '
     'inner-cutoff-type="density"', "inner-cutoff-type must be the same", "<bond "),
]


@pytest.mark.parametrize("old,new,message,where", BAD)
def test_bad_inline_basis_is_a_located_error(tmp_path, old, new, message, where):
    assert old in BASIS
    text = job_text(BASIS.replace(old, new))
    job = tmp_path / "job.xml"
    job.write_text(text)
    with pytest.raises(InputErrors) as info:
        load_job(str(job))
    errors = [e for e in info.value.errors if message in e.message]
    assert errors, [e.format() for e in info.value.errors]
    assert errors[0].origin.path == str(job)
    assert errors[0].origin.line == _line_of(text, where), errors[0].format()


def test_basis_sources_are_exclusive_and_files_checked(tmp_path):
    (tmp_path / "Cu.yaml").write_text("species: []\n")
    (tmp_path / "bad.yaml").write_text("potential:\n  elements: [Cu]\n  initial_potential: "
                                       "x.yaml\n")
    (tmp_path / "other.yaml").write_text("fit: {}\n")
    cases = [(f"<param-file>Cu.yaml</param-file>{BASIS}", "needs one of <param-file>"),
             ("<basis-file>bad.yaml</basis-file>", "initial_potential is not read here"),
             ("<basis-file>other.yaml</basis-file>", "no basis description"),
             ("<basis-file>missing.yaml</basis-file>", "file not found")]
    for source, message in cases:
        text = job_text(source)
        job = tmp_path / "job.xml"
        job.write_text(text)
        with pytest.raises(InputErrors) as info:
            load_job(str(job))
        errors = [e for e in info.value.errors if message in e.message]
        assert errors and errors[0].origin.line > 1, (message, info.value)


def test_basis_file_fit_exports_and_parameters_xml_names_the_export(tmp_path):
    """With <export-potential>, parameters.xml names the exported B-basis file in place of
    the <basis-file>, and a job including that parameters.xml reads it."""
    (tmp_path / "input.yaml").write_text(PACEMAKER_INPUT)
    job = tmp_path / "job.xml"
    job.write_text(job_text("<basis-file>input.yaml</basis-file>\n"
                            "      <export-potential>CuAl.yace</export-potential>"))
    rexfit.run(job, tmp_path / "out", max_iter=2)
    out = tmp_path / "out"
    xml = (out / "parameters.xml").read_text()
    assert "<param-file>CuAl.yaml</param-file>" in xml and "basis-file" not in xml
    assert (out / "CuAl.yace").is_file() and (out / "CuAl.pace").is_file()
    again = tmp_path / "again.xml"
    again.write_text(job_text("", potentials='<xi:include href="out/parameters.xml"/>',
                              fitting=False))
    spec = load_job(str(again))[0].potentials[0].family_spec
    assert spec.basis is None and spec.param_file == str(out / "CuAl.yaml")
    assert _basis(spec) == read_bbasis(out / "CuAl.yaml")
