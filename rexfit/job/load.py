"""Read a job file: parse XML, expand ``xi:include`` (nested, relative, cycle-checked) and
remember for every element the file and line it came from.

The result is an lxml tree (for XSD validation) plus a map from each element's XPath to its
:class:`Origin`, and a :class:`Node` tree for everything after validation.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass

from lxml import etree

from rexfit.errors import InputError, InputErrors, Origin
from rexfit.job.nodes import Node

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_INCLUDE_TAGS = {f"{{{XINCLUDE_NS}}}include", "{http://www.w3.org/2003/XInclude}include"}
_SRC = "rexfit-source-index"  # temporary attribute; removed before validation

#: Most ``xi:include`` expansions one job may make (every inclusion of a file counts, so a
#: file included twice by each of its includers doubles the count per level).
MAX_INCLUDES = 2000
#: Most elements the expanded job may hold (real jobs have a few thousand).
MAX_ELEMENTS = 1_000_000
#: Most bytes of job text the expansion may read in total (each inclusion counted).
MAX_EXPANDED_BYTES = 200 * 1024 * 1024

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY")
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)


@dataclass
class _Budget:
    """What the include expansion has used so far (bounded by the MAX_* constants)."""

    includes: int = 0
    elements: int = 0
    bytes: int = 0


class _TooBig(Exception):
    """The expansion went over a bound; carries the located error (raised at once)."""

    def __init__(self, error: InputError):
        super().__init__(error.message)
        self.error = error


@dataclass
class LoadedTree:
    """An include-expanded job tree with the origin of each element."""

    root: etree._Element
    origins: dict[str, Origin]  # XPath of an element -> where it was written
    files: list[str]  # every file read (the job file first)

    def origin_of_path(self, xpath: str | None, fallback_line: int | None = None) -> Origin:
        if xpath and xpath in self.origins:
            return self.origins[xpath]
        # An error path may point below an element we know (e.g. text nodes): walk up.
        while xpath and "/" in xpath:
            xpath = xpath.rsplit("/", 1)[0]
            if xpath in self.origins:
                return self.origins[xpath]
        return Origin(self.files[0], fallback_line or 1)


def _parser() -> etree.XMLParser:
    # No network, no external entities: a job file cannot make rexfit fetch or read anything.
    return etree.XMLParser(
        remove_comments=False,  # kept: parameters.xml keeps them (XSD and nodes skip them)
        remove_pis=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )


def _read_bytes(path: str, origin: Origin | None, budget: _Budget | None) -> bytes:
    """The bytes of ``path``, counted against ``budget`` (never reads past its bound, so a
    device or pipe named as a file cannot make the read run forever)."""
    try:
        with open(path, "rb") as fh:
            if budget is None:
                return fh.read()
            data = fh.read(MAX_EXPANDED_BYTES - budget.bytes + 1)
            budget.bytes += len(data)
            if budget.bytes > MAX_EXPANDED_BYTES:
                raise _TooBig(InputError(
                    f"the expanded job would exceed {MAX_EXPANDED_BYTES // 2**20} MiB of text "
                    f"when reading {path}; included files are counted every time they are "
                    "included: check for files included more often than meant",
                    origin or Origin(path, 1)))
            return data
    except FileNotFoundError:
        msg = f"file not found: {path}" if origin else f"{path}: file not found"
        raise InputError(msg, origin) from None
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}" if origin else f"{path}: {exc.strerror}"
        raise InputError(msg, origin) from None


def _reject_dtd(data: bytes, path: str) -> None:
    """A job file may not declare a DTD or entities (they are never needed; external entities
    could read other files or the network): refuse them before parsing."""
    # blank out comments but keep their newlines, so line numbers stay right
    text = _COMMENT.sub(lambda m: b"\n" * m.group().count(b"\n"), data)
    m = _DOCTYPE.search(text)
    if m is None:
        return
    line = text.count(b"\n", 0, m.start()) + 1
    raise InputError(
        f"{m.group().decode()} is not allowed in a job file (rexfit reads no DTDs and expands "
        "no entities): remove the declaration and write the text itself; share parts "
        "between job files with <xi:include href=\"...\"/>", Origin(path, line))


def _parse_file(path: str, origin: Origin | None, budget: _Budget | None = None) -> etree._Element:
    """Parse one XML file or raise InputError located in that file (or at ``origin``)."""
    data = _read_bytes(path, origin, budget)
    if not data.strip():
        raise InputError("the file is empty (expected an XML document)", Origin(path, 1))
    _reject_dtd(data, path)
    try:
        root = etree.fromstring(data, _parser(), base_url=path)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        msg = exc.msg or str(exc)
        # lxml appends "(<file>, line N)"; we print the location ourselves.
        msg = msg.split(", line ")[0] if msg.endswith(")") and ", line " in msg else msg
        raise InputError(f"malformed XML: {msg}", Origin(path, line)) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # e.g. a UTF-16 file the scan missed
        raise InputError("<!DOCTYPE is not allowed in a job file (rexfit reads no DTDs and "
                         "expands no entities): remove the declaration", Origin(path, 1))
    for el in root.iter(etree.Entity):
        raise InputError(f"entity reference {el.text} is not allowed in a job file: write the "
                         "text itself", Origin(path, el.sourceline or 1))
    return root


def _mark(root: etree._Element, index: int) -> None:
    for el in root.iter():
        if isinstance(el.tag, str):
            el.set(_SRC, str(index))


def _chain(stack: tuple[str, ...]) -> str:
    return " -> ".join(os.path.basename(p) for p in stack)


def _expand(root: etree._Element, path: str, files: list[str], stack: tuple[str, ...],
            errors: list[InputError], budget: _Budget) -> None:
    """Replace every xi:include below ``root`` (which came from ``path``) in place.

    Raises :class:`_TooBig` as soon as the expansion goes over a MAX_* bound.
    """
    includes = [el for el in root.iter() if el.tag in _INCLUDE_TAGS]
    for inc in includes:
        origin = Origin(path, inc.sourceline or 1)
        budget.includes += 1
        if budget.includes > MAX_INCLUDES:
            raise _TooBig(InputError(
                f"more than {MAX_INCLUDES} <xi:include> expansions (include chain here: "
                f"{_chain(stack)}); every inclusion counts, so a file included twice at each "
                "level doubles the count per level: include each file once", origin))
        href = inc.get("href")
        parent = inc.getparent()
        if not href:
            errors.append(InputError("<xi:include> needs an 'href' attribute naming the file", origin))
            _drop(inc)
            continue
        if parent is None:
            errors.append(InputError("the root element cannot be an <xi:include>", origin))
            continue
        target = os.path.normpath(os.path.join(os.path.dirname(path), href))
        real = os.path.realpath(target)
        if real in stack:
            chain = " -> ".join(os.path.basename(p) for p in stack + (real,))
            errors.append(InputError(f"include cycle: {chain}", origin))
            _drop(inc)
            continue
        if not os.path.exists(target):
            errors.append(InputError(
                f"included file not found: '{href}' (looked for {target})", origin))
            _drop(inc)
            continue
        mode = inc.get("parse", "xml")
        if mode == "text":
            try:
                text = _read_bytes(target, origin, budget).decode("utf-8")
            except (InputError, UnicodeDecodeError) as exc:
                msg = exc.message if isinstance(exc, InputError) else \
                    f"{target} is not UTF-8 text ({exc.reason})"
                errors.append(InputError(msg, origin))
                _drop(inc)
                continue
            _replace_with_text(inc, text)
            continue
        if mode != "xml":
            errors.append(InputError(f"<xi:include parse='{mode}'>: use 'xml' or 'text'", origin))
            _drop(inc)
            continue
        try:
            sub = _parse_file(target, origin, budget)
        except InputError as exc:
            errors.append(exc)
            _drop(inc)
            continue
        budget.elements += sum(1 for _ in sub.iter(tag=etree.Element))
        if budget.elements > MAX_ELEMENTS:
            raise _TooBig(InputError(
                f"the expanded job has more than {MAX_ELEMENTS} XML elements after including "
                f"{href} (include chain here: {_chain(stack)}); check for files included more "
                "often than meant", origin))
        if target not in files:
            files.append(target)
        index = files.index(target)
        _mark(sub, index)
        _expand(sub, target, files, stack + (real,), errors, budget)
        # Comments before the included root element (a file header) come along.
        before = (inc.getprevious().tail if inc.getprevious() is not None else parent.text) or ""
        for c in reversed(list(sub.itersiblings(preceding=True))):
            if isinstance(c, etree._Comment):
                c = copy.copy(c)
                c.tail = before if before.strip() == "" else None
                inc.addprevious(c)
        sub.tail = inc.tail
        parent.replace(inc, sub)


def _drop(el: etree._Element) -> None:
    parent = el.getparent()
    if parent is None:
        return
    _replace_with_text(el, "")


def _replace_with_text(el: etree._Element, text: str) -> None:
    parent = el.getparent()
    prev = el.getprevious()
    joined = text + (el.tail or "")
    if prev is not None:
        prev.tail = (prev.tail or "") + joined
    else:
        parent.text = (parent.text or "") + joined
    parent.remove(el)


def load_tree(path: str) -> LoadedTree:
    """Parse ``path`` and expand its includes. Raises InputErrors listing every problem found."""
    path = os.path.normpath(path)
    budget = _Budget()
    try:
        root = _parse_file(path, None, budget)
    except _TooBig as exc:
        raise exc.error from None
    if root.tag in _INCLUDE_TAGS:
        raise InputError("the root element cannot be an <xi:include>", Origin(path, root.sourceline or 1))
    files = [path]
    _mark(root, 0)
    errors: list[InputError] = []
    budget.elements = sum(1 for _ in root.iter(tag=etree.Element))
    try:
        _expand(root, path, files, (os.path.realpath(path),), errors, budget)
    except _TooBig as exc:
        raise InputErrors(errors + [exc.error]) from None
    tree = etree.ElementTree(root)
    origins: dict[str, Origin] = {}
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        idx = int(el.attrib.pop(_SRC, "0"))
        origins[tree.getpath(el)] = Origin(files[idx], el.sourceline or 1)
    if errors:
        raise InputErrors(errors)
    return LoadedTree(root=root, origins=origins, files=files)


def to_nodes(loaded: LoadedTree) -> Node:
    """Convert the (validated) lxml tree to the plain :class:`Node` tree."""
    tree = loaded.root.getroottree()

    def convert(el: etree._Element) -> Node:
        kids = tuple(convert(c) for c in el if isinstance(c.tag, str))
        text = el.text or ""
        # Text split around children (rare in job files) is joined so nothing is lost.
        for c in el:
            if c.tail:
                text += c.tail
        return Node(
            tag=etree.QName(el).localname,
            attrs=dict(el.attrib),
            text=text,
            children=kids,
            origin=loaded.origins[tree.getpath(el)],
        )

    return convert(loaded.root)
