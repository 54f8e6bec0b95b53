"""parameters.xml: the job's ``<potentials>`` element with the fitted values written in.

The file is the include-expanded ``<potentials>`` element of the job, unchanged except for the
values of the parameters given (written with ``repr(float)``: 17 significant digits, an exact
round trip), so a job restarts from it by replacing its ``<potentials>`` element with
``<xi:include href="parameters.xml" xmlns:xi="http://www.w3.org/2003/XInclude"/>``.

Each parameter is located by its origin (file and line, as recorded by the loader) *and* by its
path, built by :mod:`rexfit.job.names` from the XML's ids and tags, so several parameters on
one line are told apart and a parameter that cannot be found is an error, never skipped.

The tree is the one the job was loaded from (``JobSpec.tree``: one include expansion, comments
kept), copied before values are written into it.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from lxml import etree

from rexfit import __version__
from rexfit.errors import CalculationFailed, Origin
from rexfit.files import write_text
from rexfit.job import names
from rexfit.job.language import ANALYTIC_FUNCTIONS, FUNCTION_ELEMENTS
from rexfit.job.load import _SRC, load_tree
from rexfit.job.spec import JobSpec
from rexfit.model.potentials import ParamEntry
from rexfit.potentials import registry

XI_2003 = "http://www.w3.org/2003/XInclude"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"


def write_parameters_xml(job: JobSpec, entries: Sequence[ParamEntry],
                         values: Mapping[str, float], path: str,
                         param_files: Mapping[str, str] | None = None,
                         coeff_files: Mapping[str, tuple[str, str]] | None = None,
                         replaced: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Write ``path``: the job's ``<potentials>`` with ``values`` (DOF name -> value) written in.

    ``param_files`` ({potential id: file name relative to ``path``'s directory}) points the
    ``<param-file>`` of those potentials (Tersoff, ABOP, Stillinger-Weber: their parameters
    live in that file, written by the caller) to the new file; ``coeff_files`` ({potential
    id: (element tag, file name)}) likewise sets or adds the ``<coeff-file>`` of descriptor
    models (SNAP, linear models) or the ``<model-file>`` of neural networks.  ``replaced``
    ({potential id: tags}): children of those potentials that their new file replaces (ACE's
    inline ``<basis>``); the file's element takes the place of the first.

    Raises :class:`CalculationFailed` naming the parameter when a name in ``values`` is not a
    parameter of ``entries``, cannot be found in the job file, or its value is not finite.
    """
    loaded = job.tree if job.tree is not None else load_tree(job.path)
    root = copy.deepcopy(loaded.root)  # written into below; the job's tree stays as loaded
    tree = root.getroottree()
    potentials = [el for el in root if _local(el) == "potentials"]
    if not potentials:
        raise CalculationFailed(f"{job.path}: the job has no <potentials> element to write "
                                "parameters.xml from")

    slots: dict[tuple[Origin, str], list[_Slot]] = {}
    for pl in potentials:
        for el, name, slot in _potential_slots(pl):
            origin = loaded.origins.get(tree.getpath(el))
            slots.setdefault((origin, name), []).append(slot)

    by_name: dict[str, list[ParamEntry]] = {}
    for e in entries:
        by_name.setdefault(e.name, []).append(e)
    for name, raw in values.items():
        if name not in by_name:
            raise CalculationFailed(f"parameters.xml: '{name}' is not a parameter of this job")
        value = float(raw)
        if not math.isfinite(value):
            raise CalculationFailed(f"parameters.xml: parameter '{name}' has the non-finite "
                                    f"value {value}; nothing written")
        for e in by_name[name]:
            found = slots.get((e.origin, name), [])
            if len(found) != 1:
                where = f" (at {e.origin})" if e.origin is not None else ""
                why = "cannot be found" if not found else "is ambiguous"
                raise CalculationFailed(f"parameters.xml: parameter '{name}'{where} {why} in "
                                        "the job's <potentials>; nothing written")
            found[0].write(value)

    for pl in potentials:
        _rebase_param_files(pl, tree, loaded.origins, os.path.dirname(os.path.abspath(path)))
    replaced = replaced or {}
    for pot_id, tags in replaced.items():
        for pot in (pot for pl in potentials for pot in _kids(pl)
                    if (pot.get("id") or "").strip() == pot_id):
            _replace_children(pot, tags, "param-file" if pot_id in (param_files or {})
                              else (coeff_files or {}).get(pot_id, ("coeff-file",))[0])
    for pot_id, name in (param_files or {}).items():
        found = [pot for pl in potentials for pot in _kids(pl)
                 if (pot.get("id") or "").strip() == pot_id and _kids(pot, "param-file")]
        if len(found) != 1:
            raise CalculationFailed(f"parameters.xml: potential '{pot_id}' with a <param-file> "
                                    "cannot be found in the job's <potentials>; nothing written")
        _kids(found[0], "param-file")[0].text = name
    for pot_id, (tag, name) in (coeff_files or {}).items():
        found = [pot for pl in potentials for pot in _kids(pl)
                 if (pot.get("id") or "").strip() == pot_id]
        if len(found) != 1:
            raise CalculationFailed(f"parameters.xml: potential '{pot_id}' cannot be found in "
                                    "the job's <potentials>; nothing written")
        existing = _kids(found[0], tag)
        if existing:
            existing[0].text = name
        else:
            _insert_child(found[0], tag, name)
    out = copy.deepcopy(potentials[0])
    for extra in potentials[1:]:  # several <potentials> elements: their potentials add
        for child in extra:
            out.append(copy.deepcopy(child))
    out.tail = None
    for el in out.iter(tag=etree.Element):
        for attr in (_SRC, _XML_BASE):
            el.attrib.pop(attr, None)
    etree.cleanup_namespaces(out)
    write_text(path, _header(job, os.path.basename(path))
               + etree.tostring(out, encoding="unicode") + "\n")


