"""Models of one task and its parts: resources, replicas, retries, probes, outputs."""

import functools
import math
import re
from typing import Annotated, Any, Literal

import msgspec

from sflow.schema.base import FieldError, SpecModel, check
from sflow.schema.fieldtypes import (
    MAX_DURATION,
    OUTPUT_TYPES,
    Duration,
    Name,
    PositiveOrExpr,
    RetryCount,
    Timeout,
    as_int,
    canonical_type,
    compile_regex,
    describe,
    is_expression,
    text,
    unmarked,
)
from sflow.schema.monitor import Monitor
from sflow.schema.resources import ReleaseAfter, Resources
from sflow.schema.result import Result
from sflow.schema.sections import Variable
from sflow.schema.urls import split_http_url


class OperatorRef(SpecModel):
    """`operator: srun` or `operator: {name: srun, <field overrides>}`; overrides are checked at load.

    The YAML mapping is read as `name` and `overrides` (every other key) before validation."""

    name: str
    overrides: dict[str, Any] = {}


def _policy(value: Any) -> str:
    if value in ("parallel", "sequential") or is_expression(value):
        return str(value)
    raise ValueError(f"policy must be 'parallel' or 'sequential', got {describe(value)}")


class Replicas(SpecModel):
    """Several instances of one task; `variables` names domains swept as a Cartesian product."""

    count: PositiveOrExpr | None = None
    policy: Annotated[Any, check(_policy)] = "parallel"
    variables: list[str] = []


MAX_BACKOFF = 10.0
"""The largest back-off factor: each wait at most ten times the one before."""


def replica_name(task: str, index: int) -> str:
    """`server_0`, `server_1`, ...: valid as an expression attribute (`task.server_0.nodes`)."""
    return f"{task}_{index}"


def sweep_names(task: str, points: list[dict[str, Any]]) -> list[str]:
    """A sweep's replicas are named by their values, as nv-sflow names them: `bench_16`,
    `bench_0_1_fp8` (`.`, `-` and spaces become `_`). By index (`bench_0`) instead when a value
    would not make a plain name (`/`, `$`, ...) or two points would get the same name."""
    names = []
    for point in points:
        words = [str(v).replace(".", "_").replace("-", "_").replace(" ", "_") for v in point.values()]
        names.append(f"{task}_{'_'.join(words)}")
    if len(set(names)) < len(names) or not all(_plain_name().fullmatch(n) for n in names):
        return [replica_name(task, i) for i in range(len(points))]
    return names


@functools.cache
def _plain_name() -> re.Pattern[str]:
    """Compiled at the first sweep named: most workflows have none."""
    return re.compile(r"[A-Za-z0-9_]+")


class Retries(SpecModel):
    """Run a failed task again `count` times, waiting `interval` seconds times `backoff`^n."""

    count: RetryCount
    interval: Duration = 0.0
    backoff: Annotated[float, msgspec.Meta(ge=1.0, le=MAX_BACKOFF)] = 1.0

    def validate(self) -> None:
        if not (is_expression(self.count) or is_expression(self.interval)):
            check_retry_waits(int(self.count), float(self.interval), self.backoff)


def check_retry_waits(count: int, interval: float, backoff: float) -> None:
    """The longest wait, before the last retry (`interval * backoff**(count-1)`), is at most a year."""
    if count < 2 or interval == 0 or backoff == 1:
        return
    longest = math.log10(interval) + (count - 1) * math.log10(backoff)
    if longest > math.log10(MAX_DURATION):
        raise ValueError(
            f"the wait before the last retry, interval * backoff^(count-1) = {interval:g}s * "
            f"{backoff:g}^{count - 1}, is more than 365 days; "
            "use fewer retries, a shorter interval or a smaller backoff"
        )


def port_number(value: Any) -> int:
    """A TCP port: an integer from 1 to 65535."""
    port = as_int(value)
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    return port


def _port(value: Any) -> int | str:
    return value if is_expression(value) else port_number(value)


Port = Annotated[Any, check(_port)]
"""A TCP port (1 to 65535) or an expression."""


class TaskPort(SpecModel):
    """A service port the task exposes: `task.<name>.service.{host, port, url}` (the first one)."""

    port: Port
    name: str | None = None


class TcpPortProbe(SpecModel):
    """`on_node`: the port must be open on the task's first node (`first`) or on each of them."""

    port: Port
    host: str | None = None
    on_node: Literal["first", "each"] = "first"


def _http_url(url: str) -> str:
    """An http(s) URL a probe can use (`host:port/path` means http://); expressions pass."""
    if not is_expression(url):
        split_http_url(url, "127.0.0.1")
    return url


HttpUrl = Annotated[Any, check(lambda url: _http_url(text(url)))]


class HttpGetProbe(SpecModel):
    url: HttpUrl
    headers: dict[str, str] = {}


class HttpPostProbe(SpecModel):
    url: HttpUrl
    headers: dict[str, str] = {}
    body: str | None = None


def log_watch_regex(regex_pattern: str | None, match_pattern: str | None) -> str:
    """The regex a log_watch probe looks for: `regex_pattern` is a regex, `match_pattern` a
    literal text; either is a regex when it starts with `re:` or `regex:` (nv-sflow's spelling)."""
    if regex_pattern is not None:
        text, literal = regex_pattern, False
    else:
        text, literal = str(match_pattern), True
    body, marked = unmarked(text)
    return re.escape(body) if literal and not marked else body


class LogWatchProbe(SpecModel):
    """Watches a log for a pattern (`regex_pattern`, or the literal `match_pattern`): the task's
    own, or that of the task `logger` names."""

    regex_pattern: str | None = None
    match_pattern: str | None = None
    match_count: PositiveOrExpr = 1
    logger: str | None = None

    def validate(self) -> None:
        if (self.regex_pattern is None) == (self.match_pattern is None):
            raise ValueError("set exactly one of 'regex_pattern' or 'match_pattern'")
        compile_regex(self.pattern)

    @property
    def pattern(self) -> str:
        return log_watch_regex(self.regex_pattern, self.match_pattern)


