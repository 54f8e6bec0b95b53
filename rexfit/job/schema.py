"""The job-file XSD: where it lives, validation with located messages, and introspection
(which elements, attributes and documentation the schema declares) for docs and tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from lxml import etree

from rexfit.errors import InputError
from rexfit.job.load import LoadedTree

XS = "{http://www.w3.org/2001/XMLSchema}"


def schema_text() -> bytes:
    """The bytes of ``job.xsd`` as shipped inside the package."""
    return resources.files("rexfit.schemas").joinpath("job.xsd").read_bytes()


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.fromstring(schema_text()))


def validate(loaded: LoadedTree) -> list[InputError]:
    """Validate the expanded tree against the XSD; one located InputError per problem."""
    schema = _schema()
    try:
        if schema.validate(loaded.root.getroottree()):
            return []
    except etree.XMLSchemaValidateError as exc:  # libxml2 gave up (e.g. on unexpected nodes)
        return [InputError(f"the job cannot be checked against the schema ({exc}); remove any "
                           "DTD, entity or processing instruction from it",
                           loaded.origin_of_path(None))]
    errors = []
    for entry in schema.error_log:
        origin = loaded.origin_of_path(entry.path, entry.line)
        errors.append(InputError(_friendly(entry.message), origin))
    return errors


_ELEMENT_PREFIX = re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: ")


def _friendly(message: str) -> str:
    """Rewrite a libxml2 schema message into one a user can act on."""
    m = _ELEMENT_PREFIX.match(message)
    if not m:
        return message
    tag, attr = m.group(1), m.group(2)
    rest = message[m.end():].strip()
    info = describe()
    if attr and "is not allowed" in rest:
        allowed = sorted(info.attributes_of_tag(tag))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else " (this element takes no attributes)"
        return f"<{tag}>: unknown attribute '{attr}'{hint}"
    if attr:
        return f"<{tag}> attribute '{attr}': {_type_message(rest)}"
    if rest.startswith("This element is not expected."):
        expected = re.search(r"Expected is(?: one of)? \( (.*) \)", rest)
        hint = f"; expected one of: {expected.group(1)}" if expected else ""
        return f"unknown or misplaced element <{tag}>{hint}"
    if "Missing child element(s)" in rest:
        expected = re.search(r"Expected is(?: one of)? \( (.*) \)", rest)
        what = expected.group(1) if expected else "a required child"
        return f"<{tag}> is missing a required child element: {what}"
    if "The attribute '" in rest and "is required" in rest:
        a = re.search(r"The attribute '([^']+)' is required", rest).group(1)
        return f"<{tag}> needs the attribute '{a}'"
    return f"<{tag}>: {_type_message(rest)}"


_TYPE_WORDS = {
    "xs:double": "is not a number", "number": "is not a number",
    "xs:integer": "is not an integer", "count": "is not an integer",
    "xs:positiveInteger": "is not a positive integer",
    "bool": "is not true or false", "xs:boolean": "is not true or false",
    "numberList": "is not a list of numbers",
}


def _type_message(rest: str) -> str:
    """'x' is not a valid value of the atomic type 'number'. -> 'x' is not a number."""
    m = re.match(r"(\[facet '\w+'\] )?The value '(.*)' is not an element of the set \{(.*)\}", rest)
    if m:
        return f"'{m.group(2)}' is not one of {m.group(3).replace(chr(39), '')}"
    m = re.match(r"'(.*)' is not a valid value of the (?:atomic|list) type '([^']+)'", rest)
    if m:
        words = _TYPE_WORDS.get(m.group(2), f"is not a valid {m.group(2)}")
        return f"'{m.group(1)}' {words}"
    m = re.match(r"\[facet 'pattern'\] The value '(.*)' is not accepted by the pattern", rest)
    if m:
        return f"'{m.group(1)}' is not true or false"
    return rest


# ----------------------------------------------------------------------------- introspection


@dataclass
class ElementInfo:
    """What the schema says about one element declaration."""

    name: str
    doc: str = ""
    attributes: dict[str, str] = field(default_factory=dict)  # name -> documentation
    required: set[str] = field(default_factory=set)
    children: list[str] = field(default_factory=list)
    any_children: bool = False  # open content (e.g. <fit-dof>: named after parameters)
    text_type: str | None = None  # simple content type, e.g. xs:double


@dataclass
class SchemaInfo:
    """All element declarations, keyed by (parent tag or '', tag)."""

    elements: dict[tuple[str, str], ElementInfo]

    def tags(self) -> set[str]:
        return {tag for _, tag in self.elements}

    def attributes_of_tag(self, tag: str) -> set[str]:
        out: set[str] = set()
        for (_, t), info in self.elements.items():
            if t == tag:
                out |= set(info.attributes)
        return out

    def children_of(self, tag: str) -> set[str]:
        out: set[str] = set()
        for (_, t), info in self.elements.items():
            if t == tag:
                out |= set(info.children)
        return out


@lru_cache(maxsize=1)
def describe() -> SchemaInfo:
    """Walk job.xsd and list every element declaration with its attributes and children."""
    root = etree.fromstring(schema_text())
    types = {el.get("name"): el for el in root.findall(f"{XS}complexType")}
    simple_types = {el.get("name") for el in root.findall(f"{XS}simpleType")}
    groups = {el.get("name"): el for el in root.findall(f"{XS}group")}
    agroups = {el.get("name"): el for el in root.findall(f"{XS}attributeGroup")}
    globals_ = {el.get("name"): el for el in root.findall(f"{XS}element")}
    out: dict[tuple[str, str], ElementInfo] = {}

    def doc_of(el) -> str:
        d = el.find(f"{XS}annotation/{XS}documentation")
        return " ".join((d.text or "").split()) if d is not None else ""

    def collect(node, info: ElementInfo, nested: list) -> None:
        for child in node:
            tag = child.tag
            if tag == f"{XS}annotation":
                continue
            if tag == f"{XS}attribute":
                name = child.get("name") or child.get("ref")
                info.attributes[name] = doc_of(child)
                if child.get("use") == "required":
                    info.required.add(name)
            elif tag == f"{XS}attributeGroup":
                collect(agroups[child.get("ref")], info, nested)
            elif tag == f"{XS}group":
                collect(groups[child.get("ref")], info, nested)
            elif tag == f"{XS}any":
                info.any_children = True
            elif tag == f"{XS}element":
                info.children.append(child.get("name") or child.get("ref"))
                nested.append(child)
            elif tag in (f"{XS}extension", f"{XS}restriction"):
                base = child.get("base")
                if base in types:
                    collect(types[base], info, nested)
                elif base and info.text_type is None:
                    info.text_type = base
                collect(child, info, nested)
            else:
                collect(child, info, nested)

    def visit(el, parent: str) -> None:
        name = el.get("name") or el.get("ref")
        decl = globals_[name] if el.get("ref") else el
        key = (parent, name)
        if key in out:
            return
        info = ElementInfo(name=name, doc=doc_of(decl) or doc_of(el))
        out[key] = info
        nested: list = []
        tname = decl.get("type")
        if tname in types:
            collect(types[tname], info, nested)
        elif tname is not None:
            info.text_type = tname if tname not in simple_types else tname
        ct = decl.find(f"{XS}complexType")
        if ct is not None:
            collect(ct, info, nested)
        for child in nested:
            visit(child, name)

    visit(globals_["job"], "")
    return SchemaInfo(out)
