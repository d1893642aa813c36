"""Backends give a run its nodes: `local` (synthetic) and `slurm` (an allocation)."""

from sflow.backends.base import Allocation, Backend, create_backend, register_backend

__all__ = ["Allocation", "Backend", "create_backend", "register_backend"]
