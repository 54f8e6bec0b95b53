"""The potential families on the family registry: one line per family (its module declares the
rest, see :class:`rexfit.potentials.family.Family`).  The job builder, the model builder, the
dataset engine and the exports look a family up here by its XML element instead of switching on
it.  Importing this module imports no JAX.

Families not yet on the registry (SNAP, linear models, neural networks, PINN) still go through
the tables of :mod:`rexfit.job.build` and the switch of
:func:`rexfit.model.potentials.build_potentials`.
"""

from __future__ import annotations

from rexfit.potentials import (
    abop_family,
    adp_family,
    buckingham,
    eam_family,
    lennard_jones,
    meam_family,
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
)

#: XML element -> family.
BY_ELEMENT: dict[str, Family] = {f.element: f for f in FAMILIES}


def family(element: str) -> Family | None:
    """The family of the XML element ``element``, or None if it is not on the registry."""
    return BY_ELEMENT.get(element)
