"""The spline-MEAM family (``<meam>``, the LAMMPS ``meam/spline`` form), declared in
:data:`FAMILY`: its typed spec, the potential built from the job's functions (pair, density,
f, g and embedding roles) or from a LAMMPS meam/spline file (fixed knot values), and the file
its ``<export-potential>`` writes.  The potential is :class:`rexfit.potentials.meam.MEAM`.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials.eam_family import file_or_functions, no_parameters, no_xml_parameters
from rexfit.potentials.family import Family

#: The roles of a ``<meam>`` ``<mapping>``: pair-interaction (a, b), electron-density (centre
#: a, neighbour b), f-function (centre a, neighbour b), g-function (the two neighbour
#: species), embedding-energy.
ROLES = ("pair-interaction", "electron-density", "f-function", "g-function",
         "embedding-energy")


@dataclass(frozen=True)
class MEAMSpec:
    """``<meam>``: the LAMMPS meam/spline file read (resolved path) or None (then its
    functions and mapping, on the potential's spec, define it), its id and origin."""

    param_file: str | None
    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str) -> MEAMSpec:
    """The spec of a ``<meam>`` node (errors recorded by ``reader``)."""
    return MEAMSpec(file_or_functions(reader, node, ident, "meam"), ident, node.origin)


def build_mapped(spec: MEAMSpec, species: tuple[str, ...], roles: dict, cutoff: float):
    """The :class:`~rexfit.potentials.meam.MEAM` of the mapped functions."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.meam import MEAM

    try:
        return MEAM.create(len(species), cutoff, roles["pair-interaction"],
                           roles["electron-density"], roles["f-function"],
                           roles["g-function"], roles["embedding-energy"])
    except ValueError as exc:
        raise InputErrors([InputError(f"<meam id='{spec.ident}'>: {exc}", spec.origin)]) \
            from None


def build_model(spec: MEAMSpec, species: tuple[str, ...], register):
    """(MEAM, params) of the LAMMPS meam/spline file (its knot values are fixed)."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.meam import MEAM
    from rexfit.potentials.tokens import PotentialFileError

    try:
        return MEAM.from_file(spec.param_file, species)
    except PotentialFileError:  # already names file:line
        raise
    except (ValueError, InputError) as exc:
        raise InputErrors([InputError(f"{spec.param_file}: {getattr(exc, 'message', exc)}",
                                      spec.origin)]) from None


def build_potential(spec: MEAMSpec, species: tuple[str, ...]):
    """The potential of the file alone (:func:`build_model`)."""
    return build_model(spec, species, None)[0]


FAMILY = Family(element="meam", type_name="MEAM", parameters=(), neighbours="triplets",
                build_spec=build_spec, parameter_specs=no_parameters,
                build_potential=build_potential, xml_parameters=no_xml_parameters,
                exports=("export-potential", "export-functions"), build_model=build_model,
                mapping_roles=ROLES, build_mapped=build_mapped,
                sampled_exports=(("export-potential", "meam/spline"),))
