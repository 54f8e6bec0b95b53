"""pacemaker's B-basis potential YAML (``output_potential.yaml``, as pyace's
``BBasisConfiguration.save`` writes it): read into frozen dataclasses, written back.

Layout: ``global: {DeltaSplineBins}``, optional ``metadata`` (strings), and ``species``: a list
of blocks named by their elements (``speciesblock: Al`` or ``Al Cu`` …; the first is the
central element).  A one-element block holds the element's embedding (``ndensityi``,
``npoti``, ``parameters`` = [w_1, m_1, …], ``rho_core_cut``, ``drho_core_cut``); one- and
two-element blocks hold the bond's radial setting (``radbase``, ``radparameters``, ``rcutij``,
``dcutij``, ``r_in``, ``delta_in``, ``inner_cutoff_type``, ``core-repulsion`` = [pre, λ],
``nradbaseij``, ``nradmaxi``, ``lmaxi``, ``radcoefficients`` [n][l][k] (older files: flat,
k slowest, then n, then l; written back three-dimensional); when absent: no core
repulsion, r_in = δ_in = 0 and ``inner_cutoff_type`` ``density``, as older files mean it);
every block lists its
functions under ``nbody``: ``{type: "Al Al Cu", nr: […], nl: […], lint: […], c: […]}`` (type:
central element then one element per factor; c: one coefficient per density).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class BFunction:
    """One B-basis function: ``elements`` (central first, then one per factor), ``ns``
    (1-based radial indices), ``ls``, ``LS`` (intermediate momenta, rank − 2 of them for
    rank > 2), ``c`` (one coefficient per density; a file may give a single number), ``skip``
    (listed but not evaluated, as the file's ``skip: true``)."""

    elements: tuple[str, ...]
    ns: tuple[int, ...]
    ls: tuple[int, ...]
    LS: tuple[int, ...]
    c: tuple[float, ...]
    skip: bool = False

    @property
    def rank(self) -> int:
        return len(self.ns)


@dataclass(frozen=True)
class SpeciesBlock:
    """One ``speciesblock``; embedding fields are None unless it names one element, bond
    fields None unless it names one or two."""

    elements: tuple[str, ...]
    functions: tuple[BFunction, ...] = ()
    # embedding
    ndensity: int | None = None
    npot: str | None = None
    fs_parameters: tuple[float, ...] | None = None
    rho_core_cut: float | None = None
    drho_core_cut: float | None = None
    # bond
    nradmax: int | None = None
    lmax: int | None = None
    rcut: float | None = None
    dcut: float | None = None
    cutoff_function: str | None = None
    r_in: float | None = None
    delta_in: float | None = None
    inner_cutoff_type: str | None = None
    nradbase: int | None = None
    radbase: str | None = None
    radparameters: tuple[float, ...] | None = None
    radcoefficients: tuple | None = None  # [n][l][k] nested tuples
    core_repulsion: tuple[float, ...] | None = None

    @property
    def name(self) -> str:
        return " ".join(self.elements)


@dataclass(frozen=True)
class BBasis:
    """A whole B-basis potential file."""

    delta_spline_bins: float
    blocks: tuple[SpeciesBlock, ...]
    metadata: tuple[tuple[str, str], ...] = field(default=())

    @property
    def elements(self) -> tuple[str, ...]:
        """Every element of the file, alphabetical (the evaluator's order)."""
        return tuple(sorted({e for b in self.blocks for e in b.elements}))

    def block(self, *elements: str) -> SpeciesBlock | None:
        """The block named by ``elements``, or None."""
        for b in self.blocks:
            if b.elements == tuple(elements):
                return b
        return None


# (YAML key, field, converter to the dataclass value)
def _nested(v):
    return tuple(_nested(x) for x in v) if isinstance(v, list) else float(v)


_BLOCK_KEYS = (
    ("ndensityi", "ndensity", int),
    ("npoti", "npot", str),
    ("parameters", "fs_parameters", lambda v: tuple(float(x) for x in v)),
    ("rho_core_cut", "rho_core_cut", float),
    ("drho_core_cut", "drho_core_cut", float),
    ("nradmaxi", "nradmax", int),
    ("lmaxi", "lmax", int),
    ("rcutij", "rcut", float),
    ("dcutij", "dcut", float),
    ("NameOfCutoffFunctionij", "cutoff_function", str),
    ("r_in", "r_in", float),
    ("delta_in", "delta_in", float),
    ("inner_cutoff_type", "inner_cutoff_type", str),
    ("nradbaseij", "nradbase", int),
    ("radbase", "radbase", str),
    ("radparameters", "radparameters", lambda v: tuple(float(x) for x in v)),
    ("radcoefficients", "radcoefficients", _nested),
    ("core-repulsion", "core_repulsion", lambda v: tuple(float(x) for x in v)),
)


def _function(entry: dict, path) -> BFunction:
    try:
        elements = tuple(str(entry["type"]).split())
        ns = tuple(int(x) for x in entry["nr"])
        ls = tuple(int(x) for x in entry["nl"])
        LS = tuple(int(x) for x in entry.get("lint", ()))
        c = entry["c"]
        c = tuple(float(x) for x in c) if isinstance(c, list) else (float(c),)
        skip = bool(entry.get("skip", False))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad nbody entry {entry!r}: {exc}") from None
    if len(elements) != len(ns) + 1 or len(ls) != len(ns):
        raise ValueError(f"{path}: nbody entry {entry!r}: type needs one element more than "
                         "nr, and nl as many entries as nr")
    return BFunction(elements, ns, ls, LS, c, skip)


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the test extra
        raise ImportError("ACE potential files need PyYAML: pip install pyyaml") from None
    return yaml


def _unflatten(flat, values, path):
    """[n][l][k] radial coefficients of the old flat layout (k, then n, then l)."""
    import numpy as np

    try:
        shape = (values["nradbase"], values["nradmax"], values["lmax"] + 1)
        array = np.asarray(flat, dtype=np.float64).reshape(shape).transpose(1, 2, 0)
    except (KeyError, ValueError):
        raise ValueError(f"{path}: flat radcoefficients do not match nradbaseij × nradmaxi × "
                         "(lmaxi + 1)") from None
    return _nested(array.tolist())


def read_bbasis(path) -> BBasis:
    """Read a B-basis potential YAML file."""
    data = _yaml().safe_load(Path(path).read_text())
    if not isinstance(data, dict) or "species" not in data:
        raise ValueError(f"{path}: not an ACE B-basis YAML file (no 'species' list)")
    delta = float((data.get("global") or {}).get("DeltaSplineBins", 0.001))
    blocks = []
    for raw in data["species"]:
        values = {"elements": tuple(str(raw["speciesblock"]).split()),
                  "functions": tuple(_function(e, path) for e in raw.get("nbody") or ())}
        for key, name, convert in _BLOCK_KEYS:
            if key in raw and raw[key] is not None:
                values[name] = convert(raw[key])
        crad = values.get("radcoefficients")
        if crad and not isinstance(crad[0], tuple):  # the old flat layout, k slowest
            values["radcoefficients"] = _unflatten(crad, values, path)
        blocks.append(SpeciesBlock(**values))
    metadata = tuple((str(k), str(v)) for k, v in (data.get("metadata") or {}).items())
    return BBasis(delta, tuple(blocks), metadata)


class _Flow(list):
    """A list written in YAML flow style."""


class _FlowMap(dict):
    """A mapping written in YAML flow style."""


def _dumper():
    yaml = _yaml()

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence(
        "tag:yaml.org,2002:seq", v, flow_style=True))
    Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping(
        "tag:yaml.org,2002:map", v.items(), flow_style=True))
    return Dumper


