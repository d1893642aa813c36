"""Payloads: one or more calls, serialised for a worker in another process or on another host.

Binary layout (`MAGIC`, 4-byte header length, JSON header, blobs): the JSON header carries
the metadata (run id, call ids, Python and cloudpickle versions, callback URL, result
directory, worker settings) and the offsets of the blobs, so a worker can check versions
*before* unpickling anything and report a mismatch as an error event instead of crashing
inside `pickle.loads`. Blob 0 is the table of distinct callables (a 1,000-element job array
of one function pickles that function once); blob i+1 is item i's `(fn_index, args, kwargs)`,
so an array element unpickles only its own arguments. The last blob is the caller's text of
the files whose code travels by value (JSON), so a remote traceback shows the user's lines
even where those files do not exist (see `sflow.dispatch.pickling`).

In the environment (`SFLOW_BACKEND_PAYLOAD`) a payload is base64 text, or `@<path>` of a
file on the shared file system when it is larger than a threshold: argv and a single
environment string are limited to about 128 KiB on Linux.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sflow.dispatch import _deps, pickling
from sflow.dispatch.errors import PayloadError, PayloadVersionError

MAGIC = b"SFLOW-PAYLOAD/1\n"
PAYLOAD_ENV = "SFLOW_BACKEND_PAYLOAD"
SECRET_ENV = "SFLOW_BACKEND_SECRET"
TOKEN_ENV = "SFLOW_CALLBACK_TOKEN"
INDEX_ENV = "SFLOW_BACKEND_INDEX"
DEFAULT_INLINE_LIMIT = 64 * 1024
# A final event larger than this is written to the result file only; the POST announces it.
DEFAULT_INLINE_RESULT_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class PayloadItem:
    """One call of a payload, as the worker sees it before unpickling."""

    call_id: str
    name: str
    offset: int = 0
    length: int = 0


@dataclass
class PayloadHeader:
    """Everything a worker needs to know before it unpickles (JSON, version independent)."""

    run_id: str
    result_dir: str
    callback_url: str | None = None
    python: str = field(default_factory=platform.python_version)
    cloudpickle: str = ""
    heartbeat_interval: float = 30.0
    post_attempts: int = 6
    inline_result_limit: int = DEFAULT_INLINE_RESULT_LIMIT
    functions: tuple[int, int] = (0, 0)
    sources: tuple[int, int] = (0, 0)
    items: list[PayloadItem] = field(default_factory=list)


def encode(
    calls: Sequence[tuple[str, str, Any, tuple[Any, ...], dict[str, Any]]], header: PayloadHeader
) -> bytes:
    """Serialise `(call_id, name, fn, args, kwargs)` tuples under `header` (filled in here)."""
    fns: list[Any] = []
    index_of: dict[int, int] = {}
    item_blobs: list[tuple[str, str, bytes]] = []
    files: set[str] = set()
    for call_id, name, fn, args, kwargs in calls:
        if id(fn) not in index_of:
            index_of[id(fn)] = len(fns)
            fns.append(fn)
        item = pickling.dumps((index_of[id(fn)], tuple(args), dict(kwargs)))
        files |= item.files
        item_blobs.append((call_id, name, item.data))
    table = pickling.dumps(fns)
    files |= table.files
    fn_blob = table.data
    header.cloudpickle = _deps.cloudpickle().__version__
    header.functions = (0, len(fn_blob))
    header.items = []
    offset = len(fn_blob)
    for call_id, name, blob in item_blobs:
        header.items.append(PayloadItem(call_id, name, offset, len(blob)))
        offset += len(blob)
    source_blob = json.dumps(pickling.source_texts(files), separators=(",", ":")).encode()
    header.sources = (offset, len(source_blob))
    head = json.dumps(asdict(header), separators=(",", ":")).encode()
    return b"".join(
        [MAGIC, len(head).to_bytes(4, "big"), head, fn_blob, *(b for _, _, b in item_blobs), source_blob]
    )


def decode_header(data: bytes) -> tuple[PayloadHeader, memoryview]:
    """The header and the blob area of a payload; `PayloadError` if it is not one."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise PayloadError("not an sflow payload (bad magic); was it truncated or produced by another tool?")
    start = len(MAGIC) + 4
    size = int.from_bytes(data[len(MAGIC) : start], "big")
    try:
        doc = json.loads(data[start : start + size])
        doc["functions"] = tuple(doc["functions"])
        doc["sources"] = tuple(doc.get("sources", (0, 0)))
        doc["items"] = [PayloadItem(**item) for item in doc["items"]]
        header = PayloadHeader(**doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise PayloadError(f"sflow payload header is corrupt: {exc}") from exc
    return header, memoryview(data)[start + size :]


def check_versions(header: PayloadHeader) -> None:
    """Raise `PayloadVersionError` unless this interpreter can safely unpickle the payload.

    Code objects pickled by value are only valid on the same Python minor version, and
    cloudpickle only guarantees its format between equal versions; both must match at
    major.minor level.
    """
    here = platform.python_version()
    if _minor(here) != _minor(header.python):
        raise PayloadVersionError(
            f"Python version mismatch: the caller runs Python {header.python}, this worker runs "
            f"Python {here}; set the executor's 'command' to an interpreter of the same version"
        )
    try:
        cloudpickle = _deps.cloudpickle()
    except ImportError as exc:
        raise PayloadVersionError(f"the worker environment cannot decode the payload: {exc}") from exc
    if _minor(cloudpickle.__version__) != _minor(header.cloudpickle):
        raise PayloadVersionError(
            f"cloudpickle version mismatch: the caller has {header.cloudpickle}, this worker has "
            f"{cloudpickle.__version__}; install the same version in both environments"
        )


def load_item(
    header: PayloadHeader, blobs: memoryview, index: int
) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Unpickle item `index`: `(fn, args, kwargs)`. Call `check_versions` first.

    The caller's source texts go into this process's `linecache` first, so a traceback of
    the call shows the user's lines.
    """
    cloudpickle = _deps.cloudpickle()
    if not 0 <= index < len(header.items):
        raise PayloadError(f"payload has {len(header.items)} item(s); index {index} is out of range")
    item = header.items[index]
    src_off, src_len = header.sources
    if src_len:
        try:
            texts = json.loads(bytes(blobs[src_off : src_off + src_len]))
        except ValueError as exc:
            raise PayloadError(f"sflow payload source table is corrupt: {exc}") from exc
        if not isinstance(texts, dict):
            raise PayloadError("sflow payload source table is corrupt: not a mapping")
        pickling.install_sources(texts)
    fn_off, fn_len = header.functions
    fns = cloudpickle.loads(blobs[fn_off : fn_off + fn_len])
    fn_index, args, kwargs = cloudpickle.loads(blobs[item.offset : item.offset + item.length])
    return fns[fn_index], args, kwargs


def to_env_value(data: bytes, spill_path: Path, inline_limit: int = DEFAULT_INLINE_LIMIT) -> str:
    """Base64 text of `data`, or `@<spill_path>` after writing it there when it is too large."""
    text = base64.b64encode(data).decode()
    if len(text) <= inline_limit:
        return text
    spill_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = spill_path.with_name(spill_path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, spill_path)
    return "@" + str(spill_path)


def from_env_value(value: str) -> bytes:
    """The payload bytes behind an `SFLOW_BACKEND_PAYLOAD` value (inline base64 or `@path`)."""
    value = value.strip()
    if not value:
        raise PayloadError(f"{PAYLOAD_ENV} is empty")
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_bytes()
        except OSError as exc:
            raise PayloadError(f"cannot read the payload file {value[1:]}: {exc}") from exc
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"{PAYLOAD_ENV} is not valid base64: {exc}") from exc


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])
