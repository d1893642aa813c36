"""Where each value of a workflow came from, kept beside the data rather than inside it.

A `LocMap` mirrors one YAML mapping or sequence. It is a dict from each key (or list index) to the
line of that key/item when the value is a scalar, or to the child `LocMap` when the value is a
container (or comes from another file); `file` and `line` locate the container itself. A tree (not a
flat `{path: line}` table) lets composition move whole subtrees between files without rewriting
paths, and lets `--set` mark a value as coming from the command line (`LocMap("--set", 0)`). It
subclasses dict because millions are made for a big file and a dict subclass is the cheapest object
to create.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

PathPart: TypeAlias = str | int


class LocMap(dict[PathPart, "int | LocMap"]):
    """The file and line of one container, and per item a line or a child `LocMap`."""

    __slots__ = ("file", "line")
    file: str
    line: int

    @classmethod
    def at(cls, file: str, line: int, items: dict[PathPart, int | LocMap] | None = None) -> LocMap:
        out = cls() if items is None else cls(items)
        out.file = file
        out.line = line
        return out

    def __repr__(self) -> str:
        return f"LocMap({self.where()!r}, {dict.__repr__(self)})"

    def where(self) -> str:
        """`file:line`, or just the file for values that came from the command line (line 0)."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def child(self, key: PathPart) -> LocMap | None:
        """The `LocMap` of a container item, or None when the item is a scalar or unknown."""
        entry = self.get(key)
        return entry if isinstance(entry, LocMap) else None

    def where_of(self, key: PathPart) -> str:
        """`file:line` of one item, falling back to this container's own line."""
        entry = self.get(key)
        if entry is None:
            return self.where()
        if isinstance(entry, LocMap):
            return entry.where()
        return f"{self.file}:{entry}"

    def leaf(self, key: PathPart) -> LocMap:
        """The item's location as a `LocMap` of its own (so it can move into another file's tree)."""
        entry = self.get(key)
        if isinstance(entry, LocMap):
            return entry
        return LocMap.at(self.file, self.line if entry is None else entry)


def where_at(root: LocMap | None, path: Iterable[PathPart]) -> str | None:
    """`file:line` of the deepest known point along `path` (None when nothing is known)."""
    if root is None:
        return None
    node = root
    for part in path:
        entry = node.get(part)
        if entry is None:
            return node.where()
        if not isinstance(entry, LocMap):
            return f"{node.file}:{entry}"
        node = entry
    return node.where()


def format_path(parts: Iterable[PathPart]) -> str:
    """Dotted field path for messages: `workflow.tasks[2].depends_on`."""
    out = ""
    for part in parts:
        out = join_path(out, part)
    return out


def join_path(prefix: str, key: PathPart | None) -> str:
    """Append one key or index to a dotted path."""
    if key is None:
        return prefix
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key
