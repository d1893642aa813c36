"""`fs://` artifacts must exist before a run starts: a mistyped path fails at once, not in a task
an hour later. `--skip-artifact-check` (`skip_artifact_check=True` of `sflow.run_yaml`) turns
each missing one into a warning (for paths that exist only where the tasks run, such as a Slurm
node's local disk); a dry run only warns.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sflow.errors import SpecError
from sflow.schema.problems import Problems
from sflow.workflow.context import artifact_path

if TYPE_CHECKING:
    from sflow.schema import WorkflowSpec

HINT = "--skip-artifact-check (skip_artifact_check=True in Python) if it exists only where the tasks run"


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


def check_artifacts(spec: WorkflowSpec, workspace: Path, strict: bool) -> None:
    """Before a run (`sflow run`, `sflow.run_yaml`): raise every missing `fs://` artifact together
    when `strict`; otherwise warn of each on stderr."""
    missing = missing_artifacts(spec, workspace)
    if strict and missing:
        problems = Problems()
        for error in missing:
            problems.add(error)
        problems.raise_if_any()
    for error in missing:
        print(f"sflow: warning: {error}", file=sys.stderr)
