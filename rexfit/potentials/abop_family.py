"""The ABOP family (``<abop>``: the analytic bond-order potential in the Albe–Erhart form, run
as a LAMMPS Tersoff): its typed spec and how it is read from the job (a ``<param-file>`` in
LAMMPS ``.tersoff`` format, converted to the ABOP values, the ``<fit-dof>`` entries that select
them, ``classic-mode``), how the model is built (DOFs, pair values stored twice linked to their
fitted copy) and the text of its fitted file (a ``.tersoff`` file with the ABOP values as
comments), all declared in :data:`FAMILY`.  The potential itself is
:class:`rexfit.potentials.abop.ABOP`.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials import tersoff_family
from rexfit.potentials.family import Family
from rexfit.potentials.file_dofs import read_file_potential

#: The names a ``<fit-dof>`` may list (those of :data:`rexfit.potentials.abop.ABOP_PARAMETERS`).
PARAMETERS = ("D0", "S", "r0", "beta", "beta2", "powern", "gamma", "c", "d", "h", "twomu", "m",
              "bigd", "bigr")
#: Pair parameters a ``.tersoff`` file stores on both the ijj and the jii line while LAMMPS
#: evaluates the pair once: fitting one copy (tag ijj, i ≠ j) moves the other with it.
PAIR_PARAMETERS = {"D0", "S", "r0", "beta", "bigr", "bigd"}
#: Parameters that move the cutoff: fitting one widens the neighbour lists.
CUTOFF_PARAMETERS = {"bigr", "bigd"}


@dataclass(frozen=True)
class ABOPSpec:
    """``<abop>``: the ``.tersoff`` file read (resolved path), the ``<fit-dof>`` entries (tag:
    the element triplet), ``classic`` (``classic-mode``: the three-body values of triplet ijk
    from entry ikk), and the potential's id and origin."""

    param_file: str | None
    fit_dofs: tuple
    classic: bool
    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of an ``<abop>`` node (errors recorded by ``reader``)."""
    param_file, dofs = read_file_potential(reader, node, ident, PARAMETERS)
    classic = reader.flag(node, "classic-mode", False)
    return ABOPSpec(param_file, dofs, classic, ident, node.origin)


def parameter_specs(spec):
    """None inline: the values are in the file (:func:`build_model` registers the DOFs)."""
    return ()


def build_model(spec: ABOPSpec, species: tuple[str, ...], register):
    """(potential, ABOP params {tag: {name: value}}) from the ``.tersoff`` file for the job's
    species (the leading ones it describes), with every ``<fit-dof>`` registered (see
    :class:`~rexfit.potentials.family.Family`); a two-body parameter is fitted on a pair entry
    only; linked pair copies make it a ``Linked``."""
    from rexfit.potentials.abop import ABOP, TWO_BODY, from_tersoff
    from rexfit.potentials.base import Linked
    from rexfit.potentials.file_dofs import CUTOFF_MARGIN, register_dofs

    params, elements = tersoff_family.read_params(f"<{FAMILY.element} id='{spec.ident}'>",
                                                  spec, species, from_tersoff)
    fitted_cutoff = any(d.enabled and d.name in CUTOFF_PARAMETERS for d in spec.fit_dofs)
    obj = ABOP.create(elements, params, spec.classic, CUTOFF_MARGIN if fitted_cutoff else 0.0)

    def check(dof, parts: tuple[str, str, str]) -> str | None:
        if dof.name in TWO_BODY and parts[1] != parts[2]:
            return (f"<fit-dof> entry <{dof.name}>: {dof.name} is a two-body parameter, used "
                    f"only from the pair entries; use tag='{parts[0]}{parts[1]}{parts[1]}'")
        return None

    params, links = register_dofs(spec.param_file, spec.fit_dofs, params, elements, species,
                                  PAIR_PARAMETERS, register, check=check)
    return (Linked(obj, links) if links else obj), params


def build_potential(spec: ABOPSpec, species: tuple[str, ...]):
    """The potential alone (:func:`build_model` without the DOFs)."""
    return build_model(spec, species, lambda dof, path, value: value)[0]


def xml_parameters(element, children):
    """None in the XML: the values are in the ``<param-file>``."""
    return ()


def parameter_text(potential, params, header) -> str:
    """The ``.tersoff`` file of the model's ``potential`` (an ABOP) at ABOP ``params``: the
    Tersoff form LAMMPS reads, the ABOP values of every entry as comments after ``header``."""
    from itertools import product

    import numpy as np

    from rexfit.potentials.abop import ABOP_PARAMETERS, THREE_BODY, to_tersoff
    from rexfit.potentials.file_dofs import unlinked
    from rexfit.potentials.manybody_files import triplet_tag

    abop, params = unlinked(potential, params)
    lines = list(header)
    lines.append("ABOP parameters (Albe-Erhart form"
                 + (", classic mode: three-body values of ijk from entry ikk" if abop.classic
                    else "") + "):")
    for i, j, k in product(abop.elements, repeat=3):
        p = {n: float(np.asarray(v)) for n, v in params[triplet_tag(i, j, k)].items()}
        names = ABOP_PARAMETERS if j == k else THREE_BODY
        lines.append(f"  {i} {j} {k}: " + " ".join(f"{n}={p[n]!r}" for n in names))
    tersoff = to_tersoff(params, abop.elements, abop.classic)
    return tersoff_family.parameter_text(abop.tersoff, tersoff, lines)


FAMILY = Family(element="abop", type_name="ABOP", parameters=PARAMETERS,
                neighbours="triplets", build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                exports=("export-potential",), build_model=build_model,
                parameter_file=tersoff_family.FAMILY.parameter_file,
                pair_style=tersoff_family.FAMILY.pair_style, parameter_text=parameter_text)
