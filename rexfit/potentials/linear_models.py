"""The family records of ``<snap>`` (SNAP: a linear or quadratic model on the bispectrum, from
LAMMPS files or inline settings) and ``<linear-model>`` (a linear or quadratic model on a
descriptor of :mod:`rexfit.descriptors.registry` that allows it): typed specs, the model and its
coefficient tree, the coefficient file (``.snapcoeff`` layout) and SNAP's LAMMPS export.

The coefficients are DOF groups: ``<fit-dof>`` names ``beta0``, ``beta`` or ``gamma`` (tag: one
element), and every coefficient of a group is one DOF, ``id[SNAP].beta3[Mo]`` (numbered from 1,
as in a .snapcoeff file).  The model itself is :class:`rexfit.potentials.snap.DescriptorModel`
(JAX, imported when the model is built).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rexfit.descriptors import registry as descriptors
from rexfit.errors import InputError, InputErrors, Origin
from rexfit.potentials.family import Family
from rexfit.potentials.snap_files import PAIR_STYLE
from rexfit.potentials.tokens import PotentialFileError

#: Fittable coefficient groups (<fit-dof> names; tag = element).
DOF_GROUPS = ("beta0", "beta", "gamma")
#: <descriptor> settings of <snap> (LAMMPS .snapparam keywords): float ones and int ones;
#: None: required.
SNAP_FLOATS = {"rcutfac": None, "rfac0": 0.99363, "rmin0": 0.0}
SNAP_INTS = {"twojmax": None, "switchflag": 1, "bzeroflag": 1, "quadraticflag": 0}


@dataclass(frozen=True)
class ModelElement:
    """An ``<element species= radius= weight=>`` of a model: radius (Å; None: from the
    coefficient file or 0), weight (None: from the coefficient file or 1)."""

    species: str
    radius: float | None
    weight: float | None
    origin: Origin


@dataclass(frozen=True)
class DescriptorModelSpec:
    """``<snap>`` or ``<linear-model>`` (``element``).  SNAP: the .snapparam ``param_file`` or
    the inline ``snap_settings`` ((keyword, value), ...).  Linear model: its ``descriptor``
    (element) with its settings spec ``descriptor_spec`` and ``quadratic``.  Both: the
    ``<element>`` entries, the ``coeff_file`` (.snapcoeff layout) the coefficients start from
    (else 0), the ``<fit-dof>`` groups."""

    ident: str
    element: str
    origin: Origin
    elements: tuple[ModelElement, ...]
    coeff_file: str | None
    fit_dofs: tuple
    param_file: str | None = None
    snap_settings: tuple[tuple[str, float], ...] = ()
    descriptor: str | None = None
    descriptor_spec: object = None
    quadratic: bool = False


def _common(reader, node, ident, species_a, species_b, snap: bool):
    """(elements, coeff-file node, fit-dofs) of either kind; errors recorded."""
    what = f"<{node.tag} id='{ident}'>"
    if species_a != "*" or species_b != "*":
        reader.error(f"{what} describes every atom of the species given by <element> (or its "
                     "files): leave species-a and species-b out (or give *)", node.origin)
    coeff_file = node.find("coeff-file")
    elements = []
    for c in node.findall("element"):
        sp = c.get("species")
        reader.check_species(sp, c.origin, "<element> species")
        radius = reader.attribute(c, "radius")
        weight = reader.attribute(c, "weight")
        if snap and radius is None and coeff_file is None:
            reader.error("<element> of a <snap> without <coeff-file> needs a radius (the "
                         "element's cutoff radius R, as in .snapcoeff)", c.origin)
        elements.append(ModelElement(sp, radius, 1.0 if weight is None else weight, c.origin))
    if coeff_file is None and not elements:
        reader.error(f"{what} needs a <coeff-file> (.snapcoeff) or <element species=...> "
                     "entries naming the elements it describes", node.origin)
    dofs = reader.fit_dofs(node.find("fit-dof"), DOF_GROUPS, f"{node.tag} '{ident}'")
    for dof in dofs.values():
        if dof.tag is not None:
            reader.check_species(dof.tag, dof.origin, f"<fit-dof> entry <{dof.name}> tag")
    return tuple(elements), coeff_file, tuple(dofs.values())


def build_snap_spec(reader, node, ident, species_a, species_b):
    """The spec of a ``<snap>`` node (None only if nothing usable was read)."""
    what = f"<{node.tag} id='{ident}'>"
    param_file = node.find("param-file")
    settings_nodes = node.findall("descriptor")
    if param_file is None and not settings_nodes:
        reader.error(f"{what} needs its descriptor settings: a <param-file> (.snapparam) or "
                     "a <descriptor twojmax=... rcutfac=.../>", node.origin)
    if param_file is not None and settings_nodes:
        reader.error(f"{what}: give either a <param-file> or a <descriptor>, not both",
                     settings_nodes[0].origin)
    settings = []
    for c in settings_nodes:
        for table, read in ((SNAP_INTS, reader.integer), (SNAP_FLOATS, reader.attribute)):
            for key, default in table.items():
                if c.get(key) is None:
                    if default is None:
                        reader.error(f"<descriptor> needs the attribute {key}", c.origin)
                    continue
                value = read(c, key)
                if value is not None:
                    settings.append((key, value))
    elements, coeff_file, dofs = _common(reader, node, ident, species_a, species_b, True)
    return DescriptorModelSpec(
        ident, node.tag, node.origin, elements,
        None if coeff_file is None else reader.file(coeff_file), dofs,
        param_file=None if param_file is None else reader.file(param_file),
        snap_settings=tuple(settings))


def build_linear_spec(reader, node, ident, species_a, species_b):
    """The spec of a ``<linear-model>`` node."""
    what = f"<{node.tag} id='{ident}'>"
    found = [c for c in node.children if c.tag in descriptors.LINEAR_MODEL]
    descriptor = spec = None
    if len(found) != 1:
        reader.error(f"{what} needs exactly one descriptor element "
                     f"({', '.join(f'<{k}>' for k in descriptors.LINEAR_MODEL)})", node.origin)
    else:
        descriptor = found[0].tag
        spec = descriptors.BY_ELEMENT[descriptor].build_spec(reader, found[0])
    quadratic = reader.boolean(node, "quadratic", False)
    elements, coeff_file, dofs = _common(reader, node, ident, species_a, species_b, False)
    return DescriptorModelSpec(
        ident, node.tag, node.origin, elements,
        None if coeff_file is None else reader.file(coeff_file), dofs,
        descriptor=descriptor, descriptor_spec=spec, quadratic=quadratic)


def parameter_specs(spec: DescriptorModelSpec):
    """The coefficients are registered by :func:`build_model` (their number follows from the
    descriptor)."""
    return ()


def model_elements(what: str, origin, species: tuple[str, ...], named: list[str]):
    """The job species a descriptor model describes: the leading species, in job order."""
    if named == list(species[:len(named)]):
        return tuple(named)
    raise InputErrors([InputError(
        f"{what}: its elements ({', '.join(named)}) must be the first species of <atom-types> "
        f"in the same order ({', '.join(species)}); species after them are not described by "
        "it", origin)])


def _model(spec: DescriptorModelSpec, species: tuple[str, ...]):
    """(model, its elements, the coefficient table of the coeff file or None)."""
    from rexfit.potentials.file_dofs import file_elements
    from rexfit.potentials.snap import SNAP, DescriptorModel
    from rexfit.potentials.snap_files import read_snapcoeff, read_snapparam

    what = f"<{spec.element} id='{spec.ident}'>"
    named = [e.species for e in spec.elements]
    table = read_snapcoeff(spec.coeff_file) if spec.coeff_file else None
    if table is not None:
        elements = model_elements(what, spec.origin, species, named) if named else \
            file_elements(what, spec.coeff_file, species, set(table), spec.origin)
        if named and any(e not in table for e in elements):
            raise ValueError(f"elements {', '.join(e for e in elements if e not in table)}"
                             " are not in the file")
    else:
        elements = model_elements(what, spec.origin, species, named)
    given = {e.species: e for e in spec.elements}
    weights = [given[e].weight if e in given else table[e].weight for e in elements]
    if spec.element == PAIR_STYLE:
        settings = read_snapparam(spec.param_file) if spec.param_file else \
            dict(spec.snap_settings)
        radii = [given[e].radius if e in given and given[e].radius is not None
                 else table[e].radius for e in elements]
        extra = {k: settings[k] for k in ("rfac0", "rmin0", "switchflag", "bzeroflag")
                 if k in settings}
        model = SNAP.create(elements, int(settings["twojmax"]), float(settings["rcutfac"]),
                            radii, weights, bool(int(settings.get("quadraticflag", 0))),
                            **extra)
    else:
        record = descriptors.BY_ELEMENT[spec.descriptor]
        descriptor = record.build(spec.descriptor_spec, elements, weights,
                                  [0.0] * len(elements))
        model = DescriptorModel(descriptor, elements, spec.quadratic)
    return model, elements, table


def build_model(spec: DescriptorModelSpec, species: tuple[str, ...], register):
    """(model, coefficient tree {element: {"beta0", "beta", "gamma"}}): the coefficients from
    the coefficient file or 0, one DOF per fitted coefficient (``beta3[Mo]``)."""
    import jax
    import numpy as np

    try:
        model, elements, table = _model(spec, species)
    except PotentialFileError:  # already names file:line
        raise
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise InputErrors([InputError(f"<{spec.element} id='{spec.ident}'>: {exc}",
                                      spec.origin)]) from None
    shapes = model.parameter_shapes()
    params = {}
    for e in elements:
        params[e] = {}
        flat = None if table is None else np.asarray(table[e].coefficients, float)
        start = 0
        for name in DOF_GROUPS:
            if name not in shapes:
                continue
            size = int(np.prod(shapes[name], dtype=int))
            if flat is not None:
                need = 1 + model.n_linear + (shapes["gamma"][0] if "gamma" in shapes else 0)
                if flat.size != need:
                    raise InputErrors([InputError(
                        f"{spec.coeff_file}: {flat.size} coefficients per element, but "
                        f"the model needs {need} (beta0, {model.n_linear} beta"
                        + (f", {shapes['gamma'][0]} gamma" if "gamma" in shapes else "")
                        + ")", spec.origin)])
                values = flat[start:start + size]
            else:
                values = np.zeros(size)
            start += size
            # put on the device as they are (jnp.float64 / jnp.asarray would trace and
            # compile a conversion program in every run)
            values = np.asarray(values, np.float64)
            params[e][name] = jax.device_put(values[0] if name == "beta0" else values)
    chosen: dict = {}
    errors = []
    for dof in spec.fit_dofs:
        if dof.name not in shapes:
            errors.append(InputError(f"<fit-dof> entry <{dof.name}>: this model has no "
                                     f"{dof.name} (it is not quadratic)", dof.origin))
            continue
        for e in (elements if dof.tag is None else (dof.tag,)):
            if e not in elements:
                errors.append(InputError(f"<fit-dof> entry <{dof.name}>: tag '{e}' is not an "
                                         f"element of this model ({', '.join(elements)})",
                                         dof.origin))
            elif (e, dof.name) in chosen:
                errors.append(InputError(f"<fit-dof> names {dof.name} of {e} twice",
                                         dof.origin))
            else:
                chosen[(e, dof.name)] = dof
    if errors:
        raise InputErrors(errors)
    for (e, name), dof in chosen.items():
        values = np.atleast_1d(np.asarray(params[e][name], float))
        for k, value in enumerate(values):
            leaf = name if name == "beta0" else f"{name}{k + 1}"
            path = (e, name) if name == "beta0" else (e, name, k)
            register(dof, path, float(value), name=leaf, tag=e)
    return model, params


def coefficient_text(term, params, header: str) -> str:
    """The coefficient file (.snapcoeff layout) of ``term`` at ``params``."""
    from rexfit.potentials.snap import coefficient_table
    from rexfit.potentials.snap_files import snapcoeff_text

    return snapcoeff_text(coefficient_table(term, params), [header])


def snap_export_files(term, params, name: str, header: str, overlays, species):
    """``<export-potential>NAME`` of a SNAP: NAME.snapcoeff, NAME.snapparam and NAME.snap, the
    LAMMPS commands that use them (``pair_style snap``, or ``hybrid/overlay`` with the first
    overlay of the job's other potentials, e.g. its ZBL)."""
    from rexfit.potentials.lammps_include import include_text
    from rexfit.potentials.snap_files import snapparam_text

    base = os.path.basename(name)
    files = f"{base}.snapcoeff {base}.snapparam"
    mapping = " ".join(species[k] if k < len(term.elements) else "NULL"
                       for k in range(len(species)))
    return ((name + ".snapcoeff", coefficient_text(term, params, header)),
            (name + ".snapparam", snapparam_text(term.settings(), [header])),
            (name + ".snap", include_text(header, PAIR_STYLE, f"{files} {mapping}", overlays)))


def xml_parameters(element, children):
    """The coefficients are in the coefficient file parameters.xml names, not in the XML."""
    return ()


SNAP_FAMILY = Family(element=PAIR_STYLE, type_name="SNAP", parameters=DOF_GROUPS,
                     neighbours="full", build_spec=build_snap_spec,
                     parameter_specs=parameter_specs, build_potential=None,
                     xml_parameters=xml_parameters, exports=("export-potential",),
                     build_model=build_model, dof_groups=True, coefficient_file="snapcoeff",
                     coefficient_text=coefficient_text, export_files=snap_export_files)

LINEAR_MODEL_FAMILY = Family(element="linear-model", type_name="linear-model",
                             parameters=DOF_GROUPS, neighbours="full",
                             build_spec=build_linear_spec, parameter_specs=parameter_specs,
                             build_potential=None, xml_parameters=xml_parameters,
                             exports=("export-potential",), build_model=build_model,
                             dof_groups=True, coefficient_file="coeff",
                             coefficient_text=coefficient_text)
