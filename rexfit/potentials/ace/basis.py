"""A B-basis generated from pacemaker's basis description (the ``potential:`` section of its
input: ``deltaSplineBins``, ``elements``, ``embeddings``, ``bonds``, ``functions``), with the
functions, their order, the radial coefficients (δ-like: crad[n, l, k] = 1 for k = n) and the
function coefficients (zero) that pacemaker starts a fit from.

Description (a dict, as pacemaker's YAML reads): ``embeddings`` and ``bonds`` map ``ALL``,
``UNARY`` (and for bonds ``BINARY``) or an element (``Al``) / a pair (``AlNi``, ``(Al, Ni)``,
both directions) to their settings, later entries overriding earlier ones; ``functions`` maps
``ALL``, ``UNARY`` … ``QUINARY`` or a block (central element first: ``AlNi`` is the block
``Al Ni``) to ``nradmax_by_orders`` and ``lmax_by_orders``, plus an optional
``number_of_functions_per_element``.

Functions of a block (central element μ_0, block elements E): by rank r (up to 6), for every sorted
tuple of r elements of E that together with μ_0 uses all of E, every radial index tuple
(n_t ≤ nradmax_by_orders[r − 1]; tuples equal up to a permutation of identical (μ, n) factors
counted once), and every (ls, LS) of the list :func:`coupled_momenta` gives for the pattern of
identical factors, with every l ≤ lmax_by_orders[r − 1].  The list holds, ls in lexicographic
order (sorted within each group of identical factors, Σl even) and LS in lexicographic order
for each ls, the couplings that are linearly independent of those before them once identical
factors are symmetrised.  As pacemaker's tabulated list, it stops at l = 10, 6, 4, 3, 2 for
ranks 2 to 6 (:data:`LMAX_GENERATED`), whatever ``lmax_by_orders`` asks, and has rank-6
functions only of at most two distinct (element, n) factors.

``number_of_functions_per_element`` N keeps, in every block, the first N × elements / blocks
functions in the order of r + Σn + Σl (stable) and lists them by (r, ns, ls, LS); the radial
sizes of a bond are then those its functions use.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from rexfit.potentials.ace.files import BBasis, BFunction, SpeciesBlock

#: the largest l of the coupled functions generated per rank (pacemaker's tabulated range)
LMAX_GENERATED = {1: 0, 2: 10, 3: 6, 4: 4, 5: 3, 6: 2}
#: the highest rank generated
MAX_RANK = max(LMAX_GENERATED)
#: rank 6: pacemaker's table holds only products of at most two distinct (element, n) factors
MAX_GROUPS_RANK6 = 2
#: the n-ary keywords of ``functions`` (``ALL`` covers every block)
NARY = {"UNARY": 1, "BINARY": 2, "TERNARY": 3, "QUATERNARY": 4, "QUINARY": 5}
EMBEDDING_KEYS = ("npot", "fs_parameters", "ndensity", "rho_core_cut", "drho_core_cut")
BOND_KEYS = ("radbase", "radparameters", "rcut", "dcut", "r_in", "delta_in", "core-repulsion",
             "NameOfCutoffFunction", "inner_cutoff_type")
FUNCTION_KEYS = ("nradmax_by_orders", "lmax_by_orders")
#: defaults of a generated block (as pacemaker writes them)
RHO_CORE_CUT, DRHO_CORE_CUT = 100000.0, 250.0

_ELEMENT = re.compile(r"[A-Z][a-z]?")


class BasisError(ValueError):
    """A basis description that cannot be generated; ``where`` names its section and key
    (e.g. ``("functions", "ALL")``) when the problem is local to one entry."""

    def __init__(self, message: str, where: tuple = ()):
        super().__init__(message)
        self.where = where


# ---------------------------------------------------------------- coupled momenta
def _triangle(a: int, b: int, c: int) -> bool:
    return abs(a - b) <= c <= a + b


def _lint_candidates(ls: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every LS (lexicographic) of the coupling tree of :mod:`.coupling` for ``ls``."""
    r = len(ls)
    if r == 1:
        return [()]
    if r == 2:
        return [()] if ls[0] == ls[1] else []
    if r == 3:
        return [(ls[2],)] if _triangle(ls[0], ls[1], ls[2]) else []
    if r == 4:
        return [(L, L) for L in range(abs(ls[0] - ls[1]), ls[0] + ls[1] + 1)
                if _triangle(ls[2], ls[3], L)]
    if r == 5:
        return [(a, b, ls[4]) for a in range(abs(ls[0] - ls[1]), ls[0] + ls[1] + 1)
                for b in range(abs(ls[2] - ls[3]), ls[2] + ls[3] + 1) if _triangle(a, b, ls[4])]
    if r == 6:  # (l1 l2) → L1, (l3 l4) → L2, (l5 l6) → L3, (L1 L2) → L4 = L3
        return [(a, b, c, c) for a in range(abs(ls[0] - ls[1]), ls[0] + ls[1] + 1)
                for b in range(abs(ls[2] - ls[3]), ls[2] + ls[3] + 1)
                for c in range(abs(ls[4] - ls[5]), ls[4] + ls[5] + 1) if _triangle(a, b, c)]
    raise BasisError(f"ACE functions of rank {r} are not generated (ranks up to {MAX_RANK})")


