"""Read one YAML file into plain Python data plus a `LocMap` of line numbers.

The fast subset reader (`yaml_fast`) is tried first; anything it does not handle is read with PyYAML's
libyaml composer (`CSafeLoader` when available) and converted node by node here, with sflow's own
scalar rules (`scalars.resolve_plain`), YAML merge keys (`<<`), duplicate-key errors and a check of
every `${{ }}` expression's syntax, all reported as `SpecError`s naming file and line.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.errors import SpecError
from sflow.schema.locations import LocMap, PathPart, format_path
from sflow.schema.problems import Problems
from sflow.schema.scalars import resolve_plain
from sflow.schema.yaml_fast import Unsupported, read_simple

if TYPE_CHECKING:
    import yaml

_MAX_NODES = 20_000_000  # stops alias bombs ("billion laughs") long before memory runs out
_TAG = "tag:yaml.org,2002:"


class _Implicit:
    """Marker tag for nodes without an explicit tag (our `resolve` never guesses a type)."""


@cache
def _loader() -> type:
    """libyaml composer whose resolver leaves typing to `resolve_plain`.

    PyYAML is imported here, on the first file the fast reader declines: a run whose files it
    reads does without it. The import also binds this module's `yaml` for the node classes below."""
    global yaml
    import yaml

    class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            return _Implicit

    return _Loader


class Document(msgspec.Struct):
    """One parsed YAML file: its data and where each part of it came from."""

    file: str
    data: Any
    locs: LocMap | None


