"""A fast reader for the plain block-style YAML that workflow files are made of.

Going through libyaml costs about 2 µs per node on a small machine (PyYAML builds marks, events and
nodes as Python objects): more than the whole budget for a 100,000-task file. This reader splits
every line with one regex (`_LINE`, run over the whole text in C) and handles the common subset --
block mappings and sequences, plain and quoted one-line scalars, `[a, "b"]` flow lists, `{}`, `|`/`|-`
literal blocks, comments -- raising `Unsupported` on everything else (anchors, tags, multi-line plain
or quoted scalars, flow mappings, folding, tabs, duplicate keys, any error). The caller then reads
the file with libyaml, which also gives the precise message for invalid YAML: this reader never
reports an error of its own. Unit tests check that both readers agree on data and lines.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator
from typing import Any

from sflow.schema.locations import LocMap
from sflow.schema.scalars import WORDS, number


class Unsupported(Exception):
    """The text uses YAML this reader leaves to libyaml."""


Expressions = list[str]  # the strings that hold `${{`, for one syntax check of them all
Frame = tuple[int, Any, LocMap, bool]  # (indent, container, locations, is_mapping)

# indent, "- " of a sequence item, `key:` of a mapping entry, and the rest of the line. A key is
# words without `:` or `#`; `a:b: c` has none, so its line is left to libyaml. Every repeat is
# possessive: what follows it can never match what it would give back (a lazy key tried `:` after
# every character), and not keeping the places to go back to saves a few percent of the reading.
_LINE = re.compile(
    r"^( *+)(-(?: ++|$))?"
    r"(?:(?!<<)([^\s\-?:,\[\]{}#&*!|>'\"%@`][^#\n: ]*+(?: ++[^#\n: ]++)*+) *+:(?: ++|$))?"
    r"(.*+)$",
    re.M,
)


@functools.cache
def _bad_chars() -> re.Pattern[str]:
    """Characters left to libyaml: tabs, carriage returns and other control characters, the byte
    order mark, and Unicode's other spaces and line breaks (libyaml also ends a line at U+0085,
    U+2028 and U+2029; `_LINE` knows only `\\n`, and takes none of them for the space that ends a
    key). Compiled for the first text that is not ASCII."""
    return re.compile(
        r"[\x00-\x09\x0b-\x1f\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
    )


_CONTROL = bytes(c for c in range(32) if c != 10) + b"\x7f"  # `_bad_chars` of ASCII text
_SPECIAL_START = frozenset("-?:,[]{}#&*!|>'\"%@`")
_NUMBER_START = frozenset("0123456789+-.")
_NUMBER_END = frozenset("0123456789.abcdefABCDEFnN")  # last character of anything `number` converts
_FLOW_BAD = re.compile(r"[\[\]{}#:]")
_QUOTES = frozenset("\"'")
_QUOTED_ITEM_BAD = re.compile(r"[\"'\\]")


@functools.cache
def _literal_header() -> re.Pattern[str]:
    """Compiled for the first `|` block read."""
    return re.compile(r"\|(-?)(?: +#.*)? *")


def read_simple(text: str, file: str) -> tuple[Any, LocMap | None, Expressions]:
    """Parse `text`; returns (data, locations, the strings containing `${{`).

    The locations of each mapping item of a sequence (`- name: ...`, a task) are read again from
    its lines when first asked for (`_ItemLocs`): only a message needs them, and for a big file
    they would be the larger half of the document in memory. But loading looks into the items
    that hold a mapping of their own (a task's `variables`), so from the first such item on, the
    items' locations are made at once: reading them twice would cost more than they do."""
    if _has_bad_chars(text):
        raise Unsupported
    return _Reader(text, file, _Source(text, file)).run()


class _Source:
    """The text of one file, kept for the item locations read again from it."""

    __slots__ = ("file", "lines", "read", "text")

    _ITEMS_AT_ONCE = 256  # items read again together: one asked for, the next ones most often are

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.lines: list[str] | None = None  # split on the first item read again
        self.read: dict[int, LocMap] = {}  # items read again, not asked for yet, by line

    def item_locations(self, line: int) -> LocMap:
        """The `LocMap` of the sequence item whose `- key:` is on `line` (1-based), read again
        with the items after it in the same sequence (up to `_ITEMS_AT_ONCE`): their lines run to
        the first one written left of the dash, or at its indent but not a `-` item (a comment or
        a blank line ends nothing), and are read again as a document of their own."""
        item = self.read.pop(line, None)
        if item is not None:
            return item
        if self.lines is None:
            self.lines = self.text.split("\n")
        lines = self.lines
        start = end = line - 1
        indent = len(lines[start]) - len(lines[start].lstrip(" "))
        items = 1
        for end in range(start + 1, len(lines) + 1):
            if end == len(lines):
                break
            text = lines[end]
            body = text.lstrip(" ")
            if not body or body[0] == "#" or len(text) - len(body) > indent:
                continue
            if len(text) - len(body) < indent or not (body == "-" or body.startswith("- ")):
                break
            if items == self._ITEMS_AT_ONCE:
                break
            items += 1
        fragment = "\n".join(lines[start:end]) + "\n"
        _, locs, _ = _Reader(fragment, self.file, None, start).run()
        assert locs is not None
        for entry in dict.values(locs):
            if isinstance(entry, LocMap):
                self.read[entry.line] = entry
        return self.read.pop(line)


class _ItemLocs(LocMap):
    """The `LocMap` of a sequence item, filled from its lines (`_Source.item_locations`) the first
    time anything reads or changes it; until then it knows only its own file and line."""

    __slots__ = ("source",)
    source: _Source | None

    def fill(self) -> None:
        source = self.source
        if source is not None:  # (two threads asking at once both fill it, with the same items)
            dict.update(self, source.item_locations(self.line))
            self.source = None

    def __repr__(self) -> str:
        self.fill()
        return LocMap.__repr__(self)


def _filling(name: str) -> Any:
    """`dict.<name>` that fills an `_ItemLocs` first."""
    method = getattr(dict, name)

    def call(self: _ItemLocs, *args: Any, **kwargs: Any) -> Any:
        self.fill()
        return method(self, *args, **kwargs)

    call.__name__ = name
    return call


for _name in (
    *("__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__", "__reversed__", "__len__"),
    *("__eq__", "__ne__", "__or__", "__ror__", "__ior__", "get", "setdefault", "pop", "popitem"),
    *("keys", "values", "items", "update", "copy", "clear"),
):
    setattr(_ItemLocs, _name, _filling(_name))


def _has_bad_chars(text: str) -> bool:
    """Whether `text` has one of `_bad_chars`; ASCII text (the usual) is checked as bytes, in a
    quarter of the time of the regex, a chunk at a time: the whole text as bytes, and those bytes
    without the characters, would be two fresh copies of a big file whose page faults cost more
    than the check."""
    if text.isascii():
        for pos in range(0, len(text), _CHUNK):
            raw = text[pos : pos + _CHUNK].encode("ascii")
            if len(raw.translate(None, _CONTROL)) != len(raw):
                return True
        return False
    return _bad_chars().search(text) is not None


Row = tuple[str, str, str, str]
_CHUNK = 1 << 16  # characters split into rows at a time


def _rows(text: str) -> Iterator[tuple[int, list[Row]]]:
    """(index of the first, rows) of `text`, one row per line as `_LINE.findall(text)` gives them, a
    chunk of lines at a time: the rows of a whole big file at once would be its largest transient
    (about 100 MB for 100,000 tasks), and the memory they leave scattered is not given back."""
    pos, size, first, chunk = 0, len(text), 0, _CHUNK
    while True:
        stop = text.find("\n", pos + chunk) if pos + chunk < size else -1
        rows: list[Row] = _LINE.findall(text[pos:stop] if stop != -1 else text[pos:] if pos else text)
        yield first, rows
        if stop == -1:
            return
        first += len(rows)
        pos = stop + 1


class _Reader:
    def __init__(self, text: str, file: str, source: _Source | None, offset: int = 0) -> None:
        """Items' locations are left to `source` to read again when asked (all are made now
        without one); `offset` is the number of the file's lines before `text`."""
        self.text = text
        self.file = file
        self.source = source
        self.offset = offset
        self.lines: list[str] | None = None  # split lazily, only for `|` blocks
        self.exprs: Expressions = []

    def run(self) -> tuple[Any, LocMap | None, Expressions]:
        """The line loop. It is hot (a row costs ~1 µs), so the top frame lives in local variables,
        and the plain `key: value` path and the opening of a nested block are inlined; everything
        unusual goes through helpers. Keys are interned: the same few (`name`, `script`) are kept
        once per task in the `LocMap`s. Inside an item whose locations are read again when asked,
        they are written to `skipped`, which is thrown away."""
        file, exprs, source = self.file, self.exprs, self.source
        skipped = LocMap()
        special, numeric, digits, words, to_number = _SPECIAL_START, _NUMBER_START, _NUMBER_END, WORDS, number
        intern = sys.intern
        stack: list[Frame] = []
        root: Any = None
        root_locs: LocMap | None = None
        pending: tuple[int, Any, Any, LocMap, int, bool] | None = None  # `key:` or `-` without a value
        t_cont: Any = None
        t_indent, t_locs, t_map = -1, LocMap(), False  # the innermost open container: t_cont
        skip, started = 0, False  # rows up to number `skip` belong to a `|` block
        for first_row, rows in _rows(self.text):
            for i, (indent_text, dash, key, rest) in enumerate(rows, first_row + 1 + self.offset):
                if not key and not dash:  # blank, comment or `---`; anything else is not ours
                    if i > skip:
                        started = _bare_row(indent_text, rest, root is None and not started) or started
                    continue
                if i <= skip:
                    continue
                indent = len(indent_text)
                if pending is not None:  # the row after it opens a nested block, or the value is null
                    p_indent, p_cont, p_slot, p_locs, p_line, p_key = pending
                    pending = None
                    if indent > p_indent or (p_key and dash and indent == p_indent):
                        t_cont = [] if dash else {}
                        t_indent, t_locs, t_map = indent, skipped if p_locs is skipped else LocMap(), not dash
                        if t_locs is skipped and not dash:
                            source = None  # an item holds a mapping: the next ones' are made now
                        t_locs.file, t_locs.line = file, p_line if p_key else i
                        p_cont[p_slot], p_locs[p_slot] = t_cont, t_locs
                        stack.append((t_indent, t_cont, t_locs, t_map))
                    else:
                        p_locs[p_slot] = p_line
                while indent < t_indent or (indent == t_indent and not dash and not t_map):
                    stack.pop()
                    t_indent, t_cont, t_locs, t_map = stack[-1] if stack else (-1, None, t_locs, False)
                if t_cont is None:
                    if root is not None:
                        raise Unsupported
                    root, root_locs = ([] if dash else {}), LocMap.at(file, i)
                    stack.append((indent, root, root_locs, not dash))
                    t_indent, t_cont, t_locs, t_map = stack[-1]
                elif t_indent != indent:
                    raise Unsupported
                if dash:
                    if t_map:
                        raise Unsupported
                    slot: Any = len(t_cont)
                    if not key:
                        t_cont.append(None)
                        if not rest or rest[0] == "#":
                            pending = (indent, t_cont, slot, t_locs, i, False)
                            continue
                        owner = indent
                    else:
                        if t_locs is skipped:
                            map_locs, source = skipped, None  # (as for a mapping in an item)
                        elif source is None:
                            map_locs = LocMap()
                            map_locs.file, map_locs.line = file, i
                            t_locs[slot] = map_locs
                        else:
                            item = _ItemLocs()
                            item.file, item.line, item.source = file, i, source
                            t_locs[slot], map_locs = item, skipped
                        mapping: dict[str, Any] = {}
                        t_cont.append(mapping)
                        t_indent, t_cont, t_locs, t_map = indent + len(dash), mapping, map_locs, True
                        stack.append((t_indent, t_cont, t_locs, t_map))
                elif not t_map:
                    raise Unsupported
                if key:
                    key = intern(key)
                    if key in t_cont:
                        raise Unsupported
                    if not rest or rest[0] == "#":
                        t_cont[key] = None
                        pending = (t_indent, t_cont, key, t_locs, i, True)
                        continue
                    slot, owner = key, t_indent
                first = rest[0]
                if first in special:
                    if first == "[":  # flow list: its items share the key's line
                        t_cont[slot], t_locs[slot] = _flow_list(rest), i
                    else:
                        t_cont[slot], t_locs[slot], skip = self.value(rest, i, owner)
                    continue
                if " #" in rest:
                    rest = rest[: rest.index(" #")]
                if rest[-1] == " ":
                    rest = rest.rstrip(" ")
                if ": " in rest or rest[-1] == ":":
                    raise Unsupported
                if "${{" in rest:
                    exprs.append(rest)
                t_cont[slot] = (
                    to_number(rest) if first in numeric and rest[-1] in digits else words.get(rest, rest)
                )
                t_locs[slot] = i
        if pending is not None:
            pending[3][pending[2]] = pending[4]
        return root, root_locs, exprs

    def value(self, rest: str, line: int, owner_indent: int) -> tuple[Any, int | LocMap, int]:
        """(value, location, next row) of the value text `rest` on `line` (1-based)."""
        first = rest[0]
        if first not in _SPECIAL_START or (first == "-" and rest[1:2] not in ("", " ")):
            text = _plain(rest)
            value: Any = number(text) if first in _NUMBER_START else WORDS.get(text, text)
        elif first == '"' or first == "'":
            value = text = _quoted(rest)
        elif first == "[":
            return _flow_list(rest), line, line
        elif first == "{" and rest.startswith("{}"):
            _check_tail(rest, 2)
            return {}, LocMap.at(self.file, line), line
        elif first == "|":
            text, next_row = self.literal(rest, line, owner_indent)
            if "${{" in text:
                self.exprs.append(text)
            return text, line, next_row
        else:
            raise Unsupported
        if "${{" in text:
            self.exprs.append(text)
        return value, line, line

    def literal(self, header: str, line: int, owner_indent: int) -> tuple[str, int]:
        """A `|` or `|-` block starting after `line`; returns its text and the next row index."""
        match = _literal_header().fullmatch(header)
        if match is None:
            raise Unsupported
        if self.lines is None:
            self.lines = self.text.split("\n")
        text, next_row = _literal_body(self.lines, line - self.offset, owner_indent)
        return (text if match.group(1) else text + "\n"), next_row + self.offset


def _bare_row(indent: str, rest: str, may_start: bool) -> bool:
    """A row without key or dash: True for a leading `---`, False for blank/comment, else Unsupported."""
    if not rest or rest[0] == "#":
        return False
    if not indent and may_start and rest.rstrip(" ") == "---":
        return True
    raise Unsupported


def _plain(rest: str) -> str:
    """A one-line plain scalar without its comment; Unsupported when YAML would read more into it."""
    if " #" in rest:
        rest = rest[: rest.index(" #")]
    text = rest.rstrip(" ")
    if ": " in text or text.endswith(":"):
        raise Unsupported
    return text


def _check_tail(rest: str, pos: int) -> None:
    """After a quoted scalar or flow list, only a comment may follow."""
    tail = rest[pos:]
    if tail.strip(" ") and not (tail[0] == " " and tail.lstrip(" ")[0] == "#"):
        raise Unsupported


def _quoted(rest: str) -> str:
    """A one-line quoted scalar without escapes."""
    quote = rest[0]
    pos = 1
    while True:
        end = rest.find(quote, pos)
        if end == -1:
            raise Unsupported
        if quote == "'" and rest[end + 1 : end + 2] == "'":
            pos = end + 2
            continue
        break
    text = rest[1:end]
    if quote == '"' and "\\" in text:
        raise Unsupported
    _check_tail(rest, end + 1)
    return text.replace("''", "'") if quote == "'" else text


def _flow_list(rest: str) -> list[Any]:
    """`[a, b, "c"]` with plain or simply quoted items on one line (no `{`, so no `${{ }}`:
    a list holding an expression is left to libyaml)."""
    end = rest.find("]")
    if end == -1:
        raise Unsupported
    if end != len(rest) - 1:
        _check_tail(rest, end + 1)
    inner = rest[1:end]
    if _FLOW_BAD.search(inner):
        raise Unsupported
    items: list[Any] = []
    for part in inner.split(","):
        item = part.strip(" ")
        if item[:1] in _QUOTES:
            items.append(_flow_quoted(item))
            continue
        if "'" in item or '"' in item:
            raise Unsupported
        if not item or (item[0] in _SPECIAL_START and not (item[0] == "-" and item[1:2] not in ("", " "))):
            if not item and not items and not inner.strip(" "):
                return []
            raise Unsupported
        items.append(number(item) if item[0] in _NUMBER_START else WORDS.get(item, item))
    return items


def _flow_quoted(item: str) -> str:
    """A quoted item of a flow list (`["true"]`): text with no quote or backslash in its quotes."""
    text = item[1:-1]
    if len(item) < 2 or item[-1] != item[0] or _QUOTED_ITEM_BAD.search(text):
        raise Unsupported
    return text


def _literal_body(lines: list[str], start: int, owner_indent: int) -> tuple[str, int]:
    """The lines of a literal block after line index `start` (clip chomping: no trailing empties)."""
    total = len(lines)
    idx = start
    while idx < total and not lines[idx].strip(" "):
        idx += 1
    if idx == total:
        raise Unsupported
    width = len(lines[idx]) - len(lines[idx].lstrip(" "))
    if width <= owner_indent or any(len(lines[k]) > width for k in range(start, idx)):
        raise Unsupported
    pad = " " * width
    body = [""] * (idx - start)
    while idx < total:
        line = lines[idx]
        if line.startswith(pad):
            text = line[width:]
            if text and not text.strip(" "):
                raise Unsupported
            body.append(text)
        elif not line.strip(" "):
            body.append("")
        else:
            break
        idx += 1
    while body and not body[-1]:
        body.pop()
    return "\n".join(body), idx
