"""Probe settings as plain values, read from whatever model the YAML front door produced.

`ProbeSpec` is independent of the schema models on purpose: the engine-side code (checks,
loops, the attempt wrapper) can be tested and reused without YAML, and the model side only
has to expose attributes with the names in REFERENCE.md (read with `getattr`, so any object
or plain dict with those names works).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ProbeKind = Literal["tcp_port", "http_get", "http_post", "log_watch"]
KINDS: tuple[ProbeKind, ...] = ("tcp_port", "http_get", "http_post", "log_watch")
DEFAULT_HOST = "127.0.0.1"
EACH_CHECK_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: what to check (`kind` + `params`) and when (the timing fields).

    `timeout` is the overall deadline for a readiness probe to pass, counted from the attempt's
    start (so it includes `delay`); None waits as long as the attempt runs. `each_check_timeout`
    cuts one try that takes longer (it counts as failed), 30 s unless set, as in nv-sflow.
    """

    kind: ProbeKind
    params: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    timeout: float | None = None
    interval: float = 1.0
    each_check_timeout: float = EACH_CHECK_TIMEOUT
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class TaskProbes:
    """A task's readiness and failure probes, already validated."""

    readiness: list[ProbeSpec] = field(default_factory=list)
    failure: list[ProbeSpec] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.readiness or self.failure)


def get(obj: Any, name: str) -> Any:
    """`obj.name`, or `obj[name]` for a mapping; None when absent (models and dicts alike)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def as_list(value: Any) -> list[Any]:
    """None → [], one item → [item], a list or tuple → itself as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def probes_from_model(model: Any, *, default_host: str = DEFAULT_HOST) -> list[ProbeSpec]:
    """Every probe a model describes: one per kind it sets, all sharing its timing fields."""
    found = [kind for kind in KINDS if get(model, kind) is not None]
    if not found:
        raise ValueError(f"a probe needs one of {', '.join(KINDS)}")
    return [_one(model, kind, default_host) for kind in found]


def probe_from_model(model: Any, *, default_host: str = DEFAULT_HOST) -> ProbeSpec:
    """The single probe a model describes; a model setting several kinds is an error here."""
    specs = probes_from_model(model, default_host=default_host)
    if len(specs) > 1:
        raise ValueError(f"a probe has exactly one kind, got {', '.join(s.kind for s in specs)}")
    return specs[0]


def task_probes(task_model: Any, *, default_host: str = DEFAULT_HOST) -> TaskProbes:
    """`task_model.probes.readiness` and `.failure` (each None, one model, or a list)."""
    probes = get(task_model, "probes")
    return TaskProbes(
        readiness=_many(get(probes, "readiness"), default_host),
        failure=_many(get(probes, "failure"), default_host),
    )


def _many(value: Any, default_host: str) -> list[ProbeSpec]:
    return [spec for model in as_list(value) for spec in probes_from_model(model, default_host=default_host)]


def _one(model: Any, kind: ProbeKind, default_host: str) -> ProbeSpec:
    body = get(model, kind)
    return ProbeSpec(
        kind=kind,
        params=_PARAMS[kind](body, default_host),
        delay=_seconds(model, body, "delay", 0.0),
        timeout=_optional_seconds(model, body, "timeout"),
        interval=max(_seconds(model, body, "interval", 1.0), 0.01),
        each_check_timeout=max(_seconds(model, body, "each_check_timeout", EACH_CHECK_TIMEOUT), 0.01),
        success_threshold=_count(model, body, "success_threshold", 1),
        failure_threshold=_count(model, body, "failure_threshold", 3),
    )


def _timing(model: Any, body: Any, name: str) -> Any:
    """Timing fields live on the probe; accept them inside the kind's body too."""
    value = get(model, name)
    return get(body, name) if value is None else value


def _seconds(model: Any, body: Any, name: str, default: float) -> float:
    value = _timing(model, body, name)
    return default if value is None else _duration(value)


def _optional_seconds(model: Any, body: Any, name: str) -> float | None:
    value = _timing(model, body, name)
    return None if value is None else _duration(value)


def _duration(value: Any) -> float:
    """Seconds in a timing field ("500ms", "5s", "1h30m", ...), read like every duration in sflow."""
    # Imported on use: importing sflow.schema runs its package, which defines every model.
    from sflow.schema.durations import parse_duration

    return parse_duration(value)


def _count(model: Any, body: Any, name: str, default: int) -> int:
    value = _timing(model, body, name)
    number = default if value is None else int(value)
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}")
    return number


def _tcp_params(body: Any, default_host: str) -> dict[str, Any]:
    port = get(body, "port")
    if port is None:
        raise ValueError("tcp_port needs a port")
    host = get(body, "host")
    on_node = get(body, "on_node") or "first"
    if on_node not in ("first", "each"):
        raise ValueError(f"tcp_port on_node must be 'first' or 'each', got {on_node!r}")
    if on_node == "each":  # every node of the task, whatever `host` says (as nv-sflow does)
        hosts: list[str] | None = None
    elif isinstance(host, (list, tuple)):
        hosts = [str(h) for h in host]
    else:
        hosts = [str(host or default_host)]
    return {"port": int(port), "hosts": hosts, "on_node": on_node}


def _http_params(body: Any, default_host: str) -> dict[str, Any]:
    url = get(body, "url")
    if not url:
        raise ValueError("an http probe needs a url")
    return {
        "url": str(url),
        "headers": _headers(get(body, "headers")),
        "body": get(body, "body"),
        "default_host": default_host,
    }


def _headers(value: Any) -> dict[str, str]:
    """Headers as a mapping, or a list of "Name: value" strings."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    headers: dict[str, str] = {}
    for line in as_list(value):
        name, _, rest = str(line).partition(":")
        headers[name.strip()] = rest.strip()
    return headers


def _log_params(body: Any, default_host: str) -> dict[str, Any]:
    from sflow.schema.task import log_watch_regex

    regex, literal = get(body, "regex_pattern"), get(body, "match_pattern")
    if (regex is None) == (literal is None):
        raise ValueError("log_watch needs exactly one of regex_pattern or match_pattern")
    pattern = log_watch_regex(regex, literal)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"log_watch regex_pattern {regex!r} is invalid: {exc}") from None
    count = int(get(body, "match_count") or 1)
    if count < 1:
        raise ValueError(f"log_watch match_count must be at least 1, got {count}")
    shown = str(regex if regex is not None else literal)
    logger = get(body, "logger")
    return {"pattern": pattern, "shown": shown, "match_count": count, "logger": logger and str(logger)}


_PARAMS = {
    "tcp_port": _tcp_params,
    "http_get": _http_params,
    "http_post": _http_params,
    "log_watch": _log_params,
}
