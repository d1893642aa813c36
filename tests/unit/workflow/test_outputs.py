"""Outputs picked from a real task log: last match, types, missing values, the sweep table."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from sflow.record.tail import read_end
from sflow.workflow.outputs import (
    convert,
    extract_one,
    extract_outputs,
)


def out(name: str, pattern: str, type: str | None = None) -> NS:
    return NS(name=name, pattern=pattern, type=type)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A log written by a real process, as a task's would be."""
    path = tmp_path / "train.log"
    script = (
        "echo 'epoch 1 loss=0.91 acc=0.5'; echo 'epoch 2 loss=0.42 acc=0.7'; "
        "echo 'steps: 200'; echo 'converged: yes'; echo 'meta: {\"gpu\": \"A100\", \"n\": 8}'; "
        "printf 'model saved to /tmp/m.pt\\r\\n'"
    )
    with open(path, "wb") as f:
        subprocess.run(["bash", "-c", script], stdout=f, check=True)
    return path


def test_last_match_typed(log: Path) -> None:
    values, warnings = extract_outputs(
        log,
        [
            out("loss", r"loss=([\d.]+)", "float"),
            out("acc", r"epoch \d+ loss=\S+ acc=(?P<acc>[\d.]+)", "float"),
            out("steps", r"^steps: (\d+)$", "integer"),
            out("converged", r"converged: (\w+)", "boolean"),
            out("meta", r"meta: (.*)$", "json"),
            out("model", r"saved to (.*)$"),
        ],
    )
    assert warnings == []
    assert values == {
        "loss": 0.42,
        "acc": 0.7,
        "steps": 200,
        "converged": True,
        "meta": {"gpu": "A100", "n": 8},
        "model": "/tmp/m.pt",
    }


def test_named_group_wins_over_the_first_group(log: Path) -> None:
    values, _ = extract_outputs(log, [out("acc", r"(loss)=\S+ acc=(?P<acc>[\d.]+)")])
    assert values == {"acc": "0.7"}


def test_missing_or_unconvertible_values_are_none_with_a_warning(log: Path) -> None:
    values, warnings = extract_outputs(
        log,
        {"throughput": out("", r"tok/s=(\d+)", "float"), "steps": out("steps", r"steps: (\d+)", "boolean")},
    )
    assert values == {"throughput": None, "steps": None}
    assert warnings == [
        r"output 'throughput': pattern 'tok/s=(\\d+)' did not match the log",
        "output 'steps': '200' is not boolean (true/false, yes/no, on/off, 1/0)",
    ]


def test_no_log_leaves_every_output_unset(tmp_path: Path) -> None:
    values, warnings = extract_outputs(tmp_path / "absent.log", [out("a", "(x)"), out("b", "(y)")])
    assert values == {"a": None, "b": None}
    assert len(warnings) == 1 and "a, b not set" in warnings[0]
    assert extract_outputs(tmp_path / "absent.log", None) == ({}, [])


def test_bad_pattern_and_unknown_type_are_warnings(log: Path) -> None:
    values, warnings = extract_outputs(log, [out("a", "(unclosed"), out("b", r"steps: (\d+)", "decimal")])
    assert values == {"a": None, "b": None}
    assert "invalid pattern" in warnings[0] and "unknown type 'decimal'" in warnings[1]


def test_conversions() -> None:
    assert convert(" 12 ", "integer") == 12
    assert convert("off", "boolean") is False
    assert convert("[1, 2]", "json") == [1, 2]
    assert convert(" keep spaces ", "string") == " keep spaces "
    with pytest.raises(ValueError, match="is not integer"):
        convert("1.5", "integer")


def test_a_huge_log_is_read_from_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text("value=1\n" + "x" * 50 + "\nvalue=2\n")
    assert read_end(path, 20) == "value=2\n"
    values, _ = extract_outputs(path, [out("v", r"value=(\d)", "integer")])
    assert values == {"v": 2}


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("loss", r"loss=(?P<loss>[0-9.]+)", "0.25"),  # the group named like the output
        ("x", r"(step) (?P<n>\d+)", "12"),  # else the first named group
        ("x", r"step (\d+)", "12"),  # else group 1
        ("x", r"step \d+", "step 12"),  # else the whole match
    ],
)
def test_which_group_is_the_value(name: str, pattern: str, expected: str) -> None:
    assert extract_one("loss=0.25 at step 12\n", name, pattern, "string") == expected