@lru_cache(maxsize=None)
def _cg_table(l1: int, l2: int, L: int) -> np.ndarray:
    """table[m1 + l1, m2 + l2] = ⟨l1 m1 l2 m2 | L, m1 + m2⟩ (0 where |m1 + m2| > L)."""
    from rexfit.descriptors.bispectrum import clebsch_gordan  # loads JAX: only here

    table = np.zeros((2 * l1 + 1, 2 * l2 + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= L:
                table[m1 + l1, m2 + l2] = clebsch_gordan(2 * l1, 2 * m1, 2 * l2, 2 * m2,
                                                         2 * L, 2 * (m1 + m2))
    return table


def _coupled_terms(ls: tuple[int, ...], LS: tuple[int, ...]):
    """(ms (P, r), c (P,)): the m combinations (Σm = 0) of the coupled product and their
    generalised Clebsch–Gordan coefficients, products along the tree of :mod:`.coupling`
    (vectorised over the m combinations)."""
    from rexfit.potentials.ace.coupling import coupling_tree

    r = len(ls)
    if r == 1:
        return np.zeros((1, 1), np.int64), np.ones(1)
    grids = np.meshgrid(*[np.arange(-l, l + 1) for l in ls], indexing="ij")
    ms = np.stack([g.ravel() for g in grids], axis=1)
    ms = ms[ms.sum(axis=1) == 0]
    momenta = list(ls) + list(LS) + [0]
    m = np.zeros((len(ms), len(momenta)), np.int64)
    m[:, :r] = ms
    c = np.ones(len(ms))
    for a, b, t in coupling_tree(r):
        t = len(momenta) - 1 if t == -1 else t
        m[:, t] = m[:, a] + m[:, b]
        inside = np.abs(m[:, t]) <= momenta[t]
        table = _cg_table(momenta[a], momenta[b], momenta[t])
        ia = np.clip(m[:, a] + momenta[a], 0, 2 * momenta[a])  # rows already 0 may be out
        ib = np.clip(m[:, b] + momenta[b], 0, 2 * momenta[b])
        c = np.where(inside, c * table[ia, ib], 0.0)
    keep = c != 0.0
    return ms[keep], c[keep]


@lru_cache(maxsize=None)
def _independent(pattern: tuple[int, ...], ls: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The LS of ``ls`` whose functions, as polynomials in the A_{lm} with the factors of one
    group of ``pattern`` being the same A (their (l, m) sorted within the group), are linearly
    independent of those of the LS before them."""
    candidates = _lint_candidates(ls)
    if not candidates:
        return ()
    groups = [[t for t, g in enumerate(pattern) if g == k] for k in sorted(set(pattern))]
    keys, coefficients = [], []
    for LS in candidates:
        ms, c = _coupled_terms(ls, LS)
        codes = np.asarray(ls) * (np.asarray(ls) + 1) + ms  # (l, m) → one integer
        for group in groups:
            codes[:, group] = np.sort(codes[:, group], axis=1)
        keys.append(codes)
        coefficients.append(c)
    _, index = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    index = index.ravel()
    rows = np.zeros((len(candidates), index.max() + 1))
    start = 0
    for row, c in zip(rows, coefficients):
        np.add.at(row, index[start:start + len(c)], c)
        start += len(c)
    kept, basis = [], []  # basis: orthonormal rows (Gram–Schmidt in candidate order)
    for LS, row in zip(candidates, rows):
        for b in basis:
            row = row - (row @ b) * b
        norm = float(np.linalg.norm(row))
        if norm > 1e-8:
            basis.append(row / norm)
            kept.append(LS)
    return tuple(kept)


@lru_cache(maxsize=None)
def coupled_momenta(pattern: tuple[int, ...], lmax: int) -> tuple:
    """((ls, LS), …) of a product of factors with ``pattern`` (equal numbers: identical
    (element, n) factors, non-decreasing), every l ≤ ``lmax`` (capped at
    :data:`LMAX_GENERATED`), in the generated order (module docstring)."""
    r = len(pattern)
    if r > MAX_RANK:
        raise BasisError(f"ACE functions of rank {r} are not generated (ranks up to "
                         f"{MAX_RANK})")
    if r == 6 and len(set(pattern)) > MAX_GROUPS_RANK6:
        raise BasisError("rank-6 functions are generated only for products of at most "
                         f"{MAX_GROUPS_RANK6} distinct (element, n) factors, as pacemaker's "
                         "table: lower nradmax-by-orders of rank 6 (or of the block's elements)")
    lmax = min(lmax, LMAX_GENERATED[r])
    out = []
    for ls in itertools.product(range(lmax + 1), repeat=r):
        if sum(ls) % 2 or any(pattern[t] == pattern[t + 1] and ls[t] > ls[t + 1]
                              for t in range(r - 1)):
            continue
        out.extend((ls, LS) for LS in _independent(pattern, ls))
    return tuple(out)


def _pattern(pairs) -> tuple[int, ...]:
    """Equal numbers for equal (element, n) pairs, in order of first appearance."""
    index: dict = {}
    return tuple(index.setdefault(p, len(index)) for p in pairs)


# ---------------------------------------------------------------- description → blocks
def _key_elements(key, section: str, elements) -> tuple[str, ...]:
    found = tuple(key) if isinstance(key, (tuple, list)) else tuple(_ELEMENT.findall(str(key)))
    if not found or (isinstance(key, str) and "".join(found) != re.sub(r"[\s(),]", "", key)):
        raise BasisError(f"{section}: '{key}' is neither a keyword nor elements", (section, key))
    unknown = [e for e in found if e not in elements]
    if unknown:
        raise BasisError(f"{section}: '{key}' names {', '.join(unknown)}, not among the "
                         f"elements ({', '.join(elements)})", (section, key))
    return found


def _species_keys(elements, r: int) -> list[tuple[str, ...]]:
    """Blocks of r elements: each element as central one, then r − 1 others, alphabetical."""
    return [(e,) + rest for e in elements
            for rest in itertools.combinations([x for x in elements if x != e], r - 1)]


def _embeddings(config, elements) -> dict:
    spec = {e: {} for e in elements}
    given = config.get("embeddings") or {}
    for keyword in ("ALL", "UNARY"):
        for e in elements:
            spec[e].update(given.get(keyword, {}))
    for key, value in given.items():
        if key not in ("ALL", "UNARY"):
            found = _key_elements(key, "embeddings", elements)
            if len(found) != 1:
                raise BasisError(f"embeddings: '{key}' must be one element", ("embeddings", key))
            spec[found[0]].update(value)
    return spec


def _bonds(config, elements) -> dict:
    spec = {pair: {} for pair in itertools.product(elements, repeat=2)}
    given = config.get("bonds") or {}
    for keyword, pairs in (("ALL", list(spec)),
                           ("UNARY", [(e, e) for e in elements]),
                           ("BINARY", list(itertools.permutations(elements, 2)))):
        for pair in pairs:
            spec[pair].update(given.get(keyword, {}))
    for key, value in given.items():
        if key not in ("ALL", "UNARY", "BINARY"):
            found = _key_elements(key, "bonds", elements)
            if len(found) not in (1, 2):
                raise BasisError(f"bonds: '{key}' must be one element or a pair", ("bonds", key))
            pair = (found[0], found[-1])
            spec[pair].update(value)
            spec[pair[::-1]].update(value)
    return spec


def _functions(config, elements) -> dict:
    spec: dict = {}
    given = {k: v for k, v in (config.get("functions") or {}).items()
             if k != "number_of_functions_per_element"}
    if "ALL" in given:
        for r in range(1, len(elements) + 1):
            for key in _species_keys(elements, r):
                spec.setdefault(key, {}).update(dict(given["ALL"]))
    for keyword, r in NARY.items():
        if keyword in given and r <= len(elements):
            for key in _species_keys(elements, r):
                spec.setdefault(key, {}).update(given[keyword])
    for key, value in given.items():
        if key != "ALL" and key not in NARY:
            found = _key_elements(key, "functions", elements)
            if len(set(found)) != len(found) or list(found[1:]) != sorted(found[1:]):
                raise BasisError(f"functions: block '{key}' must name its central element, "
                                 "then the others once each in alphabetical order",
                                 ("functions", key))
            spec.setdefault(found, {}).update(value)
    for key, value in spec.items():
        missing = [k for k in FUNCTION_KEYS if k not in value]
        if missing:
            raise BasisError(f"functions: block {' '.join(key)} has no {' and '.join(missing)}",
                             ("functions",))
        n = value["nradmax_by_orders"] = _counts(value["nradmax_by_orders"],
                                                 "nradmax_by_orders", key)
        l = value["lmax_by_orders"] = _counts(value["lmax_by_orders"], "lmax_by_orders", key)
        if not n or len(n) != len(l):
            raise BasisError(f"functions: block {' '.join(key)}: nradmax_by_orders and "
                             "lmax_by_orders need one entry per rank each", ("functions",))
        if len(n) > MAX_RANK:
            raise BasisError(f"functions: block {' '.join(key)}: rank {len(n)} is not "
                             f"generated (ranks up to {MAX_RANK})", ("functions",))
        if len(n) == 6 and n[5] * len(set(key)) > MAX_GROUPS_RANK6:
            raise BasisError(f"functions: block {' '.join(key)}: rank 6 is generated only for "
                             f"products of at most {MAX_GROUPS_RANK6} distinct (element, n) "
                             "factors, as pacemaker's table: nradmax_by_orders[6] × elements "
                             f"of the block must be at most {MAX_GROUPS_RANK6}", ("functions",))
    return spec


def _counts(value, name: str, key) -> tuple[int, ...]:
    """Non-negative whole numbers (one per rank)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        out = tuple(int(x) for x in values)
        if any(x < 0 or x != float(y) for x, y in zip(out, values)):
            raise ValueError
    except (TypeError, ValueError):
        raise BasisError(f"functions: block {' '.join(key)}: {name} must be whole numbers "
                         f"≥ 0, not {value!r}", ("functions",)) from None
    return out


def _bonds_of(key: tuple[str, ...]):
    if len(key) == 1:
        return [(key[0], key[0])]
    return [p for e in key[1:] for p in ((key[0], e), (e, key[0]))]


def _sized_bonds(bonds: dict, functions: dict) -> dict:
    """Each bond's settings with nradbase, nradmax, lmax: the largest the blocks ask."""
    sized = {pair: dict(value) for pair, value in bonds.items()}
    for key, value in functions.items():
        nradbase = value["nradmax_by_orders"][0]
        nradmax = max(value["nradmax_by_orders"][1:], default=0)
        lmax = max(value["lmax_by_orders"])
        for pair in _bonds_of(key):
            if not bonds[pair]:
                raise BasisError(f"bonds: no settings for the bond {pair[0]}-{pair[1]} (block "
                                 f"{' '.join(key)} needs it)", ("bonds",))
            bond = sized[pair]
            for name, size in (("nradbase", nradbase), ("nradmax", nradmax), ("lmax", lmax)):
                bond[name] = max(bond.get(name, 0), size)
    return sized


def _delta_crad(nradmax: int, lmax: int, nradbase: int) -> tuple:
    crad = np.zeros((nradmax, lmax + 1, nradbase))
    for n in range(min(nradmax, nradbase)):
        crad[n, :, n] = 1.0
    return tuple(tuple(tuple(float(x) for x in row) for row in nl) for nl in crad)


def _block_fields(key, emb: dict, bond: dict | None) -> dict:
    """The embedding (unary block) and bond (one- and two-element blocks) fields."""
    fields: dict = {}
    if len(key) == 1:
        for name in ("npot", "fs_parameters", "ndensity"):
            if name not in emb:
                raise BasisError(f"embeddings: element {key[0]} has no {name} (give it for ALL "
                                 f"or {key[0]})", ("embeddings",))
        with _settings("embeddings", key):
            fields.update(npot=str(emb["npot"]),
                          fs_parameters=_floats(emb["fs_parameters"]),
                          ndensity=_whole(emb["ndensity"]),
                          rho_core_cut=float(emb.get("rho_core_cut", RHO_CORE_CUT)),
                          drho_core_cut=float(emb.get("drho_core_cut", DRHO_CORE_CUT)))
    if bond is not None:
        for name in ("radbase", "radparameters", "rcut", "dcut"):
            if name not in bond:
                raise BasisError(f"bonds: the bond {key[0]}-{key[-1]} has no {name} (give it "
                                 "for ALL or for a keyword or pair that covers it)", ("bonds",))
        with _settings("bonds", key):
            fields.update(
                rcut=float(bond["rcut"]), dcut=float(bond["dcut"]),
                cutoff_function=str(bond.get("NameOfCutoffFunction", "")),
                r_in=float(bond.get("r_in", 0.0)), delta_in=float(bond.get("delta_in", 0.0)),
                inner_cutoff_type=str(bond.get("inner_cutoff_type", "distance")),
                radbase=str(bond["radbase"]), radparameters=_floats(bond["radparameters"]),
                core_repulsion=_floats(bond.get("core-repulsion", (0.0, 0.0))),
                nradbase=int(bond["nradbase"]), nradmax=int(bond["nradmax"]),
                lmax=int(bond["lmax"]))
    return fields


class _settings:
    """Turns a bad number among a block's settings into a :class:`BasisError`."""

    def __init__(self, section: str, key):
        self.section, self.key = section, key

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, (TypeError, ValueError)) \
                and not issubclass(kind, BasisError):
            what = "element" if self.section == "embeddings" else "block"
            raise BasisError(f"{self.section}: {what} {' '.join(self.key)}: a setting is not a "
                             f"number of the right kind ({exc})", (self.section,)) from None
        return False


def _floats(value) -> tuple[float, ...]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(float(x) for x in values)


def _whole(value) -> int:
    if isinstance(value, bool) or float(value) != int(float(value)) or int(float(value)) < 1:
        raise ValueError(f"ndensity must be a whole number ≥ 1, not {value!r}")
    return int(float(value))


def _block_functions(key, value, ndensity: int) -> list[BFunction]:
    central = key[0]
    elms = sorted(set(key))
    out, seen = [], set()
    for rank, (nmax, lmax) in enumerate(zip(value["nradmax_by_orders"],
                                            value["lmax_by_orders"]), start=1):
        for mus in itertools.combinations_with_replacement(elms, rank):
            if len({central, *mus}) != len(elms):
                continue
            for ns in itertools.product(range(1, int(nmax) + 1), repeat=rank):
                pairs = tuple(sorted(zip(mus, ns)))
                if pairs in seen:
                    continue
                seen.add(pairs)
                for ls, LS in coupled_momenta(_pattern(pairs), int(lmax)):
                    out.append(BFunction((central,) + mus, ns, ls, LS, (0.0,) * ndensity))
    return out


def _radial_sizes(blocks: list[SpeciesBlock]) -> dict:
    """(nradbase, nradmax, lmax) each ordered bond's functions use, over every block, made
    symmetric in the bond's two elements."""
    sizes: dict = {}
    for b in blocks:
        for f in b.functions:
            for mu, n, l in zip(f.elements[1:], f.ns, f.ls):
                s = sizes.setdefault((f.elements[0], mu), [0, 0, 0])
                s[0 if f.rank == 1 else 1] = max(s[0 if f.rank == 1 else 1], n)
                s[2] = max(s[2], l)
    for (a, c), s in list(sizes.items()):
        other = sizes.setdefault((c, a), [0, 0, 0])
        s[:] = other[:] = [max(x, y) for x, y in zip(s, other)]
    return sizes


def _own_sizes(block: SpeciesBlock) -> dict:
    """(nradbase, nradmax, lmax) over all factors of ``block``'s functions, whatever their
    bond, as the block's own radial sizes after truncation."""
    nradbase = max((max(f.ns) for f in block.functions if f.rank == 1), default=0)
    nradmax = max((max(f.ns) for f in block.functions if f.rank > 1), default=0)
    lmax = max((max(f.ls) for f in block.functions), default=0)
    return {(block.elements[0], block.elements[-1]): (nradbase, nradmax, lmax)}


def _resized(block: SpeciesBlock, sizes: dict, grow: bool = True) -> SpeciesBlock:
    """``block`` with its radial sizes raised to (or, ``grow`` False, set to) ``sizes`` of its
    bond and δ-like radial coefficients of that shape; blocks of three or more elements have
    no radial part."""
    from dataclasses import replace

    if len(block.elements) > 2:
        return block
    nradbase, nradmax, lmax = sizes.get((block.elements[0], block.elements[-1]), (0, 0, 0))
    if grow:
        nradbase, nradmax, lmax = (max(nradbase, block.nradbase), max(nradmax, block.nradmax),
                                   max(lmax, block.lmax))
    return replace(block, nradbase=nradbase, nradmax=nradmax, lmax=lmax,
                   radcoefficients=_delta_crad(nradmax, lmax, nradbase))


def _body_order(f: BFunction):
    return (f.rank, f.ns, f.ls, f.LS, f.elements)


def _power_order(f: BFunction):
    return f.rank + sum(f.ns) + sum(f.ls)


def _resolve(config: Mapping):
    """(elements, blocks [(key, function settings, block fields, ndensity)], functions per
    block after truncation or None): everything but the functions, every check."""
    if not isinstance(config, Mapping):
        raise BasisError("the basis description must be a mapping (elements, embeddings, "
                         "bonds, functions)")
    unknown = sorted(set(config) - {"deltaSplineBins", "elements", "embeddings", "bonds",
                                    "functions"})
    if unknown:
        raise BasisError(f"unknown key(s) {', '.join(map(str, unknown))} (known: "
                         "deltaSplineBins, elements, embeddings, bonds, functions)", (unknown[0],))
    given = config.get("elements")
    if isinstance(given, str):
        given = given.replace(",", " ").split()
    if not given or not isinstance(given, (list, tuple)):
        raise BasisError("elements: give a list of elements", ("elements",))
    elements = tuple(sorted(set(str(e) for e in given)))
    for section, known in (("embeddings", EMBEDDING_KEYS), ("bonds", BOND_KEYS),
                           ("functions", FUNCTION_KEYS)):
        given = config.get(section) or {}
        if not isinstance(given, Mapping):
            raise BasisError(f"{section}: expected a mapping of keywords or elements to "
                             "settings", (section,))
        for key, value in given.items():
            if section == "functions" and key == "number_of_functions_per_element":
                continue
            if not isinstance(value, Mapping):
                raise BasisError(f"{section}: '{key}' needs a mapping of settings", (section, key))
            bad = sorted(set(value) - set(known))
            if bad:
                raise BasisError(f"{section}: '{key}': unknown setting(s) {', '.join(bad)} "
                                 f"(known: {', '.join(known)})", (section, key))
    embeddings = _embeddings(config, elements)
    functions = _functions(config, elements)
    bonds = _sized_bonds(_bonds(config, elements), functions)
    for e in elements:
        if (e,) not in functions:
            raise BasisError(f"functions: no block for element {e} (its embedding lives in the "
                             f"block {e}: give ALL, UNARY or {e})", ("functions",))
    blocks = []
    for key, value in functions.items():
        bond = bonds[key[0], key[-1]] if len(key) <= 2 else None
        fields = _block_fields(key, embeddings[key[0]], bond)
        blocks.append([key, value, fields])
    ndensity = {key[0]: fields["ndensity"] for key, _, fields in blocks if len(key) == 1}
    blocks = [(key, value, fields, ndensity[key[0]]) for key, value, fields in blocks]
    inner = {f["inner_cutoff_type"] for _, _, f, _ in blocks if "inner_cutoff_type" in f}
    if len(inner) > 1:
        raise BasisError(f"bonds: inner_cutoff_type must be the same for every bond, not "
                         f"{' and '.join(sorted(inner))}", ("bonds",))
    total = (config.get("functions") or {}).get("number_of_functions_per_element")
    step = None
    if total is not None:
        try:
            step = int(total) * len(elements) // len(blocks)
        except (TypeError, ValueError):
            raise BasisError(f"functions: number_of_functions_per_element: '{total}' is not a "
                             "whole number", ("functions", "number_of_functions_per_element"))
        if step < 1:
            raise BasisError(f"functions: number_of_functions_per_element = {total} leaves no "
                             f"function in the {len(blocks)} blocks of {len(elements)} "
                             "elements", ("functions", "number_of_functions_per_element"))
    return elements, blocks, step


def check_description(config: Mapping) -> tuple[str, ...]:
    """The elements of the basis description ``config``; :class:`BasisError` for anything
    :func:`generate_basis` would refuse (the functions themselves are not generated)."""
    return _resolve(config)[0]


def generate_basis(config: Mapping) -> BBasis:
    """The B-basis pacemaker starts from for the basis description ``config`` (module
    docstring); :class:`BasisError` when it cannot be generated."""
    from dataclasses import replace

    _, resolved, step = _resolve(config)
    blocks = [SpeciesBlock(key, tuple(_block_functions(key, value, ndensity)), **fields)
              for key, value, fields, ndensity in resolved]
    sizes = _radial_sizes(blocks)
    blocks = [_resized(b, sizes) for b in blocks]
    if step is not None:
        trimmed = []
        for b in blocks:
            kept = sorted(sorted(b.functions, key=_power_order)[:step], key=_body_order)
            trimmed.append(replace(b, functions=tuple(kept)))
        trimmed = [_resized(b, _own_sizes(b), grow=False) for b in trimmed]
        sizes = _radial_sizes(trimmed)
        blocks = [_resized(b, sizes) for b in trimmed]
    delta = float(config.get("deltaSplineBins", 0.001))
    return BBasis(delta, tuple(blocks))


__all__ = ["generate_basis", "check_description", "coupled_momenta", "BasisError",
           "LMAX_GENERATED", "MAX_RANK"]