def _header(job: JobSpec, href: str) -> str:
    text = (f"Written by rexfit {__version__}: the <potentials> element of {job.path} with the "
            f"fitted parameter values.\n     To restart from them, replace the job's "
            f"<potentials>...</potentials> element with\n     <xi:include href=\"{href}\" "
            f"xmlns:xi=\"{XI_2003}\"/>")
    while "--" in text:  # not allowed inside an XML comment
        text = text.replace("--", "- -")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- {text} -->\n'


# ============================================================================ value slots


@dataclass
class _Slot:
    """Where one value is written: an element's text, an attribute, or a child to add."""

    el: etree._Element
    attr: str | None = None  # set this attribute
    add: str | None = None  # add a child element with this tag (value absent: 0)

    def write(self, value: float) -> None:
        text = repr(value)
        if self.add is not None:
            if value != 0.0:
                _insert_child(self.el, self.add, text)
        elif self.attr is not None:
            if float(self.el.get(self.attr)) != value:
                self.el.set(self.attr, text)
        else:
            old = (self.el.text or "") + "".join(c.tail or "" for c in self.el)
            if float(old) != value:
                lead = old[: len(old) - len(old.lstrip())]
                trail = old[len(old.rstrip()):]
                self.el.text = lead + text + trail
                for c in self.el:  # the number was split around a comment: keep it whole
                    c.tail = None


def _insert_child(parent: etree._Element, tag: str, text: str) -> None:
    """Add ``<tag>text</tag>`` near the top of ``parent``, indented like its children."""
    child = etree.Element(tag)
    child.text = text
    index, before = 0, None
    if tag == "derivative-right":
        left = [c for c in parent if _local(c) == "derivative-left"]
        if left:
            index, before = parent.index(left[-1]) + 1, left[-1]
    ws = (before.tail if before is not None else parent.text) or ""
    child.tail = ws if ws.strip() == "" else None
    parent.insert(index, child)


