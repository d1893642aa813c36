"""The wire protocol between a worker and its caller: signed JSON events.

An event is a JSON object `{"v", "type", "run_id", "call_id", "event_id", "timestamp",
"data"}` sent as the raw body of a POST, with `X-Sflow-Signature: sha256=<hex>` = HMAC-SHA256
of that raw body under the run's secret (and `X-Sflow-Run` naming the run, so the server can
pick the secret before parsing anything). `X-Sflow-Call` names the call and
`X-Sflow-Call-Token` carries that call's own token (`call_token`): the server checks both from
the headers, before it reads a byte of the body, so only a holder of the run's secret can make
it read one. The same signed body is also written to a result
file on the shared file system, so a lost POST loses nothing.

Only this module's JSON framing is read before authentication; pickled values inside
`data` are decoded by the caller *after* the signature was checked. Standard library only:
the worker imports this before it knows whether cloudpickle is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.dispatch.errors import PayloadError

PROTOCOL_VERSION = 1
SIGNATURE_HEADER = "X-Sflow-Signature"
RUN_HEADER = "X-Sflow-Run"
TOKEN_HEADER = "X-Sflow-Token"
CALL_HEADER = "X-Sflow-Call"
CALL_TOKEN_HEADER = "X-Sflow-Call-Token"

TASK_STARTED = "task_started"
HEARTBEAT = "heartbeat"
TASK_RESULT = "task_result"
TASK_ERROR = "task_error"
TASK_CANCELLED = "task_cancelled"
EVENT_TYPES = frozenset({TASK_STARTED, HEARTBEAT, TASK_RESULT, TASK_ERROR, TASK_CANCELLED})
FINAL_TYPES = frozenset({TASK_RESULT, TASK_ERROR})


@dataclass(frozen=True)
class Event:
    """One authenticated (or about to be signed) message from a worker."""

    type: str
    run_id: str
    call_id: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def to_body(self) -> bytes:
        """The exact bytes to sign and send."""
        doc = {
            "v": PROTOCOL_VERSION,
            "type": self.type,
            "run_id": self.run_id,
            "call_id": self.call_id,
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "data": self.data,
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def parse_event(body: bytes) -> Event:
    """Parse an event body (after its signature was verified); `PayloadError` if malformed."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"event is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != PROTOCOL_VERSION:
        raise PayloadError("event is not an sflow protocol v1 object")
    try:
        event = Event(
            type=str(doc["type"]),
            run_id=str(doc["run_id"]),
            call_id=str(doc["call_id"]),
            event_id=str(doc["event_id"]),
            timestamp=float(doc["timestamp"]),
            data=dict(doc.get("data") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"event is missing or has a bad field: {exc}") from exc
    if event.type not in EVENT_TYPES:
        raise PayloadError(f"unknown event type {event.type!r}")
    return event


def sign(secret: str, body: bytes) -> str:
    """The signature header value for `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def call_token(secret: str, call_id: str) -> str:
    """The call's own token: a key derived from the run's secret, unguessable without it."""
    return hmac.new(secret.encode(), b"sflow-call-token:" + call_id.encode(), hashlib.sha256).hexdigest()


def call_token_ok(secret: str, call_id: str, token: str | None) -> bool:
    """True if `token` is the call's token; constant-time comparison."""
    return bool(call_id and token) and hmac.compare_digest(
        call_token(secret, call_id).encode(), str(token).strip().encode()
    )


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """True if `signature` is the right signature of `body`; constant-time comparison."""
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


def headers_for(
    run_id: str, call_id: str, secret: str, body: bytes, token: str | None = None
) -> dict[str, str]:
    """HTTP headers of a signed event POST of one call."""
    headers = {
        "Content-Type": "application/json",
        RUN_HEADER: run_id,
        CALL_HEADER: call_id,
        CALL_TOKEN_HEADER: call_token(secret, call_id),
        SIGNATURE_HEADER: sign(secret, body),
    }
    if token:
        headers[TOKEN_HEADER] = token
    return headers


# -- result files (the fallback when a callback is lost) -----------------------------------
def result_path(result_dir: str | os.PathLike[str], call_id: str) -> Path:
    """`<result_dir>/<call_id>.result`: where the worker leaves its final event."""
    return Path(result_dir) / f"{call_id}.result"


def write_result_file(path: Path, body: bytes, secret: str) -> None:
    """Write a signed final event atomically (temp file + rename): a reader never sees half."""
    doc = {"signature": sign(secret, body), "body": body.decode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_result_file(path: Path, secret: str) -> Event | None:
    """The verified event in `path`; None if absent; `PayloadError` if forged or corrupt."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        body = doc["body"].encode()
        signature = doc["signature"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PayloadError(f"result file {path} is corrupt: {exc}") from exc
    if not verify(secret, body, signature):
        raise PayloadError(f"result file {path} has a bad signature; refusing to read it")
    return parse_event(body)
