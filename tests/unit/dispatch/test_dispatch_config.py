"""Environments: `config()`, config files, resolution to executors, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dispatch_helpers as h
import pytest

import sflow
import sflow.dispatch as dispatch
from sflow.dispatch import Call, DispatchConfigError, RetryPolicy, call_with_retries
from sflow.dispatch.local import LocalExecutor
from sflow.dispatch.slurm import SlurmExecutor


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    dispatch.reset_config()
    yield
    dispatch.reset_config()


def test_seed_shaped_config_resolves_to_a_slurm_executor() -> None:
    """`sflow.config(...)` is the second seed's `wove.config(...)`, with our name."""
    assert "config" in sflow.__all__ and sflow.config is dispatch.config
    sflow.config(
        default_environment="slurm",
        environments={
            "slurm": {
                "executor": "slurm",
                "executor_config": {
                    "command": "python -m sflow.dispatch.worker",
                    "callback_token": "shared-secret",
                    "callback_url": "https://runner.internal/sflow/events/shared-secret",
                    "partition": "debug",
                },
                "retries": {"count": 2, "interval": 1, "backoff": 2},
                "timeout": 600,
                "max_concurrent": 20,
            }
        },
    )
    env = dispatch.resolve_environment()
    assert env.name == "slurm" and env.retries == RetryPolicy(2, 1.0, 2.0) and env.timeout == 600
    ex = dispatch.create_executor()
    assert isinstance(ex, SlurmExecutor)
    assert ex.options.partition == "debug" and ex.options.max_concurrent == 20 and ex.default_timeout == 600
    assert ex.options.callback_url == "https://runner.internal/sflow/events/shared-secret"


def test_without_configuration_calls_run_locally() -> None:
    assert isinstance(dispatch.create_executor(), LocalExecutor)
    assert isinstance(dispatch.create_executor("local"), LocalExecutor)


@pytest.mark.parametrize(
    ("environments", "message"),
    [
        ({"a": {"executer": "local"}}, "environment 'a': unknown key 'executer'"),
        ({"a": {}}, "'executor' is required"),
        ({"a": {"executor": "slurm", "executor_config": {"partiton": "x"}}}, "unknown key 'partiton'"),
        ({"a": {"executor": "nope"}}, "unknown executor 'nope'"),
        (
            {"a": {"executor": "local", "retries": {"count": 1, "delay": 2}}},
            "unknown key 'delay' in 'retries'",
        ),
        ({"a": {"executor": "local", "timeout": -1}}, "'timeout' must be a positive number"),
        ({"a": {"executor": "local", "max_concurrent": 0}}, "'max_concurrent' must be a positive integer"),
    ],
)
def test_bad_environments_name_the_problem(environments: dict[str, Any], message: str) -> None:
    with pytest.raises(DispatchConfigError, match=message):
        dispatch.config(environments=environments)


def test_unknown_default_or_environment_is_an_error() -> None:
    with pytest.raises(DispatchConfigError, match="default_environment 'gpu'"):
        dispatch.config(default_environment="gpu", environments={"cpu": {"executor": "local"}})
    dispatch.config(environments={"cpu": {"executor": "local"}})
    with pytest.raises(DispatchConfigError, match=r"unknown dispatch environment 'gpu'.*cpu"):
        dispatch.resolve_environment("gpu")


def test_config_merges_unless_replace() -> None:
    dispatch.config(environments={"a": {"executor": "local"}})
    dispatch.config(environments={"b": {"executor": "process"}})
    assert sorted(dispatch.get_config().environments) == ["a", "b"]
    dispatch.config(environments={"c": {"executor": "local"}}, replace=True)
    assert sorted(dispatch.get_config().environments) == ["c"]


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "dispatch.toml"
    toml.write_text(
        'default_environment = "hpc"\n'
        "[environments.hpc]\n"
        'executor = "slurm"\n'
        "retries = 1\n"
        "[environments.hpc.executor_config]\n"
        'partition = "debug"\n'
        'extra_args = ["--qos=low"]\n'
        'submit = "dispatch_helpers:add"\n'
    )
    dispatch.load_config_file(toml)
    ex = dispatch.create_executor()
    assert (
        isinstance(ex, SlurmExecutor)
        and ex.options.extra_args == ["--qos=low"]
        and ex.options.submit is h.add
    )

    yaml_file = tmp_path / "dispatch.yaml"
    yaml_file.write_text(
        "environments:\n  here:\n    executor: process\n    executor_config: {max_workers: 2}\n"
    )
    dispatch.load_config_file(yaml_file)
    assert dispatch.resolve_environment("here").executor_config == {"max_workers": 2}

    bad = tmp_path / "bad.yaml"
    bad.write_text("environment:\n  x: {}\n")
    with pytest.raises(DispatchConfigError, match=r"bad\.yaml: unknown key 'environment'"):
        dispatch.load_config_file(bad)


