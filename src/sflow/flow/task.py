"""What `@f.task` records: the function, its parameters and the options it was given.

Everything that can be checked without knowing the other tasks is checked here, at
decoration time, so a typo in an option fails on the line that has it. Checks that need
the whole flow (which names are tasks, cycles) happen when the block ends (`resolve`).
"""

from __future__ import annotations

import dataclasses
import inspect
import linecache
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sflow.dispatch.in_process import is_coroutine_function
from sflow.engine import RetryPolicy
from sflow.errors import suggest
from sflow.flow.errors import FlowDefinitionError

RetriesSpec = int | Mapping[str, Any] | RetryPolicy | None
MapSpec = str | Iterable[Any] | None
ReadsSpec = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None

_FEEDABLE = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class Param:
    """One parameter of a task function, as far as dependency inference cares."""

    name: str
    kind: inspect._ParameterKind
    has_default: bool

    @property
    def feedable(self) -> bool:
        """Can receive an upstream value or a map item by keyword."""
        return self.kind in _FEEDABLE


@dataclass(frozen=True)
class TaskOptions:
    """Options given to `@f.task(...)`; None means "use the environment's default".

    For a mapped task, `retries` and `timeout` apply to each item; `map_timeout` bounds the
    whole map.
    """

    retries: RetryPolicy | None = None
    timeout: float | None = None
    environment: str | None = None
    map: MapSpec = None
    map_param: str | None = None  # the parameter receiving a map's item, when named explicitly
    max_concurrent: int | None = None
    map_timeout: float | None = None
    resources: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    reads: tuple[str, ...] = ()  # files and folders whose content is part of the fingerprint

    @property
    def mapped(self) -> bool:
        return self.map is not None


OPTION_NAMES = ("name", *(f.name for f in dataclasses.fields(TaskOptions)))


