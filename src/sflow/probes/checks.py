"""One try of each probe kind: an async, non-blocking yes/no with a short explanation.

A check knows nothing about thresholds, delays or deadlines (see `loops`); it answers "does
the thing look up right now?". Two shapes exist:

- *state* checks (tcp_port, http_get, http_post) can flip either way between tries, so the
  loops count consecutive answers against `success_threshold` / `failure_threshold`;
- the *cumulative* check (log_watch) answers "has the pattern appeared `match_count` times?",
  which can only become true and stay so; thresholds do not apply to it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflow.probes.http import ProbeHTTPError, http_status
from sflow.probes.logwatch import LogFollower, MatchCounter
from sflow.probes.spec import DEFAULT_HOST, ProbeSpec

LOG_FAST = 0.02  # first re-check after new log output: react within tens of milliseconds
LOG_SLOW = 0.25  # idle log: back off to at most this (or the probe's interval, if shorter)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str = ""


def os_reason(exc: OSError) -> str:
    """'Connection refused' rather than asyncio's "Connect call failed ('h', 1)"."""
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


class Check(abc.ABC):
    """One probe target; `run` is one try, `pause` the wait before the next try."""

    description: str = ""
    cumulative: bool = False
    unusable: str = ""  # set when the check can never answer (no log file to watch)

    @abc.abstractmethod
    async def run(self, timeout: float) -> CheckResult:
        """One try, within `timeout` seconds; never raises for an unreachable target."""

    def pause(self, interval: float) -> float:
        return interval

    def close(self) -> None:  # noqa: B027 - most checks hold nothing
        """Release what the check holds (a log file descriptor)."""


class TcpCheck(Check):
    """Passes when every host accepts a TCP connection on `port`."""

    def __init__(self, hosts: Sequence[str], port: int) -> None:
        self.hosts = list(hosts) or [DEFAULT_HOST]
        self.port = port
        where = self.hosts[0] if len(self.hosts) == 1 else "{" + ",".join(self.hosts) + "}"
        self.description = f"tcp_port {where}:{port}"

    async def run(self, timeout: float) -> CheckResult:
        errors = await asyncio.gather(*(self._connect(host, timeout) for host in self.hosts))
        named = len(self.hosts) > 1
        failed = [f"{h}: {e}" if named else e for h, e in zip(self.hosts, errors, strict=True) if e]
        return CheckResult(not failed, "; ".join(failed) or "port open")

    async def _connect(self, host: str, timeout: float) -> str:
        """'' when the port accepts a connection, else why not."""
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, self.port), timeout)
        except asyncio.TimeoutError:
            return f"no answer within {timeout:g}s"
        except OSError as exc:
            return os_reason(exc)
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout)
        return ""


class HttpCheck(Check):
    """Passes on a 2xx or 3xx reply to one GET or POST."""

    def __init__(self, method: str, params: dict[str, Any], default_host: str) -> None:
        self.method = method
        self.url = str(params["url"])
        self.headers = dict(params.get("headers") or {})
        self.body = params.get("body")
        self.default_host = default_host
        self.description = f"http_{method.lower()} {self.url}"

    async def run(self, timeout: float) -> CheckResult:
        try:
            status = await http_status(
                self.method,
                self.url,
                headers=self.headers,
                body=self.body,
                default_host=self.default_host,
                timeout=timeout,
            )
        except asyncio.TimeoutError:
            return CheckResult(False, f"no answer within {timeout:g}s")
        except OSError as exc:
            return CheckResult(False, os_reason(exc))
        except ProbeHTTPError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(200 <= status < 400, f"HTTP {status}")


class LogWatchCheck(Check):
    """Passes once the pattern has appeared `match_count` times in this attempt's log."""

    cumulative = True

    def __init__(self, log_path: Path | None, pattern: str, shown: str, match_count: int) -> None:
        self.follower = LogFollower(log_path)
        self.counter = MatchCounter(pattern)
        self.match_count = match_count
        self.description = f"log_watch {shown!r}" + (f" x{match_count}" if match_count > 1 else "")
        self.unusable = "" if log_path is not None else "the attempt has no log file to watch"
        self._wait = LOG_FAST
        self._fresh = False

    async def run(self, timeout: float) -> CheckResult:
        lines, partial, self._fresh = self.follower.read()
        self.counter.feed(lines)
        seen = self.counter.total(partial)
        if seen < self.match_count:
            return CheckResult(False, f"seen {seen} of {self.match_count}")
        return CheckResult(True, f"matched {self.counter.last_match[:200]!r}")

    def pause(self, interval: float) -> float:
        """Re-read at once while there is a backlog, soon after new output, slower when idle."""
        if self.follower.backlog:
            return 0.0
        ceiling = max(LOG_FAST, min(interval, LOG_SLOW))
        self._wait = LOG_FAST if self._fresh else min(self._wait * 2, ceiling)
        return self._wait

    def close(self) -> None:
        self.follower.close()


def build_check(
    spec: ProbeSpec,
    hosts: Sequence[str],
    log_path: Path | None,
    log_of: Callable[[str], Path] | None = None,
) -> Check:
    """The check for `spec`; `hosts` are the task's node addresses (first = default target),
    `log_path` the attempt's log and `log_of(task)` another task's (for a `logger`)."""
    params = spec.params
    if spec.kind == "tcp_port":
        targets = params.get("hosts") or list(hosts)[: None if params.get("on_node") == "each" else 1]
        return TcpCheck(targets or [DEFAULT_HOST], int(params["port"]))
    if spec.kind in ("http_get", "http_post"):
        default_host = str(params.get("default_host") or (hosts[0] if hosts else DEFAULT_HOST))
        return HttpCheck("GET" if spec.kind == "http_get" else "POST", params, default_host)
    if spec.kind == "log_watch":
        logger = params.get("logger")
        path = log_of(logger) if logger and log_of is not None else log_path
        check = LogWatchCheck(
            path, str(params["pattern"]), str(params.get("shown", "")), int(params["match_count"])
        )
        if logger:
            check.description += f" in {logger}'s log"
        return check
    raise ValueError(f"unknown probe kind {spec.kind!r}")
