"""The potential families on the family registry: one line per family (its module declares the
rest, see :class:`rexfit.potentials.family.Family`).  The job builder, the model builder, the
dataset engine and the exports look a family up here by its XML element instead of switching on
it.  Importing this module imports no JAX.

Every potential family is on the registry.  The descriptors that SNAP-like models and
networks are built on have a registry of their own, :mod:`rexfit.descriptors.registry`.
"""

from __future__ import annotations

from rexfit.potentials import (
    abop_family,
    ace_family,
    adp_family,
    buckingham,
    eam_family,
    lennard_jones,
    linear_models,
    meam_family,
    network_family,
    stillinger_weber,
    tersoff_family,
    zbl,
)
from rexfit.potentials.family import Family

FAMILIES: tuple[Family, ...] = (
    lennard_jones.FAMILY,
    buckingham.FAMILY,
    zbl.FAMILY,
    stillinger_weber.FAMILY,
    tersoff_family.FAMILY,
    abop_family.FAMILY,
    eam_family.FAMILY,
    eam_family.TABULATED,
    adp_family.FAMILY,
    meam_family.FAMILY,
    linear_models.SNAP_FAMILY,
    linear_models.LINEAR_MODEL_FAMILY,
    network_family.NEURAL_NETWORK_FAMILY,
    network_family.PINN_FAMILY,
    ace_family.FAMILY,
)

#: XML element -> family.
BY_ELEMENT: dict[str, Family] = {f.element: f for f in FAMILIES}


def family(element: str) -> Family | None:
    """The family of the XML element ``element``, or None if it is not on the registry."""
    return BY_ELEMENT.get(element)
