"""The Stillinger–Weber family (``<stillinger-weber>``, as LAMMPS ``pair_style sw``): its typed
spec and how it is read from the job (a ``<param-file>`` in LAMMPS ``.sw`` format and the
``<fit-dof>`` entries that select its values), how the model is built from the file (DOFs,
pair values stored twice linked to their fitted copy), its analytic dataset kernel
(:mod:`rexfit.potentials.sw_dataset`) and the text of its fitted file, all declared in
:data:`FAMILY`.  The potential itself is :class:`rexfit.potentials.sw.StillingerWeber`.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials.family import Family
from rexfit.potentials.file_dofs import read_file_potential
from rexfit.potentials.manybody_files import SW_PARAMETERS

#: The values of a ``.sw`` entry, in file order: what a ``<fit-dof>`` may list.
PARAMETERS = SW_PARAMETERS
#: Pair parameters a ``.sw`` file stores on both the ijj and the jii line while LAMMPS
#: evaluates the pair once: fitting one copy (tag ijj, i ≠ j) moves the other with it.
PAIR_PARAMETERS = {"epsilon", "sigma", "a", "A", "B", "p", "q", "tol"}
#: Parameters that move the cutoff: fitting one widens the neighbour lists.
CUTOFF_PARAMETERS = {"sigma", "a", "tol"}


@dataclass(frozen=True)
class StillingerWeberSpec:
    """``<stillinger-weber>``: the ``.sw`` file read (resolved path), the ``<fit-dof>``
    entries (tag: the element triplet, e.g. ``SiSiSi``), and the potential's id and origin."""

    param_file: str | None
    fit_dofs: tuple
    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of a ``<stillinger-weber>`` node (errors recorded by ``reader``)."""
    param_file, dofs = read_file_potential(reader, node, ident, PARAMETERS)
    return StillingerWeberSpec(param_file, dofs, ident, node.origin)


def parameter_specs(spec: StillingerWeberSpec):
    """None inline: the values are in the file (:func:`build_model` registers the DOFs)."""
    return ()


def build_model(spec: StillingerWeberSpec, species: tuple[str, ...], register):
    """(potential, params {tag: {name: value}}) from the ``.sw`` file for the job's species
    (the leading ones it describes), with every ``<fit-dof>`` registered (see
    :class:`~rexfit.potentials.family.Family`); linked pair copies make it a ``Linked``."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials import manybody_files as mf
    from rexfit.potentials.base import Linked
    from rexfit.potentials.file_dofs import CUTOFF_MARGIN, file_elements, register_dofs
    from rexfit.potentials.sw import StillingerWeber
    from rexfit.potentials.tokens import PotentialFileError

    try:
        entries = mf.read_sw_file(spec.param_file)
        elements = file_elements(f"<stillinger-weber id='{spec.ident}'>", spec.param_file,
                                 species, {e for key in entries for e in key}, spec.origin)
        mf.check_tags(elements)
        params = mf.params_from_entries(entries, elements, PARAMETERS)
    except PotentialFileError:  # already names file:line
        raise
    except ValueError as exc:
        raise InputErrors([InputError(f"{spec.param_file}: {exc}", spec.origin)]) from None
    fitted_cutoff = any(d.enabled and d.name in CUTOFF_PARAMETERS for d in spec.fit_dofs)
    obj = StillingerWeber.create(elements, params, CUTOFF_MARGIN if fitted_cutoff else 0.0)
    params, links = register_dofs(spec.param_file, spec.fit_dofs, params, elements, species,
                                  PAIR_PARAMETERS, register)
    return (Linked(obj, links) if links else obj), params


def xml_parameters(element, children):
    """None in the XML: the values are in the ``<param-file>``."""
    return ()


def dataset_kernel():
    """(StillingerWeber, prepare, terms) of :mod:`rexfit.potentials.sw_dataset`."""
    from rexfit.potentials import sw_dataset
    from rexfit.potentials.sw import StillingerWeber

    return StillingerWeber, sw_dataset.prepare, sw_dataset.terms


def parameter_text(potential, params, header) -> str:
    """The ``.sw`` file of the model's ``potential`` at ``params`` (every element triplet)."""
    from rexfit.potentials import manybody_files as mf
    from rexfit.potentials.file_dofs import unlinked

    sw, params = unlinked(potential, params)
    return mf.sw_text(mf.entries_from_params(params, sw.elements, PARAMETERS), header)


def build_potential(spec: StillingerWeberSpec, species: tuple[str, ...]):
    """The potential alone (:func:`build_model` without the DOFs)."""
    return build_model(spec, species, lambda dof, path, value: value)[0]


FAMILY = Family(element="stillinger-weber", type_name="SW", parameters=PARAMETERS,
                neighbours="triplets", build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                exports=("export-potential",), dataset_kernel=dataset_kernel,
                build_model=build_model, parameter_file="sw", pair_style="sw",
                parameter_text=parameter_text)
