"""The ACE family (``<ace>``, pacemaker's atomic cluster expansion, as LAMMPS ``pair_style
pace``): its typed spec and how it is read from the job (a ``<param-file>`` naming a B-basis
YAML, ``output_potential.yaml``, and the ``<fit-dof>`` groups ``<coefficients/>`` and
``<crad/>``), the model built from the file with its DOFs, the fitted B-basis file written next
to parameters.xml and the ``<export-potential>`` files (B-basis YAML, ``.yace``, LAMMPS
commands), all declared in :data:`FAMILY`.  The potential is
:class:`rexfit.potentials.ace.model.ACE`.

DOFs: ``<coefficients/>``, the function coefficients of every species block, one DOF per
function and density, named ``c<k>[<block>]`` (k from 1 over the block's rows in file order,
densities fastest; block: its elements joined, ``Cu``, ``CuAl``); ``<crad/>``, the radial
coefficients of every bond, ``crad<k>[<bond>]`` (k from 1 over (n, l, k) in file order, bond:
its two elements alphabetical, ``CuCu``, ``AlCu``).  ``tag`` restricts a group to one block or
bond.  Functions marked ``skip`` in the file are not fitted.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rexfit.errors import Origin
from rexfit.potentials.family import Family

#: The ``<fit-dof>`` groups.
DOF_GROUPS = ("coefficients", "crad")
#: The LAMMPS pair style that reads the ``.yace`` file.
PAIR_STYLE = "pace"


@dataclass(frozen=True)
class AceSpec:
    """``<ace>``: the B-basis YAML read (resolved path), the ``<fit-dof>`` groups, the
    potential's id and origin."""

    param_file: str | None
    fit_dofs: tuple
    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of an ``<ace>`` node (errors recorded by ``reader``)."""
    what = f"<ace id='{ident}'>"
    if species_a != "*" or species_b != "*":
        reader.error(f"{what} describes every atom of the elements of its file: leave "
                     "species-a and species-b out (or give *)", node.origin)
    files = node.findall("param-file")
    if len(files) != 1:
        reader.error(f"{what} needs one <param-file>: a pacemaker B-basis potential YAML "
                     "(output_potential.yaml)", node.origin)
    param_file = reader.file(files[0]) if files else None
    dofs = reader.fit_dofs(node.find("fit-dof"), DOF_GROUPS, f"ace '{ident}'")
    return AceSpec(param_file, tuple(dofs.values()), ident, node.origin)


def parameter_specs(spec: AceSpec):
    """None inline: the values are in the file (:func:`build_model` registers the DOFs)."""
    return ()


def block_tag(name: str) -> str:
    """The tag of a species block (``"Cu Al"`` → ``CuAl``) or bond (``"Al-Cu"`` → ``AlCu``)."""
    return name.replace(" ", "").replace("-", "")


def _load(spec: AceSpec, species: tuple[str, ...]):
    """(ACE for the job's species, params with flat arrays); located errors."""
    import jax.numpy as jnp

    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.ace.files import read_bbasis
    from rexfit.potentials.ace.model import ACE

    what = f"<ace id='{spec.ident}'>"
    try:
        potential, params = ACE.from_bbasis(read_bbasis(spec.param_file))
    except Exception as exc:  # noqa: BLE001 - any reading error (YAML syntax too) of the file
        raise InputErrors([InputError(f"{what}: {spec.param_file}: {exc}", spec.origin)]) \
            from None
    if not set(species) & set(potential.elements):
        raise InputErrors([InputError(
            f"{what}: {spec.param_file} describes {', '.join(potential.elements)}, none of the "
            f"job's species ({', '.join(species)})", spec.origin)])
    flat = {group: {k: jnp.ravel(jnp.asarray(v, dtype=jnp.float64)) for k, v in tree.items()}
            for group, tree in params.items()}
    return potential.for_species(species), flat


def build_model(spec: AceSpec, species: tuple[str, ...], register):
    """(potential, params {"crad": {bond: flat}, "c": {block: flat}}) from the B-basis file for
    the job's species (atoms of species not in the file carry no energy), with every
    ``<fit-dof>`` group registered, one DOF per coefficient (see the module docstring).
    With a linear embedding and no ``<crad/>`` DOF the potential is a
    :class:`~rexfit.potentials.ace.linear.LinearACE` (crad fixed at the file's values), which
    the dataset engine evaluates on precomputed descriptor rows."""
    import numpy as np

    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.ace.linear import LinearACE, linear_embedding

    potential, params = _load(spec, species)
    skipped = {name: [f[4] for f in funcs] for name, funcs in potential.functions}
    groups = {"coefficients": ("c", "c"), "crad": ("crad", "crad")}
    chosen: dict = {}
    errors = []
    for dof in spec.fit_dofs:
        key, label = groups[dof.name]
        tags = {block_tag(k): k for k in params[key]}
        if dof.tag is not None and dof.tag not in tags:
            errors.append(InputError(
                f"<fit-dof> entry <{dof.name}>: tag '{dof.tag}' is not a "
                f"{'species block' if key == 'c' else 'bond'} of {spec.param_file} (tags: "
                f"{', '.join(tags) or 'none'})", dof.origin))
            continue
        for tag, k in tags.items():
            if dof.tag in (None, tag):
                if (key, k) in chosen:
                    errors.append(InputError(f"<fit-dof> names <{dof.name}> of {tag} twice",
                                             dof.origin))
                chosen[(key, k)] = (dof, label, tag)
    if errors:
        raise InputErrors(errors)
    for (key, k), (dof, label, tag) in chosen.items():
        values = np.asarray(params[key][k], dtype=float)
        per_row = values.size // max(1, len(skipped[k])) if key == "c" else None
        for n, value in enumerate(values):
            if key == "c" and skipped[k][n // per_row]:
                continue
            register(dof, (key, k, n), float(value), name=f"{label}{n + 1}", tag=tag)
    if not any(key == "crad" for key, _ in chosen) and linear_embedding(potential):
        # energy affine in c at fixed crad: the dataset engine precomputes descriptor rows
        potential = LinearACE.freeze(potential, params["crad"])
    return potential, params


def build_potential(spec: AceSpec, species: tuple[str, ...]):
    """The potential alone (:func:`build_model` without the DOFs)."""
    return _load(spec, species)[0]


def xml_parameters(element, children):
    """None in the XML: the values are in the B-basis file parameters.xml names."""
    return ()


def coefficient_text(term, params, header: str) -> str:
    """The B-basis YAML of ``term`` at ``params`` (pyace and pacemaker read it), with
    ``header`` as a comment line."""
    from rexfit.potentials.ace.files import bbasis_text

    return f"# {header}\n" + bbasis_text(term.to_bbasis(None, params))


def export_files(term, params, name: str, header: str, overlays, species):
    """``<export-potential>NAME.yace`` (or NAME, NAME.yaml): NAME.yaml (the fitted B-basis
    file, which parameters.xml names), NAME.yace (for ``pair_style pace``) and NAME.pace, the
    LAMMPS commands that use it (``hybrid/overlay`` with the first overlay of the job's other
    potentials, e.g. its ZBL)."""
    from rexfit.potentials.ace.yace import yace_text
    from rexfit.potentials.lammps_include import include_text

    stem = name[:-5] if name.endswith((".yace", ".yaml")) else name
    yace = os.path.basename(stem) + ".yace"
    mapping = " ".join(sp if sp in term.elements else "NULL" for sp in species)
    return ((stem + ".yaml", coefficient_text(term, params, header)),
            (stem + ".yace", yace_text(term, params)),
            (stem + ".pace", include_text(header, PAIR_STYLE, f"{yace} {mapping}", overlays)))


def species_text(spec: AceSpec) -> str:
    """What ``rexfit validate`` says the potential acts between."""
    return f"the elements of {os.path.basename(spec.param_file or '?')}"


FAMILY = Family(element="ace", type_name="ACE", parameters=DOF_GROUPS, neighbours="full",
                build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                exports=("export-potential",), build_model=build_model, dof_groups=True,
                coefficient_file="yaml", coefficient_element="param-file",
                coefficient_text=coefficient_text, export_files=export_files,
                species_text=species_text)
