"""The record that declares one descriptor, and the records of rexfit's descriptors: how its XML
element (inside ``<neural-network>``, ``<pinn>`` or ``<linear-model>``) becomes a typed, frozen
settings spec, how that spec and the model's elements become the descriptor object, and the
name under which model files store it.  :mod:`rexfit.descriptors.registry` lists them.

Importing this module imports no JAX: the descriptor classes are imported inside ``build`` and
``load_class``.  ``build_spec`` reads the XML through the reader of
:mod:`rexfit.potentials.family` (``attribute``, ``integer``, ``numbers``, ``positive``,
``error``); it records errors with their origin and returns None when the input was unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Descriptor:
    """One descriptor.

    element: its XML element (``acsf``).  class_name: the name of its class, under which a
    model file stores its settings (``ACSF``).
    build_spec(reader, node) → its typed, frozen settings spec, or None after errors.
    build(spec, elements, weights, radii) → the descriptor object (``cutoff``, ``n_features``,
    ``features``); ``elements`` the model's element symbols (species 0, 1, ...), ``weights``
    and ``radii`` from their ``<element>`` entries, in that order (radius 0 where none given).
    load_class() → the descriptor class (model files rebuild it from its dataclass fields).
    linear_model: usable in ``<linear-model>`` (and in networks, as every descriptor).
    needs_radius: every ``<element>`` of a model on it needs a ``radius``.
    """

    element: str
    class_name: str
    build_spec: Callable
    build: Callable
    load_class: Callable
    linear_model: bool = False
    needs_radius: bool = False


def _required(reader, node, value, name: str):
    if value is None and node.get(name) is None:
        reader.error(f"<{node.tag}> needs the attribute {name}", node.origin)
    return value


# ------------------------------------------------------------------ symmetry functions


@dataclass(frozen=True)
class SymmetryFunctionSpec:
    """``<acsf>``/``<wacsf>``: cutoff (Å), cutoff function, and the expanded G2 (η, r_s), G4 and
    G5 (η, ζ, λ, r_s) terms: every combination of the listed values."""

    rcut: float
    cutoff_function: str
    g2: tuple[tuple[float, ...], ...]
    g4: tuple[tuple[float, ...], ...]
    g5: tuple[tuple[float, ...], ...]


def _symmetry_spec(reader, node):
    rcut = _required(reader, node, reader.attribute(node, "rcut"), "rcut")
    reader.positive(rcut, f"<{node.tag}> rcut", node.origin)
    terms: dict[str, list] = {"g2": [], "g4": [], "g5": []}
    for c in node.children:
        if c.tag not in terms:
            continue
        etas, rss = reader.numbers(c, "eta"), reader.numbers(c, "rs", "0")
        if c.tag == "g2":
            terms["g2"] += [(eta, rs) for eta in etas for rs in rss]
            continue
        zetas, lambdas = reader.numbers(c, "zeta"), reader.numbers(c, "lambda")
        if not zetas or not lambdas:
            reader.error(f"<{c.tag}> needs zeta and lambda", c.origin)
        for z in zetas:
            if z < 1 or (c.tag == "g5" and z != int(z)):
                reader.error(f"<{c.tag}> zeta must be ≥ 1" + (" and an integer" if c.tag == "g5"
                                                              else "") + f", got {z:g}",
                             c.origin)
        for lam in lambdas:
            if abs(lam) > 1:
                reader.error(f"<{c.tag}> lambda must lie in [−1, 1], got {lam:g}", c.origin)
        terms[c.tag] += [(eta, z, lam, rs) for eta in etas for z in zetas for lam in lambdas
                         for rs in rss]
    if rcut is None:
        return None
    return SymmetryFunctionSpec(float(rcut), node.get("cutoff-function", "cosine"),
                                *(tuple(tuple(float(v) for v in t) for t in terms[k])
                                  for k in ("g2", "g4", "g5")))


def _acsf(spec: SymmetryFunctionSpec, elements, weights, radii):
    from rexfit.descriptors.acsf import ACSF

    return ACSF(spec.rcut, cutoff_function=spec.cutoff_function, n_elements=len(elements),
                g2=spec.g2, g4=spec.g4, g5=spec.g5)


def _wacsf(spec: SymmetryFunctionSpec, elements, weights, radii):
    from rexfit.descriptors.acsf import WACSF

    return WACSF(spec.rcut, cutoff_function=spec.cutoff_function, weights=tuple(weights),
                 g2=spec.g2, g4=spec.g4, g5=spec.g5)


def _acsf_class():
    from rexfit.descriptors.acsf import ACSF

    return ACSF


def _wacsf_class():
    from rexfit.descriptors.acsf import WACSF

    return WACSF


ACSF_RECORD = Descriptor("acsf", "ACSF", _symmetry_spec, _acsf, _acsf_class)
WACSF_RECORD = Descriptor("wacsf", "WACSF", _symmetry_spec, _wacsf, _wacsf_class)


# ------------------------------------------------------------------ LSP


@dataclass(frozen=True)
class LSPSpec:
    """``<lsp>``: radial centres rn (Å), width sigma (Å), cutoff rcut and its range d (Å), and
    the angular orders ls."""

    rn: tuple[float, ...]
    sigma: float
    rcut: float
    d: float
    ls: tuple[int, ...]


def _lsp_spec(reader, node):
    values = {k: _required(reader, node, reader.attribute(node, k), k)
              for k in ("sigma", "rcut", "d")}
    rn = reader.numbers(node, "rn")
    ls = tuple(int(x) for x in reader.numbers(node, "ls", "0 1 2 4 6"))
    if None in values.values():
        return None
    return LSPSpec(tuple(rn), values["sigma"], values["rcut"], values["d"], ls)


def _lsp(spec: LSPSpec, elements, weights, radii):
    from rexfit.descriptors.lsp import LSP

    return LSP(spec.rn, float(spec.sigma), float(spec.rcut), float(spec.d), spec.ls,
               tuple(weights))


def _lsp_class():
    from rexfit.descriptors.lsp import LSP

    return LSP


LSP_RECORD = Descriptor("lsp", "LSP", _lsp_spec, _lsp, _lsp_class)


# ------------------------------------------------------------------ power spectrum


@dataclass(frozen=True)
class PowerSpectrumSpec:
    """``<power-spectrum>``: radial basis size nmax, angular order lmax, cutoff rcut (Å) and
    Gaussian width parameter alpha (1/Å²)."""

    nmax: int
    lmax: int
    rcut: float
    alpha: float


def _power_spectrum_spec(reader, node):
    nmax = _required(reader, node, reader.integer(node, "nmax"), "nmax")
    lmax = _required(reader, node, reader.integer(node, "lmax"), "lmax")
    rcut = _required(reader, node, reader.attribute(node, "rcut"), "rcut")
    alpha = reader.attribute(node, "alpha", 2.0)
    if None in (nmax, lmax, rcut, alpha):
        return None
    return PowerSpectrumSpec(nmax, lmax, rcut, alpha)


def _power_spectrum(spec: PowerSpectrumSpec, elements, weights, radii):
    from rexfit.descriptors.power_spectrum import PowerSpectrum

    return PowerSpectrum(int(spec.nmax), int(spec.lmax), float(spec.rcut), tuple(weights),
                         alpha=float(spec.alpha))


def _power_spectrum_class():
    from rexfit.descriptors.power_spectrum import PowerSpectrum

    return PowerSpectrum


POWER_SPECTRUM_RECORD = Descriptor("power-spectrum", "PowerSpectrum", _power_spectrum_spec,
                                   _power_spectrum, _power_spectrum_class, linear_model=True)


# ------------------------------------------------------------------ embedded-atom density


@dataclass(frozen=True)
class EADSpec:
    """``<ead>``: angular order lmax, Gaussian widths eta (1/Å²) and centres rs (Å), cutoff
    rcut (Å)."""

    lmax: int
    eta: tuple[float, ...]
    rs: tuple[float, ...]
    rcut: float


def _ead_spec(reader, node):
    lmax = _required(reader, node, reader.integer(node, "lmax"), "lmax")
    for name in ("eta", "rs"):
        _required(reader, node, None, name)
    eta, rs = reader.numbers(node, "eta"), reader.numbers(node, "rs")
    rcut = _required(reader, node, reader.attribute(node, "rcut"), "rcut")
    if lmax is None or rcut is None:
        return None
    return EADSpec(lmax, tuple(eta), tuple(rs), rcut)


def _ead(spec: EADSpec, elements, weights, radii):
    from rexfit.descriptors.ead import EAD

    return EAD(int(spec.lmax), spec.eta, spec.rs, float(spec.rcut), tuple(weights))


def _ead_class():
    from rexfit.descriptors.ead import EAD

    return EAD


EAD_RECORD = Descriptor("ead", "EAD", _ead_spec, _ead, _ead_class, linear_model=True)


# ------------------------------------------------------------------ bispectrum


@dataclass(frozen=True)
class BispectrumSpec:
    """``<bispectrum>``: the SNAP settings twojmax, rcutfac, rfac0, rmin0 (Å), switchflag and
    bzeroflag (the element radii come from ``<element radius=>``)."""

    twojmax: int
    rcutfac: float
    rfac0: float
    rmin0: float
    switchflag: int
    bzeroflag: int


def _bispectrum_spec(reader, node):
    twojmax = _required(reader, node, reader.integer(node, "twojmax"), "twojmax")
    rcutfac = _required(reader, node, reader.attribute(node, "rcutfac"), "rcutfac")
    rest = (reader.attribute(node, "rfac0", 0.99363), reader.attribute(node, "rmin0", 0.0),
            reader.integer(node, "switchflag", 1), reader.integer(node, "bzeroflag", 1))
    if None in (twojmax, rcutfac, *rest):
        return None
    return BispectrumSpec(twojmax, rcutfac, *rest)


def _bispectrum(spec: BispectrumSpec, elements, weights, radii):
    from rexfit.descriptors.bispectrum import Bispectrum

    return Bispectrum(int(spec.twojmax), float(spec.rcutfac), tuple(radii), tuple(weights),
                      rfac0=float(spec.rfac0), rmin0=float(spec.rmin0),
                      switchflag=bool(spec.switchflag), bzeroflag=bool(spec.bzeroflag))


def _bispectrum_class():
    from rexfit.descriptors.bispectrum import Bispectrum

    return Bispectrum


BISPECTRUM_RECORD = Descriptor("bispectrum", "Bispectrum", _bispectrum_spec, _bispectrum,
                               _bispectrum_class, needs_radius=True)
