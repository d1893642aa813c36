"""YAML workflow files -> a validated `WorkflowSpec`; every error names file:line and field.

    from sflow.schema import load_workflow, WorkflowSpec, parse_duration
    spec = load_workflow(["wf.yaml", "site.yaml"], sets=["NODES=4"], artifacts=["model=fs:///m"])

Submodules: `models` (all model classes), `expressions` (the `${{ }}` renderer), `compose`
(merging files, `compose_documents`), `durations`.
"""

from sflow.schema.compose import ComposeWarning, compose_documents
from sflow.schema.durations import parse_duration
from sflow.schema.loader import load_workflow
from sflow.schema.models import (
    Artifact,
    BackendBase,
    LocalBackend,
    OperatorBase,
    SlurmBackend,
    SpecModel,
    Task,
    Variable,
    Workflow,
    WorkflowSpec,
)

__all__ = [
    "Artifact",
    "BackendBase",
    "ComposeWarning",
    "LocalBackend",
    "OperatorBase",
    "SlurmBackend",
    "SpecModel",
    "Task",
    "Variable",
    "Workflow",
    "WorkflowSpec",
    "compose_documents",
    "load_workflow",
    "parse_duration",
]
