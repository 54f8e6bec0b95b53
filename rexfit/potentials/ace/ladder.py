"""Ladder fitting and upfit of ACE, as pacemaker's ``ladder_step``, ``ladder_type`` and
``initial_potential``: which functions of the target basis join at each step, how many, and
the start values an earlier potential gives.  Plain Python and NumPy (no JAX).

A function is identified by (elements, ns, ls, LS).  Functions marked ``skip`` in the target
file take no part (they are never evaluated, never fitted, never counted).

- Step size (:func:`step_size`, pacemaker's rule): ``step`` (an integer ≥ 1) and
  ``fraction`` (0 < f < 1) give the candidates ``step`` and round(f × current size)
  (Python's round: halves to even); the step is the largest of them and 1, cut to the
  functions still missing.  Neither given: every missing function at once.  Sizes count the
  functions of every block together.
- Growth (:func:`extend`): **each** species block gains up to that many of its missing
  functions (a two-element basis with four blocks may gain four times the step), in ladder
  order: ``body-order`` sorts by (rank, ns, ls, LS, elements), ``power-order`` by
  rank + Σn + Σl, ties kept in file order (a stable sort, as pacemaker's).
- :func:`plan` repeats this from a start (empty, or the functions of an initial potential)
  until the target basis is complete; each entry is one ladder step.
- Upfit (:func:`start_values`): functions present in both the target basis and the initial
  potential take the initial coefficients, the others start at zero (so the start is the
  initial potential itself); radial coefficients take the initial values on the common
  (n, l, k) corner of each bond, zero for k beyond the initial nradbase in the initial's
  (n, l) rows (the initial radial functions are unchanged), and the target's values elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rexfit.potentials.ace.files import BBasis, bond_key

#: The ladder orders (pacemaker's ``ladder_type`` body_order and power_order).
ORDERS = ("body-order", "power-order")


def function_key(f) -> tuple:
    """What identifies a function across files: (elements, ns, ls, LS)."""
    return (tuple(f.elements), tuple(f.ns), tuple(f.ls), tuple(f.LS))


def order_key(f, order: str):
    """The sort key of function ``f`` in ladder ``order``."""
    if order == "power-order":
        return len(f.ns) + sum(f.ns) + sum(f.ls)
    if order == "body-order":
        return (len(f.ns), tuple(f.ns), tuple(f.ls), tuple(f.LS), tuple(f.elements))
    raise ValueError(f"unknown ladder order {order!r} (known: {', '.join(ORDERS)})")


def step_size(step: int | None, fraction: float | None, current: int, final: int) -> int:
    """Functions to add when the basis has ``current`` of ``final`` functions."""
    if step is None and fraction is None:
        discrete = final - current
    else:
        discrete = int(step or 0)
    part = int(round(float(fraction or 0.0) * current))
    return min(max(discrete, part, 1), final - current)


def _candidates(functions) -> list[int]:
    """Indices of the functions of a block that can join (not skipped)."""
    return [j for j, f in enumerate(functions) if not f.skip]


def size(blocks, active: dict) -> int:
    """Functions in the basis ``active`` ({block name: frozenset of row indices})."""
    return sum(len(active.get(name, ())) for name, _ in blocks)


def extend(blocks, active: dict, order: str, count: int) -> dict:
    """``active`` with up to ``count`` more functions in each block, first in ladder order.
    ``blocks``: ((name, functions), ...) of the target basis (functions with ``elements``,
    ``ns``, ``ls``, ``LS``, ``skip``)."""
    out = {}
    for name, functions in blocks:
        have = active.get(name, frozenset())
        missing = [j for j in _candidates(functions) if j not in have]
        missing.sort(key=lambda j: order_key(functions[j], order))  # stable: file order
        out[name] = frozenset(have) | frozenset(missing[:max(count, 0)])
    return out


def plan(blocks, start: dict, step: int | None, fraction: float | None,
         order: str) -> list[dict]:
    """The basis of every ladder step from ``start`` ({block: frozenset of rows}) to the
    whole target (non-skipped functions of ``blocks``); empty when ``start`` is complete."""
    final = sum(len(_candidates(functions)) for _, functions in blocks)
    current = {name: frozenset(start.get(name, ())) for name, _ in blocks}
    steps = []
    while True:
        count = step_size(step, fraction, size(blocks, current), final)
        if count <= 0:
            break
        grown = extend(blocks, current, order, count)
        if grown == current:
            break
        steps.append(grown)
        current = grown
    return steps


def restrict(basis: BBasis, active: dict) -> BBasis:
    """``basis`` with only the functions in ``active`` ({block name: rows}; skipped
    functions are kept, they are not evaluated anyway); blocks and bonds unchanged."""
    blocks = []
    for b in basis.blocks:
        rows = active.get(b.name, frozenset())
        blocks.append(replace(b, functions=tuple(f for j, f in enumerate(b.functions)
                                                 if f.skip or j in rows)))
    return replace(basis, blocks=tuple(blocks))


@dataclass(frozen=True)
class Start:
    """Start values of an upfit: ``crad`` {bond key: (nradmax, lmax + 1, nradbase)}, ``c``
    {block: (functions, ndensity)} for the target basis, and ``present`` {block: frozenset of
    the rows the initial potential has}."""

    crad: dict
    c: dict
    present: dict


def start_values(target: BBasis, crad: dict, c: dict, initial: BBasis) -> Start:
    """The target basis's start from the ``initial`` potential (see the module docstring);
    ``crad``, ``c``: the target's own values (shaped, as :meth:`ACE.from_bbasis` gives them).
    Raises ValueError (with what to change) when the initial potential cannot be a start:
    an element, block or function the target does not have, or another number of densities."""
    missing_elements = sorted(set(initial.elements) - set(target.elements))
    if missing_elements:
        raise ValueError(f"elements {', '.join(missing_elements)} of the initial potential are "
                         "not in the target basis")
    out_c, present = {}, {}
    for b in target.blocks:
        if b.name not in c:
            continue
        rows = np.zeros(np.shape(c[b.name]))
        have = set()
        old = initial.block(*b.elements)
        old_functions = {function_key(f): f for f in (old.functions if old else ())}
        for j, f in enumerate(b.functions):
            g = old_functions.pop(function_key(f), None)
            if g is None or f.skip:
                continue
            if len(g.c) != rows.shape[1]:
                raise ValueError(f"block {b.name}: function {_describe(f)} has {len(g.c)} "
                                 f"coefficients in the initial potential and {rows.shape[1]} "
                                 "densities in the target basis (give both the same ndensity)")
            rows[j] = g.c
            have.add(j)
        extra = [f for f in old_functions.values() if not f.skip]
        if extra:
            raise ValueError(f"block {b.name}: {len(extra)} function(s) of the initial potential "
                             f"are not in the target basis (first: {_describe(extra[0])}); the "
                             "target basis must contain the initial one")
        out_c[b.name] = rows
        present[b.name] = frozenset(have)
    for b in initial.blocks:
        if b.functions and target.block(*b.elements) is None:
            raise ValueError(f"block {b.name} of the initial potential is not in the target "
                             "basis")
    out_crad = {k: np.array(v, dtype=float, copy=True) for k, v in crad.items()}
    for b in initial.blocks:
        if len(b.elements) > 2 or b.radcoefficients is None:
            continue
        key = bond_key(b.elements[0], b.elements[-1])
        if key not in out_crad:
            continue
        old = np.asarray(b.radcoefficients, dtype=float).reshape(b.nradmax, b.lmax + 1,
                                                                 b.nradbase)
        new = out_crad[key]
        n, l, k = (min(x, y) for x, y in zip(old.shape, new.shape))
        new[:n, :l, :] = 0.0
        new[:n, :l, :k] = old[:n, :l, :k]
    return Start(out_crad, out_c, present)


def _describe(f) -> str:
    return (f"type '{' '.join(f.elements)}' nr {list(f.ns)} nl {list(f.ls)}"
            + (f" lint {list(f.LS)}" if f.LS else ""))


@dataclass(frozen=True)
class LadderStep:
    """One ladder step: ``functions`` in the basis after it, ``added`` by it, and ``active``:
    the parameter paths (inside the potential's params tree) of the coefficients in the basis."""

    functions: int
    added: int
    active: frozenset


@dataclass(frozen=True)
class Ladder:
    """A potential's ladder: its ``steps``, ``total`` functions of the target basis, the
    coefficient paths it switches (``managed``: every function's) and each step's basis
    (``bases``, {block: rows}) for its potential file."""

    steps: tuple
    total: int
    managed: frozenset
    bases: tuple

    #: the extension of the step files (:meth:`text`)
    suffix = "yaml"

    def text(self, term, params, k: int, header: str) -> str:
        """The B-basis YAML of step ``k`` (0-based): the potential ``term`` (an ACE) at
        ``params`` with the functions of that step only, ``header`` as a comment line."""
        from rexfit.potentials.ace.files import bbasis_text

        basis = restrict(term.to_bbasis(None, params), self.bases[k])
        return f"# {header}\n" + bbasis_text(basis)


def coefficient_paths(name: str, rows, ndensity: int) -> list[tuple]:
    """The params paths ("c", block, flat index) of the coefficients of ``rows`` of a block
    (densities fastest, as the model's DOFs)."""
    return [("c", name, j * ndensity + p) for j in sorted(rows) for p in range(ndensity)]


def build_ladder(blocks, ndensity: dict, start: dict, step, fraction, order) -> Ladder:
    """The :class:`Ladder` of a target basis ``blocks`` ((name, functions), ...) with
    ``ndensity`` {block: densities} from ``start`` ({block: rows})."""
    bases = plan(blocks, start, step, fraction, order)
    steps, before = [], size(blocks, start)
    for basis in bases:
        paths = frozenset(p for name, _ in blocks
                          for p in coefficient_paths(name, basis[name], ndensity[name]))
        now = size(blocks, basis)
        steps.append(LadderStep(now, now - before, paths))
        before = now
    managed = frozenset(p for name, functions in blocks
                        for p in coefficient_paths(name, _candidates(functions),
                                                   ndensity[name]))
    total = sum(len(_candidates(functions)) for _, functions in blocks)
    return Ladder(tuple(steps), total, managed, tuple(bases))
