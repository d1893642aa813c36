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


def template(pattern: str, source: str | None = None) -> NS:
    """An output in nv-sflow's form: no name, the pattern's fields name the values."""
    return NS(name=None, pattern=pattern, source=source)


@pytest.fixture
def bench_log(tmp_path: Path) -> Path:
    """A benchmark's log written by a real process: stdout and stderr, one CRLF line."""
    path = tmp_path / "bench.log"
    script = (
        "echo 'TTFT: 12.5 ms'; echo 'TTFT: 13.0 ms'; echo 'request 3 TTFT: 99.0 ms'; "
        "echo 'model=llama tokens=128' >&2; printf 'status: ok\\r\\n'; echo 'tok/s: 1e3'"
    )
    with open(path, "wb") as f:
        subprocess.run(["bash", "-c", script], stdout=f, stderr=subprocess.STDOUT, check=True)
    return path


def test_a_template_takes_every_whole_line_it_matches(bench_log: Path) -> None:
    values, warnings = extract_outputs(
        bench_log,
        [
            template("TTFT: {ttft:f} ms"),  # twice: a list; the 'request 3' line is no whole match
            template("model={model} tokens={tokens:d}", source="stderr"),
            template("status: {status:w}"),
            template("tok/s: {tps:g}"),
        ],
    )
    assert warnings == []
    assert values == {"ttft": [12.5, 13.0], "model": "llama", "tokens": 128, "status": "ok", "tps": 1000.0}


def test_the_first_template_to_match_a_line_takes_it(bench_log: Path) -> None:
    values, _ = extract_outputs(bench_log, [template("TTFT: {first} ms"), template("TTFT: {second:f} ms")])
    assert values == {"first": ["12.5", "13.0"]}


def test_a_template_that_matches_nothing_sets_nothing_and_says_so(bench_log: Path) -> None:
    values, warnings = extract_outputs(
        bench_log, [template("accuracy: {accuracy:f}"), out("steps", r"steps=(\d+)", "integer")]
    )
    assert values == {"steps": None}
    assert warnings == [
        r"output 'steps': pattern 'steps=(\\d+)' did not match the log",
        f"output template 'accuracy: {{accuracy:f}}' matched no line of {bench_log}",
    ]


def test_a_template_reads_a_file_the_task_wrote(tmp_path: Path, bench_log: Path) -> None:
    (tmp_path / "metrics.txt").write_text("accuracy: 0.91\naccuracy: 0.93\n")
    values, warnings = extract_outputs(
        bench_log,
        [template("accuracy: {accuracy:f}", source="metrics.txt"), template("TTFT: {ttft:f} ms", "log")],
        task_dir=tmp_path,
    )
    assert warnings == []
    assert values == {"accuracy": [0.91, 0.93], "ttft": [12.5, 13.0]}


def test_a_missing_source_file_is_a_warning(tmp_path: Path, bench_log: Path) -> None:
    values, warnings = extract_outputs(
        bench_log, [template("a={a:d}", source="absent.txt")], task_dir=tmp_path
    )
    assert values == {}
    assert warnings == [f"outputs: no file at {tmp_path / 'absent.txt'}; its templates matched nothing"]


def test_a_template_invalid_once_rendered_is_a_warning(bench_log: Path) -> None:
    values, warnings = extract_outputs(bench_log, [template("TTFT: {ttft:zz} ms")])
    assert values == {}
    assert warnings == [
        "outputs: invalid output template 'TTFT: {ttft:zz} ms': format spec 'zz' not recognised"
    ]


def test_a_named_output_reads_a_file_the_task_wrote_too(tmp_path: Path, log: Path) -> None:
    (tmp_path / "final.txt").write_text("loss=0.05\n")
    values, warnings = extract_outputs(
        log,
        [
            NS(name="loss", pattern=r"loss=([\d.]+)", type="float", source="final.txt"),
            NS(name="gone", pattern=r"x=(\d)", type=None, source="absent.txt"),
        ],
        task_dir=tmp_path,
    )
    assert values == {"loss": 0.05, "gone": None}
    assert warnings == [f"outputs: no file at {tmp_path / 'absent.txt'}; gone not set"]
