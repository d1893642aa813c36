"""A task's resources: how many of its backend's nodes, and which GPUs on each."""

from typing import Literal

from sflow.schema.base import SpecModel
from sflow.schema.fieldtypes import CountOrExpr, IndexList, PositiveOrExpr

ReleaseAfter = Literal["task_ready", "task_completion", "workflow_completion"]
RELEASE_ORDER: tuple[ReleaseAfter, ...] = ("task_ready", "task_completion", "workflow_completion")
"""When a task's nodes and GPUs may go to other tasks, earliest first."""


class NodeResources(SpecModel):
    """How many nodes of the backend a task uses; `indices` may count from the end (-1 = last)."""

    count: PositiveOrExpr | None = None
    indices: IndexList | None = None
    exclude: IndexList | None = None
    release_after: ReleaseAfter | None = None


class GpuResources(SpecModel):
    """GPUs per task instance (placement fills `CUDA_VISIBLE_DEVICES`)."""

    count: CountOrExpr | None = None
    indices: IndexList | None = None
    release_after: ReleaseAfter | None = None


class Resources(SpecModel):
    nodes: NodeResources | None = None
    gpus: GpuResources | None = None

    def release_after(self) -> ReleaseAfter | None:
        """When what the task holds is freed: the later of its nodes' and its GPUs' `release_after`
        (the two are held together); None when neither says (at the end of the task)."""
        given = [
            part.release_after for part in (self.nodes, self.gpus) if part is not None and part.release_after
        ]
        return max(given, key=RELEASE_ORDER.index) if given else None
