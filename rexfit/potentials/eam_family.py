"""The embedded-atom families, declared in :data:`FAMILY` (``<eam>``: the job's functions
mapped to pair, density and embedding roles) and :data:`TABULATED` (``<tabulated-eam>``: a
LAMMPS ``eam``, ``eam/alloy`` or ``eam/fs`` table as a fixed potential): their typed specs, how
their potentials are built, their analytic dataset kernel (:mod:`rexfit.potentials.eam_dataset`)
and the table they export (``<export-eam-file>``).  The potential is
:class:`rexfit.potentials.eam.EAM`; the files are read by :mod:`rexfit.potentials.eam_files`.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials.family import Family

#: The roles of an ``<eam>`` ``<mapping>``.
ROLES = ("pair-interaction", "electron-density", "embedding-energy")
#: The tables of a ``<tabulated-eam>`` a ``<fit-dof>`` may name (not fitted yet).
TABLES = ROLES
#: ``<tabulated-eam style>`` of the funcfl format: one file per species.
FUNCFL = "eam"


@dataclass(frozen=True)
class EAMSpec:
    """``<eam>``: its id and origin (its functions and mapping are on the potential's spec)."""

    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str) -> EAMSpec:
    """The spec of an ``<eam>`` node (its ``<functions>`` and ``<mapping>`` are read by the
    job layer, see :class:`~rexfit.potentials.family.Family` ``mapping_roles``)."""
    return EAMSpec(ident, node.origin)


def no_parameters(spec) -> tuple:
    """None inline: the parameters are those of the functions."""
    return ()


def no_xml_parameters(element, children) -> tuple:
    """None outside the functions (which parameters.xml handles for every family)."""
    return ()


def file_or_functions(reader, node, ident: str, what: str) -> str | None:
    """The resolved ``<param-file>`` of a family that takes either a LAMMPS file or functions
    with a mapping (an error if both are given), or None."""
    pf = node.find("param-file")
    if pf is None:
        return None
    if any(fl.children for fl in node.findall("functions")) or node.findall("mapping"):
        reader.error(f"<{what} id='{ident}'>: give either a <param-file> or <functions> with a "
                     "<mapping>, not both", node.origin)
    return reader.file(pf)


def build_mapped(spec: EAMSpec, species: tuple[str, ...], roles: dict, cutoff: float):
    """The :class:`~rexfit.potentials.eam.EAM` of the mapped functions."""
    from rexfit.potentials.eam import EAM

    return EAM.create(len(species), cutoff, roles["pair-interaction"],
                      roles["electron-density"], roles["embedding-energy"])


def needs_mapping(spec, species: tuple[str, ...]):
    """An ``<eam>`` is built from its ``<mapping>`` only (:func:`build_mapped`)."""
    raise ValueError(f"<eam id='{spec.ident}'> is built from its <mapping> (build_mapped)")


def dataset_kernel():
    """(EAM, prepare, terms) of :mod:`rexfit.potentials.eam_dataset`."""
    from rexfit.potentials import eam_dataset
    from rexfit.potentials.eam import EAM

    return EAM, eam_dataset.prepare, eam_dataset.terms


FAMILY = Family(element="eam", type_name="EAM", parameters=(), neighbours="pairs",
                build_spec=build_spec, parameter_specs=no_parameters,
                build_potential=needs_mapping, xml_parameters=no_xml_parameters,
                exports=("export-eam-file",), dataset_kernel=dataset_kernel,
                mapping_roles=ROLES, build_mapped=build_mapped,
                sampled_exports=(("export-eam-file", "eam-table"),))


# ============================================================================ tabulated


@dataclass(frozen=True)
class TabulatedEAMSpec:
    """``<tabulated-eam style>``: the LAMMPS style (``eam``, ``eam/alloy``, ``eam/fs``), the
    files read (resolved paths; funcfl: one per species, ``file_species`` naming each), the
    ``<fit-dof>`` entries (tables; fitting them is not available yet), the potential's id,
    species attributes and origin."""

    style: str | None
    param_file: str | None
    param_files: tuple[str, ...]
    file_species: tuple[str, ...]
    fit_dofs: tuple
    ident: str
    species_a: str
    species_b: str
    origin: Origin


