"""Encoding a call's outcome (value or exception) into event data, and back.

The worker pickles the value or the exception; an exception that cannot be pickled (or
unpickled on the caller's side, e.g. a class that only exists on the worker) still arrives
as a `RemoteError` carrying the type name, message and traceback text. Decoding happens
only after the event was authenticated (`sflow.dispatch.callback`, `protocol.read_result_file`).
"""

from __future__ import annotations

import base64
import traceback
from typing import Any

from sflow.dispatch import _deps
from sflow.dispatch.errors import (
    PayloadError,
    PayloadVersionError,
    RemoteError,
    attach_remote_traceback,
)

# Errors the worker raises about the payload itself, rebuilt by name in the caller.
_KNOWN_ERRORS: dict[str, type[Exception]] = {
    "sflow.dispatch.errors.PayloadVersionError": PayloadVersionError,
    "sflow.dispatch.errors.PayloadError": PayloadError,
}


def value_data(value: Any) -> dict[str, Any]:
    """Event data of a successful call."""
    return {"value": base64.b64encode(_deps.cloudpickle().dumps(value)).decode()}


def error_data(exc: BaseException, tb: str | None = None) -> dict[str, Any]:
    """Event data of a failed call: type name, message, traceback text and (if possible) the pickle."""
    if tb is None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    pickled: str | None = None
    try:
        cloudpickle = _deps.cloudpickle()
        blob = cloudpickle.dumps(exc)
        cloudpickle.loads(blob)  # an exception with a bad __reduce__ fails here, not in the caller
        pickled = base64.b64encode(blob).decode()
    except Exception:  # unpicklable exceptions still travel by name, message and traceback
        pickled = None
    exc_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return {"error": {"type": exc_type, "message": str(exc), "traceback": tb, "pickled": pickled}}


def decode_value(data: dict[str, Any]) -> Any:
    """The value in `task_result` event data."""
    try:
        blob = base64.b64decode(data["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"result event has no decodable value: {exc}") from exc
    return _deps.cloudpickle().loads(blob)


def decode_error(data: dict[str, Any], where: str) -> BaseException:
    """The exception in `task_error` event data, with the remote traceback attached."""
    err = data.get("error") or {}
    exc_type = str(err.get("type", "Exception"))
    message = str(err.get("message", ""))
    tb = str(err.get("traceback", ""))
    exc: BaseException | None = None
    if err.get("pickled"):
        try:
            loaded = _deps.cloudpickle().loads(base64.b64decode(err["pickled"]))
            exc = loaded if isinstance(loaded, BaseException) else None
        except Exception:  # class unknown here: fall back to RemoteError below
            exc = None
    if exc is None and exc_type in _KNOWN_ERRORS:
        exc = _KNOWN_ERRORS[exc_type](message)
    if exc is None:
        exc = RemoteError(exc_type, message, tb)
    return attach_remote_traceback(exc, tb, where)
