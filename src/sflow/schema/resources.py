"""A task's resources: how many of its backend's nodes, and which GPUs on each."""

from __future__ import annotations

from sflow.schema.base import SpecModel
from sflow.schema.fieldtypes import CountOrExpr, IndexList, PositiveOrExpr


class NodeResources(SpecModel):
    """How many nodes of the backend a task uses; `indices` may count from the end (-1 = last)."""

    count: PositiveOrExpr | None = None
    indices: IndexList | None = None
    exclude: IndexList | None = None


class GpuResources(SpecModel):
    """GPUs per task instance (placement fills `CUDA_VISIBLE_DEVICES`)."""

    count: CountOrExpr | None = None
    indices: IndexList | None = None


class Resources(SpecModel):
    nodes: NodeResources | None = None
    gpus: GpuResources | None = None
