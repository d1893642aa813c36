"""Reading probe settings from models (any object or dict with REFERENCE.md's field names)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from sflow.probes import ProbeSpec, probe_from_model, probes_from_model, task_probes
from sflow.probes.checks import TcpCheck, build_check
from sflow.schema.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(5, 5.0), (0.5, 0.5), ("5", 5.0), ("5s", 5.0), ("1m", 60.0), ("500ms", 0.5), ("1h30m", 5400.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert probe_from_model(NS(tcp_port=NS(port=1), delay=text)).delay == seconds


@pytest.mark.parametrize("bad", ["soon", "-1", True, None, "5 parsecs"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_tcp_port_defaults_to_the_task_node_and_reads_timing() -> None:
    model = NS(tcp_port=NS(port=8080, host=None), delay="2s", timeout="1m", interval=0.5, success_threshold=2)
    spec = probe_from_model(model, default_host="10.0.0.7")
    assert spec == ProbeSpec(
        kind="tcp_port",
        params={"port": 8080, "hosts": ["10.0.0.7"], "on_node": "first"},
        delay=2.0,
        timeout=60.0,
        interval=0.5,
        success_threshold=2,
        failure_threshold=3,
    )


def test_tcp_port_on_node_each_targets_every_node_of_the_task_and_first_the_first() -> None:
    spec = probe_from_model(
        {"tcp_port": {"port": 80, "on_node": "each", "host": "ignored"}}, default_host="10.0.0.1"
    )
    check = build_check(spec, ["10.0.0.1", "10.0.0.2"], None)
    assert isinstance(check, TcpCheck) and check.hosts == ["10.0.0.1", "10.0.0.2"]
    assert check.description == "tcp_port {10.0.0.1,10.0.0.2}:80"
    first = probe_from_model({"tcp_port": {"port": 80, "on_node": "first"}}, default_host="10.0.0.1")
    one = build_check(first, ["10.0.0.1", "10.0.0.2"], None)
    assert isinstance(one, TcpCheck) and one.hosts == ["10.0.0.1"]
    with pytest.raises(ValueError, match="on_node must be 'first' or 'each'"):
        probe_from_model({"tcp_port": {"port": 80, "on_node": "all"}}, default_host="x")
    listed = probe_from_model({"tcp_port": {"port": 80, "host": ["a", "b"]}}, default_host="x")
    assert listed.params["hosts"] == ["a", "b"]


def test_http_headers_as_mapping_or_lines() -> None:
    get = probe_from_model({"http_get": {"url": "http://h/x", "headers": ["A: 1", "B:2"]}}, default_host="h")
    assert get.params["headers"] == {"A": "1", "B": "2"}
    post = probe_from_model(
        {"http_post": {"url": "/x", "headers": {"A": 1}, "body": {"k": 1}}}, default_host="h"
    )
    assert (
        post.kind == "http_post" and post.params["body"] == {"k": 1} and post.params["headers"] == {"A": "1"}
    )


def test_log_watch_literal_is_escaped_and_regex_validated() -> None:
    literal = probe_from_model(
        {"log_watch": {"match_pattern": "up (v1.2)", "match_count": 2}}, default_host="h"
    )
    assert literal.params["pattern"] == r"up\ \(v1\.2\)" and literal.params["match_count"] == 2
    with pytest.raises(ValueError, match="invalid"):
        probe_from_model({"log_watch": {"regex_pattern": "(unclosed"}}, default_host="h")
    with pytest.raises(ValueError, match="exactly one"):
        probe_from_model({"log_watch": {"regex_pattern": "a", "match_pattern": "b"}}, default_host="h")


def test_a_probe_needs_a_kind_and_sane_thresholds() -> None:
    with pytest.raises(ValueError, match="needs one of"):
        probe_from_model({"delay": 1}, default_host="h")
    with pytest.raises(ValueError, match="at least 1"):
        probe_from_model({"tcp_port": {"port": 1}, "failure_threshold": 0}, default_host="h")
    both = {"tcp_port": {"port": 1}, "log_watch": {"match_pattern": "x"}, "delay": 3}
    with pytest.raises(ValueError, match="exactly one kind"):
        probe_from_model(both, default_host="h")
    assert [(s.kind, s.delay) for s in probes_from_model(both)] == [("tcp_port", 3.0), ("log_watch", 3.0)]


def test_task_probes_accepts_none_one_or_a_list() -> None:
    assert not task_probes(NS(probes=None))
    assert not task_probes(NS())
    one = task_probes(NS(probes=NS(readiness=NS(tcp_port=NS(port=1)), failure=None)), default_host="n1")
    assert [s.kind for s in one.readiness] == ["tcp_port"] and one.failure == []
    many = task_probes(
        {"probes": {"failure": [{"log_watch": {"match_pattern": "OOM"}}, {"http_get": {"url": "/h"}}]}}
    )
    assert [s.kind for s in many.failure] == ["log_watch", "http_get"]
