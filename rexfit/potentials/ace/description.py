"""The ACE basis described in the job: ``<basis>`` (pacemaker's ``potential:`` keys as XML) or
``<basis-file>`` (pacemaker's input YAML), read into the description
:func:`.basis.generate_basis` takes, checked with located errors, and kept frozen in the spec.

``<basis delta-spline-bins>`` holds ``<elements>`` (default: the job's species),
``<embedding>``, ``<bond>`` and ``<functions>``, each with ``elements`` (``ALL``, ``UNARY``,
``BINARY`` … or elements separated by spaces; default ``ALL``) and pacemaker's settings as
attributes (``fs_parameters`` → ``fs-parameters``, ``NameOfCutoffFunction`` →
``cutoff-function``, ``number_of_functions_per_element`` → ``number-of-functions-per-element``
on a ``<functions>`` of its own or with the others).
"""

from __future__ import annotations

from rexfit.potentials.ace.basis import NARY, BasisError, check_description

#: XML attribute → (pacemaker key, kind): "s" text, "f" number, "fs" numbers, "i" whole
#: number, "is" whole numbers
EMBEDDING_ATTRS = {"npot": ("npot", "s"), "fs-parameters": ("fs_parameters", "fs"),
                   "ndensity": ("ndensity", "i"), "rho-core-cut": ("rho_core_cut", "f"),
                   "drho-core-cut": ("drho_core_cut", "f")}
BOND_ATTRS = {"radbase": ("radbase", "s"), "radparameters": ("radparameters", "fs"),
              "rcut": ("rcut", "f"), "dcut": ("dcut", "f"), "r-in": ("r_in", "f"),
              "delta-in": ("delta_in", "f"), "core-repulsion": ("core-repulsion", "fs"),
              "cutoff-function": ("NameOfCutoffFunction", "s"),
              "inner-cutoff-type": ("inner_cutoff_type", "s")}
FUNCTION_ATTRS = {"nradmax-by-orders": ("nradmax_by_orders", "is"),
                  "lmax-by-orders": ("lmax_by_orders", "is")}
PER_ELEMENT = "number-of-functions-per-element"
#: child element → (section, its attributes, keywords allowed in ``elements``)
CHILDREN = {"embedding": ("embeddings", EMBEDDING_ATTRS, ("ALL", "UNARY")),
            "bond": ("bonds", BOND_ATTRS, ("ALL", "UNARY", "BINARY")),
            "functions": ("functions", FUNCTION_ATTRS, ("ALL", *NARY))}


# ---------------------------------------------------------------- frozen form
def freeze(config: dict) -> tuple:
    """``config`` as nested tuples (the spec is frozen): ((key, value), …) per mapping."""
    if isinstance(config, dict):
        return ("map", tuple((k, freeze(v)) for k, v in config.items()))
    if isinstance(config, (list, tuple)):
        return ("seq", tuple(freeze(v) for v in config))
    return config


def thaw(frozen) -> object:
    """The description :func:`freeze` froze."""
    if isinstance(frozen, tuple) and len(frozen) == 2 and frozen[0] == "map":
        return {k: thaw(v) for k, v in frozen[1]}
    if isinstance(frozen, tuple) and len(frozen) == 2 and frozen[0] == "seq":
        return [thaw(v) for v in frozen[1]]
    return frozen


# ---------------------------------------------------------------- <basis>
def _value(reader, node, attr: str, kind: str):
    raw = node.get(attr)
    what = f"<{node.tag}> attribute '{attr}'"
    if kind == "s":
        return raw.strip()
    words = raw.split()
    try:
        if kind in ("i", "is"):
            values = [int(w) for w in words]
            if any(v < (1 if kind == "i" else 0) for v in values):
                raise ValueError
        else:
            values = [float(w) for w in words]
    except ValueError:
        need = {"i": "a whole number ≥ 1", "is": "whole numbers ≥ 0",
                "f": "a number", "fs": "numbers"}[kind]
        reader.error(f"{what}: '{raw.strip()}' is not {need}", node.origin)
        return None
    if kind in ("i", "f"):
        if len(values) != 1:
            reader.error(f"{what}: give one number, not '{raw.strip()}'", node.origin)
            return None
        return values[0]
    if not values:
        reader.error(f"{what}: give at least one number", node.origin)
        return None
    return values


def _selection(reader, child, keywords, elements):
    """The key of a child's ``elements`` attribute: a keyword or a tuple of elements."""
    raw = (child.get("elements") or "ALL").split()
    if len(raw) == 1 and raw[0].upper() in keywords:
        return raw[0].upper()
    unknown = [e for e in raw if e not in elements]
    if unknown:
        reader.error(f"<{child.tag}> elements='{' '.join(raw)}': {', '.join(unknown)} "
                     f"{'is' if len(unknown) == 1 else 'are'} neither a keyword "
                     f"({', '.join(keywords)}) nor among the basis elements "
                     f"({', '.join(elements)})", child.origin)
        return None
    return tuple(raw)


