"""summary.json and run.json: valid JSON, one line per task, the same data json.loads gives back."""

from __future__ import annotations

import json

from sflow.record.run_dir import readable_json


def test_readable_json_round_trips_and_puts_each_task_on_its_own_line() -> None:
    data = {
        "run_id": "r1",
        "ok": False,
        "empty": {},
        "tasks": {
            "a": {"state": "succeeded", "nodes": ["localhost"], "reason": 'exit "0"\nnext'},
            "b": {"state": "failed", "exit_code": 3, "end": None},
        },
        "elapsed": 1.5,
    }
    text = readable_json(data)
    assert json.loads(text) == data
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert sum(line.startswith('    "a": {') for line in lines) == 1
    assert sum(line.startswith('    "b": {') for line in lines) == 1
    assert '  "empty": {},' in lines


def test_readable_json_of_an_empty_object() -> None:
    assert json.loads(readable_json({})) == {}
