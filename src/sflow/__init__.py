"""sflow: describe a DAG of tasks once, run it on a laptop or on a Slurm cluster.

The import is kept light on purpose: the CLI and the YAML front door load their
heavier pieces (pydantic models, Jinja, rich) only when they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