def _replace_children(parent: etree._Element, tags, tag: str) -> None:
    """Remove the children of ``parent`` named ``tags``; an empty ``<tag>`` takes the place
    of the first (filled in by the caller)."""
    old = [c for c in parent if _local(c) in tags]
    if not old:
        return
    if not _kids(parent, tag):
        new = etree.Element(tag)
        new.tail = old[0].tail
        parent.replace(old.pop(0), new)
    for el in old:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = el.tail
        else:
            parent.text = el.tail
        parent.remove(el)


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _kids(el, tag: str | None = None) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and (tag is None or _local(c) == tag)]


def _potential_slots(potentials: etree._Element) -> Iterator[tuple[etree._Element, str, _Slot]]:
    """(element whose origin locates it, parameter path, slot) for every inline parameter; the
    paths are built by :mod:`rexfit.job.names` from the XML's ids and tags."""
    for pot in _kids(potentials):
        head = names.type_head((pot.get("id") or "").strip(), _local(pot))
        family = registry.family(_local(pot))
        if family is not None:
            for el, name, tag in family.xml_parameters(pot, _kids):
                yield el, names.child(head, names.tagged(name, tag)), _Slot(el)
        for fl in _kids(pot, "functions"):
            for fn in _kids(fl):
                if _local(fn) in FUNCTION_ELEMENTS:
                    yield from _function_slots(fn, head)


def _function_slots(fn: etree._Element, prefix: str) -> Iterator[tuple[etree._Element, str, _Slot]]:
    """The slots of one function element and the functions inside it (the XML side of
    :func:`rexfit.job.names.function_params`)."""
    kind = _local(fn)
    here = names.child(prefix, names.function_type_label((fn.get("id") or "").strip(), kind))
    if kind == "user-function":
        for p in _kids(fn, "param"):
            yield p, names.child(here, (p.get("name") or "").strip()), _Slot(p)
    elif kind == "spline":
        for nodes in _kids(fn, "nodes"):
            for n in _kids(nodes, "node"):
                x = _float(n.get("x"))
                if x is not None:
                    yield n, names.child(here, names.spline_node(x)), _Slot(n, attr="y")
        for end in ("derivative-left", "derivative-right"):
            given = _kids(fn, end)
            for el in given:
                yield el, names.child(here, end), _Slot(el)
            if not given:  # the DOF exists with value 0 and the spline's origin
                yield fn, names.child(here, end), _Slot(fn, add=end)
    elif kind == "poly":
        for coeffs in _kids(fn, "coefficients"):
            for c in _kids(coeffs, "coeff"):
                n = c.get("n")
                if n is not None and n.strip().lstrip("+-").isdigit():
                    yield c, names.child(here, names.poly_coefficient(int(n))), _Slot(c)
    elif kind in ("sum", "product"):
        for sub in _kids(fn):
            if _local(sub) in FUNCTION_ELEMENTS:
                yield from _function_slots(sub, here)
    elif kind in ANALYTIC_FUNCTIONS:
        for name in ANALYTIC_FUNCTIONS[kind]:
            for el in _kids(fn, name):
                yield el, names.child(here, name), _Slot(el)
    for scr in _kids(fn, "screening"):
        inner = _kids(scr)
        if inner and _local(inner[0]) in FUNCTION_ELEMENTS:
            yield from _function_slots(inner[0], here)


def _float(raw: str | None) -> float | None:
    try:
        return float(raw.strip())
    except (AttributeError, ValueError):
        return None


def _rebase_param_files(potentials: etree._Element, tree, origins: dict[str, Origin],
                        out_dir: str) -> None:
    """Rewrite relative ``<param-file>``, ``<coeff-file>``, ``<model-file>`` and ``<basis-file>``
    names so they
    resolve from
    ``out_dir`` as they did from the file that contained them."""
    for el in potentials.iter(tag=etree.Element):
        if _local(el) not in ("param-file", "coeff-file", "model-file", "basis-file") or \
                not (el.text or "").strip():
            continue
        name = el.text.strip()
        origin = origins.get(tree.getpath(el))
        if os.path.isabs(name) or origin is None:
            continue
        target = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(origin.path)),
                                               name))
        new = os.path.relpath(target, out_dir)
        if os.path.normpath(new) != os.path.normpath(name):
            el.text = new
