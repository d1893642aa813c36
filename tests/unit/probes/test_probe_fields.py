"""nv-sflow's probe fields: `each_check_timeout` cuts a hanging check, `on_node` picks the nodes a
tcp_port probe targets, `logger` points a log_watch probe at another task's log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sflow.probes.checks import Check, CheckResult, LogWatchCheck, build_check
from sflow.probes.loops import await_ready, try_timeout, watch_failure
from sflow.probes.spec import EACH_CHECK_TIMEOUT, ProbeSpec, probe_from_model

pytestmark = pytest.mark.timeout(30)


class Hangs(Check):
    """A check whose try never answers (and ignores the time it was given)."""

    description = "hangs"

    def __init__(self) -> None:
        self.tries = 0

    async def run(self, timeout: float) -> CheckResult:
        self.tries += 1
        await asyncio.Event().wait()
        raise AssertionError("never answers")


def test_each_check_timeout_is_read_and_defaults_to_30_seconds() -> None:
    assert probe_from_model({"tcp_port": {"port": 1}}).each_check_timeout == EACH_CHECK_TIMEOUT == 30.0
    spec = probe_from_model({"http_get": {"url": "http://h/"}, "each_check_timeout": "20s"})
    assert spec.each_check_timeout == 20.0
    assert try_timeout(spec, deadline=None, now=0.0) == 20.0
    assert try_timeout(spec, deadline=5.0, now=2.0) == 3.0  # never past the readiness deadline


def test_a_hanging_check_is_cut_at_each_check_timeout_and_counts_as_failed() -> None:
    async def main() -> str | None:
        spec = ProbeSpec("tcp_port", {}, interval=0.01, each_check_timeout=0.05, failure_threshold=2)
        check = Hangs()
        fired = await watch_failure(check, spec, asyncio.get_running_loop().time())
        assert check.tries == 2  # each try was cut, so the next one came
        return fired

    assert asyncio.run(main()) == (
        "failure probe hangs fired: 2 failed tries in a row (last: check timed out after 0.05s)"
    )


def test_a_readiness_probe_whose_checks_hang_fails_at_its_deadline_saying_why() -> None:
    async def main() -> str:
        spec = ProbeSpec("tcp_port", {}, interval=0.01, timeout=0.3, each_check_timeout=0.05)
        check = Hangs()
        verdict = await await_ready(check, spec, asyncio.get_running_loop().time())
        assert not verdict.ok and check.tries > 1
        return verdict.reason

    assert asyncio.run(main()) == (
        "readiness probe hangs did not pass within 0.3s (last try: check timed out after 0.05s)"
    )


def test_an_http_check_against_a_server_that_never_answers_is_cut() -> None:
    async def main() -> str | None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # reads the request, never replies

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            spec = probe_from_model(
                {
                    "http_get": {"url": f"http://127.0.0.1:{port}/"},
                    "each_check_timeout": 0.1,
                    "interval": 0.01,
                },
                default_host="127.0.0.1",
            )
            check = build_check(spec, ["127.0.0.1"], None)
            return await watch_failure(check, spec, asyncio.get_running_loop().time())
        finally:
            server.close()

    fired = asyncio.run(main())
    assert fired is not None and "fired: 3 failed tries in a row" in fired, fired
    # the check's own timeout or the cut around it, whichever noticed first: both after 0.1 s
    assert fired.endswith(("(last: no answer within 0.1s)", "(last: check timed out after 0.1s)")), fired


def test_logger_watches_the_named_tasks_log(tmp_path: Path) -> None:
    own, other = tmp_path / "a" / "a.log", tmp_path / "b" / "b.log"
    for path in (own, other):
        path.parent.mkdir()
    own.write_text("nothing here\n")
    other.write_text("server ready\n")
    spec = probe_from_model({"log_watch": {"match_pattern": "ready", "logger": "b"}})

    def log_of(task: str) -> Path:
        return tmp_path / task / f"{task}.log"

    check = build_check(spec, [], own, log_of)
    assert isinstance(check, LogWatchCheck) and check.follower.path == other
    assert check.description == "log_watch 'ready' in b's log"
    assert asyncio.run(check.run(1.0)).ok
    mine = build_check(probe_from_model({"log_watch": {"match_pattern": "ready"}}), [], own, log_of)
    assert isinstance(mine, LogWatchCheck) and mine.follower.path == own
    check.close()
    mine.close()


@pytest.mark.parametrize(
    ("field", "text", "line", "hit"),
    [
        ("match_pattern", "a(b)", "x a(b) y", True),  # literal
        ("match_pattern", "re:Registering|succeeded", "Model registration succeeded", True),
        ("match_pattern", "regex:^go$", "go", True),
        ("regex_pattern", "re:a.c", "abc", True),
        ("regex_pattern", "a.c", "abc", True),  # regex_pattern is a regex already
    ],
)
def test_a_re_prefix_makes_a_pattern_a_regex(
    field: str, text: str, line: str, hit: bool, tmp_path: Path
) -> None:
    log = tmp_path / "t.log"
    log.write_text(line + "\n")
    check = build_check(probe_from_model({"log_watch": {field: text}}), [], log)
    assert asyncio.run(check.run(1.0)).ok is hit
    check.close()
