"""The `monitor` section of a workflow or a task: which hardware to sample, how often, and for whom.

A monitor samples CPU, memory, disk, network and GPUs of nodes into CSV files of the run directory
(`docs/monitor.md`); `sflow report` reads them. The fields are nv-sflow's; intervals are in
milliseconds and, as there, plain integers (not `${{ }}` expressions).
"""

from typing import Annotated, Any, Literal

import msgspec

from sflow.schema.base import FieldError, SpecModel
from sflow.schema.fieldtypes import compile_regex, unmarked
from sflow.schema.resources import GpuResources, NodeResources

DEFAULT_INTERVAL_MS = 5000
MIN_INTERVAL_MS = 100
BUILTIN_SCOPES = ("cpu", "gpu", "memory", "disk", "network")
DEFAULT_GPU_FIELDS = (
    "index,utilization.gpu,utilization.memory,temperature.gpu,temperature.memory,"
    "power.draw,clocks.sm,clocks.mem,memory.total,memory.used"
)
"""The `nvidia-smi --query-gpu` fields sampled unless `scopes.gpu.fields` names others."""

ReportFormat = Literal["csv", "svg", "png"]
DEFAULT_REPORT_FORMATS: tuple[ReportFormat, ...] = ("csv", "svg")
IntervalMs = Annotated[int, msgspec.Meta(ge=MIN_INTERVAL_MS)]


class Scope(SpecModel):
    """One built-in scope: on unless `enabled: false`, at the monitor's interval unless its own."""

    enabled: bool = True
    interval: IntervalMs | None = None


class GpuScope(Scope):
    """The GPU scope; `fields` replaces the `nvidia-smi --query-gpu` list and starts with `index`."""

    fields: str | None = None

    def validate(self) -> None:
        if self.fields is None:
            return
        names = [f.strip() for f in self.fields.split(",") if f.strip()]
        if not names:
            raise FieldError("fields", "fields must name at least one nvidia-smi field")
        if names[0] != "index":
            raise FieldError("fields", f"fields must start with 'index' (each row's GPU), not {names[0]!r}")
        self.fields = ",".join(names)


class CustomScope(SpecModel):
    """Commands of the user run on each monitored node at every sample."""

    script: Annotated[list[str], msgspec.Meta(min_length=1)]


class Scopes(SpecModel):
    """The scopes to sample; when the whole block is left out, every built-in one."""

    cpu: Scope | None = None
    gpu: GpuScope | None = None
    memory: Scope | None = None
    disk: Scope | None = None
    network: Scope | None = None
    custom: CustomScope | None = None

    def active(self) -> list[str]:
        """The built-in scopes given and enabled, in `BUILTIN_SCOPES` order."""
        return [name for name in BUILTIN_SCOPES if (s := getattr(self, name)) is not None and s.enabled]


class MonitorResources(SpecModel):
    """What to sample instead of the owner's own nodes: other tasks' nodes, a subset of nodes/GPUs."""

    nodes: NodeResources | None = None
    gpus: GpuResources | None = None
    used_by_tasks: list[str] | None = None


class Report(SpecModel):
    """The detailed report `sflow report` writes from the samples (on unless `enabled: false`)."""

    enabled: bool = True
    format: list[ReportFormat] = msgspec.field(default_factory=lambda: list(DEFAULT_REPORT_FORMATS))


class Boundary(SpecModel):
    """A line of the owner's log marking a window's start or end (`re:`/`regex:` for a regex)."""

    pattern: str | list[str]
    select: Literal["first", "last"] | None = None

    @staticmethod
    def before(data: Any) -> Any:
        """A bare string is the pattern."""
        return {"pattern": data} if isinstance(data, str) else data

    def validate(self) -> None:
        value = self.pattern
        for pattern in [value] if isinstance(value, str) else value or [""]:
            body, marked = unmarked(pattern)
            try:
                if not body.strip():
                    raise ValueError("a window pattern must not be empty (it would match every line)")
                if marked:
                    compile_regex(body)
            except ValueError as exc:
                raise FieldError("pattern", str(exc)) from None


class Window(SpecModel):
    """The part of a task monitor's samples its report covers, between two log markers."""

    start: Boundary
    end: Boundary


class Monitor(SpecModel):
    """A hardware monitor over the whole run (`workflow.monitor`) or one task's life (`monitor`)."""

    interval: IntervalMs = DEFAULT_INTERVAL_MS
    scopes: Scopes | None = None
    resources: MonitorResources | None = None
    window: Window | None = None
    report: Report = msgspec.field(default_factory=Report)

    def validate(self) -> None:
        if self.scopes is not None and not self.scopes.active() and self.scopes.custom is None:
            raise ValueError(f"scopes enables none; enable one of {', '.join(BUILTIN_SCOPES)} or add custom")
        if self.window is not None and not self.report.enabled:
            raise ValueError("window needs report.enabled: true (a window only clips the report)")

    def scope_intervals(self) -> dict[str, int]:
        """Each sampled built-in scope and its interval in milliseconds."""
        if self.scopes is None:
            return dict.fromkeys(BUILTIN_SCOPES, self.interval)
        return {name: getattr(self.scopes, name).interval or self.interval for name in self.scopes.active()}

    def gpu_fields(self) -> str:
        gpu = self.scopes.gpu if self.scopes is not None else None
        return (gpu.fields if gpu is not None else None) or DEFAULT_GPU_FIELDS

    def custom_script(self) -> list[str]:
        custom = self.scopes.custom if self.scopes is not None else None
        return list(custom.script) if custom is not None else []
