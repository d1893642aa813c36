"""Just enough HTTP/1.1 to ask a service for its status line, with no third-party client.

A probe only needs the status code, so the request is sent with `Connection: close` and the
response is read up to its first line. HTTPS is supported without certificate verification,
as Kubernetes does for its probes: a readiness check is not a trust decision, and services on
cluster nodes commonly use self-signed certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Any

from sflow.schema.urls import split_http_url


class ProbeHTTPError(Exception):
    """The URL is unusable or the reply is not HTTP."""


def encode_body(body: Any) -> tuple[bytes, str | None]:
    """Request bytes and a default Content-Type: text as is, mappings and lists as JSON."""
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


def build_request(method: str, url: str, headers: dict[str, str], body: Any, default_host: str) -> bytes:
    """The raw request bytes for `method url`; a URL without a host goes to `default_host`."""
    host, port, _, target = split_url(url, default_host)
    payload, content_type = encode_body(body)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    fields = {"Host": authority, "User-Agent": "sflow-probe", "Accept": "*/*", "Connection": "close"}
    if payload or method != "GET":
        fields["Content-Length"] = str(len(payload))
    if content_type:
        fields["Content-Type"] = content_type
    lower = {k.lower(): k for k in fields}
    for name, value in headers.items():
        fields.pop(lower.get(name.lower(), name), None)
        fields[name] = value
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + payload


def split_url(url: str, default_host: str) -> tuple[str, int, bool, str]:
    """(host, port, tls, request target) of an http(s) URL, read as the workflow files are checked."""
    try:
        return split_http_url(url, default_host)
    except ValueError as exc:
        raise ProbeHTTPError(str(exc)) from None


async def http_status(
    method: str, url: str, *, headers: dict[str, str], body: Any, default_host: str, timeout: float
) -> int:
    """Send one request and return the response's status code (raises OSError, ProbeHTTPError, timeout)."""
    host, port, tls, _ = split_url(url, default_host)
    request = build_request(method, url, headers, body, default_host)
    context = _insecure_context() if tls else None
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    try:
        writer.write(request)
        await asyncio.wait_for(writer.drain(), timeout)
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return parse_status(line)


def parse_status(line: bytes) -> int:
    """The status code in `HTTP/1.1 200 OK`."""
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeHTTPError(f"not an HTTP response: {line[:80]!r}")
    return int(parts[1])


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
