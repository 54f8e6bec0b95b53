"""rexfit.job.names spells parameter paths the way atomicrex does."""

from __future__ import annotations

from rexfit.job import names
from rexfit.job import spec as s


def _param(name: str) -> s.ParamSpec:
    return s.ParamSpec(name=name, value=1.0, origin=None)


def _user(fid: str | None, params=(), screening=None) -> s.UserFunctionSpec:
    return s.UserFunctionSpec(id=fid, input_var="r", expression=None, expression_text="1",
                              derivative=None, derivative_text=None,
                              params=tuple(_param(p) for p in params), cutoff=None,
                              screening=screening, origin=None)


def _eam() -> s.PotentialSpec:
    spline = s.SplineSpec(id="rho", cutoff=5.0, derivative_left=_param("derivative-left"),
                          derivative_right=_param("derivative-right"),
                          nodes=(s.SplineNodeSpec(2.5, _param("node[2.5].y")),),
                          screening=None, origin=None)
    total = s.CompositeFunctionSpec(kind="sum", id="V",
                                    functions=(_user("Vrep", ["A"]), _user("cut")),
                                    cutoff=None, screening=_user(None, ["h"]), origin=None)
    return s.PotentialSpec(kind="eam", id="Al", species_a="*", species_b="*", origin=None,
                           functions=(total, spline, _user("F", ["D"])))


def test_parts():
    pot = _eam()
    assert names.potential_head(pot) == "Al[EAM]"
    assert names.type_head("Si", "stillinger-weber") == "Si[SW]"
    assert names.type_head("x", "new-kind") == "x[new-kind]"  # unknown kinds keep their tag
    assert names.function_label(pot.functions[0]) == "V[functionSum]"
    assert names.function_type_label(None, "user-function") == "screening[user-function]"
    assert names.tagged("A", "SiSiSi") == "A[SiSiSi]"
    assert names.tagged("A", None) == "A"
    assert names.spline_node(2.50) == "node[2.5].y"
    assert names.poly_coefficient(3) == "coeff[3]"


def test_paths_of_a_function_potential():
    assert [n for n, _ in names.potential_params(_eam())] == [
        "Al[EAM].V[functionSum].Vrep[user-function].A",
        "Al[EAM].V[functionSum].screening[user-function].h",
        "Al[EAM].rho[spline].node[2.5].y",
        "Al[EAM].rho[spline].derivative-left",
        "Al[EAM].rho[spline].derivative-right",
        "Al[EAM].F[user-function].D",
    ]


def test_labelled_user_functions_depth_first():
    job = s.JobSpec(path="job.xml", name="t", species=(), potentials=(_eam(),),
                    structures=None, fitting=None)
    labels = [label for label, _ in job.user_functions()]
    assert labels == ["Al[EAM].V[functionSum].Vrep[user-function]",
                      "Al[EAM].V[functionSum].cut[user-function]",
                      "Al[EAM].V[functionSum].screening[user-function]",
                      "Al[EAM].F[user-function]"]


def test_file_model_and_network_names(tmp_path):
    """Parameter-file DOFs are id[Type].name[tag]; the coefficient groups of a SNAP and a
    network name each value name[element] (SNAP coefficients numbered from 1 as in a
    .snapcoeff file, network arrays .k from 0)."""
    from rexfit.job import load_job
    from rexfit.model.potentials import build_potentials

    tersoff = s.PotentialSpec(kind="tersoff", id="Si", species_a="*", species_b="*", origin=None)
    assert names.file_param_name(tersoff, "A", "SiSiSi") == "Si[Tersoff].A[SiSiSi]"
    assert names.file_param_name(tersoff, "A", None) == "Si[Tersoff].A"
    (tmp_path / "job.xml").write_text(
        '<job><name>n</name><atom-types><species>Ta</species></atom-types><potentials>'
        '<snap id="Ta"><descriptor twojmax="2" rcutfac="4.0"/><element species="Ta" '
        'radius="0.5"/><fit-dof><beta0/><beta/></fit-dof></snap>'
        '<neural-network id="net" hidden="3"><lsp rn="1.5 2.5" sigma="0.8" rcut="4.0" d="1"/>'
        '<element species="Ta"/><fit-dof><weights/><bias/></fit-dof></neural-network>'
        '</potentials><structures><bcc-lattice id="b"><atom-type>Ta</atom-type>'
        '<lattice-parameter>3.3</lattice-parameter><properties><atomic-energy fit="true" '
        'target="-8"/></properties></bcc-lattice></structures></job>')
    job, _ = load_job(str(tmp_path / "job.xml"))
    entries = {e.name: e.path for e in build_potentials(job).entries}
    assert entries["Ta[SNAP].beta0[Ta]"] == ("Ta", "Ta", "beta0")
    assert entries["Ta[SNAP].beta3[Ta]"] == ("Ta", "Ta", "beta", 2)
    assert entries["net[NN].bias[Ta]"] == ("net", "Ta", "bias")
    assert entries["net[NN].w1.17[Ta]"] == ("net", "Ta", "w1", 17)
