"""Generate the job-file reference (docs/job-reference.md) from the XSD's documentation.

Run ``python -m rexfit.job.reference > docs/job-reference.md``; a test checks the file is current.
"""

from __future__ import annotations

import sys

from rexfit.job.schema import ElementInfo, describe

_HEADER = """\
# Job-file reference

Generated from `schemas/job.xsd` by `python -m rexfit.job.reference`; do not edit by hand.
Elements marked *rexfit* extend the atomicrex job language; everything else is atomicrex's.
Child elements may appear in any order. Numbers are plain decimal or exponent notation;
booleans are `true`/`false`. See [conventions](conventions.md) for units and formulas.
"""


def _signature(info: ElementInfo) -> tuple:
    return (info.name, info.doc, tuple(sorted(info.attributes.items())), tuple(info.children),
            info.any_children, info.text_type)


def render() -> str:
    """The whole reference as Markdown."""
    info = describe()
    groups: dict[tuple, list[str]] = {}
    order: list[tuple] = []
    for (parent, _), el in info.elements.items():
        sig = _signature(el)
        if sig not in groups:
            groups[sig] = []
            order.append(sig)
        if parent and parent not in groups[sig]:
            groups[sig].append(parent)
    lines = [_HEADER]
    for sig in order:
        el = next(e for e in info.elements.values() if _signature(e) == sig)
        parents = sorted(groups[sig])
        lines.append(f"## `<{el.name}>`" + (f" in {', '.join(f'`<{p}>`' for p in parents)}"
                                            if parents else " (root)"))
        lines.append("")
        lines.append(el.doc or "(no description)")
        lines.append("")
        if el.text_type:
            lines.append(f"Text: {_type_words(el.text_type)}.")
            lines.append("")
        if el.attributes:
            lines.append("| attribute | required | description |")
            lines.append("|---|---|---|")
            for name, doc in el.attributes.items():
                req = "yes" if name in el.required else ""
                lines.append(f"| `{name}` | {req} | {doc} |")
            lines.append("")
        if el.children:
            kids = ", ".join(f"`<{c}>`" for c in dict.fromkeys(el.children))
            lines.append(f"Children: {kids}.")
            lines.append("")
        if el.any_children:
            lines.append("Children: elements named after parameters (see the description).")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _type_words(t: str) -> str:
    return {"number": "a number", "numberValue": "a number", "xs:token": "a name or file name",
            "xs:string": "free text", "tolerancePresetName": "uniform, balanced or accurate-energies",
            }.get(t, t)


if __name__ == "__main__":
    sys.stdout.write(render())
