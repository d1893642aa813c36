"""The callback server: receives worker events over HTTP and authenticates each one first.

Checked from the headers alone, before a byte of the body is read: the shared token (when
one is configured), that the run id names a registered run, and the call's own token (derived
from the run's secret, so only the submitting flow and its workers know it); a failure is
HTTP 403. A body larger than `max_body` (the worker's inline-result limit plus
a margin: larger results travel through the result file) is HTTP 413. Then, with the body:
a wrong HMAC-SHA256 signature, an event whose id was already seen (replay) or whose
timestamp is outside the allowed clock skew (so the replay cache can forget old ids) is
HTTP 403 too. A body not sent within `body_timeout` is HTTP 408, a connection that sends no
request within it is closed, and beyond `max_open` requests at
once a caller is refused (503) before anything is read, so stalled callers can neither grow memory
nor hold up the end of a run (requests still open at close get a second). Every refusal is logged.
Only an authenticated event reaches the run's sink, and pickled data in it is decoded later by
the caller.

It listens only where the workers must reach it: `host` when given, else the host of the
`callback_url`, else the advertised host, else this host's address on its default route (the
one the derived URL names), never on every interface unless told (`host="0.0.0.0"`).

One server can serve several runs (each with its own secret); an executor normally owns
one. The server is started lazily by remote executors; aiohttp is imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sflow.dispatch import _deps, protocol
from sflow.dispatch.errors import DispatchConfigError, PayloadError
from sflow.dispatch.payload import DEFAULT_INLINE_RESULT_LIMIT

log = logging.getLogger(__name__)

# The largest event a worker POSTs is its inline-result limit; JSON framing adds a little.
DEFAULT_MAX_BODY = DEFAULT_INLINE_RESULT_LIMIT + 64 * 1024
BODY_TIMEOUT = 30.0  # seconds a caller gets to send a body once its headers passed
MAX_OPEN_REQUESTS = 64  # requests handled at once; more are refused (503) before anything is read
SHUTDOWN_TIMEOUT = 1.0  # seconds requests still open get when the server closes

EventSink = Callable[[protocol.Event], None]


class Refused(Exception):
    """An event that failed authentication; the message is the logged reason."""


@dataclass
class _Run:
    secret: str
    sink: EventSink


class CallbackServer:
    """Authenticating HTTP endpoint for worker events. Use `start()` / `aclose()`."""

    def __init__(
        self,
        host: str | None = None,
        port: int = 0,
        *,
        token: str | None = None,
        callback_url: str | None = None,
        advertise_host: str | None = None,
        path: str = "/sflow/events",
        max_body: int = DEFAULT_MAX_BODY,
        max_skew: float = 600.0,
        body_timeout: float = BODY_TIMEOUT,
        max_open: int = MAX_OPEN_REQUESTS,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.path = path
        self.max_body = max_body
        self.max_skew = max_skew
        self.body_timeout = body_timeout
        self.max_open = max_open
        self._open = 0  # requests being handled now
        self._explicit_url = callback_url
        self._advertise_host = advertise_host
        self._runs: dict[str, _Run] = {}
        self._seen: dict[str, float] = {}
        self._runner: Any = None
        self.refused = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and serve. With `port=0` the OS picks a free port (see `url`)."""
        if self._runner is not None:
            return
        web = _deps.aiohttp_web()
        from_url = not self.host and bool(self._explicit_url)
        self.host = self.listen_address()
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post("/{tail:.*}", self._handle)
        # lingering_time: after a refusal, the unread rest of a body is read and dropped for at most
        # a second (aiohttp's default, 10 s, would also hold up `aclose` when the client hung up)
        # shutdown_timeout: a request still being read when the server closes does not hold up the
        # end of a run
        # keepalive_timeout: a connection that sends no request (or nothing more) is closed after the
        # body timeout, so silent connections do not pile up (aiohttp's default keeps them 75 s)
        runner = web.AppRunner(
            app,
            access_log=None,
            lingering_time=1.0,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=self.body_timeout,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise DispatchConfigError(self._cannot_listen(exc, from_url)) from None
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.debug("callback server listening on %s:%s", self.host, self.port)

    def _cannot_listen(self, exc: OSError, from_url: bool) -> str:
        where = f"the callback server cannot listen on {self.host}:{self.port} ({exc.strerror or exc})"
        if from_url:
            return (
                f"{where}, the host of callback_url {self._explicit_url}: a URL that reaches this host "
                "through another (a gateway, a forwarded port) needs listen_host and listen_port, the "
                "address and port of this host it arrives at"
            )
        return f"{where}; set listen_host to an address of this host that the workers reach"

    def listen_address(self) -> str:
        """Where to listen: `host`, else the callback URL's host, the advertised host, this host's address."""
        if self.host:
            return self.host
        if self._explicit_url:
            named = urllib.parse.urlsplit(self._explicit_url).hostname
            if named:
                return named
        return self._advertise_host or guess_address()

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The URL workers post to: the configured `callback_url`, else derived from host and port."""
        if self._explicit_url:
            return self._explicit_url
        host = self._advertise_host or self.host or guess_address()
        if host in ("0.0.0.0", "::"):
            host = guess_address()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    # -- runs ----------------------------------------------------------------------------
    def register_run(self, run_id: str, secret: str, sink: EventSink) -> None:
        """Accept events of `run_id` signed with `secret`, delivering them to `sink`."""
        self._runs[run_id] = _Run(secret, sink)

    def unregister_run(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    # -- authentication (pure: usable without HTTP) ---------------------------------------
    def check_headers(self, headers: Any, path: str = "") -> tuple[str, _Run]:
        """What can be refused before reading the body: token, run id, call token, a signature at all.

        Returns the run id and its run; raises `Refused` with the reason otherwise.
        """
        if self.token is not None and not self._token_ok(headers, path):
            raise Refused("missing or wrong callback token")
        run_id = headers.get(protocol.RUN_HEADER) or ""
        run = self._runs.get(run_id)
        if run is None:
            raise Refused(f"unknown run id {run_id!r}")
        call_id = headers.get(protocol.CALL_HEADER) or ""
        if not protocol.call_token_ok(run.secret, call_id, headers.get(protocol.CALL_TOKEN_HEADER)):
            raise Refused(f"missing or wrong call token for run {run_id}")
        if not (headers.get(protocol.SIGNATURE_HEADER) or "").strip():
            raise Refused(f"bad or missing signature for run {run_id}")
        return run_id, run

    def authenticate(self, headers: Any, body: bytes, path: str = "") -> tuple[protocol.Event, EventSink]:
        """The verified event and its sink; raises `Refused` with the reason otherwise."""
        run_id, run = self.check_headers(headers, path)
        if not protocol.verify(run.secret, body, headers.get(protocol.SIGNATURE_HEADER)):
            raise Refused(f"bad or missing signature for run {run_id}")
        try:
            event = protocol.parse_event(body)
        except PayloadError as exc:
            raise Refused(f"malformed event: {exc}") from exc
        if event.run_id != run_id:
            raise Refused(f"event names run {event.run_id!r} but was sent for {run_id!r}")
        if event.call_id != headers.get(protocol.CALL_HEADER):
            raise Refused(f"event names call {event.call_id!r} but was sent for another")
        now = time.time()
        if abs(now - event.timestamp) > self.max_skew:
            raise Refused(f"event {event.event_id} is {now - event.timestamp:.0f} s off the server clock")
        if event.event_id in self._seen:
            raise Refused(f"replayed event id {event.event_id}")
        self._remember(event.event_id, now)
        return event, run.sink

    def _token_ok(self, headers: Any, path: str) -> bool:
        assert self.token is not None
        candidates = [headers.get(protocol.TOKEN_HEADER) or "", path.rstrip("/").rsplit("/", 1)[-1]]
        auth = headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            candidates.append(auth[7:])
        expected = self.token.encode()
        return any(hmac.compare_digest(expected, c.encode()) for c in candidates if c)

    def _remember(self, event_id: str, now: float) -> None:
        self._seen[event_id] = now
        if len(self._seen) > 4096 and len(self._seen) % 1024 == 0:
            horizon = now - 2 * self.max_skew  # older ids are refused by timestamp anyway
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}

    # -- HTTP ----------------------------------------------------------------------------
    async def _handle(self, request: Any) -> Any:
        if self._open >= self.max_open:  # stalled or flooding callers cannot take all our memory
            self.refused += 1
            log.warning("refused callback from %s: %d requests already open", request.remote, self._open)
            return _deps.aiohttp_web().json_response({"ok": False, "error": "busy"}, status=503)
        self._open += 1
        try:
            return await self._handle_one(request)
        finally:
            self._open -= 1

    async def _handle_one(self, request: Any) -> Any:
        web = _deps.aiohttp_web()
        try:
            self.check_headers(request.headers, request.path)  # nothing of the body read yet
        except Refused as exc:
            return self._refuse(request, exc)
        size = request.content_length
        if size is not None and size > self.max_body:
            return self._too_large(request, f"{size} bytes announced")
        try:
            # bounded by client_max_size (= max_body) when chunked, and in time
            body = await asyncio.wait_for(request.read(), self.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(request, "chunked body over the limit")
        except asyncio.TimeoutError:
            self.refused += 1
            log.warning(
                "refused callback from %s: body not sent within %gs", request.remote, self.body_timeout
            )
            return web.json_response({"ok": False, "error": "timeout"}, status=408)
        try:
            event, sink = self.authenticate(request.headers, body, request.path)
        except Refused as exc:
            return self._refuse(request, exc)
        try:
            sink(event)
        except Exception:
            log.exception("callback sink failed on %s for call %s", event.type, event.call_id)
        return web.json_response({"ok": True})

    def _refuse(self, request: Any, reason: Refused) -> Any:
        self.refused += 1
        log.warning("refused callback from %s: %s", request.remote, reason)
        return _deps.aiohttp_web().json_response({"ok": False, "error": "forbidden"}, status=403)

    def _too_large(self, request: Any, detail: str) -> Any:
        self.refused += 1
        log.warning(
            "refused callback from %s: body larger than %d bytes (%s)", request.remote, self.max_body, detail
        )
        return _deps.aiohttp_web().json_response({"ok": False, "error": "too large"}, status=413)


def guess_address() -> str:
    """This host's address as seen by other hosts (the interface of the default route)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # no packet is sent for a UDP connect
        address = str(probe.getsockname()[0])
        if not address.startswith("0."):
            return address
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"
