"""The fast subset reader must agree with libyaml on data and lines, and decline everything else."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sflow.errors import SpecError
from sflow.schema.locations import LocMap, PathPart, where_at
from sflow.schema.yaml_fast import Unsupported, read_simple
from sflow.schema.yaml_source import parse_text

HANDLED = {
    "mapping": "a: 1\nb: two\nc:\n",
    "nested": "a:\n  b:\n    c: d\n  e: f\n",
    "sequence_under_key_same_indent": "k:\n- a\n- b\nnext: 1\n",
    "sequence_indented": "k:\n  - a\n  -  b\n",
    "compact_mappings": "tasks:\n  - name: a\n    script:\n      - echo 1\n  - name: b\n    depends_on: [a]\n",
    "null_items": "k:\n  -\n  - x\n  -\n",
    "dash_then_block": "k:\n  -\n    a: 1\n  -\n    - x\n",
    "comments": "# head\na: 1 # c\n# mid\nb: x#y\nc: 'q' # c\nd: [a, b] # c\n",
    "quoted": "a: \"x: y\"\nb: 'it''s'\nc: \"\"\nd: ''\n",
    "flow_lists": "a: []\nb: [1, two, 3.5, true, null, -1]\nc: {}\n",
    "flow_lists_quoted": 'a: ["true"]\nb: [ \'x y\' , "", \'\', "1", -1, two]\nc: ["$HOME/a b"] # c\n',
    "literal": "s: |\n  echo ${#ARR[@]}\n\n  for i in 1 2; do\n    echo {# not a comment #}\n  done\nn: 1\n",
    "literal_strip": "s: |-\n  a\n  b\n\n\nn: 1\n",
    "literal_in_sequence": "k:\n  - |\n    line1\n    line2\n  - x\n",
    "literal_at_end": "s: |\n  a\n",
    "document_start": "---\na: 1\n",
    "root_sequence": "- a\n- b: 1\n  c: 2\n",
    "numbers_and_words": "a: 1:30:00\nb: 0x10\nc: yes\nd: ~\ne: -5\nf: .inf\ng: 1e3\n",
    "spaces": "a:    x y   \nkey  : v\n",
    "urls": "u: http://host:8080/path?q=1\n",
    "deep": "a:\n  b:\n    - c:\n        - d: 1\n          e: [x]\n",
    "expressions": "a: ${{ variables.X }}\nb:\n  - echo ${{ x }}\n",
    "blank_lines": "\n\na: 1\n\n\nb: 2\n\n",
    "literal_leading_blank": "s: |\n\n  a\nn: 1\n",
    "literal_more_indented": "s: |\n  a\n    b\n  c\n",
    "literal_with_comment_header": "s: |- # note\n  a\n",
    "literal_lines_like_yaml": "s: |\n  ---\n  just text\n  - x\n  k: v\n\n  # c\nn: 1\n",
    "literal_then_sequence": "k:\n  - |-\n    - a\n    b: c\n  - d\n",
}

DECLINED = {
    "anchor": "a: &x 1\nb: *x\n",
    "merge": "a: &x {b: 1}\nc:\n  <<: *x\n",
    "tag": "a: !!str 1\n",
    "flow_mapping": "a: {b: 1}\n",
    "multi_line_plain": "a: one\n  two\n",
    "folded": "a: >\n  x\n",
    "keep_literal": "a: |+\n  x\n",
    "escape": 'a: "x\\ty"\n',
    "tab": "a:\tb\n",
    "crlf": "a: 1\r\nb: 2\r\n",
    "duplicate": "a: 1\na: 2\n",
    "nested_dash": "- - a\n",
    "quoted_key": '"a": 1\n',
    "complex_key": "? a\n: b\n",
    "second_document": "a: 1\n---\nb: 2\n",
    "colon_in_value": "a: b: c\n",
    "unterminated_quote": "a: 'x\n  y'\n",
    "multiline_flow": "a: [1,\n  2]\n",
    "flow_escape": 'a: ["x\\ty"]\n',
    "flow_quote_in_quotes": "a: ['it''s']\n",
    "flow_quote_in_plain": 'a: [x"y]\n',
    "flow_after_quotes": 'a: ["x" y]\n',
    "flow_comma_in_quotes": 'a: ["x,y"]\n',
    "flow_bracket_in_quotes": 'a: ["x]"]\n',
    "root_scalar": "just text\n",
    "bad_indent": "a:\n  b: 1\n c: 2\n",
    "line_separator": "a: x\u2028y\n",
    "paragraph_separator": "a: x\u2029y\n",
    "next_line": "a: x\x85y\n",
    "no_break_space_key": "\xa0k: v\n",
    "ideographic_space": "a: x\u3000y\n",
    "vertical_tab": "a: x\x0by\n",
    "byte_order_mark": "\ufeffa: 1\n",
}


def paths(data: Any, prefix: tuple[PathPart, ...] = ()) -> Iterator[tuple[PathPart, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths(value, (*prefix, index))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", HANDLED.values(), ids=HANDLED.keys())
def test_fast_reader_handles_and_agrees_with_libyaml(text: str) -> None:
    data, locs, _ = read_simple(text, "f.yaml")
    slow = parse_text(text, "f.yaml", fast=False)
    assert same(data, slow.data)
    for path in paths(data):
        assert where_at(locs, path) == where_at(slow.locs, path), path


@pytest.mark.parametrize("text", DECLINED.values(), ids=DECLINED.keys())
def test_fast_reader_declines_what_it_does_not_handle(text: str) -> None:
    with pytest.raises(Unsupported):
        read_simple(text, "f.yaml")


def test_one_invalid_expression_among_many_is_reported_at_its_line() -> None:
    lines = [f"t{i}: echo ${{{{ variables.X }}}} {i}" for i in range(2000)]
    lines[1500] = "t1500: echo ${{ variables.X"
    lines[1700] = "t1700: echo ${{ variables.X }} ${{ 1 + }}"
    with pytest.raises(SpecError, match=r"f\.yaml:1501: t1500: invalid expression"):
        parse_text("\n".join(lines) + "\n", "f.yaml")
    lines[1500] = "t1500: echo ${{ variables.X }}"
    with pytest.raises(SpecError, match=r"f\.yaml:1701: t1700: invalid expression"):
        parse_text("\n".join(lines) + "\n", "f.yaml")


def test_unicode_line_breaks_are_left_to_libyaml_which_reports_them() -> None:
    for text in ("a: x\u2028y\n", "a: x\x85y\n", "a: x\u2029y\n"):
        with pytest.raises(SpecError, match="YAML syntax error"):
            parse_text(text, "f.yaml")


def test_literal_block_keeps_shell_text_exactly() -> None:
    data, _, _ = read_simple(HANDLED["literal"], "f.yaml")
    assert data["s"] == "echo ${#ARR[@]}\n\nfor i in 1 2; do\n  echo {# not a comment #}\ndone\n"
    assert data["n"] == 1


def test_strings_with_expressions_are_reported() -> None:
    _, _, exprs = read_simple(HANDLED["expressions"], "f.yaml")
    assert exprs == ["${{ variables.X }}", "echo ${{ x }}"]


def test_locations_of_keys_items_and_containers() -> None:
    _, locs, _ = read_simple(HANDLED["compact_mappings"], "f.yaml")
    assert isinstance(locs, LocMap)
    assert where_at(locs, ["tasks", 1]) == "f.yaml:5"
    assert where_at(locs, ["tasks", 0, "script"]) == "f.yaml:3"
    assert where_at(locs, ["tasks", 0, "script", 0]) == "f.yaml:4"
    assert where_at(locs, ["tasks", 1, "depends_on", 0]) == "f.yaml:6"


def test_every_test_data_file_reads_the_same_both_ways() -> None:
    for path in sorted((Path(__file__).parent / "data").rglob("*.yaml")):
        text = path.read_text()
        fast = parse_text(text, "f.yaml")
        slow = parse_text(text, "f.yaml", fast=False)
        assert same(fast.data, slow.data), path
        for p in paths(fast.data):
            assert where_at(fast.locs, p) == where_at(slow.locs, p), (path, p)


_FRAGMENTS = [
    "a: 1",
    "b: x y",
    "c:",
    "- d",
    "- e: 1",
    "-",
    "f: [a, b]",
    "fq: [\"a b\", 'c', d]",
    "fr: ['x\"]",
    "g: 'q'",
    'h: "r"',
    "i: |",
    "j: |-",
    "k: 1:30",
    "l: yes",
    "m: a: b",
    "n: ${{ x }}",
    "# c",
    "",
    "o: [",
    "- [1, 2]",
    "p: {}",
    "q: -1",
    "- - x",
    "r: #c",
    "s: t # u",
    "v: 'w' x",
    "echo hi",
    "x: &a 1",
    "y: *a",
]


def _random_document(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 8)):
        lines.append(" " * rng.choice([0, 0, 1, 2, 2, 4, 4, 6]) + rng.choice(_FRAGMENTS))
    return "\n".join(lines) + "\n"


def test_random_documents_fast_reader_agrees_or_declines() -> None:
    rng = random.Random(20240601)
    handled = 0
    for _ in range(3000):
        text = _random_document(rng)
        try:
            slow = parse_text(text, "f.yaml", fast=False)
        except SpecError:
            with pytest.raises(Unsupported):
                read_simple(text, "f.yaml")
            continue
        try:
            data, locs, _ = read_simple(text, "f.yaml")
        except Unsupported:
            continue
        handled += 1
        assert same(data, slow.data), text
        for path in paths(data):
            assert where_at(locs, path) == where_at(slow.locs, path), (text, path)
    assert handled > 300


def test_rows_read_a_chunk_at_a_time_are_the_rows_of_the_whole_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from sflow.schema import yaml_fast

    rng = random.Random(7)
    texts = [*HANDLED.values(), *DECLINED.values(), "", "\n", "a", "a\n\n"]
    texts += [_random_document(rng) for _ in range(200)]
    for chunk in (1, 2, 3, 5, 8, 13, 40):
        monkeypatch.setattr(yaml_fast, "_CHUNK", chunk)
        for text in texts:
            got = []
            for first, rows in yaml_fast._rows(text):
                assert first == len(got)
                got.extend(rows)
            assert got == yaml_fast._LINE.findall(text), (chunk, text)


def test_small_chunks_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks, `|` scripts and lists cut across chunk boundaries read as if the text were one chunk."""
    from sflow.schema import yaml_fast

    rng = random.Random(11)
    texts = [*HANDLED.values(), *(_random_document(rng) for _ in range(300))]
    texts.append("".join(f"t{i}:\n  s: |\n" + "    x\n" * (i % 7 + 1) + f"  n: {i}\n" for i in range(1, 60)))
    for text in texts:
        try:
            whole = read_simple(text, "f.yaml")
        except Unsupported:
            whole = None
        for chunk in (1, 4, 9, 30):
            monkeypatch.setattr(yaml_fast, "_CHUNK", chunk)
            if whole is None:
                with pytest.raises(Unsupported):
                    read_simple(text, "f.yaml")
                continue
            data, locs, exprs = read_simple(text, "f.yaml")
            assert same(data, whole[0]) and exprs == whole[2], (chunk, text)
            for path in paths(data):
                assert where_at(locs, path) == where_at(whole[1], path), (chunk, text, path)
        monkeypatch.setattr(yaml_fast, "_CHUNK", 1 << 16)


