"""Values that can only be mistakes are input errors at file:line, before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec, load_workflow, parse_duration

HEAD = 'version: "0.1"\n'


def task(fields: str, name: str = "a") -> str:
    """A workflow of one task with extra `fields` (YAML, indented for a task) from line 7 on."""
    return HEAD + f"workflow:\n  name: wf\n  tasks:\n    - name: {name}\n      script: [x]\n{fields}"


def error_of(write: Callable[..., Path], text: str, **kwargs: object) -> tuple[SpecError, str]:
    path = write(text)
    with pytest.raises(SpecError) as err:
        load_workflow([path], **kwargs)  # type: ignore[arg-type]
    return err.value, str(path)


@pytest.mark.parametrize(
    ("fields", "line", "field", "message"),
    [
        (
            "      timeout: 0\n",
            7,
            "workflow.tasks[0].timeout",
            "a timeout must be more than 0 seconds (leave it out for no timeout)",
        ),
        (
            "      timeout: '1:99:00'\n",
            7,
            "workflow.tasks[0].timeout",
            "invalid duration '1:99:00': minutes must be below 60, got 99",
        ),
        (
            "      timeout: 1e9\n",
            7,
            "workflow.tasks[0].timeout",
            "a duration must be at most 365 days, got the number 1000000000.0",
        ),
        (
            "      retries: {count: 1e23}\n",
            7,
            "workflow.tasks[0].retries.count",
            "at most 100 retries, got 1e+23",
        ),
        ("      retries: 101\n", 7, "workflow.tasks[0].retries.count", "at most 100 retries, got 101"),
        (
            "      retries: {count: 1, interval: 1e308}\n",
            7,
            "workflow.tasks[0].retries.interval",
            "a duration must be at most 365 days, got the number 1e+308",
        ),
        (
            "      retries: {count: 1, backoff: .inf}\n",
            7,
            "workflow.tasks[0].retries.backoff",
            "input should be less than or equal to 10, got inf",
        ),
        (
            "      retries: {count: 40, interval: 10, backoff: 2}\n",
            7,
            "workflow.tasks[0].retries",
            "the wait before the last retry, interval * backoff^(count-1) = 10s * 2^39, is more than 365 days; "
            "use fewer retries, a shorter interval or a smaller backoff",
        ),
        (
            "      probes:\n        readiness:\n          http_get: {url: 'not a url'}\n",
            9,
            "workflow.tasks[0].probes.readiness[0].http_get.url",
            "invalid url 'not a url': expected http://HOST[:PORT]/PATH (no spaces)",
        ),
        (
            "      probes:\n        readiness:\n          http_post: {url: 'ftp://host/x'}\n",
            9,
            "workflow.tasks[0].probes.readiness[0].http_post.url",
            "invalid url 'ftp://host/x': the scheme must be http or https",
        ),
        (
            "      probes:\n        readiness:\n          http_get: {url: 'http://host:99999/'}\n",
            9,
            "workflow.tasks[0].probes.readiness[0].http_get.url",
            "invalid url 'http://host:99999/': Port out of range 0-65535",
        ),
        (
            "      probes:\n        readiness:\n          http_get: {url: 'http://a,b/'}\n",
            9,
            "workflow.tasks[0].probes.readiness[0].http_get.url",
            "invalid url 'http://a,b/': 'a,b' is not a host name or address",
        ),
        (
            "      probes:\n        readiness:\n          tcp_port: {port: 80}\n          timeout: 0\n",
            10,
            "workflow.tasks[0].probes.readiness[0].timeout",
            "a timeout must be more than 0 seconds (leave it out for no timeout)",
        ),
    ],
    ids=[
        "timeout-0",
        "timeout-1:99:00",
        "timeout-1e9",
        "retries-1e23",
        "retries-101",
        "interval-1e308",
        "backoff-inf",
        "retry-waits",
        "url-not-a-url",
        "url-ftp",
        "url-port",
        "url-host",
        "probe-timeout-0",
    ],
)
def test_a_task_field_out_of_bounds(
    write: Callable[..., Path], fields: str, line: int, field: str, message: str
) -> None:
    err, path = error_of(write, task(fields))
    assert (err.where, err.field, err.message) == (f"{path}:{line}", field, message)


def test_sensible_values_next_to_the_bounds_are_accepted(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(
        task(
            "      timeout: '90:00'\n"
            "      retries: {count: 100, interval: 0, backoff: 10}\n"
            "      probes:\n        readiness:\n"
            "          http_get: {url: 'localhost:8000/health'}\n"
            "          timeout: 364d\n",
            name="a" * 128,
        )
    )
    [only] = spec.workflow.tasks
    assert only.timeout == 5400.0 and only.retries is not None and only.retries.count == 100
    assert only.probes is not None and only.probes.readiness[0].timeout == 364 * 86400


def test_a_short_schedule_with_a_large_backoff_is_accepted(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(task("      retries: {count: 5, interval: 60, backoff: 10}\n"))
    assert spec.workflow.tasks[0].retries is not None


def test_a_workflow_timeout_of_zero(write: Callable[..., Path]) -> None:
    text = HEAD + "workflow:\n  name: wf\n  timeout: 0s\n  tasks:\n    - {name: a, script: [x]}\n"
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:4", "workflow.timeout")
    assert "more than 0 seconds" in err.message


def test_a_timeout_of_zero_from_the_command_line(write: Callable[..., Path]) -> None:
    err, _ = error_of(write, task(""), sets=["workflow.timeout=0"])
    assert (err.where, err.field) == ("--set", "workflow.timeout")


def test_bounds_hold_for_values_rendered_from_variables(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "variables:\n  N: 3\n  WAIT: 10\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n"
        + "      timeout: '${{ variables.WAIT }}'\n"
        + "      retries: {count: '${{ variables.N }}', interval: '${{ variables.WAIT }}', backoff: 10}\n"
    )
    assert load_workflow([write(text)], sets=["N=3"]).workflow.tasks[0].retries is not None
    err, path = error_of(write, text, sets=["N=1000"])
    assert (err.where, err.field) == (f"{path}:11", "workflow.tasks[0].retries.count")
    assert err.message == "at most 100 retries, got 1000 (rendered from '${{ variables.N }}')"
    err, path = error_of(write, text, sets=["N=20"])
    assert (err.where, err.field) == (f"{path}:11", "workflow.tasks[0].retries")
    assert "is more than 365 days" in err.message
    err, path = error_of(write, text, sets=["WAIT=0"])
    assert (err.where, err.field) == (f"{path}:10", "workflow.tasks[0].timeout")
    assert err.message.startswith("a timeout must be more than 0 seconds")


def test_a_task_name_longer_than_a_file_name_allows(write: Callable[..., Path]) -> None:
    err, path = error_of(write, task("", name="t" * 300))
    assert (err.where, err.field) == (f"{path}:5", "workflow.tasks[0].name")
    assert err.message == "is 300 characters long, at most 128"


@pytest.mark.parametrize(
    ("name", "read"),
    [("t" * 128, "t" * 128), ("7", "7"), ("a.b-c_d", "a.b-c_d"), ('"a\\n"', "a\n"), ("_", "_")],
)
def test_task_names_at_the_edges_are_read_as_written(
    write: Callable[..., Path], name: str, read: str
) -> None:
    spec = load_workflow([write(task("", name=name))])
    assert spec.workflow.tasks[0].name == read


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("t" * 129, "is 129 characters long, at most 128"),
        ('"a\\n\\n"', "invalid name 'a\\n\\n': use letters"),
        ("-a", "invalid name '-a': use letters"),
        ('"a b"', "invalid name 'a b': use letters"),
    ],
)
def test_task_names_just_past_the_edges(write: Callable[..., Path], name: str, message: str) -> None:
    err, path = error_of(write, task("", name=name))
    assert (err.where, err.field) == (f"{path}:5", "workflow.tasks[0].name")
    assert err.message.startswith(message)


@pytest.mark.parametrize("name", ["''", "' '"])
def test_an_empty_workflow_name(write: Callable[..., Path], name: str) -> None:
    err, path = error_of(
        write, HEAD + f"workflow:\n  name: {name}\n  tasks:\n    - {{name: a, script: [x]}}\n"
    )
    assert (err.where, err.field, err.message) == (f"{path}:3", "workflow.name", "must not be empty")


def test_an_empty_task_name(write: Callable[..., Path]) -> None:
    err, path = error_of(write, task("", name="''"))
    assert (err.where, err.field, err.message) == (f"{path}:5", "workflow.tasks[0].name", "must not be empty")


def test_a_workflow_name_is_free_text_of_one_line(load: Callable[..., WorkflowSpec]) -> None:
    assert load(
        HEAD + "workflow:\n  name: My run 2\n  tasks:\n    - {name: a, script: [x]}\n"
    ).workflow.name == ("My run 2")
    assert (
        load(HEAD + "workflow:\n  name: 2024\n  tasks:\n    - {name: a, script: [x]}\n").workflow.name
        == "2024"
    )


@pytest.mark.parametrize(
    ("section", "name", "message"),
    [
        ("variables", "PATH", "'PATH' is reserved: each task needs its own PATH to start; use another name"),
        (
            "variables",
            "SFLOW_OUTPUT_DIR",
            "'SFLOW_OUTPUT_DIR' is reserved: names starting with SFLOW_ are the values sflow gives each task",
        ),
        ("artifacts", "PATH", "'PATH' is reserved: each task needs its own PATH to start; use another name"),
    ],
)
def test_a_reserved_environment_name(
    write: Callable[..., Path], section: str, name: str, message: str
) -> None:
    entry = "{value: x}" if section == "variables" else "{uri: 'fs:///x'}"
    err, path = error_of(write, HEAD + f"{section}:\n  {name}: {entry}\n" + task("")[len(HEAD) :])
    assert (err.where, err.field, err.message) == (f"{path}:3", f"{section}.{name}.name", message)


def test_a_reserved_name_in_a_task_list_of_variables(write: Callable[..., Path]) -> None:
    err, path = error_of(write, task("      variables:\n        - {name: PATH, value: /x}\n"))
    assert (err.where, err.field) == (f"{path}:8", "workflow.tasks[0].variables.PATH.name")


def test_names_like_slurms_own_stay_allowed(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(
        HEAD
        + "variables:\n  SLURM_PARTITION: gpu\n  Path: x\n  LD_LIBRARY_PATH: /opt\n"
        + task("")[len(HEAD) :]
    )
    assert list(spec.variables) == ["SLURM_PARTITION", "Path", "LD_LIBRARY_PATH"]


@pytest.mark.parametrize("uri", ["file://../../x", "file://a/../../x", "file://..", "file://./../x"])
def test_a_relative_file_artifact_that_climbs_out(write: Callable[..., Path], uri: str) -> None:
    text = HEAD + f"artifacts:\n  cfg:\n    uri: '{uri}'\n    content: hi\n" + task("")[len(HEAD) :]
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:4", "artifacts.cfg.uri")
    assert "leaves its directory" in err.message


def test_a_climbing_artifact_from_the_command_line(write: Callable[..., Path]) -> None:
    text = HEAD + "artifacts:\n  cfg: {uri: 'file://cfg.yaml', content: hi}\n" + task("")[len(HEAD) :]
    err, _ = error_of(write, text, artifacts=["cfg=file://../../etc/x"])
    assert (err.where, err.field) == ("--artifact", "artifacts.cfg.uri")


@pytest.mark.parametrize(
    "uri", ["file:///abs/cfg.yaml", "file://sub/../cfg.yaml", "file://a/b", "fs://../data"]
)
def test_file_artifacts_inside_their_directory_or_absolute_are_accepted(
    load: Callable[..., WorkflowSpec], uri: str
) -> None:
    spec = load(HEAD + f"artifacts:\n  cfg: {{uri: '{uri}'}}\n" + task("")[len(HEAD) :])
    assert spec.artifacts["cfg"].uri == uri


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90:00", 5400), ("48:00:00", 172800), ("1-23:59:59", 172799), ("0:59", 59), ("2-0", 172800)],
)
def test_clock_durations_may_overflow_only_their_first_part(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1:60", "1:99:00", "1:00:60", "1-24", "1-0:60", "1-0:0:60"])
def test_clock_durations_with_an_overflowing_inner_part(text: str) -> None:
    with pytest.raises(ValueError, match="must be below"):
        parse_duration(text)
