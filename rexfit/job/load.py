"""Read a job file: parse XML, expand ``xi:include`` (nested, relative, cycle-checked) and
remember for every element the file and line it came from.

The result is an lxml tree (for XSD validation) plus a map from each element's XPath to its
:class:`Origin`, and a :class:`Node` tree for everything after validation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lxml import etree

from rexfit.errors import InputError, InputErrors, Origin
from rexfit.job.nodes import Node

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_INCLUDE_TAGS = {f"{{{XINCLUDE_NS}}}include", "{http://www.w3.org/2003/XInclude}include"}
_SRC = "rexfit-source-index"  # temporary attribute; removed before validation


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
        remove_comments=True,
        remove_pis=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )


def _parse_file(path: str, origin: Origin | None) -> etree._Element:
    """Parse one XML file or raise InputError located in that file (or at ``origin``)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        msg = f"file not found: {path}" if origin else f"{path}: file not found"
        raise InputError(msg, origin) from None
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}" if origin else f"{path}: {exc.strerror}"
        raise InputError(msg, origin) from None
    if not data.strip():
        raise InputError("the file is empty (expected an XML document)", Origin(path, 1))
    try:
        root = etree.fromstring(data, _parser(), base_url=path)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        msg = exc.msg or str(exc)
        # lxml appends "(<file>, line N)"; we print the location ourselves.
        msg = msg.split(", line ")[0] if msg.endswith(")") and ", line " in msg else msg
        raise InputError(f"malformed XML: {msg}", Origin(path, line)) from None
    return root


def _mark(root: etree._Element, index: int) -> None:
    for el in root.iter():
        if isinstance(el.tag, str):
            el.set(_SRC, str(index))


def _expand(root: etree._Element, path: str, files: list[str], stack: tuple[str, ...],
            errors: list[InputError]) -> None:
    """Replace every xi:include below ``root`` (which came from ``path``) in place."""
    includes = [el for el in root.iter() if el.tag in _INCLUDE_TAGS]
    for inc in includes:
        origin = Origin(path, inc.sourceline or 1)
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
            with open(target, encoding="utf-8") as fh:
                _replace_with_text(inc, fh.read())
            continue
        if mode != "xml":
            errors.append(InputError(f"<xi:include parse='{mode}'>: use 'xml' or 'text'", origin))
            _drop(inc)
            continue
        try:
            sub = _parse_file(target, origin)
        except InputError as exc:
            errors.append(exc)
            _drop(inc)
            continue
        index = len(files)
        files.append(target)
        _mark(sub, index)
        _expand(sub, target, files, stack + (real,), errors)
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
    root = _parse_file(path, None)
    if root.tag in _INCLUDE_TAGS:
        raise InputError("the root element cannot be an <xi:include>", Origin(path, root.sourceline or 1))
    files = [path]
    _mark(root, 0)
    errors: list[InputError] = []
    _expand(root, path, files, (os.path.realpath(path),), errors)
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
