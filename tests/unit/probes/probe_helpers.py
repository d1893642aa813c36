"""Real servers and processes for the probe tests, and one scripted check for their timing rules."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from sflow.probes.checks import Check, CheckResult
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.spawn import LaunchSpec


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@contextlib.asynccontextmanager
async def tcp_server_after(delay: float, port: int) -> AsyncIterator[asyncio.Task[None]]:
    """Start listening on `port` after `delay` seconds; closed on exit."""
    server: list[asyncio.AbstractServer] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def listen_later() -> None:
        await asyncio.sleep(delay)
        server.append(await asyncio.start_server(on_client, "127.0.0.1", port))

    task = asyncio.ensure_future(listen_later())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for s in server:
            s.close()
            await s.wait_closed()


class HttpServer:
    """A tiny real HTTP/1.1 server answering with scripted status codes (the last one repeats)."""

    def __init__(self, statuses: Sequence[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> HttpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


async def start_process(script: str, log_path: Path, cwd: Path | None = None) -> ProcessAttempt:
    """A real `bash -c script` attempt writing to `log_path`."""
    spec = LaunchSpec(
        argv=["bash", "-c", script], env=dict(os.environ), cwd=cwd or log_path.parent, log_path=log_path
    )
    return await ProcessAttempt.start(spec)


SERVER_PY = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen()
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(b"hello from server\\n")
    conn.close()
"""

CLIENT_PY = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as c:
    print("client got:", c.makefile().readline().strip(), flush=True)
"""


def python_argv(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def other_tasks() -> list[asyncio.Task[object]]:
    """Tasks still alive besides the caller (a probe that outlived its attempt shows up here)."""
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


class ScriptedCheck(Check):
    """A check that answers from a script (the last answer repeats) and notes the loop time of
    each try: the probe loops' timing, on the virtual clock."""

    description = "scripted"

    def __init__(self, answers: Sequence[bool]) -> None:
        self.answers = list(answers)
        self.tries: list[float] = []

    async def run(self, timeout: float) -> CheckResult:
        self.tries.append(asyncio.get_running_loop().time())
        ok = self.answers[min(len(self.tries), len(self.answers)) - 1]
        return CheckResult(ok, "" if ok else "no")