def read_document(path: str | Path, problems: Problems | None = None) -> Document:
    """Read and parse one workflow file; every failure is a `SpecError` naming the file.

    With `problems`, invalid `${{ }}` expressions are added to it (the reading goes on)."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError("file not found", where=file) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a YAML file", where=file) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", where=file) from None
    if Path(path).suffix == ".py":  # the Python door: its flows run as scripts
        raise SpecError(f"a Python script, not a workflow file: run it with `python {file}`", where=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError("file is not valid UTF-8", where=f"{file}:{line}") from None
    return parse_text(text, file, problems=problems)


def parse_text(text: str, file: str, fast: bool = True, problems: Problems | None = None) -> Document:
    """Parse YAML text (the fast reader first, libyaml when it declines or `fast` is False)."""
    if fast:
        try:
            data, locs, expressions = read_simple(text, file)
            _check_expressions(expressions)
            return Document(file, data, locs)
        except Unsupported:
            pass
    loader = _loader()
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file, text) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", where=file) from None
    if node is None:
        return Document(file, None, None)
    data, where = _Builder(file, problems).build(node, [])
    if data is None:
        return Document(file, None, None)
    locs = where if isinstance(where, LocMap) else LocMap.at(file, node.start_mark.line + 1)
    return Document(file, data, locs)


def _check_expressions(expressions: list[str]) -> None:
    """Syntax-check `${{ }}` strings; on an error let libyaml re-read the file for the field path."""
    if not expressions:
        return
    from sflow.schema.expressions import all_valid

    if not all_valid(expressions):
        raise Unsupported


def _syntax_error(exc: yaml.MarkedYAMLError, file: str, text: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    where = f"{file}:{mark.line + 1}" if mark is not None else file
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        problem = f"{problem} ({exc.context})"
    if mark is not None and _tab_at(text, mark.line, mark.column):
        problem = "a tab indents this line; YAML indents with spaces only"
    return SpecError(f"YAML syntax error: {problem}", where=where)


def _tab_at(text: str, line: int, column: int) -> bool:
    """YAML stopped in the indentation of the line, and that indentation has a tab."""
    lines = text.splitlines()
    if line >= len(lines):
        return False
    indent = lines[line][: len(lines[line]) - len(lines[line].lstrip(" \t"))]
    return column <= len(indent) and "\t" in indent


class _Builder:
    """Turns a libyaml node tree into data + `LocMap`s."""

    def __init__(self, file: str, problems: Problems | None = None) -> None:
        self.file = file
        self.problems = problems
        self.active: set[int] = set()
        self.count = 0

    def where(self, node: yaml.Node) -> str:
        return f"{self.file}:{node.start_mark.line + 1}"

    def build(self, node: yaml.Node, path: list[PathPart]) -> tuple[Any, int | LocMap]:
        """(value, location) of one node; containers get their own `LocMap`."""
        self.count += 1
        if self.count > _MAX_NODES:
            raise SpecError("document too large (alias expansion?)", where=self.where(node))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path), node.start_mark.line + 1
        if id(node) in self.active:
            raise SpecError("recursive alias", where=self.where(node), field=format_path(path))
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, path)
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, path: list[PathPart]) -> Any:
        value = node.value
        if node.tag is _Implicit:
            value = resolve_plain(value) if not node.style else value
        else:
            value = self.tagged(node, path)
        if isinstance(value, str) and "${{" in value:
            from sflow.schema.expressions import check_syntax

            if self.problems is None:
                check_syntax(value, where=self.where(node), field=format_path(path))
            else:
                with self.problems.collecting():
                    check_syntax(value, where=self.where(node), field=format_path(path))
        return value

    def tagged(self, node: yaml.ScalarNode, path: list[PathPart]) -> Any:
        """Scalars with an explicit standard tag (`!!str 5`, `!!int "5"` ...)."""
        tag, text = node.tag, node.value
        try:
            if tag == _TAG + "str":
                return text
            if tag == _TAG + "int":
                return int(text, 0) if text[:2] in ("0x", "0o") else int(text)
            if tag == _TAG + "float":
                return float(text)
            if tag == _TAG + "bool" and text.lower() in ("true", "false"):
                return text.lower() == "true"
            if tag == _TAG + "null":
                return None
        except ValueError:
            pass
        raise SpecError(
            f"cannot use tag {tag!r} on {text!r}", where=self.where(node), field=format_path(path)
        )

    def sequence(self, node: yaml.SequenceNode, path: list[PathPart]) -> tuple[list[Any], LocMap]:
        self.check_tag(node, "seq", path)
        locs = LocMap.at(self.file, node.start_mark.line + 1)
        out = []
        for index, item in enumerate(node.value):
            path.append(index)
            value, locs[index] = self.build(item, path)
            path.pop()
            out.append(value)
        return out, locs

    def mapping(self, node: yaml.MappingNode, path: list[PathPart]) -> tuple[dict[str, Any], LocMap]:
        self.check_tag(node, "map", path)
        locs = LocMap.at(self.file, node.start_mark.line + 1)
        out: dict[str, Any] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("mapping keys must be plain strings", where=self.where(key_node))
            key = key_node.value
            if key == "<<" and not key_node.style and key_node.tag is _Implicit:
                merges.append(value_node)
                continue
            if key in out:
                first = locs.where_of(key)
                raise SpecError(
                    f"duplicate key '{key}' (first defined at {first})",
                    where=self.where(key_node),
                    field=format_path([*path, key]),
                )
            path.append(key)
            out[key], where = self.build(value_node, path)
            path.pop()
            line = key_node.start_mark.line + 1
            if isinstance(where, LocMap):
                where.line = line
            locs[key] = where if isinstance(where, LocMap) else line
        for merge in merges:
            self.merge_into(out, locs, merge, path)
        return out, locs

    def merge_into(self, out: dict[str, Any], locs: LocMap, node: yaml.Node, path: list[PathPart]) -> None:
        """YAML merge key: copy keys of the referenced mapping(s) that are not set explicitly."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise SpecError("'<<' must refer to a mapping", where=self.where(source))
            data, source_locs = self.mapping(source, path)
            for key, value in data.items():
                if key not in out:
                    out[key] = value
                    locs[key] = source_locs[key]

    def check_tag(self, node: yaml.Node, kind: str, path: list[PathPart]) -> None:
        if node.tag is not _Implicit and node.tag != _TAG + kind:
            raise SpecError(f"unsupported tag {node.tag!r}", where=self.where(node), field=format_path(path))
