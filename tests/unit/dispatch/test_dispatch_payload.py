"""Payload encoding: round trip, dedup of callables, env value (inline / @file), version checks."""

from __future__ import annotations

import base64
import dataclasses
import linecache
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import dispatch_helpers as h
import pytest

from sflow.dispatch import payload
from sflow.dispatch.errors import PayloadError, PayloadVersionError


def _header(**over: object) -> payload.PayloadHeader:
    return payload.PayloadHeader(run_id="run1", result_dir="/tmp/x", callback_url="http://cb", **over)  # type: ignore[arg-type]


def test_round_trip_of_several_items() -> None:
    data = payload.encode(
        [
            ("c0", "add", h.add, (1,), {"b": 2}),
            ("c1", "add", h.add, (3,), {}),
            ("c2", "lam", lambda x: x * 2, (5,), {}),
        ],
        _header(),
    )
    header, blobs = payload.decode_header(data)
    assert [i.call_id for i in header.items] == ["c0", "c1", "c2"]
    assert header.run_id == "run1" and header.callback_url == "http://cb"
    assert header.cloudpickle == cloudpickle.__version__
    payload.check_versions(header)
    fn, args, kwargs = payload.load_item(header, blobs, 0)
    assert fn(*args, **kwargs) == 3
    fn, args, kwargs = payload.load_item(header, blobs, 2)
    assert fn(*args, **kwargs) == 10


def test_a_function_shared_by_many_items_is_pickled_once() -> None:
    big = "y" * 50_000

    def closure(i: int) -> int:
        return len(big) + i

    one = payload.encode([("c0", "f", closure, (0,), {})], _header())
    many = payload.encode([(f"c{i}", "f", closure, (i,), {}) for i in range(100)], _header())
    assert len(many) < len(one) + 100 * 200  # not 100 copies of the 50 kB closure
    header, blobs = payload.decode_header(many)
    fn, args, _ = payload.load_item(header, blobs, 99)
    assert fn(*args) == 50_099


def test_index_out_of_range_is_a_payload_error() -> None:
    header, blobs = payload.decode_header(payload.encode([("c0", "f", h.add, (1,), {})], _header()))
    with pytest.raises(PayloadError, match="index 3"):
        payload.load_item(header, blobs, 3)


def test_env_value_inline_and_spilled_to_a_file(tmp_path: Path) -> None:
    small = payload.encode([("c0", "f", h.add, (1,), {})], _header())
    text = payload.to_env_value(small, tmp_path / "p.payload")
    assert not text.startswith("@") and base64.b64decode(text) == small
    assert payload.from_env_value(text) == small

    large = payload.encode([("c0", "f", h.add, (b"z" * 100_000,), {})], _header())
    ref = payload.to_env_value(large, tmp_path / "p.payload", inline_limit=64 * 1024)
    assert ref == "@" + str(tmp_path / "p.payload")
    assert (tmp_path / "p.payload").stat().st_mode & 0o077 == 0  # private to the user
    assert payload.from_env_value(ref) == large


def test_garbage_payloads_are_payload_errors(tmp_path: Path) -> None:
    with pytest.raises(PayloadError, match="base64"):
        payload.from_env_value("not base64 !!")
    with pytest.raises(PayloadError, match="cannot read"):
        payload.from_env_value("@" + str(tmp_path / "missing"))
    with pytest.raises(PayloadError, match="magic"):
        payload.decode_header(b"hello world")
    with pytest.raises(PayloadError, match="corrupt"):
        payload.decode_header(payload.MAGIC + (5).to_bytes(4, "big") + b"{bad}")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("python", "2.7.18", "Python version mismatch"),
        ("cloudpickle", "0.5.0", "cloudpickle version mismatch"),
    ],
)
def test_version_mismatch_is_detected_before_unpickling(field: str, value: str, message: str) -> None:
    header, _ = payload.decode_header(payload.encode([("c0", "f", h.add, (1,), {})], _header()))
    header = dataclasses.replace(header, **{field: value})
    with pytest.raises(PayloadVersionError, match=message):
        payload.check_versions(header)


def test_patch_versions_still_match() -> None:
    header, _ = payload.decode_header(payload.encode([("c0", "f", h.add, (1,), {})], _header()))
    major, minor, *_ = header.python.split(".")
    payload.check_versions(dataclasses.replace(header, python=f"{major}.{minor}.99"))


def test_code_pickled_by_value_keeps_its_file_name_and_travels_with_its_source() -> None:
    """Like a notebook cell: code whose only text is in the caller's linecache, shipped by value."""
    name = f"<cell-{uuid.uuid4().hex}>"
    source = "def outer():\n    def inner():\n        raise ValueError('x')\n    return inner\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, name, "exec"), namespace)
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    try:
        data = payload.encode([("c0", "outer", namespace["outer"], (), {})], _header())
    finally:
        del linecache.cache[name]
    header, blobs = payload.decode_header(data)
    try:
        fn, _, _ = payload.load_item(header, blobs, 0)
        inner = fn()
        assert fn is not namespace["outer"]  # rebuilt from the pickle, not looked up
        assert fn.__code__.co_filename == inner.__code__.co_filename == name
        assert linecache.getline(name, 3).strip() == "raise ValueError('x')"
    finally:
        linecache.cache.pop(name, None)
