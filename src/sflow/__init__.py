"""sflow: describe a DAG of tasks once, run it on a laptop or on a Slurm cluster.

The import is kept light on purpose: the CLI and the YAML front door load their
heavier pieces (pydantic models, Jinja, rich) only when they are used, and the
Python front door (`sflow.flow(...)`, `sflow.config(...)`) is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sflow.dispatch.config import config as config

__version__ = "0.1.0"

__all__ = ["__version__", "config", "flow"]


def __getattr__(name: str) -> object:
    """Lazy exports: `sflow.flow(...)` and `sflow.config(...)` load their modules on first use."""
    if name == "flow":
        return importlib.import_module("sflow.flow")
    if name == "config":
        # where tasks run (environments and their executors); the one implementation is dispatch's
        return importlib.import_module("sflow.dispatch.config").config
    raise AttributeError(f"module 'sflow' has no attribute {name!r}")
