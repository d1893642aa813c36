"""`result` at run time: metrics parsed from a log or read from a file, and the two JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from sflow.workflow.results import task_result, write_results

LOG = "warming up\nTTFT: 40.0 ms\nTTFT: 42.5 ms\ntok/s: 123.0\np99 latency: 88 ms\nmodel=llama-8b\n"


def parse(tmp_path: Path, patterns: list[dict]) -> dict:
    log = tmp_path / "t.log"
    log.write_text(LOG)
    return task_result("t", {"patterns": patterns}, log, tmp_path)


def test_metrics_are_typed_aggregated_and_each_match_kept(tmp_path: Path) -> None:
    data = parse(
        tmp_path,
        [
            {"name": "ttft", "regex": r"TTFT:\s*([0-9.]+)"},
            {"name": "first", "regex": r"TTFT:\s*([0-9.]+)", "aggregate": "first"},
            {"name": "all", "regex": r"TTFT:\s*(?P<value>[0-9.]+)", "aggregate": "list"},
            {"name": "n", "regex": r"TTFT", "aggregate": "count"},
            {"name": "avg", "regex": r"TTFT:\s*([0-9.]+)", "aggregate": "avg", "unit": "ms"},
            {"name": "p99", "regex": r"p99 latency:\s*(\d+)"},
            {"name": "model", "regex": r"model=(\S+)"},
            {"name": "as_text", "regex": r"p99 latency:\s*(\d+)", "type": "string"},
        ],
    )
    assert data["values"] == {
        "ttft": 42.5,
        "first": 40.0,
        "all": [40.0, 42.5],
        "n": 2,
        "avg": 41.25,
        "p99": 88,
        "model": "llama-8b",
        "as_text": "88",
    }
    assert data["matches"]["ttft"] == [
        {"line": 2, "text": "TTFT: 40.0 ms", "value": 40.0},
        {"line": 3, "text": "TTFT: 42.5 ms", "value": 42.5},
    ]
    assert data["metadata"]["avg"] == {"aggregate": "avg", "type": "auto", "unit": "ms"}
    assert (
        data["ok"] is True and data["schema_version"] == "sflow.result.v1" and data["status"] == "COMPLETED"
    )
    assert data["source"] == {"path": "t.log", "type": "log"}


def test_a_required_metric_that_nothing_matched_makes_the_result_not_ok(tmp_path: Path) -> None:
    data = parse(
        tmp_path, [{"name": "x", "regex": "nope"}, {"name": "y", "regex": "never", "required": True}]
    )
    assert data["values"] == {} and data["ok"] is False
    assert data["errors"] == ["required metric 'y': 'never' matched no line"]


def test_a_json_file_the_task_wrote_becomes_the_values_and_both_files_are_written(tmp_path: Path) -> None:
    task_dir = tmp_path / "bench"
    task_dir.mkdir()
    (task_dir / "result.json").write_text('{"throughput": 999.5, "errors": 0}')
    data = task_result("bench", {"file": "result.json"}, task_dir / "bench.log", task_dir)
    assert data["values"] == {"throughput": 999.5, "errors": 0} and data["ok"] is True
    write_results(tmp_path, "run-1", "bench", task_dir, data)
    other = tmp_path / "other"
    other.mkdir()
    write_results(
        tmp_path,
        "run-1",
        "other",
        other,
        parse(other, [{"name": "n", "regex": "TTFT", "aggregate": "count"}]),
    )
    assert json.loads((task_dir / "result.json").read_text())["source"] == {
        "path": "result.json",
        "type": "file",
    }
    index = json.loads((tmp_path / "results.json").read_text())
    assert index["schema_version"] == "sflow.results.v1" and index["workflow"] == "run-1"
    assert index["tasks"]["bench"] == {
        "ok": True,
        "result_file": "bench/result.json",
        "status": "COMPLETED",
        "values": {"throughput": 999.5, "errors": 0},
    }
    assert index["tasks"]["other"]["values"] == {"n": 2}
    missing = task_result("gone", {"file": "nothing.json"}, task_dir / "x.log", task_dir)
    assert missing["ok"] is False and "cannot read" in missing["errors"][0]
