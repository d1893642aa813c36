"""Finding a run directory from what a user types: a run id (or its unique start), a path, or 'latest'."""

from __future__ import annotations

from pathlib import Path

from sflow.errors import UserError
from sflow.record.status import read_json


def find_run(output_dir: Path, ref: str, workflow: str | None = None) -> Path:
    """The run directory `ref` names under `output_dir`; with `workflow`, 'latest' is that workflow's."""
    as_path = Path(ref)
    if as_path.is_dir() and (as_path / "sflow.log").exists():
        return as_path
    runs = (
        sorted(p for p in output_dir.glob("*") if (p / "sflow.log").exists()) if output_dir.is_dir() else []
    )
    if not runs:
        raise UserError(f"no runs under {output_dir}")
    if ref == "latest":
        if workflow is None:
            return runs[-1]
        found = next((p for p in reversed(runs) if _workflow_of(p) == workflow), None)
        if found is None:
            raise UserError(f"no run of workflow '{workflow}' under {output_dir}")
        return found
    matches = [p for p in runs if p.name.startswith(ref)]
    if len(matches) != 1:
        raise UserError(f"run '{ref}' {'is ambiguous' if matches else 'not found'} under {output_dir}")
    return matches[0]


def _workflow_of(run_dir: Path) -> str | None:
    owner = read_json(run_dir / "run.json") or {}
    return str(owner["workflow"]) if "workflow" in owner else None
