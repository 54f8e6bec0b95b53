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


def test_file_model_and_network_names():
    tersoff = s.PotentialSpec(kind="tersoff", id="Si", species_a="*", species_b="*", origin=None)
    snap = s.PotentialSpec(kind="snap", id="Ta", species_a="*", species_b="*", origin=None)
    nn = s.PotentialSpec(kind="neural-network", id="net", species_a="*", species_b="*",
                         origin=None)
    assert names.file_param_name(tersoff, "A", "SiSiSi") == "Si[Tersoff].A[SiSiSi]"
    assert names.file_param_name(tersoff, "A", None) == "Si[Tersoff].A"
    assert names.model_coefficient_name(snap, "beta0", "Ta") == "Ta[SNAP].beta0[Ta]"
    assert names.model_coefficient_name(snap, "beta", "Ta", 2) == "Ta[SNAP].beta3[Ta]"
    assert names.network_param_name(nn, "out_b", "Si") == "net[NN].out_b[Si]"
    assert names.network_param_name(nn, "w0", "Si", 17) == "net[NN].w0.17[Si]"
