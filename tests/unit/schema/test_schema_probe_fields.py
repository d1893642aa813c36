"""The probe fields nv-sflow's modular samples use: `each_check_timeout`, `on_node`, `logger`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec

WORKFLOW = """
    version: "0.1"
    workflow:
      name: wf
      tasks:
        - name: worker
          replicas: {count: 2}
          script: ["echo up"]
        - name: server
          script: ["sleep 1"]
          probes:
            readiness:
              - tcp_port: {port: 8000, on_node: each}
                each_check_timeout: 20
              - log_watch: {match_pattern: "re:up|ready", logger: LOGGER}
                timeout: 60
    """


def test_the_fields_are_read(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(WORKFLOW.replace("LOGGER", "worker_1"))
    tcp, watch = spec.workflow.tasks[1].probes.readiness  # type: ignore[union-attr]
    assert tcp.tcp_port is not None and tcp.tcp_port.on_node == "each" and tcp.each_check_timeout == 20
    assert watch.log_watch is not None and watch.log_watch.logger == "worker_1"
    assert watch.log_watch.pattern == "up|ready" and watch.each_check_timeout is None


def test_a_logger_naming_no_task_is_refused_at_its_line(load: Callable[..., WorkflowSpec]) -> None:
    for name in ("wroker_1", "worker"):  # a typo; a replicated task's name (its log is a replica's)
        with pytest.raises(SpecError) as err:
            load(WORKFLOW.replace("LOGGER", name))
        assert err.value.message.startswith(f"logger names unknown task '{name}'")
        assert err.value.field == "workflow.tasks[1].probes.readiness[1].log_watch.logger"
        assert err.value.where and err.value.where.endswith("wf.yaml:14")


def test_with_missable_tasks_a_missing_logger_watches_the_tasks_own_log(
    load: Callable[..., WorkflowSpec],
) -> None:
    spec = load(WORKFLOW.replace("LOGGER", "prefill_server"), missable_tasks=["prefill_*"])
    watch = spec.workflow.tasks[1].probes.readiness[1].log_watch  # type: ignore[union-attr]
    assert watch is not None and watch.logger is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("on_node: each", "on_node: all"),
        ("each_check_timeout: 20", "each_check_timeout: 0"),
    ],
)
def test_bad_values_are_refused(load: Callable[..., WorkflowSpec], change: str, words: str) -> None:
    with pytest.raises(SpecError):
        load(WORKFLOW.replace("LOGGER", "worker_0").replace(change, words))
