"""A plain, read-only element tree that remembers where every element came from.

The loader turns the lxml tree into these nodes once; nothing after the loader touches lxml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from rexfit.errors import Origin


@dataclass(frozen=True)
class Node:
    """One XML element: tag, attributes, own text, children and its origin (file, line)."""

    tag: str
    attrs: dict[str, str]
    text: str
    children: tuple["Node", ...]
    origin: Origin

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    def find(self, tag: str) -> "Node | None":
        """First child with this tag, or None."""
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def findall(self, tag: str) -> list["Node"]:
        return [c for c in self.children if c.tag == tag]

    def iter(self) -> Iterator["Node"]:
        """This node and all its descendants, depth first."""
        yield self
        for c in self.children:
            yield from c.iter()

    @property
    def value(self) -> str:
        """Text content with surrounding whitespace removed."""
        return self.text.strip()