def _plain(v):
    if isinstance(v, tuple):
        return _Flow(_plain(x) for x in v)
    return v


def bbasis_text(basis: BBasis) -> str:
    """The YAML text of ``basis`` (floats written exactly, by their shortest repr)."""
    species = []
    for b in basis.blocks:
        raw = {"speciesblock": b.name}
        for key, name, _ in _BLOCK_KEYS:
            value = getattr(b, name)
            if value is not None:
                raw[key] = _plain(value)
        nbody = []
        for f in b.functions:
            entry = _FlowMap(type=" ".join(f.elements), nr=_Flow(f.ns), nl=_Flow(f.ls))
            if f.LS:
                entry["lint"] = _Flow(f.LS)
            entry["c"] = _Flow(f.c)
            if f.skip:
                entry["skip"] = True
            nbody.append(entry)
        raw["nbody"] = nbody
        species.append(raw)
    data = {"global": {"DeltaSplineBins": basis.delta_spline_bins}}
    if basis.metadata:
        data["metadata"] = dict(basis.metadata)
    data["species"] = species
    return _yaml().dump(data, Dumper=_dumper(), sort_keys=False, width=10**6)


def write_bbasis(path, basis: BBasis) -> None:
    """Write ``basis`` as a B-basis potential YAML file that pyace and pacemaker read."""
    Path(path).write_text(bbasis_text(basis))


def with_coefficients(basis: BBasis, crad: dict, c: dict) -> BBasis:
    """``basis`` with new radial coefficients (``crad[bond]``, bond ``"A-B"`` alphabetical,
    arrays (nradmax, lmax + 1, nradbase)) and function coefficients (``c[block name]``,
    arrays (functions, ndensity)); missing keys keep their values."""
    blocks = []
    for b in basis.blocks:
        changes = {}
        if b.radcoefficients is not None and len(b.elements) <= 2:
            key = bond_key(b.elements[0], b.elements[-1])
            if key in crad:
                changes["radcoefficients"] = _nested(_tolist(crad[key]))
        if b.name in c:
            rows = _tolist(c[b.name])
            changes["functions"] = tuple(replace(f, c=tuple(float(x) for x in row))
                                         for f, row in zip(b.functions, rows))
        blocks.append(replace(b, **changes))
    return replace(basis, blocks=tuple(blocks))


def bond_key(a: str, b: str) -> str:
    """The key of the bond of elements a and b in the params tree: ``"Al-Cu"`` (sorted)."""
    return "-".join(sorted((a, b)))


def _tolist(array):
    import numpy as np

    return np.asarray(array, dtype=np.float64).tolist()


__all__ = ["BFunction", "SpeciesBlock", "BBasis", "read_bbasis", "write_bbasis", "bbasis_text",
           "with_coefficients", "bond_key"]