def test_yaml_file_means_what_a_workflow_file_means(tmp_path: Path) -> None:
    """YAML 1.2 scalars, as in workflow files: no sexagesimal numbers, `no`/`off` are text."""
    path = tmp_path / "dispatch.yml"
    path.write_text(
        "environments:\n"
        "  hpc:\n"
        "    executor: slurm\n"
        "    executor_config:\n"
        "      partition: no\n"
        "      time: 1:30:00\n"
        "      env: {VERBOSE: off, RATE: 1:30}\n"
    )
    dispatch.load_config_file(path)
    options = dispatch.resolve_environment("hpc").executor_config
    assert options["partition"] == "no" and options["time"] == "1:30:00"
    assert options["env"] == {"VERBOSE": "off", "RATE": "1:30"}

    broken = tmp_path / "broken.yaml"
    broken.write_text("environments: [1\n")
    with pytest.raises(DispatchConfigError, match=r"broken\.yaml:2: YAML syntax error"):
        dispatch.load_config_file(broken)


def test_open_executor_starts_and_closes() -> None:
    dispatch.config(environments={"here": {"executor": "local", "timeout": 0.2}})

    async def scenario() -> None:
        async with dispatch.open_executor("here") as ex:
            assert await ex.run(h.add, 1, 1) == 2
            with pytest.raises(dispatch.DispatchTimeout):
                await ex.run(h.async_sleep_then, 5)

    asyncio.run(scenario())


def test_call_with_retries_resubmits_until_success() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        return "ok"

    async def scenario() -> None:
        async with dispatch.get_executor("local") as ex:
            assert await call_with_retries(ex, Call(flaky), RetryPolicy(count=2)) == "ok"
            attempts.clear()
            with pytest.raises(RuntimeError):
                await call_with_retries(ex, Call(flaky), RetryPolicy(count=1))

    asyncio.run(scenario())
    assert len(attempts) == 2


def test_one_retry_policy_for_the_engine_flows_and_dispatch() -> None:
    from sflow.engine import RetryPolicy as EngineRetryPolicy
    from sflow.flow.task import parse_retries

    assert RetryPolicy is EngineRetryPolicy
    dispatch.config(environments={"a": {"executor": "local", "retries": {"count": 2, "interval": 3}}})
    assert type(dispatch.resolve_environment("a").retries) is EngineRetryPolicy
    assert parse_retries({"count": 2, "interval": 3}) == EngineRetryPolicy(2, 3.0, 1.0)
    assert EngineRetryPolicy.from_config(4, "here") == EngineRetryPolicy(4)
    assert EngineRetryPolicy.from_config(None, "here") == EngineRetryPolicy()
    with pytest.raises(ValueError, match="here: 'retries' needs count >= 0"):
        EngineRetryPolicy.from_config({"count": 1, "backoff": 0.5}, "here")


def test_call_with_retries_waits_interval_then_interval_times_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float, *args: Any, **kwargs: Any) -> Any:
        if delay > 0:
            waits.append(delay)
        return await real_sleep(0)

    def always_fails() -> None:
        raise RuntimeError("no")

    async def scenario() -> None:
        async with dispatch.get_executor("local") as ex:
            monkeypatch.setattr(asyncio, "sleep", record)
            with pytest.raises(RuntimeError):
                await call_with_retries(ex, Call(always_fails), RetryPolicy(count=3, interval=2, backoff=3))

    asyncio.run(scenario())
    assert waits == [2, 6, 18]
