"""Which structures of a dataset file a ``<file>`` keeps: ASE's index syntax, groups, info-key
patterns (``index=``, ``group=``, ``select=``); parsed, never evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rexfit.datasets.formats.record import Frame
from rexfit.errors import InputError

#: Info keys a selection by group reads when no ``group_from`` is given, in this order.
SELECT_GROUP_KEYS = ("config_type", "group")


@dataclass(frozen=True)
class Picks:
    """What a <file> keeps: index, groups, info conditions (parsed, never evaluated)."""

    index: Any = None                      # slice or int (ASE index), or None
    index_text: str = ""
    groups: tuple[str, ...] = ()
    conditions: tuple[tuple[str, bool, tuple[str, ...]], ...] = ()  # (key, negate, patterns)
    select_text: str = ""

    @property
    def any(self) -> bool:
        return self.index is not None or bool(self.groups) or bool(self.conditions)


def parse_index(text: str | int) -> int | slice:
    """ASE's index syntax: ``"3"``, ``"-1"``, ``"0:100"``, ``"::2"``, ``":"`` → int or slice.
    InputError for anything else (nothing is evaluated)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    t = str(text).strip()
    parts = t.split(":")
    bad = InputError(f"index=\"{text}\": expected a frame number or a slice in ASE's syntax "
                     f"(3, -1, 0:100, ::2, -10:)")
    if not t or len(parts) > 3:
        raise bad
    try:
        nums = [int(x) if x.strip() else None for x in parts]
    except ValueError:
        raise bad from None
    if len(nums) == 1:
        return nums[0]
    if len(nums) == 3 and nums[2] == 0:
        raise InputError(f"index=\"{text}\": the step of a slice cannot be 0")
    return slice(*nums)


def parse_select(text: str) -> tuple[tuple[str, bool, tuple[str, ...]], ...]:
    """``"KEY=PAT KEY2!=PAT2|PAT3"`` → ((key, negate, patterns), ...); InputError if malformed."""
    out = []
    for word in str(text).split():
        neg = "!=" in word
        key, sep, pattern = word.partition("!=" if neg else "=")
        if not sep or not key or not pattern:
            raise InputError(f"select=\"{text}\": '{word}' is not KEY=PATTERN or "
                             "KEY!=PATTERN (e.g. select=\"config_type=bulk*\")")
        out.append((key, neg, tuple(p for p in pattern.split("|") if p)))
    if not out:
        raise InputError("select is empty: give KEY=PATTERN (e.g. config_type=bulk*)")
    return tuple(out)


def parse_selection(index, groups, select) -> Picks:
    idx = None if index is None or (isinstance(index, str) and not index.strip()) \
        else parse_index(index)
    if isinstance(groups, str):
        groups = groups.split()
    names = tuple(str(g) for g in (groups or ()))
    conds = parse_select(select) if select is not None else ()
    return Picks(idx, "" if idx is None else str(index).strip(), names, conds,
                  "" if select is None else str(select).strip())


def group_of(r: Frame, group_from: str | None) -> str | None:
    """The group a selection by group sees: ``r.group`` when ``group_from`` set it, else the
    first of :data:`SELECT_GROUP_KEYS` in the frame's info."""
    if group_from is not None and r.group is not None:
        return str(r.group)
    for k in SELECT_GROUP_KEYS:
        if k in r.info:
            return str(r.info[k])
    return None


def _matches(info: Mapping[str, Any], conditions) -> bool:
    from fnmatch import fnmatchcase

    for key, neg, patterns in conditions:
        hit = key in info and any(fnmatchcase(str(info[key]), p) for p in patterns)
        if hit == neg:
            return False
    return True


def select(raws: list[Frame], picks: Picks, group_from, path: str, fmt: str) -> list[Frame]:
    if not picks.any:
        return raws
    kept = raws
    what = []
    if picks.index is not None:
        what.append(f'index="{picks.index_text}"')
        if isinstance(picks.index, int):
            k = picks.index
            if not -len(raws) <= k < len(raws):
                raise InputError(f"{path}: index=\"{picks.index_text}\": the file has "
                                 f"{len(raws)} frame{'s' if len(raws) != 1 else ''} (read as "
                                 f"{fmt}), so there is no frame {k}")
            kept = [raws[k]]
        else:
            kept = raws[picks.index]
    if picks.groups:
        what.append(f'group="{" ".join(picks.groups)}"')
        found = [group_of(r, group_from) for r in raws]
        if all(g is None for g in found):
            where = f"info key {group_from[5:]!r}" if group_from and group_from.startswith(
                "info:") else "group (no config_type or group info key)"
            raise InputError(f"{path}: group=\"{' '.join(picks.groups)}\": no frame of the "
                             f"file has a {where}; name the key with group-from=\"info:KEY\"")
        kept = [r for r in kept if group_of(r, group_from) in picks.groups]
    if picks.conditions:
        what.append(f'select="{picks.select_text}"')
        kept = [r for r in kept if _matches(r.info, picks.conditions)]
    if not kept:
        raise InputError(f"{path}: {' '.join(what)} matches none of the {len(raws)} frames of "
                         f"the file{_what_there_is(raws, picks, group_from)}")
    return kept


def _what_there_is(raws: list[Frame], picks: Picks, group_from) -> str:
    """" (groups in the file: a (3), b (2))" — what a selection could have matched."""
    from collections import Counter

    parts = []
    if picks.groups:
        c = Counter(group_of(r, group_from) for r in raws)
        parts.append("groups in the file: " + ", ".join(f"{g} ({n})" for g, n in c.items()
                                                          if g is not None))
    for key, _, _ in picks.conditions:
        c = Counter(str(r.info[key]) for r in raws if key in r.info)
        if c:
            top = ", ".join(f"{v} ({n})" for v, n in c.most_common(8))
            parts.append(f"values of {key}: {top}{', ...' if len(c) > 8 else ''}")
        else:
            parts.append(f"no frame has the info key {key!r}")
    return f" ({'; '.join(parts)})" if parts else ""
