"""The Lennard-Jones family (``<lennard-jones>``): its typed spec, how it is read from the job,
its parameters and the potential it builds (:class:`rexfit.potentials.pair.LennardJones`, as
LAMMPS ``pair_style lj/cut``), and its analytic dataset kernel
(:mod:`rexfit.potentials.pair_dataset`).  No LAMMPS writer yet."""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.potentials.family import Family

#: The parameters a ``<fit-dof>`` may list (the cutoff fixes the neighbour lists: not a DOF).
PARAMETERS = ("sigma", "epsilon")


@dataclass(frozen=True)
class LennardJonesSpec:
    """``<lennard-jones>``: σ (Å) and ε (eV) as parameter specs, the cutoff (Å), and the
    species it acts between (``*`` = any)."""

    species_a: str
    species_b: str
    sigma: object
    epsilon: object
    cutoff: float


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of a ``<lennard-jones>`` node; None after errors (recorded by ``reader``)."""
    dofs = reader.fit_dofs(node.find("fit-dof"), list(PARAMETERS), f"lennard-jones '{ident}'")
    values = {}
    for name in ("sigma", "epsilon", "cutoff"):
        value = reader.number(node, name, required=True)
        if value is None:
            continue
        origin = node.find(name).origin
        if name == "epsilon":
            reader.finite(value, "<epsilon>", origin)
        else:
            reader.positive(value, f"<{name}>", origin)
        values[name] = value if name == "cutoff" else \
            reader.param(name, value, origin, dofs.get(name))
    if len(values) < 3:
        return None
    return LennardJonesSpec(species_a, species_b, values["sigma"], values["epsilon"],
                            values["cutoff"])


def parameter_specs(spec: LennardJonesSpec):
    """((path, parameter spec), ...): σ and ε at the top of the potential's params."""
    return ((("sigma",), spec.sigma), (("epsilon",), spec.epsilon))


def build_potential(spec: LennardJonesSpec, species: tuple[str, ...]):
    """The :class:`~rexfit.potentials.pair.LennardJones` term between the spec's species."""
    from rexfit.potentials.pair import LennardJones

    a = None if spec.species_a == "*" else species.index(spec.species_a)
    b = None if spec.species_b == "*" else species.index(spec.species_b)
    return LennardJones.between(spec.cutoff, a, b, len(species))


def xml_parameters(element, children):
    """(element, name, tag) of σ and ε in a ``<lennard-jones>`` element."""
    return [(el, name, None) for name in PARAMETERS for el in children(element, name)]


def dataset_kernel():
    """(LennardJones, prepare, terms) of :mod:`rexfit.potentials.pair_dataset`."""
    from rexfit.potentials import pair_dataset
    from rexfit.potentials.pair import LennardJones

    return LennardJones, pair_dataset.prepare, pair_dataset.terms


FAMILY = Family(element="lennard-jones", type_name="LJ", parameters=PARAMETERS,
                neighbours="pairs", build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                dataset_kernel=dataset_kernel)