def read_basis(reader, node, species: tuple[str, ...]):
    """(frozen description, origins {(section, key): origin}) of a ``<basis>`` node, or
    (None, {}) after recording its errors with ``reader``."""
    reader = _Counting(reader)
    names = node.findall("elements")
    if len(names) > 1:
        reader.error("<basis> takes one <elements>", names[1].origin)
    elements = tuple(names[0].value.split()) if names else tuple(species)
    if names and not elements:
        reader.error("<elements> is empty: list the basis elements (e.g. Cu Al)",
                     names[0].origin)
    if len(set(elements)) != len(elements):
        reader.error(f"<elements> names an element twice: {' '.join(elements)}",
                     names[0].origin if names else node.origin)
    config: dict = {"elements": list(elements)}
    if node.get("delta-spline-bins") is not None:
        config["deltaSplineBins"] = _value(reader, node, "delta-spline-bins", "f")
    origins = {("elements",): names[0].origin if names else node.origin}
    for child in node.children:
        if child.tag not in CHILDREN:
            continue
        section, attrs, keywords = CHILDREN[child.tag]
        origins.setdefault((section,), child.origin)
        settings = {key: _value(reader, child, attr, kind)
                    for attr, (key, kind) in attrs.items() if child.get(attr) is not None}
        if child.tag == "functions" and child.get(PER_ELEMENT) is not None:
            if "number_of_functions_per_element" in config.get(section, {}):
                reader.error(f"<functions> {PER_ELEMENT} is given twice", child.origin)
            total = _value(reader, child, PER_ELEMENT, "i")
            config.setdefault(section, {})["number_of_functions_per_element"] = total
            origins[(section, "number_of_functions_per_element")] = child.origin
            if not settings and child.get("elements") is None:
                continue
        if child.tag == "functions" and len(settings) != len(FUNCTION_ATTRS):
            reader.error("<functions> needs nradmax-by-orders and lmax-by-orders (one entry "
                         "per rank each), or only number-of-functions-per-element",
                         child.origin)
            continue
        key = _selection(reader, child, keywords, elements)
        if key is None:
            continue
        if key in config.get(section, {}):
            reader.error(f"<{child.tag}> for elements='{child.get('elements') or 'ALL'}' is "
                         "given twice", child.origin)
            continue
        config.setdefault(section, {})[key] = settings
        origins[(section, key)] = child.origin
    if reader.errors:
        return None, {}
    return freeze(config), origins


class _Counting:
    """A reader that counts the errors recorded through it."""

    def __init__(self, reader):
        self.reader, self.errors = reader, 0

    def error(self, message: str, origin) -> None:
        self.errors += 1
        self.reader.error(message, origin)


# ---------------------------------------------------------------- <basis-file>
def read_basis_file(reader, node):
    """The frozen description of a ``<basis-file>`` (pacemaker's input YAML: its
    ``potential:`` section, or a file holding only that section), or None after recording
    the error."""
    path = reader.file(node)
    if path is None:
        return None
    try:
        import yaml

        with open(path) as fh:
            data = yaml.safe_load(fh)
    except Exception as exc:  # noqa: BLE001 - YAML syntax and reading errors alike
        reader.error(f"<basis-file> {path}: cannot be read as YAML: {exc}", node.origin)
        return None
    if isinstance(data, dict) and isinstance(data.get("potential"), dict):
        data = data["potential"]
    if not isinstance(data, dict) or "elements" not in data:
        reader.error(f"<basis-file> {path}: no basis description (a 'potential:' section with "
                     "elements, embeddings, bonds and functions, as pacemaker's input.yaml)",
                     node.origin)
        return None
    if "initial_potential" in data:
        reader.error(f"<basis-file> {path}: potential: initial_potential is not read here; "
                     "give that B-basis file with <param-file> instead", node.origin)
        return None
    config = {k: v for k, v in data.items() if k != "metadata"}
    try:
        check_description(config)
    except BasisError as exc:
        reader.error(f"<basis-file> {path}: potential: {exc}", node.origin)
        return None
    return freeze(config)


def check(reader, frozen, origins: dict, fallback) -> bool:
    """Record the error :func:`.basis.check_description` finds in a ``<basis>``, located at
    the child element it concerns (else ``fallback``); True when there is none."""
    try:
        check_description(thaw(frozen))
    except BasisError as exc:
        where = exc.where
        origin = origins.get(tuple(where[:2])) or origins.get(tuple(where[:1])) or fallback
        reader.error(f"<basis>: {_xml_words(str(exc))}", origin)
        return False
    return True


def _xml_words(message: str) -> str:
    """pacemaker's key names in a message as the XML spells them."""
    for attrs in (EMBEDDING_ATTRS, BOND_ATTRS, FUNCTION_ATTRS):
        for attr, (key, _) in attrs.items():
            if key != attr:
                message = message.replace(key, attr)
    message = message.replace("number_of_functions_per_element", PER_ELEMENT)
    for section, tag in (("embeddings:", "<embedding>:"), ("bonds:", "<bond>:"),
                         ("functions:", "<functions>:")):
        message = message.replace(section, tag)
    return message
