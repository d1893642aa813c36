"""sflow: describe a DAG of tasks once, run it on a laptop or on a Slurm cluster.

The import is kept light on purpose: the CLI and the YAML front door load their
heavier pieces (pydantic models, Jinja, rich) only when they are used, and the
Python front door (`sflow.flow(...)`) is imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "flow"]


def __getattr__(name: str) -> object:
    """Lazy exports: `sflow.flow(...)` imports the Python front door on first use."""
    if name == "flow":
        import importlib

        return importlib.import_module("sflow.flow")
    raise AttributeError(f"module 'sflow' has no attribute {name!r}")
