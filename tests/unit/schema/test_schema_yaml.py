"""Reading YAML: sflow's scalar rules, line numbers, and errors that name file and line."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sflow.errors import SpecError
from sflow.schema.locations import where_at
from sflow.schema.scalars import resolve_plain
from sflow.schema.yaml_source import parse_text, read_document


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:30:00", "1:30:00"),
        ("00:10:00", "00:10:00"),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("12", 12),
        ("-3", -3),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("1_000", "1_000"),
        ("5m", "5m"),
        ("t0", "t0"),
        ("nvidia-smi", "nvidia-smi"),
    ],
)
def test_plain_scalars_follow_yaml_1_2_core(text: str, expected: Any) -> None:
    assert resolve_plain(text) == expected
    assert type(resolve_plain(text)) is type(expected)


def test_special_floats() -> None:
    assert resolve_plain(".inf") == math.inf
    assert resolve_plain("-.Inf") == -math.inf
    assert math.isnan(resolve_plain(".nan"))


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "libyaml"])
def test_time_and_norway_values_stay_strings(fast: bool) -> None:
    doc = parse_text("time: 1:30:00\nanswer: no\nflag: on\nreal: true\n", "a.yaml", fast=fast)
    assert doc.data == {"time": "1:30:00", "answer": "no", "flag": "on", "real": True}


def test_quoted_scalars_are_never_typed() -> None:
    doc = parse_text("a: '12'\nb: \"true\"\nc: 'it''s'\n", "a.yaml")
    assert doc.data == {"a": "12", "b": "true", "c": "it's"}


def test_duplicate_key_names_both_lines(write: Callable[..., Path]) -> None:
    path = write("version: '0.1'\nworkflow:\n  name: a\n  name: b\n")
    with pytest.raises(SpecError) as err:
        read_document(path)
    assert err.value.where == f"{path}:4"
    assert err.value.field == "workflow.name"
    assert f"duplicate key 'name' (first defined at {path}:3)" in err.value.message


def test_yaml_syntax_error_names_file_and_line(write: Callable[..., Path]) -> None:
    path = write("workflow:\n  name: x\n  tasks: [a, b\n  other: 1\n")
    with pytest.raises(SpecError) as err:
        read_document(path)
    assert err.value.where is not None and err.value.where.startswith(f"{path}:")
    assert "YAML syntax error" in err.value.message


@pytest.mark.parametrize(
    "text",
    [
        'version: "0.1"\nworkflow:\n  name: t\n  tasks:\n\t- name: a\n',
        'version: "0.1"\nworkflow:\n  name: t\n  tasks:\n    - name: a\n      script:\n  \t  - echo a\n',
    ],
)
def test_a_tab_that_indents_a_line_is_named(write: Callable[..., Path], text: str) -> None:
    path = write(text)
    with pytest.raises(SpecError) as err:
        read_document(path)
    line = text.splitlines().index(next(x for x in text.splitlines() if "\t" in x)) + 1
    assert err.value.where == f"{path}:{line}"
    assert err.value.message == "YAML syntax error: a tab indents this line; YAML indents with spaces only"


def test_a_tab_inside_a_value_is_not_blamed_for_another_mistake(write: Callable[..., Path]) -> None:
    path = write('workflow:\n  tasks: ["echo\ta", "x" y]\n')
    with pytest.raises(SpecError) as err:
        read_document(path)
    assert "tab" not in err.value.message
    assert "Traceback" not in str(err.value)


def test_bad_indentation_is_a_syntax_error_with_line(write: Callable[..., Path]) -> None:
    path = write("a:\n  b: 1\n c: 2\n")
    with pytest.raises(SpecError) as err:
        read_document(path)
    assert err.value.where == f"{path}:3"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        read_document(tmp_path / "nope.yaml")
    assert err.value.where == str(tmp_path / "nope.yaml")
    assert err.value.message == "file not found"


def test_a_python_script_is_named_as_one_with_how_to_run_it(tmp_path: Path) -> None:
    script = tmp_path / "etl.py"
    script.write_text("import sflow\n\nwith sflow.flow('etl') as f:\n    pass\n")
    with pytest.raises(SpecError) as err:
        read_document(script)
    assert err.value.where == str(script)
    assert err.value.message == f"a Python script, not a workflow file: run it with `python {script}`"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a directory"):
        read_document(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(write: Callable[..., Path]) -> None:
    path = write("a: 1\n")
    path.chmod(0)
    with pytest.raises(SpecError, match="cannot read file"):
        read_document(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(SpecError) as err:
        read_document(path)
    assert err.value.where == f"{path}:2"


def test_anchors_and_merge_keys() -> None:
    text = """
base: &base
  partition: batch
  nodes: 2
b:
  <<: *base
  nodes: 4
"""
    doc = parse_text(text.lstrip("\n"), "a.yaml")
    assert doc.data["b"] == {"partition": "batch", "nodes": 4}
    assert where_at(doc.locs, ["b", "partition"]) == "a.yaml:2"
    assert where_at(doc.locs, ["b", "nodes"]) == "a.yaml:6"


def test_explicit_standard_tags() -> None:
    doc = parse_text("a: !!str 5\nb: !!int '7'\nc: !!float '1'\n", "a.yaml")
    assert doc.data == {"a": "5", "b": 7, "c": 1.0}


def test_unknown_tag_is_an_error() -> None:
    with pytest.raises(SpecError, match=r"unsupported tag|cannot use tag") as err:
        parse_text("a: !custom 5\n", "a.yaml")
    assert err.value.where == "a.yaml:1"


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(SpecError, match="recursive alias"):
        parse_text("a: &x [1, *x]\n", "a.yaml")


def test_empty_document_has_no_data() -> None:
    assert parse_text("# only a comment\n", "a.yaml").data is None
    assert parse_text("", "a.yaml").data is None


def test_expression_syntax_error_at_load_names_line_and_path() -> None:
    text = "workflow:\n  tasks:\n    - name: a\n      script:\n        - echo ${{ variables.X\n"
    with pytest.raises(SpecError) as err:
        parse_text(text, "a.yaml")
    assert err.value.where == "a.yaml:5"
    assert err.value.field == "workflow.tasks[0].script[0]"
    assert "invalid expression" in err.value.message


def test_expression_syntax_error_inside_literal_block_points_at_its_line() -> None:
    text = "script: |\n  echo ok\n  echo ${{ x + }}\n"
    with pytest.raises(SpecError) as err:
        parse_text(text, "a.yaml")
    assert err.value.where == "a.yaml:3"