def test_a_key_with_a_colon_is_left_to_libyaml() -> None:
    for text in ("a:b: c\n", "k:\n  - x:y: 1\n", "http://h:1: x\n"):
        with pytest.raises(Unsupported):
            read_simple(text, "f.yaml")
    assert parse_text("a:b: c\nd: e\n", "f.yaml").data == {"a:b": "c", "d": "e"}


_ITEMS = """\
tasks:
  - name: a
    script: |
      echo one

        echo two
# a comment at the left margin inside the list
    depends_on: [b]
  - name: b
    probes:
      - kind: log
        args:
          - x
    # a comment
    empty:
  -
    name: c
  - name: d"""


def _tree(locs: Any) -> Any:
    """A `LocMap` tree as plain tuples, every item read (so two trees compare by content)."""
    if not isinstance(locs, LocMap):
        return locs
    return (locs.file, locs.line, {key: _tree(value) for key, value in locs.items()})


def test_item_locations_read_again_when_asked_are_those_of_one_reading() -> None:
    from sflow.schema import yaml_fast

    rng = random.Random(5)
    texts = [*HANDLED.values(), _ITEMS, *(_random_document(rng) for _ in range(1000))]
    compared = 0
    for text in texts:
        try:
            whole = yaml_fast._Reader(text, "f.yaml", None).run()[1]
        except Unsupported:
            continue
        _, locs, _ = read_simple(text, "f.yaml")
        assert _tree(locs) == _tree(whole), text
        compared += 1
    assert compared > 150


