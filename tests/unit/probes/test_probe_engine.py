"""The engine with probed attempts around real processes: a service, its client, teardown."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

import pytest
from probe_helpers import CLIENT_PY, SERVER_PY, other_tasks, port_open, python_argv

from sflow.engine import Attempt, Engine, Event, State, Unit
from sflow.probes import ProbedAttempt, ProbeSpec
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.groups import group_has_live
from sflow.proc.spawn import LaunchSpec

pytestmark = pytest.mark.timeout(60)


def process_unit(
    name: str,
    argv: list[str],
    tmp: Path,
    deps: tuple[str, ...] = (),
    readiness: list[ProbeSpec] | None = None,
    failure: list[ProbeSpec] | None = None,
) -> Unit:
    async def start(attempt_no: int) -> Attempt:
        spec = LaunchSpec(argv=argv, env=dict(os.environ), cwd=tmp, log_path=tmp / f"{name}.{attempt_no}.log")
        inner = await ProcessAttempt.start(spec)
        started.append(inner)
        return ProbedAttempt(inner, readiness or [], failure or [], ["127.0.0.1"], grace=2)

    started: list[ProcessAttempt] = []
    return Unit(name=name, start=start, deps=deps, meta={"started": started})


def group_gone(attempt: ProcessAttempt) -> bool:
    """No live process left in the attempt's group (zombies awaiting a lazy init do not count)."""
    return not group_has_live(attempt.proc.pid)


def test_service_ready_by_tcp_serves_its_client_then_is_torn_down(tmp_path: Path, free_port) -> None:
    port = free_port()
    ready = ProbeSpec("tcp_port", {"port": port}, interval=0.05, timeout=10)
    server = process_unit("server", python_argv(SERVER_PY, str(port)), tmp_path, readiness=[ready])
    client = process_unit("client", python_argv(CLIENT_PY, str(port)), tmp_path, deps=("server",))
    events: list[Event] = []

    async def main() -> None:
        result = await Engine([server, client], grace=2, listeners=[events.append]).run()
        assert result.ok, result.stop_reason
        assert not other_tasks()
        states = {n: r.state for n, r in result.units.items()}
        assert states == {"server": State.SUCCEEDED, "client": State.SUCCEEDED}
        server_outcome = result.units["server"].outcome
        assert server_outcome is not None and "ready_at" in server_outcome.info

    asyncio.run(main())
    order = [(e.unit, e.state) for e in events]
    assert order.index(("server", State.READY)) < order.index(("client", State.RUNNING))
    assert "client got: hello from server" in (tmp_path / "client.1.log").read_text()
    assert all(group_gone(a) for a in server.meta["started"])
    assert not port_open(port)


def test_a_failure_probe_fails_the_service_and_the_run(tmp_path: Path, free_port) -> None:
    port = free_port()
    serve = shlex.join(python_argv(SERVER_PY, str(port)))
    script = f"{serve} & sleep 0.5; echo 'FATAL: lost GPU'; wait"
    ready = ProbeSpec("tcp_port", {"port": port}, interval=0.05, timeout=10)
    fatal = ProbeSpec("log_watch", {"pattern": "FATAL", "shown": "FATAL", "match_count": 1})
    server = process_unit("server", ["bash", "-c", script], tmp_path, readiness=[ready], failure=[fatal])
    client = process_unit("client", ["sleep", "30"], tmp_path, deps=("server",))

    async def main() -> None:
        result = await Engine([server, client], grace=2).run()
        assert not result.ok and result.stop_reason == "task 'server' failed"
        outcome = result.units["server"].outcome
        assert outcome is not None and "failure probe log_watch 'FATAL' fired: matched" in outcome.reason
        assert result.units["client"].state is State.CANCELLED
        assert not other_tasks()

    asyncio.run(main())
    assert all(group_gone(a) for a in server.meta["started"])
    assert not port_open(port)


def test_a_readiness_timeout_fails_the_unit_with_the_probe_named(tmp_path: Path, free_port) -> None:
    port = free_port()
    never = ProbeSpec("tcp_port", {"port": port}, interval=0.05, timeout=0.3)
    server = process_unit("server", ["sleep", "30"], tmp_path, readiness=[never])
    client = process_unit("client", ["true"], tmp_path, deps=("server",))

    async def main() -> None:
        result = await Engine([server, client], grace=2).run()
        outcome = result.units["server"].outcome
        assert result.units["server"].state is State.FAILED and outcome is not None
        assert outcome.reason.startswith(
            f"readiness probe tcp_port 127.0.0.1:{port} did not pass within 0.3s"
        )
        assert result.units["client"].state is State.CANCELLED
        assert not other_tasks()

    asyncio.run(main())
    assert all(group_gone(a) for a in server.meta["started"])
