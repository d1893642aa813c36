"""Callback authentication: HMAC over the raw body, run ids, replays, tokens, result files."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sflow.dispatch import protocol
from sflow.dispatch.callback import CallbackServer, Refused, guess_address
from sflow.dispatch.errors import DispatchConfigError, PayloadError

SECRET = "s3cret" * 8


def _signed(
    event: protocol.Event, secret: str = SECRET, token: str | None = None
) -> tuple[dict[str, str], bytes]:
    body = event.to_body()
    return protocol.headers_for(event.run_id, event.call_id, secret, body, token), body


def _token(call_id: str, secret: str = SECRET) -> str:
    return protocol.call_token(secret, call_id)


def _server(token: str | None = None) -> tuple[CallbackServer, list[protocol.Event]]:
    server = CallbackServer("127.0.0.1", 0, token=token)
    got: list[protocol.Event] = []
    server.register_run("run1", SECRET, got.append)
    return server, got


def test_a_correctly_signed_event_is_accepted() -> None:
    server, _ = _server()
    headers, body = _signed(protocol.Event(protocol.HEARTBEAT, "run1", "c1"))
    event, _sink = server.authenticate(headers, body)
    assert event.type == protocol.HEARTBEAT and event.call_id == "c1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda h, b: ({**h, protocol.SIGNATURE_HEADER: "sha256=" + "0" * 64}, b),
            "bad or missing signature",
        ),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != protocol.SIGNATURE_HEADER}, b),
            "bad or missing signature",
        ),
        (lambda h, b: (h, b.replace(b'"c1"', b'"c2"')), "bad or missing signature"),  # body tampered
        (lambda h, b: ({**h, protocol.RUN_HEADER: "other"}, b), "unknown run id"),
        (lambda h, b: ({**h, protocol.CALL_TOKEN_HEADER: "0" * 64}, b), "wrong call token"),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != protocol.CALL_TOKEN_HEADER}, b),
            "wrong call token",
        ),
        (  # another call's token (valid for it) does not pass for this call's event
            lambda h, b: ({**h, protocol.CALL_HEADER: "c2", protocol.CALL_TOKEN_HEADER: _token("c2")}, b),
            "names call 'c1'",
        ),
    ],
)
def test_forged_or_misdirected_events_are_refused(mutate: Any, reason: str) -> None:
    server, _ = _server()
    headers, body = mutate(*_signed(protocol.Event(protocol.TASK_RESULT, "run1", "c1")))
    with pytest.raises(Refused, match=reason):
        server.authenticate(headers, body)


def test_signed_with_another_runs_secret_is_refused() -> None:
    server, _ = _server()
    server.register_run("run2", "other-secret", lambda e: None)
    headers, body = _signed(protocol.Event(protocol.TASK_RESULT, "run1", "c1"), secret="other-secret")
    with pytest.raises(Refused, match="wrong call token"):
        server.authenticate(headers, body)
    # and a body naming run1 but sent (and validly signed) for run2 is refused too
    body = protocol.Event(protocol.TASK_RESULT, "run1", "c1").to_body()
    headers = protocol.headers_for("run2", "c1", "other-secret", body)
    with pytest.raises(Refused, match="names run"):
        server.authenticate(headers, body)


def test_a_replayed_event_id_is_refused() -> None:
    server, _ = _server()
    headers, body = _signed(protocol.Event(protocol.TASK_RESULT, "run1", "c1"))
    server.authenticate(headers, body)
    with pytest.raises(Refused, match="replayed"):
        server.authenticate(headers, body)


def test_a_stale_event_is_refused() -> None:
    server, _ = _server()
    headers, body = _signed(protocol.Event(protocol.HEARTBEAT, "run1", "c1", timestamp=time.time() - 3600))
    with pytest.raises(Refused, match="off the server clock"):
        server.authenticate(headers, body)


def test_token_is_required_when_configured() -> None:
    server, _ = _server(token="tok")
    event = protocol.Event(protocol.HEARTBEAT, "run1", "c1")
    headers, body = _signed(event)
    with pytest.raises(Refused, match="token"):
        server.authenticate(headers, body)  # missing
    with pytest.raises(Refused, match="token"):
        server.authenticate({**headers, protocol.TOKEN_HEADER: "wrong"}, body)
    server.authenticate({**headers, protocol.TOKEN_HEADER: "tok"}, body)
    headers, body = _signed(protocol.Event(protocol.HEARTBEAT, "run1", "c1"))
    server.authenticate(headers, body, path="/sflow/events/tok")  # seed style: token in the URL
    headers, body = _signed(protocol.Event(protocol.HEARTBEAT, "run1", "c1"))
    with pytest.raises(Refused, match="signature"):  # a right token alone is not enough
        server.authenticate({**headers, protocol.TOKEN_HEADER: "tok", protocol.SIGNATURE_HEADER: ""}, body)


def test_over_http_refusals_are_403_and_never_reach_the_sink(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, got = _server()
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                headers, body = _signed(protocol.Event(protocol.TASK_RESULT, "run1", "c1"))
                forged = {**headers, protocol.SIGNATURE_HEADER: "sha256=" + "1" * 64}
                async with session.post(server.url, data=body, headers=forged) as response:
                    assert response.status == 403
                async with session.post(server.url, data=body, headers=headers) as response:
                    assert response.status == 200
                async with session.post(server.url, data=body, headers=headers) as response:
                    assert response.status == 403  # replay
            assert [e.call_id for e in got] == ["c1"]
            assert server.refused == 2
        finally:
            await server.aclose()

    asyncio.run(scenario())
    assert "refused callback" in caplog.text


async def _post_headers_only(
    server: CallbackServer, headers: dict[str, str], announced: int, sent: bytes = b"{" * 10
) -> int:
    """POST that announces `announced` body bytes but sends only `sent`: the status, if one comes at once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        lines = [f"POST {server.path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {announced}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 3)  # no body is coming: must not wait for it
        return int(status_line.split()[1])
    finally:
        writer.close()


def test_callers_are_refused_before_their_body_is_read() -> None:
    """Token, run id and a signature are checked from the headers; an oversized body is 413."""

    async def scenario() -> None:
        server, got = _server(token="tok")
        await server.start()
        try:
            huge = 200 * 1024 * 1024
            signed = {
                protocol.RUN_HEADER: "run1",
                protocol.SIGNATURE_HEADER: "sha256=" + "0" * 64,
                protocol.TOKEN_HEADER: "tok",
                protocol.CALL_HEADER: "c1",
                protocol.CALL_TOKEN_HEADER: _token("c1"),
            }
            assert await _post_headers_only(server, {**signed, protocol.TOKEN_HEADER: "no"}, huge) == 403
            assert await _post_headers_only(server, {**signed, protocol.RUN_HEADER: "nobody"}, huge) == 403
            wrong = {**signed, protocol.CALL_TOKEN_HEADER: _token("c1", "guessed")}
            assert await _post_headers_only(server, wrong, huge) == 403
            unsigned = {k: v for k, v in signed.items() if k != protocol.SIGNATURE_HEADER}
            assert await _post_headers_only(server, unsigned, huge) == 403
            assert await _post_headers_only(server, signed, huge) == 413
            assert server.max_body < 16 * 1024 * 1024  # near the worker's inline-result limit
            assert server.refused == 5 and got == []
        finally:
            await server.aclose()

    asyncio.run(scenario())


def test_a_chunked_body_over_the_limit_is_413_and_a_normal_event_passes() -> None:
    async def scenario() -> None:
        server = CallbackServer("127.0.0.1", 0, max_body=4096)
        got: list[protocol.Event] = []
        server.register_run("run1", SECRET, got.append)
        await server.start()
        try:
            big = protocol.Event(protocol.TASK_RESULT, "run1", "c1", data={"value": "x" * 10_000})
            headers, body = _signed(big)

            async def chunks() -> Any:
                for start in range(0, len(body), 1000):
                    yield body[start : start + 1000]

            async with aiohttp.ClientSession() as session:
                async with session.post(server.url, data=chunks(), headers=headers) as response:
                    assert response.status == 413
                headers, body = _signed(protocol.Event(protocol.TASK_RESULT, "run1", "c2"))
                async with session.post(server.url, data=body, headers=headers) as response:
                    assert response.status == 200
            assert [e.call_id for e in got] == ["c2"]
        finally:
            await server.aclose()

    asyncio.run(scenario())


def test_derived_url_uses_port_and_advertised_host() -> None:
    async def scenario() -> None:
        server = CallbackServer("127.0.0.1", 0)
        await server.start()
        try:
            assert server.url == f"http://127.0.0.1:{server.port}/sflow/events" and server.port > 0
        finally:
            await server.aclose()
        explicit = CallbackServer(callback_url="https://front.example/sflow/events/tok")
        assert explicit.url == "https://front.example/sflow/events/tok"

    asyncio.run(scenario())


def test_result_files_are_signed_and_checked(tmp_path: Path) -> None:
    event = protocol.Event(protocol.TASK_RESULT, "run1", "c1", data={"value": "x"})
    path = protocol.result_path(tmp_path, "c1")
    assert protocol.read_result_file(path, SECRET) is None
    protocol.write_result_file(path, event.to_body(), SECRET)
    assert protocol.read_result_file(path, SECRET) == event
    with pytest.raises(PayloadError, match="bad signature"):
        protocol.read_result_file(path, "another secret")
    path.write_text("{half")
    with pytest.raises(PayloadError, match="corrupt"):
        protocol.read_result_file(path, SECRET)


async def _stalled(
    server: CallbackServer, announced: int = 1000, token: str | None = None
) -> tuple[asyncio.StreamReader, Any]:
    """A caller who sends headers (whose call token passes, unless `token` says otherwise) and then
    only a little of its body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"POST {server.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n"
        f"{protocol.RUN_HEADER}: run1\r\n{protocol.SIGNATURE_HEADER}: sha256={'0' * 64}\r\n"
        f"{protocol.CALL_HEADER}: c1\r\n{protocol.CALL_TOKEN_HEADER}: {token or _token('c1')}\r\n\r\n"
    )
    writer.write(head.encode() + b"{")
    await writer.drain()
    return reader, writer


def test_a_body_that_never_comes_is_refused_and_does_not_hold_up_the_close() -> None:
    async def scenario() -> None:
        server = CallbackServer("127.0.0.1", 0, body_timeout=0.2)
        server.register_run("run1", SECRET, lambda _e: None)
        await server.start()
        reader, writer = await _stalled(server)
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.split()[1] == b"408" and server.refused == 1
        writer.close()
        # one still stalled when the server closes: the close does not wait for it (aiohttp waited 60 s)
        server.body_timeout = 3600.0
        _, other = await _stalled(server)
        await asyncio.sleep(0.1)
        await asyncio.wait_for(server.aclose(), 30)
        other.close()

    asyncio.run(scenario())


def test_callers_beyond_the_open_limit_are_refused_before_anything_is_read() -> None:
    async def scenario() -> None:
        server = CallbackServer("127.0.0.1", 0, max_open=2, body_timeout=3600.0)
        server.register_run("run1", SECRET, lambda _e: None)
        await server.start()
        try:
            stalled = [await _stalled(server) for _ in range(2)]
            while server._open < 2:
                await asyncio.sleep(0.01)
            reader, writer = await _stalled(server)
            status = await asyncio.wait_for(reader.readline(), 30)
            assert status.split()[1] == b"503"
            for _, w in [*stalled, (reader, writer)]:
                w.close()
        finally:
            await server.aclose()

    asyncio.run(scenario())


def test_sixty_stalled_callers_without_the_call_token_cost_no_body_and_no_close_time() -> None:
    """They know the public run id and send any signature, announce 8 MB, send 64 KB and stall."""

    async def scenario() -> None:
        server = CallbackServer("127.0.0.1", 0, body_timeout=3600.0)
        server.register_run("run1", SECRET, lambda _e: None)
        await server.start()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            callers = []
            for _ in range(60):
                reader, writer = await _stalled(server, announced=8 * 1024 * 1024, token="f" * 64)
                writer.write(b"x" * 64 * 1024)
                callers.append((reader, writer))
            statuses = [await asyncio.wait_for(r.readline(), 30) for r, _ in callers]
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert {s.split()[1] for s in statuses} == {b"403"}  # refused from the headers
        assert server.refused == 60 and server._open == 0
        assert grown < 2 * 1024 * 1024, grown  # not 60 bodies (3.75 MB sent, 480 MB announced)
        # the callers keep their connections open: closing the server does not wait for them
        await asyncio.wait_for(server.aclose(), 30)
        for _, writer in callers:
            assert not writer.is_closing()
            writer.close()

    asyncio.run(scenario())


def test_a_wrong_call_token_is_refused_before_any_body_byte_is_read() -> None:
    """The body is never sent: the answer comes from the headers alone."""

    async def scenario() -> None:
        server, got = _server()
        await server.start()
        try:
            headers, _ = _signed(protocol.Event(protocol.TASK_RESULT, "run1", "c1"))
            wrong = {**headers, protocol.CALL_TOKEN_HEADER: _token("c1", "guessed-secret")}
            assert await _post_headers_only(server, wrong, 100, sent=b"") == 403
            assert server.refused == 1 and got == []
        finally:
            await server.aclose()

    asyncio.run(scenario())


def test_it_listens_on_the_callback_urls_host_never_on_every_interface_by_default() -> None:
    async def scenario() -> None:
        named = CallbackServer(callback_url="http://127.0.0.1:1/sflow/events")
        await named.start()
        try:
            assert named.host == "127.0.0.1"
            assert named._runner.addresses[0][0] == "127.0.0.1"
        finally:
            await named.aclose()
        derived = CallbackServer()
        await derived.start()
        try:
            (address,) = {a[0] for a in derived._runner.addresses}
            assert address == guess_address() != "0.0.0.0"
            assert derived.url == f"http://{address}:{derived.port}/sflow/events"
        finally:
            await derived.aclose()
        elsewhere = CallbackServer(callback_url="http://192.0.2.1:8080/sflow/events")  # not this host
        with pytest.raises(DispatchConfigError) as refused:
            await elsewhere.start()
        assert str(refused.value).startswith("the callback server cannot listen on 192.0.2.1:0 (")
        assert "the host of callback_url http://192.0.2.1:8080/sflow/events" in str(refused.value)
        assert "needs listen_host and listen_port" in str(refused.value)
        bad_host = CallbackServer("192.0.2.1")  # listen_host itself is not of this host
        with pytest.raises(DispatchConfigError, match=r"set listen_host to an address of this host"):
            await bad_host.start()

    asyncio.run(scenario())


def test_a_connection_that_never_sends_a_request_is_closed_after_the_body_timeout() -> None:
    async def scenario() -> None:
        server = CallbackServer("127.0.0.1", 0, body_timeout=0.2)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the server
            writer.close()
        finally:
            await server.aclose()

    asyncio.run(scenario())