PROBE_KINDS = ("tcp_port", "http_get", "http_post", "log_watch")


class Probe(SpecModel):
    """One check (exactly one of the kinds) plus its timing."""

    tcp_port: TcpPortProbe | None = None
    http_get: HttpGetProbe | None = None
    http_post: HttpPostProbe | None = None
    log_watch: LogWatchProbe | None = None
    delay: Duration = 0.0
    timeout: Timeout | None = None
    interval: Duration = 1.0
    each_check_timeout: Timeout | None = None
    success_threshold: PositiveOrExpr = 1
    failure_threshold: PositiveOrExpr = 3

    def validate(self) -> None:
        given = [kind for kind in PROBE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"a probe needs exactly one of {', '.join(PROBE_KINDS)} (found: {found})")

    @property
    def kind(self) -> str:
        return next(kind for kind in PROBE_KINDS if getattr(self, kind) is not None)

    @property
    def check(self) -> TcpPortProbe | HttpGetProbe | HttpPostProbe | LogWatchProbe:
        check: TcpPortProbe | HttpGetProbe | HttpPostProbe | LogWatchProbe = getattr(self, self.kind)
        return check


class Probes(SpecModel):
    """`readiness`: the task counts as started for its dependents; `failure`: the task has failed."""

    readiness: list[Probe] = []
    failure: list[Probe] = []


class Output(SpecModel):
    """Values picked out of the task's log, or of a file it wrote (`source`). Two forms, told apart
    by `name`: with it, `pattern` is a regex with one group (or a group named like the output),
    its last match converted to `type`; without it, `pattern` is a format-style template matched
    against whole lines (nv-sflow's form, `TTFT: {ttft:f} ms`), each named field an output."""

    name: str | None = None
    pattern: str
    type: str | None = None  # the regex form's; the template form types its fields itself
    source: Annotated[str, msgspec.Meta(min_length=1)] = "stdout"  # stdout, stderr, log: the task's log

    def validate(self) -> None:
        try:
            _check_pattern(self.pattern, regex=self.name is not None)
        except ValueError as exc:
            raise FieldError("pattern", str(exc)) from None
        if self.type is not None:
            self.type = _output_type(self.type, regex=self.name is not None)


def _check_pattern(pattern: str, regex: bool) -> None:
    if is_expression(pattern):
        return
    if not regex:
        from sflow.schema.templates import compile_template

        compile_template(pattern)
        return
    compiled = compile_regex(pattern)
    if compiled.groups != 1 and not compiled.groupindex:
        raise ValueError(f"pattern needs exactly one group or a named group, found {compiled.groups}")


def _output_type(value: str, regex: bool) -> str:
    if not regex:
        raise FieldError("type", "'type' goes with 'name' (a regex); a template types its fields: {name:f}")
    if value == "json":
        return value
    try:
        return canonical_type(value)
    except ValueError:
        raise FieldError(
            "type", f"unknown output type {value!r} (one of: {', '.join(OUTPUT_TYPES)})"
        ) from None


GLOB_CHARACTERS = frozenset("*?[")


def is_glob(path: str) -> bool:
    """A path with a wildcard outside its `${{ }}` expressions: it may match several files."""
    return bool(GLOB_CHARACTERS.intersection(re.sub(r"\$\{\{.*?\}\}", "", path)))


class Upload(SpecModel):
    """Files of a completed task to upload to a storage target: a path or glob, and a key.

    A relative `from` is taken in the task's output folder; `to` is the key under the target's
    `prefix` (a folder when it ends with `/`; the file's own name when omitted).
    """

    target: str
    source: Annotated[str, msgspec.Meta(min_length=1)] = msgspec.field(name="from")
    to: str | None = None
    on_error: Literal["warn", "fail"] = "warn"

    def validate(self) -> None:
        if self.to is not None and ".." in self.to.split("/"):
            raise ValueError(f"'to' must stay under the target's prefix, got {self.to!r}")
        if is_glob(self.source) and self.to is not None and not self.to.endswith("/"):
            raise ValueError(
                f"'from' is a glob ({self.source!r}): 'to' must end with '/' (a folder) or be omitted"
            )


class Task(SpecModel):
    """One step of the workflow."""

    name: Name
    script: Annotated[list[str], msgspec.Meta(min_length=1)]
    operator: OperatorRef | None = None
    backend: str | None = None
    depends_on: list[str] = []
    required_by: list[str] = []  # the reverse: these depend on this one
    variables: dict[str, Variable] = {}
    resources: Resources | None = None
    replicas: Replicas | None = None
    retries: Retries | None = None
    probes: Probes | None = None
    outputs: list[Output] = []
    uploads: list[Upload] = []
    ports: list[TaskPort] = []  # what it serves on, for expressions
    timeout: Timeout | None = None
    monitor: Monitor | None = None  # sampled while the task runs
    result: Result | None = None  # metrics parsed once it succeeds

    def release_after(self) -> ReleaseAfter:
        """When the task's nodes and GPUs go to other tasks: as `resources` says, else at its end,
        or, for a task with a readiness probe (a service), at the end of the workflow."""
        given = self.resources.release_after() if self.resources is not None else None
        if given is not None:
            return given
        return (
            "workflow_completion" if self.probes is not None and self.probes.readiness else "task_completion"
        )

    fail_fast: bool | None = None  # True: the shell script stops at its first failing command

    @property
    def script_text(self) -> str:
        """The script lines joined by newlines."""
        return "\n".join(self.script)
