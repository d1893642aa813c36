"""How a run behaves and where it writes: one object for a YAML workflow and a flow of functions."""

from __future__ import annotations

from pathlib import Path

import msgspec


class RunSettings(msgspec.Struct):
    """What the caller decides about a run (the workflow or the flow decides the rest).

    `output_dir` None is `./sflow_output` of the working directory when the run starts;
    `workspace_dir` None is that working directory (a YAML task's own directory). `timeout`
    bounds the whole run; a YAML workflow's own `timeout:` applies when it is None.
    """

    output_dir: Path | None = None
    workspace_dir: Path | None = None
    keep_going: bool = False
    grace: float = 10.0
    timeout: float | None = None
    run_id: str | None = None
    record: bool = True

    def output_path(self) -> Path:
        return self.output_dir if self.output_dir is not None else Path.cwd() / "sflow_output"

    def workspace_path(self) -> Path:
        return self.workspace_dir if self.workspace_dir is not None else Path.cwd()