@dataclass(frozen=True)
class TaskSpec:
    """A declared task: name, function, parameters, options and where it was defined."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    params: tuple[Param, ...]
    options: TaskOptions
    def_file: str = ""  # the file and line of the function's `def`, when known
    def_line: int = 0

    @property
    def where(self) -> str:
        """`file.py:LINE` of the `def`, or "" (a builtin, a callable object)."""
        return f"{self.def_file.rsplit('/', 1)[-1]}:{self.def_line}" if self.def_file else ""

    @property
    def label(self) -> str:
        """`'name' (file:line)`, for error messages."""
        return f"'{self.name}' ({self.where})" if self.where else f"'{self.name}'"


def make_spec(fn: Callable[..., Any], name: str | None, options: Mapping[str, Any]) -> TaskSpec:
    """Inspect `fn` once and check its options; `FlowDefinitionError` names the task and its line.

    `options` are the keyword options given to `@f.task` but `name`, as given: a keyword that
    is not an option (a typo) is reported with the closest option name.
    """
    if not callable(fn):
        raise FlowDefinitionError(f"@task needs a function, got {type(fn).__name__}")
    def_file, def_line = _def_location(fn)
    where = f"{def_file.rsplit('/', 1)[-1]}:{def_line}" if def_file else ""
    task_name = name if name is not None else getattr(fn, "__name__", None)
    if not isinstance(task_name, str) or not task_name.isidentifier():
        at = f" ({where})" if where else ""
        raise FlowDefinitionError(
            f"task name {task_name!r}{at} is not a Python identifier (dependents name it as a "
            "parameter); pass name=... to @task"
        )
    label = f"'{task_name}' ({where})" if where else f"'{task_name}'"
    try:
        for key in options:
            if key in OPTION_NAMES:
                continue
            raise FlowDefinitionError(
                f"unknown option {key!r}{suggest(key, OPTION_NAMES)} (options: {', '.join(OPTION_NAMES)})"
            )
        checked = make_options(**{k: v for k, v in options.items() if v is not None})
    except FlowDefinitionError as exc:
        raise FlowDefinitionError(f"task {label}: {exc}") from None
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise FlowDefinitionError(f"task {label}: cannot read the signature of {fn!r}: {exc}") from exc
    params = tuple(
        Param(p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )
    return TaskSpec(task_name, fn, is_coroutine_function(fn), params, checked, def_file, def_line)


def make_options(
    *,
    retries: RetriesSpec = None,
    timeout: float | None = None,
    environment: str | None = None,
    map: MapSpec = None,
    map_param: str | None = None,
    max_concurrent: int | None = None,
    resources: Mapping[str, Any] | None = None,
    map_timeout: float | None = None,
    reads: ReadsSpec = None,
) -> TaskOptions:
    """Validate decorator options (types and ranges) into a `TaskOptions`."""
    for key, seconds in (("timeout", timeout), ("map_timeout", map_timeout)):
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0
        ):
            raise FlowDefinitionError(f"{key} must be a positive number of seconds, got {seconds!r}")
    if environment is not None and (not isinstance(environment, str) or not environment):
        raise FlowDefinitionError(f"environment must be a non-empty string, got {environment!r}")
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
    ):
        raise FlowDefinitionError(f"max_concurrent must be a positive integer, got {max_concurrent!r}")
    if resources is not None and not isinstance(resources, Mapping):
        raise FlowDefinitionError(f"resources must be a mapping, got {type(resources).__name__}")
    if map is not None and not isinstance(map, str) and not isinstance(map, Iterable):
        raise FlowDefinitionError(
            f"map must be a task or input name or an iterable, got {type(map).__name__}"
        )
    if isinstance(map, bytes):
        raise FlowDefinitionError("map must be a task or input name (str) or an iterable, not bytes")
    if map_param is not None and (not isinstance(map_param, str) or not map_param.isidentifier()):
        raise FlowDefinitionError(f"map_param must be the name of a parameter, got {map_param!r}")
    for key, value in (
        ("max_concurrent", max_concurrent),
        ("map_param", map_param),
        ("map_timeout", map_timeout),
    ):
        if value is not None and map is None:
            raise FlowDefinitionError(f"{key} only applies to a mapped task (give map=...)")
    return TaskOptions(
        retries=parse_retries(retries),
        timeout=None if timeout is None else float(timeout),
        environment=environment,
        map=map,
        map_param=map_param,
        max_concurrent=max_concurrent,
        resources=MappingProxyType(dict(resources or {})),
        map_timeout=None if map_timeout is None else float(map_timeout),
        reads=_paths(reads),
    )


def _paths(reads: ReadsSpec) -> tuple[str, ...]:
    """`reads=`: one path or a list of them (str or `os.PathLike`), as strings."""
    if reads is None:
        return ()
    if isinstance(reads, (str, os.PathLike)):
        reads = [reads]
    elif isinstance(reads, bytes) or not isinstance(reads, Iterable):
        raise FlowDefinitionError(f"reads must be a path or a list of paths, got {type(reads).__name__}")
    paths = list(reads)
    for path in paths:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise FlowDefinitionError(f"reads must list paths (str or os.PathLike), got {path!r}")
    return tuple(dict.fromkeys(os.fspath(p) for p in paths))


def parse_retries(value: Any, where: str = "") -> RetryPolicy | None:
    """An engine `RetryPolicy` from an int (extra attempts, no wait), a mapping or a policy.

    The mapping is `{"count": 3, "interval": 1.0, "backoff": 2.0}`: wait 1 s, 2 s, 4 s
    before the retries. The same shapes as an environment's `retries` in `sflow.dispatch`
    (both use `RetryPolicy.from_config`).
    """
    if value is None:
        return None
    try:
        return RetryPolicy.from_config(value, where)
    except ValueError as exc:
        raise FlowDefinitionError(str(exc)) from None


def _def_location(fn: Callable[..., Any]) -> tuple[str, int]:
    """File and line of the function's `def` (its code starts at its first decorator); ("", 0)."""
    code = getattr(getattr(fn, "func", fn), "__code__", None)
    if code is None:
        return "", 0
    line = code.co_firstlineno
    source = linecache.getlines(code.co_filename)
    for at in range(line, min(line + 50, len(source) + 1)):
        if source[at - 1].lstrip().startswith(("def ", "async def ")):
            line = at
            break
    return code.co_filename, line
