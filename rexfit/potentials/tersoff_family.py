"""The Tersoff family (``<tersoff>``, as LAMMPS ``pair_style tersoff``): its typed spec and how
it is read from the job (a ``<param-file>`` in LAMMPS ``.tersoff`` format and the
``<fit-dof>`` entries that select its values), how the model is built from the file (DOFs, pair
values stored twice linked to their fitted copy) and the text of its fitted file, all declared
in :data:`FAMILY`.  The potential itself is :class:`rexfit.potentials.tersoff.Tersoff`; the
ABOP family (:mod:`rexfit.potentials.abop_family`) reads and writes the same files.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials.family import Family
from rexfit.potentials.file_dofs import read_file_potential

#: The names a ``<fit-dof>`` may list: the values of a ``.tersoff`` entry (LAMMPS's names) and
#: the aliases of :data:`ALIASES`.
PARAMETERS = ("A", "B", "lambda1", "lambda2", "gamma", "lambda3", "c", "d", "theta0",
              "costheta0", "h", "beta", "n", "m", "R", "D")
#: Other names of LAMMPS's h = cos θ0 (``costheta0``).
ALIASES = {"theta0": "costheta0", "h": "costheta0"}
#: Pair parameters a ``.tersoff`` file stores on both the ijj and the jii line while LAMMPS
#: evaluates the pair once: fitting one copy (tag ijj, i ≠ j) moves the other with it.
PAIR_PARAMETERS = {"A", "lambda1", "R", "D"}
#: Parameters that move the cutoff: fitting one widens the neighbour lists.
CUTOFF_PARAMETERS = {"R", "D"}


@dataclass(frozen=True)
class TersoffSpec:
    """``<tersoff>``: the ``.tersoff`` file read (resolved path), the ``<fit-dof>`` entries
    (tag: the element triplet, e.g. ``SiSiC``), and the potential's id and origin."""

    param_file: str | None
    fit_dofs: tuple
    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of a ``<tersoff>`` node (errors recorded by ``reader``)."""
    param_file, dofs = read_file_potential(reader, node, ident, PARAMETERS)
    return TersoffSpec(param_file, dofs, ident, node.origin)


def parameter_specs(spec):
    """None inline: the values are in the file (:func:`build_model` registers the DOFs)."""
    return ()


def read_params(what: str, spec, species: tuple[str, ...], convert=None):
    """(params {tag: {LAMMPS name: value}}, the job species the file describes) of the
    ``.tersoff`` file of ``spec`` (a Tersoff or ABOP spec; ``what``: ``<tersoff id='..'>``);
    ``convert(params, elements)`` turns them into another form (ABOP) and may raise
    ``ValueError``.  File errors name file:line; the others the potential's element."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials import manybody_files as mf
    from rexfit.potentials.file_dofs import file_elements
    from rexfit.potentials.tokens import PotentialFileError

    try:
        entries = mf.read_tersoff_file(spec.param_file)
        elements = file_elements(what, spec.param_file, species,
                                 {e for key in entries for e in key}, spec.origin)
        mf.check_tags(elements)
        params = mf.params_from_entries(entries, elements, mf.TERSOFF_PARAMETERS)
        if convert is not None:
            params = convert(params, elements)
    except PotentialFileError:  # already names file:line
        raise
    except ValueError as exc:
        raise InputErrors([InputError(f"{spec.param_file}: {exc}", spec.origin)]) from None
    return params, elements


def build_model(spec: TersoffSpec, species: tuple[str, ...], register):
    """(potential, params {tag: {name: value}}) from the ``.tersoff`` file for the job's
    species (the leading ones it describes), with every ``<fit-dof>`` registered (see
    :class:`~rexfit.potentials.family.Family`); linked pair copies make it a ``Linked``."""
    from rexfit.potentials.base import Linked
    from rexfit.potentials.file_dofs import CUTOFF_MARGIN, register_dofs
    from rexfit.potentials.tersoff import Tersoff

    params, elements = read_params(f"<{FAMILY.element} id='{spec.ident}'>", spec, species)
    fitted_cutoff = any(d.enabled and d.name in CUTOFF_PARAMETERS for d in spec.fit_dofs)
    obj = Tersoff.create(elements, params, CUTOFF_MARGIN if fitted_cutoff else 0.0)
    params, links = register_dofs(spec.param_file, spec.fit_dofs, params, elements, species,
                                  PAIR_PARAMETERS, register,
                                  lambda name: ALIASES.get(name, name))
    return (Linked(obj, links) if links else obj), params


def build_potential(spec: TersoffSpec, species: tuple[str, ...]):
    """The potential alone (:func:`build_model` without the DOFs)."""
    return build_model(spec, species, lambda dof, path, value: value)[0]


def xml_parameters(element, children):
    """None in the XML: the values are in the ``<param-file>``."""
    return ()


def parameter_text(potential, params, header) -> str:
    """The ``.tersoff`` file of the model's ``potential`` at ``params`` (every element
    triplet)."""
    from rexfit.potentials import manybody_files as mf
    from rexfit.potentials.file_dofs import unlinked

    tersoff, params = unlinked(potential, params)
    entries = mf.entries_from_params(params, tersoff.elements, mf.TERSOFF_PARAMETERS)
    return mf.tersoff_text(entries, header)


FAMILY = Family(element="tersoff", type_name="Tersoff", parameters=PARAMETERS,
                neighbours="triplets", build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                exports=("export-potential",), build_model=build_model,
                parameter_file="tersoff", pair_style="tersoff", parameter_text=parameter_text)
