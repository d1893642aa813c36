"""A task's `result`: metrics from its log (or a JSON file it wrote) into `<task>/result.json`, and
every task's into the run's `results.json` (nv-sflow's formats, `sflow.result.v1`/`sflow.results.v1`).

Parsing is best-effort, as there: a metric marked `required` that nothing matched makes the result
`ok: false` with an error, and the task still succeeds. Reading is synchronous: call it through
`asyncio.to_thread`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
RESULTS_FILE = "results.json"
# compiled by `re` on first use: a run whose tasks declare no results does not build them
_INT = r"[-+]?\d+"
_FLOAT = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"


def task_result(task: str, result: dict[str, Any], log_path: Path, task_dir: Path) -> dict[str, Any]:
    """The content of `<task>/result.json` for a task that succeeded; `result` is the rendered field."""
    data: dict[str, Any] = {"errors": [], "matches": {}, "metadata": {}, "values": {}}
    if result.get("file"):
        path = task_dir / str(result["file"])
        data["source"] = {"path": str(result["file"]), "type": "file"}
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            data["errors"].append(f"cannot read {path}: {exc}")
        else:
            if isinstance(values, dict):
                data["values"] = values.get("values", values) if values.get("schema_version") else values
            else:
                data["errors"].append(f"{path} holds no JSON object")
    else:
        data["source"] = {"path": log_path.name, "type": "log"}
        lines = (
            log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.exists() else []
        )
        for pattern in result.get("patterns", []):
            _parse(pattern, lines, data)
    data.update(ok=not data["errors"], schema_version="sflow.result.v1", status="COMPLETED", task=task)
    return data


def _parse(pattern: dict[str, Any], lines: list[str], data: dict[str, Any]) -> None:
    name, regex = pattern["name"], re.compile(pattern["regex"])
    kind, how = pattern.get("type", "auto"), pattern.get("aggregate", "last")
    data["metadata"][name] = {"aggregate": how, "type": kind, "unit": pattern.get("unit")}
    found = []
    for number, line in enumerate(lines, 1):
        match = regex.search(line)
        if match is not None:
            found.append(
                {"line": number, "text": line, "value": _typed(_group(match, pattern.get("group")), kind)}
            )
    if found:
        data["matches"][name] = found
        data["values"][name] = _aggregate([m["value"] for m in found], how)
    elif how == "count":
        data["values"][name] = 0
    elif pattern.get("required"):
        data["errors"].append(f"required metric '{name}': {pattern['regex']!r} matched no line")


def _group(match: re.Match[str], group: int | str | None) -> str:
    if group is not None:
        return match.group(group) or ""
    if "value" in match.re.groupindex:
        return match.group("value") or ""
    return (match.group(1) if match.re.groups else match.group(0)) or ""


def _typed(text: str, kind: str) -> Any:
    text = text.strip()
    try:
        if kind == "int" or (kind == "auto" and re.fullmatch(_INT, text)):
            return int(text)
        if kind == "float" or (kind == "auto" and re.fullmatch(_FLOAT, text)):
            return float(text)
        if kind == "bool":
            return text.lower() in ("1", "true", "yes", "on")
        if kind == "json":
            return json.loads(text)
    except ValueError:
        return text
    return text


def _aggregate(values: list[Any], how: str) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if how == "first":
        return values[0]
    if how == "list":
        return values
    if how == "count":
        return len(values)
    if how in ("min", "max", "avg", "sum") and numbers:
        if how == "avg":
            return sum(numbers) / len(numbers)
        if how == "sum":
            return sum(numbers)
        return min(numbers) if how == "min" else max(numbers)
    return values[-1]


def write_results(run_dir: Path, run_id: str, task: str, task_dir: Path, data: dict[str, Any]) -> None:
    """`<task>/result.json`, and the task's entry in the run's `results.json`."""
    (task_dir / RESULT_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    index_path = run_dir / RESULTS_FILE
    index: dict[str, Any] = (
        json.loads(index_path.read_text(encoding="utf-8"))
        if index_path.exists()
        else {"schema_version": "sflow.results.v1", "tasks": {}, "workflow": run_id}
    )
    index["tasks"][task] = {
        "ok": data["ok"],
        "result_file": str((task_dir / RESULT_FILE).relative_to(run_dir)),
        "status": data["status"],
        "values": data["values"],
    }
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
