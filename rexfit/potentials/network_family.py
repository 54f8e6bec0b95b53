"""The family records of ``<neural-network>`` (Behler–Parrinello networks on a descriptor of
:mod:`rexfit.descriptors.registry`) and ``<pinn>`` (networks that set the parameters of a bond-
order potential): typed specs, the model with its starting weights (random from the seed, or a
``<model-file>``), one DOF per trained weight, and the JSON model file.

``<fit-dof>`` names groups: ``<weights/>`` (every weight and hidden bias), ``<bias/>`` (the
output bias), for a PINN ``<base/>`` (its base BOP parameters); tag: one element.  A weight is
the DOF ``id[NN].w1.17[Si]`` (unit fit scale; ``l2`` regularises the weights).  The models are
:class:`~rexfit.potentials.neural_network.NeuralNetwork` and
:class:`~rexfit.potentials.pinn.PINN` (JAX, imported when the model is built).
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.descriptors import registry as descriptors
from rexfit.errors import InputError, InputErrors, Origin
from rexfit.potentials.family import Family
from rexfit.potentials.linear_models import ModelElement, model_elements
from rexfit.potentials.tokens import PotentialFileError

#: The base BOP parameters of a PINN (``<base species= A= B= ...>``), in the model's order.
BASE_PARAMETERS = ("A", "B", "alpha", "beta", "a", "h", "lambda", "sigma")


@dataclass(frozen=True)
class NetworkSpec:
    """``<neural-network>`` or ``<pinn>`` (``element``): layer widths, activation, seed of the
    starting weights, L2 λ of the weights, the descriptor (element) and its settings spec,
    the ``<element>`` entries, the ``<model-file>`` the weights start from, the ``<fit-dof>``
    groups; for a PINN its BOP cutoff rc and range d (Å) and the base parameters
    ((species, ((name, value), ...)), ...)."""

    ident: str
    element: str
    origin: Origin
    hidden: tuple[int, ...]
    activation: str
    seed: int
    l2: float
    descriptor: str | None
    descriptor_spec: object
    elements: tuple[ModelElement, ...]
    model_file: str | None
    fit_dofs: tuple
    rc: float | None = None
    d: float | None = None
    base: tuple = ()


def _build_spec(reader, node, ident, species_a, species_b, pinn: bool):
    what = f"<{node.tag} id='{ident}'>"
    if species_a != "*" or species_b != "*":
        reader.error(f"{what} describes every atom of its elements: leave species-a and "
                     "species-b out (or give *)", node.origin)
    found = [c for c in node.children if c.tag in descriptors.BY_ELEMENT]
    record = None
    if len(found) != 1:
        reader.error(f"{what} needs exactly one descriptor element "
                     f"({', '.join(f'<{d.element}>' for d in descriptors.DESCRIPTORS)})",
                     node.origin)
    default = "20 20" if pinn else "30 30"
    widths = reader.numbers(node, "hidden", default)
    hidden = tuple(int(x) for x in widths)
    if not hidden or min(hidden) < 1 or any(h != int(h) for h in widths):
        reader.error(f"{what} hidden must list positive integer layer widths", node.origin)
    l2 = reader.attribute(node, "l2", 0.0)
    if l2 is not None and not l2 >= 0.0:
        reader.error(f"{what} l2 must be ≥ 0, got {l2:g}", node.origin)
    spec = None
    if found:
        record = descriptors.BY_ELEMENT[found[0].tag]
        spec = record.build_spec(reader, found[0])
    nodes = node.findall("element")
    if not nodes:
        reader.error(f"{what} needs <element species=...> entries naming the elements it "
                     "describes", node.origin)
    elements = []
    for c in nodes:
        sp = c.get("species")
        reader.check_species(sp, c.origin, "<element> species")
        radius = reader.attribute(c, "radius")
        if record is not None and record.needs_radius and radius is None:
            reader.error(f"<element> of a network on the <{record.element}> needs a radius",
                         c.origin)
        elements.append(ModelElement(sp, radius, reader.attribute(c, "weight", 1.0),
                                     c.origin))
    model_file = node.find("model-file")
    groups: tuple[str, ...] = ("weights", "bias")
    extra = {}
    if pinn:
        groups += ("base",)
        for key in ("rc", "d"):
            extra[key] = reader.attribute(node, key)
            reader.positive(extra[key], f"<{node.tag}> {key}", node.origin)
        bases = {c.get("species"): c for c in node.findall("base")}
        base = []
        for sp, c in bases.items():
            reader.check_species(sp, c.origin, "<base> species")
            values = ((name, reader.attribute(c, name)) for name in BASE_PARAMETERS)
            base.append((sp, tuple((k, v) for k, v in values if v is not None)))
        extra["base"] = tuple(base)
        if model_file is None:
            for c in nodes:
                if c.get("species") not in bases:
                    reader.error(f"{what} needs <base species='{c.get('species')}' .../> (the "
                                 "base BOP parameters of every element) or a <model-file>",
                                 c.origin)
    dofs = reader.fit_dofs(node.find("fit-dof"), groups, f"{node.tag} '{ident}'")
    for dof in dofs.values():
        if dof.tag is not None:
            reader.check_species(dof.tag, dof.origin, f"<fit-dof> entry <{dof.name}> tag")
    return NetworkSpec(ident, node.tag, node.origin, hidden, node.get("activation", "tanh"),
                       reader.integer(node, "seed", 0) or 0, l2 or 0.0,
                       None if record is None else record.element, spec, tuple(elements),
                       None if model_file is None else reader.file(model_file),
                       tuple(dofs.values()), **extra)


def build_network_spec(reader, node, ident, species_a, species_b):
    """The spec of a ``<neural-network>`` node."""
    return _build_spec(reader, node, ident, species_a, species_b, False)


def build_pinn_spec(reader, node, ident, species_a, species_b):
    """The spec of a ``<pinn>`` node."""
    return _build_spec(reader, node, ident, species_a, species_b, True)


def parameter_specs(spec: NetworkSpec):
    """The weights are registered by :func:`build_model` (their number follows from the
    descriptor and the layers)."""
    return ()


def _model(spec: NetworkSpec, species: tuple[str, ...]):
    """(model, elements, params): the weights from the model file or the seed."""
    from rexfit.potentials.neural_network import NeuralNetwork
    from rexfit.potentials.nn_files import descriptor_to_dict, read_model
    from rexfit.potentials.pinn import PINN

    what = f"<{spec.element} id='{spec.ident}'>"
    elements = model_elements(what, spec.origin, species, [e.species for e in spec.elements])
    weights = [e.weight for e in spec.elements]
    radii = [0.0 if e.radius is None else e.radius for e in spec.elements]
    descriptor = descriptors.BY_ELEMENT[spec.descriptor].build(spec.descriptor_spec, elements,
                                                               weights, radii)
    layers = (descriptor, elements, spec.hidden, spec.activation)
    pinn = spec.element == PINN_FAMILY.element
    model = PINN(*layers, rc=float(spec.rc), d=float(spec.d)) if pinn else NeuralNetwork(*layers)
    if spec.model_file:
        loaded, params = read_model(spec.model_file)
        same = (type(loaded) is type(model) and loaded.elements == model.elements
                and loaded.hidden == model.hidden and loaded.activation == model.activation
                and descriptor_to_dict(loaded.descriptor) == descriptor_to_dict(descriptor)
                and getattr(loaded, "rc", None) == getattr(model, "rc", None)
                and getattr(loaded, "d", None) == getattr(model, "d", None))
        if not same:
            raise ValueError(f"{spec.model_file} holds another network (elements, layers, "
                             "activation or descriptor settings differ from the job's)")
    elif pinn:
        base = {e: dict(values) for e, values in spec.base}
        params = model.initial_params(spec.seed, {e: base[e] for e in elements})
    else:
        params = model.initial_params(spec.seed)
    return model, elements, params


def build_model(spec: NetworkSpec, species: tuple[str, ...], register):
    """(model, params {element: {"w1", "b1", ..., "out", "bias", "mean", "std"[, "base"]}}):
    one DOF per trained value of the ``<fit-dof>`` groups (unit fit scale except the base
    parameters; L2 on the weights)."""
    import numpy as np

    from rexfit.potentials.neural_network import TRAINED

    try:
        model, elements, params = _model(spec, species)
    except PotentialFileError:  # already names file:line
        raise
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise InputErrors([InputError(f"<{spec.element} id='{spec.ident}'>: {exc}",
                                      spec.origin)]) from None
    chosen: dict = {}
    for dof in spec.fit_dofs:
        for e in (elements if dof.tag is None else (dof.tag,)):
            if e not in elements:
                raise InputErrors([InputError(
                    f"<fit-dof> entry <{dof.name}>: tag '{e}' is not an element of this "
                    f"network ({', '.join(elements)})", dof.origin)])
            chosen[(e, dof.name)] = dof
    for (e, group), dof in chosen.items():
        for leaf, value in params[e].items():
            # <weights/>: every weight and hidden bias; <bias/>: the output bias;
            # <base/>: a PINN's base BOP parameters
            kind = leaf if leaf in ("bias", "base") else "weights"
            if not leaf.startswith(TRAINED) or leaf in ("mean", "std") or kind != group:
                continue
            values = np.atleast_1d(np.asarray(value, float))
            scalar = np.ndim(value) == 0
            for k, v in enumerate(values):
                # L2 acts on the weights (w*, out), not on biases or base parameters
                decay = spec.l2 if leaf.startswith("w") or leaf == "out" else 0.0
                register(dof, (e, leaf) if scalar else (e, leaf, k), float(v),
                         name=leaf if scalar else f"{leaf}.{k}", tag=e,
                         scale=None if group == "base" else 1.0, l2=decay)
    return model, params


def model_text(term, params, header: str) -> str:
    """The JSON model file of ``term`` at ``params``."""
    from rexfit.potentials.nn_files import model_text as text

    return text(term, params, header)


def xml_parameters(element, children):
    """The weights are in the model file parameters.xml names, not in the XML."""
    return ()


_COMMON = dict(neighbours="full", parameter_specs=parameter_specs, build_potential=None,
               xml_parameters=xml_parameters, exports=("export-potential",),
               build_model=build_model, dof_groups=True, coefficient_file="json",
               coefficient_element="model-file", coefficient_text=model_text)

NEURAL_NETWORK_FAMILY = Family(element="neural-network", type_name="NN",
                               parameters=("weights", "bias"), build_spec=build_network_spec,
                               **_COMMON)
PINN_FAMILY = Family(element="pinn", type_name="PINN", parameters=("weights", "bias", "base"),
                     build_spec=build_pinn_spec, **_COMMON)
