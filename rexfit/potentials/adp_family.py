"""The angular-dependent potential family (``<adp>``, as LAMMPS ``pair_style adp``), declared in
:data:`FAMILY`: its typed spec, the potential built from the job's functions (EAM roles plus the
dipole u and quadrupole w functions per species pair) or from a LAMMPS adp file (fixed), and the
file it exports (``<export-adp-file>``).  The potential is :class:`rexfit.potentials.adp.ADP`.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials.eam_family import (
    file_or_functions,
    no_parameters,
    no_xml_parameters,
    table_species,
)
from rexfit.potentials.family import Family

#: The roles of an ``<adp>`` ``<mapping>``.
ROLES = ("pair-interaction", "electron-density", "embedding-energy", "u-function",
         "w-function")


@dataclass(frozen=True)
class ADPSpec:
    """``<adp>``: the LAMMPS adp file read (resolved path) or None (then its functions and
    mapping, on the potential's spec, define it), its id, species attributes and origin."""

    param_file: str | None
    ident: str
    species_a: str
    species_b: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str) -> ADPSpec:
    """The spec of an ``<adp>`` node (errors recorded by ``reader``)."""
    return ADPSpec(file_or_functions(reader, node, ident, "adp"), ident, species_a, species_b,
                   node.origin)


def build_mapped(spec: ADPSpec, species: tuple[str, ...], roles: dict, cutoff: float):
    """The :class:`~rexfit.potentials.adp.ADP` of the mapped functions."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.adp import ADP

    try:
        return ADP.create(len(species), cutoff, roles["pair-interaction"],
                          roles["electron-density"], roles["embedding-energy"],
                          roles["u-function"], roles["w-function"])
    except ValueError as exc:
        raise InputErrors([InputError(f"<adp id='{spec.ident}'>: {exc}", spec.origin)]) \
            from None


def build_model(spec: ADPSpec, species: tuple[str, ...], register):
    """(ADP, params) of the LAMMPS adp file, as a fixed potential."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.adp import read_adp, tabulated_adp
    from rexfit.potentials.tokens import PotentialFileError

    try:
        tables = read_adp(spec.param_file)
    except PotentialFileError:  # already names file:line
        raise
    except ValueError as exc:
        raise InputErrors([InputError(str(exc), spec.origin)]) from None
    return tabulated_adp(tables, table_species("adp", spec, species, tables.elements))


def build_potential(spec: ADPSpec, species: tuple[str, ...]):
    """The potential of the file alone (:func:`build_model`)."""
    return build_model(spec, species, None)[0]


FAMILY = Family(element="adp", type_name="ADP", parameters=(), neighbours="pairs",
                build_spec=build_spec, parameter_specs=no_parameters,
                build_potential=build_potential, xml_parameters=no_xml_parameters,
                exports=("export-adp-file",), build_model=build_model, mapping_roles=ROLES,
                build_mapped=build_mapped, sampled_exports=(("export-adp-file", "adp-table"),))