def build_tabulated_spec(reader, node, ident: str, species_a: str,
                         species_b: str) -> TabulatedEAMSpec:
    """The spec of a ``<tabulated-eam>`` node (errors recorded by ``reader``)."""
    pf_nodes = node.findall("param-file")
    if not pf_nodes:
        reader.error(f"<tabulated-eam id='{ident}'> needs a <param-file>", node.origin)
    files = [reader.file(p) for p in pf_nodes]
    dofs = reader.fit_dofs(node.find("fit-dof"), TABLES, f"tabulated-eam '{ident}'")
    style = node.get("style")
    if style == FUNCFL:
        for p in pf_nodes:
            if p.get("species") is None:
                reader.error("<param-file> of a style='eam' (funcfl) table needs a 'species' "
                             "attribute", p.origin)
            reader.check_species(p.get("species"), p.origin, "<param-file> species")
    elif len(pf_nodes) > 1:
        reader.error(f"style='{style}' takes one <param-file> for all species",
                     pf_nodes[1].origin)
    return TabulatedEAMSpec(style, files[0] if files else None, tuple(f for f in files if f),
                            tuple(p.get("species", "") for p in pf_nodes),
                            tuple(dofs.values()), ident, species_a, species_b, node.origin)


def used_species(species: tuple[str, ...], species_a: str, species_b: str) -> list:
    """Per job species, itself if the potential's species attributes include it, else None."""
    return [sp if (species_a in ("*", sp) or species_b in ("*", sp)) else None
            for sp in species]


def table_species(element: str, spec, species: tuple[str, ...], elements) -> list:
    """:func:`used_species` of a potential read from a LAMMPS table file whose ``elements``
    must include every species it acts on (an input error naming the file otherwise)."""
    from rexfit.errors import InputError, InputErrors

    used = used_species(species, spec.species_a, spec.species_b)
    missing = [sp for sp in used if sp is not None and sp not in elements]
    if missing:
        raise InputErrors([InputError(
            f"<{element} id='{spec.ident}'>: species {', '.join(missing)} not in "
            f"{spec.param_file} (it has {', '.join(elements)})", spec.origin)])
    return used


def build_tabulated_model(spec: TabulatedEAMSpec, species: tuple[str, ...], register):
    """(EAM, params) of the LAMMPS table(s) (its tables are not fitted yet)."""
    from rexfit.errors import InputError, InputErrors, NotImplementedInRexfit
    from rexfit.potentials.eam_files import read_funcfl, read_setfl, tabulated_eam

    if any(d.enabled for d in spec.fit_dofs):
        raise NotImplementedInRexfit(f"{spec.origin}: fitting the tables of <tabulated-eam> "
                                     "is not available yet; remove its <fit-dof>")
    try:
        if spec.style == FUNCFL:
            tables = read_funcfl(list(spec.param_files), list(spec.file_species))
        else:
            tables = read_setfl(spec.param_file, finnis_sinclair=spec.style == "eam/fs")
    except InputError as err:
        raise InputErrors([InputError(err.message, err.origin or spec.origin)]) from None
    return tabulated_eam(tables, table_species("tabulated-eam", spec, species, tables.elements))


def build_tabulated(spec: TabulatedEAMSpec, species: tuple[str, ...]):
    """The potential alone (:func:`build_tabulated_model`)."""
    return build_tabulated_model(spec, species, None)[0]


TABULATED = Family(element="tabulated-eam", type_name="EAM-table", parameters=TABLES,
                   neighbours="pairs", build_spec=build_tabulated_spec,
                   parameter_specs=no_parameters, build_potential=build_tabulated,
                   xml_parameters=no_xml_parameters, exports=("export-eam-file",),
                   dataset_kernel=dataset_kernel, build_model=build_tabulated_model,
                   sampled_exports=(("export-eam-file", "eam-table"),))