def test_item_locations_are_read_only_when_asked() -> None:
    _, locs, _ = read_simple(_ITEMS, "f.yaml")
    assert locs is not None
    tasks = locs["tasks"]
    assert isinstance(tasks, LocMap)
    first = dict.get(tasks, 0)
    assert isinstance(first, LocMap) and dict.__len__(first) == 0
    assert first.where() == "f.yaml:2"
    assert where_at(locs, ["tasks", 0, "depends_on", 0]) == "f.yaml:8"
    assert dict.__len__(first) == 3
    assert where_at(locs, ["tasks", 1, "probes", 0, "args", 0]) == "f.yaml:13"
    assert where_at(locs, ["tasks", 1, "empty"]) == "f.yaml:15"
    assert where_at(locs, ["tasks", 3, "name"]) == "f.yaml:18"


def test_a_control_character_far_into_a_big_file_is_left_to_libyaml() -> None:
    from sflow.schema import yaml_fast

    lines = "".join(f"k{i}: v\n" for i in range(40_000))
    assert len(lines) > 3 * yaml_fast._CHUNK
    read_simple(lines, "f.yaml")
    for pos in (0, yaml_fast._CHUNK - 1, yaml_fast._CHUNK, len(lines) - 2):
        with pytest.raises(Unsupported):
            read_simple(lines[:pos] + "\x0b" + lines[pos + 1 :], "f.yaml")


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_items_read_again_together_are_those_of_one_reading_in_any_order(
    monkeypatch: pytest.MonkeyPatch, at_once: int
) -> None:
    from sflow.schema import yaml_fast

    monkeypatch.setattr(yaml_fast._Source, "_ITEMS_AT_ONCE", at_once)
    rng = random.Random(at_once)
    texts = [_ITEMS, *(_random_document(rng) for _ in range(300))]
    texts.append(
        "k:\n" + "".join(f"  - a: {i}\n    # c\n\n    b: [x]\n  - {i}\n  -\n    c: 1\n" for i in range(9))
    )
    for text in texts:
        try:
            whole = yaml_fast._Reader(text, "f.yaml", None).run()[1]
        except Unsupported:
            continue
        data, locs, _ = read_simple(text, "f.yaml")
        for path in reversed(list(paths(data))):
            assert where_at(locs, path) == where_at(whole, path), (text, path)
        assert _tree(locs) == _tree(whole), text


def test_items_after_one_holding_a_mapping_have_their_locations_at_once() -> None:
    """Loading looks into such items (a task's `variables`): theirs would be read twice."""
    from sflow.schema import yaml_fast

    _, locs, _ = read_simple(_ITEMS, "f.yaml")
    assert locs is not None
    tasks = locs["tasks"]
    assert isinstance(tasks, LocMap)
    kinds = [type(dict.get(tasks, index)) for index in range(4)]
    assert kinds == [yaml_fast._ItemLocs, yaml_fast._ItemLocs, LocMap, LocMap]
