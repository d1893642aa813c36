"""Dispatch configuration: named environments, each naming an executor and its options.

    import sflow.dispatch as dispatch

    dispatch.config(
        default_environment="slurm",
        environments={
            "slurm": {
                "executor": "slurm",
                "executor_config": {"partition": "debug", "time": "0:10:00"},
                "retries": 2,          # or {"count": 2, "interval": 5, "backoff": 2}
                "timeout": 600,        # default per-call timeout, seconds
                "max_concurrent": 50,  # calls live at once
            },
            "here": {"executor": "local"},
        },
    )

The same shape can live in a TOML or YAML file (`load_config_file`). Every key is checked
when the configuration is set, so a typo fails at once with the key named, not at the
first dispatched call. The registry is module level: one configuration per process.

`sflow.dispatch` imports this module eagerly (its `config` function must shadow the
submodule of the same name), so it imports the executor machinery only when used.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sflow.dispatch.errors import DispatchConfigError
from sflow.errors import suggest

if TYPE_CHECKING:
    from sflow.dispatch.executor import Executor
    from sflow.engine.unit import RetryPolicy

ENVIRONMENT_KEYS = ("executor", "executor_config", "retries", "timeout", "max_concurrent")
FILE_KEYS = ("default_environment", "environments")
_BUILTIN_WITH_OPTIONS = frozenset({"local", "process", "subprocess", "slurm"})


def _retry_policy(value: Any, where: str) -> RetryPolicy:
    """The engine's `RetryPolicy` from the `retries` shape; imported here, not at start-up.

    The worker imports this package; the engine is not something it needs.
    """
    from sflow.engine.unit import RetryPolicy

    try:
        return RetryPolicy.from_config(value, where)
    except ValueError as exc:
        raise DispatchConfigError(str(exc)) from None


@dataclass(frozen=True)
class Environment:
    """One named environment: which executor, its options, and defaults for calls run there."""

    name: str
    executor: str
    executor_config: Mapping[str, Any] = field(default_factory=dict)
    retries: RetryPolicy = field(default_factory=lambda: _retry_policy(None, ""))
    timeout: float | None = None
    max_concurrent: int | None = None

    def create_executor(self) -> Executor:
        """A new, not yet started executor for this environment.

        The environment's `timeout` and `max_concurrent` fill in the built-in executors'
        options of the same name unless `executor_config` sets them itself.
        """
        from sflow.dispatch.executor import get_executor

        options = dict(self.executor_config)
        if self.executor in _BUILTIN_WITH_OPTIONS:
            if self.timeout is not None:
                options.setdefault("timeout", self.timeout)
            if self.max_concurrent is not None:
                options.setdefault("max_concurrent", self.max_concurrent)
        executor = get_executor(self.executor, options)
        if executor.default_timeout is None:
            executor.default_timeout = self.timeout
        return executor


@dataclass
class DispatchConfig:
    """The process-wide dispatch configuration."""

    default_environment: str | None = None
    environments: dict[str, Environment] = field(default_factory=dict)


@functools.cache
def _local() -> Environment:
    """The in-process environment used when none is configured (built on first use)."""
    return Environment("local", "local")


_current = DispatchConfig()


def config(
    default_environment: str | None = None,
    environments: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    replace: bool = False,
) -> DispatchConfig:
    """Add (or with `replace=True`, set exactly) environments and the default; returns the result."""
    global _current
    parsed = {name: parse_environment(name, spec) for name, spec in (environments or {}).items()}
    merged = {} if replace else dict(_current.environments)
    merged.update(parsed)
    default = (
        default_environment
        if default_environment is not None
        else (None if replace else _current.default_environment)
    )
    if default is not None and default not in merged and default != "local":
        raise DispatchConfigError(
            f"default_environment {default!r} is not a configured environment (have: {', '.join(sorted(merged)) or 'none'})"
        )
    _current = DispatchConfig(default, merged)
    return _current


def get_config() -> DispatchConfig:
    return _current


def reset_config() -> None:
    """Forget every environment (tests)."""
    global _current
    _current = DispatchConfig()


def parse_environment(name: str, spec: Mapping[str, Any]) -> Environment:
    """Validate one environment mapping; `DispatchConfigError` names the bad key."""
    where = f"dispatch environment {name!r}"
    if not isinstance(spec, Mapping):
        raise DispatchConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
    for key in spec:
        if key not in ENVIRONMENT_KEYS:
            raise DispatchConfigError(
                f"{where}: unknown key {key!r}{suggest(str(key), ENVIRONMENT_KEYS)} "
                f"(valid keys: {', '.join(ENVIRONMENT_KEYS)})"
            )
    executor = spec.get("executor")
    if not isinstance(executor, str) or not executor:
        raise DispatchConfigError(
            f"{where}: 'executor' is required (local, process, subprocess, slurm or registered)"
        )
    options = spec.get("executor_config") or {}
    if not isinstance(options, Mapping):
        raise DispatchConfigError(f"{where}: 'executor_config' must be a mapping")
    from sflow.dispatch.executor import validate_executor_config

    try:
        validate_executor_config(executor, options)
    except DispatchConfigError as exc:
        raise DispatchConfigError(f"{where}: {exc}") from exc
    return Environment(
        name=name,
        executor=executor,
        executor_config=MappingProxyType(dict(options)),
        retries=_retry_policy(spec.get("retries"), where),
        timeout=_positive(spec.get("timeout"), "timeout", where),
        max_concurrent=_count(spec.get("max_concurrent"), where),
    )


def resolve_environment(name: str | None = None) -> Environment:
    """The environment `name`, else the default one, else an in-process `local` environment."""
    chosen = name or _current.default_environment
    if chosen is None:
        return _current.environments.get("local") or _local()
    if chosen in _current.environments:
        return _current.environments[chosen]
    if chosen == "local":
        return _local()
    known = ", ".join(sorted(_current.environments)) or "none configured"
    hint = suggest(chosen, [*_current.environments, "local"])
    raise DispatchConfigError(f"unknown dispatch environment {chosen!r}{hint} (known: {known})")


def create_executor(environment: str | None = None) -> Executor:
    """A new, not yet started executor for `environment` (see `resolve_environment`)."""
    return resolve_environment(environment).create_executor()


@contextlib.asynccontextmanager
async def open_executor(environment: str | None = None) -> AsyncIterator[Executor]:
    """`async with open_executor("slurm") as ex:` starts it and closes it (cancelling leftovers)."""
    executor = create_executor(environment)
    async with executor:
        yield executor


def load_config_file(path: str | Path) -> DispatchConfig:
    """Apply a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file of the same shape as `config()`.

    YAML is read as workflow files are (`sflow.schema.yaml_source`, YAML 1.2 scalars): only
    `true`/`false` are booleans and `1:30:00` is text, never a number of seconds.
    """
    path = Path(path)
    doc = _read_document(path)
    if not isinstance(doc, Mapping):
        raise DispatchConfigError(f"{path}: expected a mapping at the top level")
    for key in doc:
        if key not in FILE_KEYS:
            raise DispatchConfigError(f"{path}: unknown key {key!r} (valid keys: {', '.join(FILE_KEYS)})")
    try:
        return config(doc.get("default_environment"), doc.get("environments") or {})
    except DispatchConfigError as exc:
        raise DispatchConfigError(f"{path}: {exc}") from exc


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise DispatchConfigError(f"cannot read dispatch config {path}: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib
            except ImportError as exc:
                raise DispatchConfigError(f"{path}: reading TOML on Python 3.10 needs 'tomli'") from exc
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DispatchConfigError(f"{path}: invalid TOML: {exc}") from exc
    if suffix in (".yaml", ".yml"):
        # The workflow files' reader (YAML 1.2 scalars): `time: 1:30:00` stays "1:30:00" and
        # `partition: no` stays "no", as in a workflow; PyYAML's 1.1 rules would give 5400 and False.
        from sflow.errors import SpecError
        from sflow.schema.yaml_source import parse_text

        try:
            return parse_text(text, str(path)).data or {}
        except SpecError as exc:
            raise DispatchConfigError(f"invalid YAML: {exc}") from None
    raise DispatchConfigError(f"{path}: unknown config format (use .toml, .yaml or .yml)")


def _positive(value: Any, key: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DispatchConfigError(f"{where}: {key!r} must be a positive number of seconds, got {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DispatchConfigError(f"{where}: 'max_concurrent' must be a positive integer, got {value!r}")
    return value
