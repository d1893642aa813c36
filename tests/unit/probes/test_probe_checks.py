"""Readiness against real TCP and HTTP servers: delay, thresholds, deadline, several probes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from probe_helpers import HttpServer, ScriptedCheck, start_process, tcp_server_after

from sflow.probes import ProbedAttempt, ProbeSpec
from sflow.probes.checks import HttpCheck, TcpCheck
from sflow.probes.loops import await_ready
from sflow.probes.spec import probe_from_model

pytestmark = pytest.mark.timeout(30)


def tcp(port: int, hosts: list[str] | None = None, **timing: float) -> ProbeSpec:
    return ProbeSpec("tcp_port", {"port": port, "hosts": hosts or ["127.0.0.1"]}, **timing)


def http(kind: str, url: str, **timing: float) -> ProbeSpec:
    return ProbeSpec(kind, {"url": url, "headers": {}, "body": None}, **timing)


def ready_once(spec: ProbeSpec, check: TcpCheck | HttpCheck) -> asyncio.Future:
    return asyncio.ensure_future(await_ready(check, spec, asyncio.get_running_loop().time()))


def test_tcp_ready_once_a_delayed_server_listens(free_port) -> None:
    async def main() -> None:
        port = free_port()
        spec = tcp(port, interval=0.05, timeout=10)
        async with tcp_server_after(0.3, port) as listening:
            verdict = await ready_once(spec, TcpCheck(["127.0.0.1"], port))
            assert verdict.ok, verdict.reason
            assert listening.done()  # not before the server listened

    asyncio.run(main())


def test_tcp_timeout_names_the_probe_and_the_last_error(free_port) -> None:
    async def main() -> None:
        port = free_port()
        verdict = await ready_once(tcp(port, interval=0.05, timeout=0.3), TcpCheck(["127.0.0.1"], port))
        assert not verdict.ok
        assert verdict.reason.startswith(
            f"readiness probe tcp_port 127.0.0.1:{port} did not pass within 0.3s"
        )
        assert "refused" in verdict.reason.lower()

    asyncio.run(main())


def test_tcp_checks_every_node_of_the_task(free_port) -> None:
    async def main() -> None:
        port = free_port()
        async with tcp_server_after(0, port):
            await asyncio.sleep(0.05)
            one = await TcpCheck(["127.0.0.1"], port).run(1)
            both = await TcpCheck(["127.0.0.1", "127.0.0.2"], port).run(1)  # server bound to .1 only
        assert one.ok
        assert not both.ok and both.detail.startswith("127.0.0.2:")

    asyncio.run(main())


def test_http_get_passes_on_2xx_and_fails_on_5xx() -> None:
    async def main() -> None:
        async with HttpServer([200]) as ok, HttpServer([500]) as bad:
            assert (await HttpCheck("GET", {"url": ok.url}, "127.0.0.1").run(1)).ok
            result = await HttpCheck("GET", {"url": bad.url}, "127.0.0.1").run(1)
            assert not result.ok and result.detail == "HTTP 500"
            assert ok.requests[0].startswith(b"GET /health HTTP/1.1\r\n")

    asyncio.run(main())


def test_http_post_sends_headers_and_json_body() -> None:
    async def main() -> None:
        async with HttpServer([201]) as server:
            spec = probe_from_model(
                {"http_post": {"url": server.url, "headers": {"X-Token": "t"}, "body": {"q": 1}}},
                default_host="127.0.0.1",
            )
            check = HttpCheck("POST", spec.params, "127.0.0.1")
            assert (await check.run(1)).ok
            request = server.requests[0]
            assert request.startswith(b"POST /health HTTP/1.1\r\n")
            assert b"X-Token: t\r\n" in request and b"Content-Type: application/json\r\n" in request
            assert request.endswith(b'\r\n\r\n{"q": 1}')

    asyncio.run(main())


def test_success_threshold_counts_consecutive_passes() -> None:
    async def main() -> None:
        async with HttpServer([500, 200, 500, 200, 200, 200]) as server:
            spec = http("http_get", server.url, interval=0.02, success_threshold=2, timeout=10)
            verdict = await ready_once(spec, HttpCheck("GET", spec.params, "127.0.0.1"))
            assert verdict.ok
            assert len(server.requests) == 5  # 500 200 500 200 200: the 2nd pass in a row at #5

    asyncio.run(main())


def test_delay_comes_before_the_first_try(virtual_time) -> None:
    async def main() -> list[float]:
        check = ScriptedCheck([False, True])
        spec = ProbeSpec("tcp_port", delay=0.3, interval=0.5, timeout=10)
        verdict = await await_ready(check, spec, 0.0)
        assert verdict.ok
        return check.tries

    assert virtual_time(main) == pytest.approx([0.3, 0.8])


def test_readiness_gives_up_at_its_deadline(virtual_time) -> None:
    """The deadline counts from the start (delay included); the last pause is cut to meet it."""

    async def main() -> tuple[str, list[float]]:
        check = ScriptedCheck([False])
        spec = ProbeSpec("tcp_port", delay=1, interval=2, timeout=4)
        verdict = await await_ready(check, spec, 0.0)
        assert not verdict.ok
        return verdict.reason, check.tries

    reason, tries = virtual_time(main)
    assert tries == pytest.approx([1.0, 3.0, 4.0])
    assert reason == "readiness probe scripted did not pass within 4s (last try: no)"


def test_several_readiness_probes_must_all_pass(tmp_path: Path, free_port) -> None:
    async def main() -> None:
        port = free_port()
        inner = await start_process("echo up; sleep 30", tmp_path / "svc.log")
        log = ProbeSpec("log_watch", {"pattern": "up", "match_count": 1})
        async with tcp_server_after(0.4, port) as listening:
            attempt = ProbedAttempt(inner, [log, tcp(port, interval=0.05)], [], ["127.0.0.1"], grace=1)
            assert (await attempt.ready()).ok
            assert listening.done()  # the log matched at once; ready only once tcp passed too
        await attempt.stop(1)

    asyncio.run(main())


def test_one_failing_readiness_probe_fails_readiness(tmp_path: Path, free_port) -> None:
    async def main() -> None:
        inner = await start_process("echo up; sleep 30", tmp_path / "svc.log")
        log = ProbeSpec("log_watch", {"pattern": "up", "match_count": 1})
        port = free_port()
        attempt = ProbedAttempt(inner, [log, tcp(port, interval=0.05, timeout=0.2)], [], [], grace=1)
        verdict = await attempt.ready()
        assert not verdict.ok and f"tcp_port 127.0.0.1:{port} did not pass within 0.2s" in verdict.reason
        assert "ready_at" not in attempt.info
        await attempt.stop(1)

    asyncio.run(main())
