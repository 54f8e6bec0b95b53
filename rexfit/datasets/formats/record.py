"""The frame record every dataset reader produces, before checks and unit-free finishing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class Frame:
    """One structure as read from a file (rexfit units and signs, not yet checked).

    ``info``: per-frame metadata for selection and weights (str/int/float/bool values, or
    per-atom arrays such as pacemaker's ``w_forces``).
    """

    positions: Any
    cell: Any
    pbc: Any
    symbols: Sequence[str]
    energy: Any
    forces: Any
    stress: Any
    group: Any
    source: str
    what: str                 # how a message names the entry: "frame 3", "row id=4", ...
    index: int                # 0-based position in the file (frame / row / block)
    line: int | None = None   # 1-based line where the entry starts, when known
    virial: Any = field(default=None)
    extra: tuple = ((), ())   # (other info/key-value names, other per-atom array names)
    keys_kind: tuple = (None, None)  # how messages call the two lists (None: no such names)
    info: dict = field(default_factory=dict)
    #: {quantity: {name: value}} of reference data found under other names (REF_energy, ...),
    #: used by the default lookup when the file has no data under the standard names
    alternatives: dict = field(default_factory=dict)
    #: every named value of the frame (columns, outputs, ...) for energy-key/forces-key/
    #: stress-key, in the file's own units (formats read by rexfit's own readers)
    named: dict = field(default_factory=dict)


#: 1 eV/Å³ in GPa (CODATA 2014, as docs/conventions.md).
EV_PER_A3_IN_GPA = 160.21766208
#: 1 kbar (= 0.1 GPa) in eV/Å³, and 1 bar.
KBAR = 0.1 / EV_PER_A3_IN_GPA
BAR = 1e-4 / EV_PER_A3_IN_GPA


def scalar_info(mapping) -> dict:
    """The entries of ``mapping`` usable for selection and weights: str, bool, int and float
    values (NumPy scalars converted), and per-atom weight arrays left as they are."""
    import numbers

    import numpy as np

    out = {}
    for k, v in mapping.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, (str, bool, numbers.Integral, numbers.Real)):
            out[str(k)] = v
    return out
