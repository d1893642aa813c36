"""Run a YAML workflow from Python: the same loader and engine as `sflow run`.

    result = sflow.run_yaml("train.yaml", sets={"epochs": 3}, output_dir="out")
    result.states["train"]        # State.SUCCEEDED
    result.run_dir                # out/<run-id>/ with summary.json and per-task logs

The spec models and Jinja are imported only when this is called (light `import sflow`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflow.engine import Event, RunResult, State
from sflow.errors import SflowError

Files = str | Path | Sequence[str | Path]
Sets = Mapping[str, Any] | Iterable[str]


class WorkflowFailed(SflowError):
    """A YAML workflow run by `run_yaml` did not succeed; `result` holds the details."""

    def __init__(self, message: str, result: YamlRunResult) -> None:
        self.result = result
        super().__init__(message)


@dataclass
class YamlRunResult:
    """What a YAML run ended with: states by task, the run directory, the engine result."""

    run_id: str
    run_dir: Path
    result: RunResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def states(self) -> dict[str, State]:
        return {name: self.result.units[name].state for name in self.result.order}

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary.json, parsed."""
        data: dict[str, Any] = json.loads((self.run_dir / "summary.json").read_text(encoding="utf-8"))
        return data

    def log(self, task: str) -> Path:
        """The last attempt's log of `task`."""
        return self.run_dir / task / f"{task}.log"


def run_yaml(
    files: Files,
    sets: Sets = (),
    *,
    artifacts: Mapping[str, str] | Iterable[str] = (),
    workspace_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    keep_going: bool = False,
    grace: float = 10.0,
    run_id: str | None = None,
    missable_tasks: Sequence[str] = (),
    check: bool = True,
    listeners: Iterable[Callable[[Event], None]] = (),
    skip_artifact_check: bool = False,
) -> YamlRunResult:
    """Load, validate and run YAML workflow file(s) like `sflow run`; blocks until done.

    `sets` are `--set` overrides (`{"name": value}` or `["name=value"]`), `artifacts` are
    `--artifact` ones. An `fs://` artifact whose path does not exist is a `SpecError` before
    anything starts, or with `skip_artifact_check` a warning on stderr. With `check` (the default) a run that did not succeed raises
    `WorkflowFailed` naming the failed tasks. Ctrl-C or SIGTERM stops the run's tasks and
    jobs (TERM, `grace`, KILL), records the run, then raises `KeyboardInterrupt` (Ctrl-C) or
    `SystemExit(143)` (SIGTERM). Inside a running event loop use `await run_yaml_async(...)`.
    """
    from sflow.lifecycle.host import OwnLoop

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise SflowError("run_yaml() was called inside a running event loop; use `await run_yaml_async(...)`")
    return OwnLoop().run(
        lambda: run_yaml_async(
            files,
            sets,
            artifacts=artifacts,
            workspace_dir=workspace_dir,
            output_dir=output_dir,
            keep_going=keep_going,
            grace=grace,
            run_id=run_id,
            missable_tasks=missable_tasks,
            check=check,
            listeners=listeners,
            skip_artifact_check=skip_artifact_check,
        )
    )


async def run_yaml_async(
    files: Files,
    sets: Sets = (),
    *,
    artifacts: Mapping[str, str] | Iterable[str] = (),
    workspace_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    keep_going: bool = False,
    grace: float = 10.0,
    run_id: str | None = None,
    missable_tasks: Sequence[str] = (),
    check: bool = True,
    listeners: Iterable[Callable[[Event], None]] = (),
    skip_artifact_check: bool = False,
) -> YamlRunResult:
    """`run_yaml` on the running event loop."""
    from sflow.lifecycle.settings import RunSettings
    from sflow.schema import load_workflow
    from sflow.workflow.artifact_check import check_artifacts
    from sflow.workflow.run import WorkflowRun

    paths = [str(files)] if isinstance(files, (str, Path)) else [str(f) for f in files]
    spec = await asyncio.to_thread(
        load_workflow, paths, sets=_pairs(sets), artifacts=_pairs(artifacts), missable_tasks=missable_tasks
    )
    settings = RunSettings(
        workspace_dir=Path(workspace_dir).absolute() if workspace_dir is not None else None,
        output_dir=Path(output_dir).absolute() if output_dir is not None else None,
        keep_going=keep_going,
        grace=grace,
        run_id=run_id,
    )
    check_artifacts(spec, settings.workspace_path(), strict=not skip_artifact_check)
    run = WorkflowRun(spec, settings, listeners=listeners)
    result = await run.run()
    outcome = YamlRunResult(run.record.run_id, run.record.run_dir, result)
    if check and not result.ok:
        raise WorkflowFailed(_failure_message(outcome), outcome)
    return outcome


def _pairs(values: Mapping[str, Any] | Iterable[str]) -> list[str]:
    """`{"a": 1}` or `["a=1"]` -> `["a=1"]` (the CLI's `--set` form)."""
    if isinstance(values, Mapping):
        return [f"{key}={_text(value)}" for key, value in values.items()]
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _failure_message(outcome: YamlRunResult) -> str:
    result = outcome.result
    failed = result.failed()
    parts = []
    for name in failed[:5]:
        unit = result.units[name]
        reason = unit.outcome.reason if unit.outcome else "failed"
        parts.append(f"'{name}' ({reason})")
    head = (
        f"workflow failed: {', '.join(parts)}"
        if parts
        else f"workflow stopped: {result.stop_reason or 'not ok'}"
    )
    return f"{head}; run record: {outcome.run_dir}"
