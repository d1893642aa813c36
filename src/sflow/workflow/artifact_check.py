"""`fs://` artifacts must exist before a run starts: a mistyped path fails at once, not in a task
an hour later. `--skip-artifact-check` turns each missing one into a warning (for paths that
exist only where the tasks run, such as a Slurm node's local disk); a dry run only warns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sflow.errors import SpecError
from sflow.schema.problems import Problems
from sflow.workflow.context import artifact_path

if TYPE_CHECKING:
    from sflow.schema import WorkflowSpec

HINT = "--skip-artifact-check if it exists only where the tasks run"


def missing_artifacts(spec: WorkflowSpec, workspace: Path) -> list[SpecError]:
    """One error per `fs://` artifact whose path does not exist here (expressions left aside)."""
    out = []
    for name, art in spec.artifacts.items():
        uri = str(art.uri)
        if not uri.startswith("fs://") or "${{" in uri:
            continue
        path = Path(artifact_path(uri, workspace, workspace))
        if not path.exists():
            out.append(
                SpecError(
                    f"artifact '{name}': {path} does not exist ({HINT})",
                    where=art.loc("uri"),
                    field=art.path("uri"),
                )
            )
    return out


def check_artifacts(spec: WorkflowSpec, workspace: Path, strict: bool) -> list[str]:
    """Raise every missing `fs://` artifact together when `strict`; otherwise return them as
    warnings."""
    missing = missing_artifacts(spec, workspace)
    if strict and missing:
        problems = Problems()
        for error in missing:
            problems.add(error)
        problems.raise_if_any()
    return [str(error) for error in missing]
