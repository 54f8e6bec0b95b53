"""The descriptors a model (``<neural-network>``, ``<pinn>``, ``<linear-model>``) can be built
on: one line per descriptor (its record, :class:`rexfit.descriptors.records.Descriptor`,
declares the rest).  The job builder reads a descriptor element, the model builder builds the
descriptor object and the model files store and rebuild it through these records.  Importing
this module imports no JAX."""

from __future__ import annotations

from rexfit.descriptors import records
from rexfit.descriptors.records import Descriptor

DESCRIPTORS: tuple[Descriptor, ...] = (
    records.ACSF_RECORD,
    records.WACSF_RECORD,
    records.LSP_RECORD,
    records.POWER_SPECTRUM_RECORD,
    records.EAD_RECORD,
    records.BISPECTRUM_RECORD,
)

#: XML element -> descriptor record.
BY_ELEMENT: dict[str, Descriptor] = {d.element: d for d in DESCRIPTORS}
#: Class name (as model files store it) -> descriptor record.
BY_CLASS: dict[str, Descriptor] = {d.class_name: d for d in DESCRIPTORS}
#: Descriptor elements usable in ``<linear-model>``.
LINEAR_MODEL: tuple[str, ...] = tuple(d.element for d in DESCRIPTORS if d.linear_model)
