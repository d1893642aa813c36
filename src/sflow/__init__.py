"""sflow: describe a DAG of tasks once, run it on a laptop or on a Slurm cluster.

The import is kept light on purpose: the CLI and the YAML front door load their
heavier pieces (the models, Jinja, rich) only when they are used, and the
Python front door (`sflow.flow(...)`, `sflow.config(...)`) is imported on first use.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # as `typing.TYPE_CHECKING`, without importing typing (`sflow --help` needs none)
if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from sflow.dispatch.config import config as config
    from sflow.flow import FlowModule
    from sflow.workflow.run_yaml import WorkflowFailed, YamlRunResult, run_yaml, run_yaml_async

    flow: FlowModule
del TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "WorkflowFailed",
    "YamlRunResult",
    "__version__",
    "config",
    "flow",
    "run_yaml",
    "run_yaml_async",
]

_LAZY = {
    "config": "sflow.dispatch.config",  # where tasks run: the one implementation is dispatch's
    "run_yaml": "sflow.workflow.run_yaml",
    "run_yaml_async": "sflow.workflow.run_yaml",
    "YamlRunResult": "sflow.workflow.run_yaml",
    "WorkflowFailed": "sflow.workflow.run_yaml",
}


def __getattr__(name: str) -> object:
    """Lazy exports: `sflow.flow(...)`, `sflow.config(...)` and `sflow.run_yaml(...)` load on first use."""
    if name == "flow":
        return importlib.import_module("sflow.flow")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
