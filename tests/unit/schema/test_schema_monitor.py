"""`monitor` of a workflow and of a task, as nv-sflow's schema reference defines its fields."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec
from sflow.schema.monitor import BUILTIN_SCOPES, DEFAULT_GPU_FIELDS

Load = Callable[..., WorkflowSpec]


def doc(workflow_monitor: str = "", task_monitor: str = "") -> str:
    return f"""
version: "0.1"
workflow:
  name: m
{workflow_monitor}
  tasks:
    - name: server
      script: ["serve"]
    - name: bench
      script: ["bench"]
{task_monitor}
"""


def test_a_monitor_with_no_fields_samples_every_scope_each_5_s_and_reports(load: Load) -> None:
    spec = load(doc("  monitor: {}"))
    monitor = spec.workflow.monitor
    assert monitor is not None
    assert monitor.scope_intervals() == dict.fromkeys(BUILTIN_SCOPES, 5000)
    assert monitor.report.enabled is True and monitor.report.format == ["csv", "svg"]
    assert monitor.gpu_fields() == DEFAULT_GPU_FIELDS and monitor.gpu_fields().startswith("index,")
    assert spec.task_by_name("server").monitor is None


def test_scopes_given_are_the_only_ones_each_at_its_own_interval(load: Load) -> None:
    text = doc(
        task_monitor="""      monitor:
        interval: 2000
        scopes:
          gpu: {interval: 500}
          cpu: {}
          memory: {enabled: false}""",
    )
    monitor = load(text).task_by_name("bench").monitor
    assert monitor is not None
    assert monitor.scope_intervals() == {"cpu": 2000, "gpu": 500}


def test_interval_below_100_ms_names_the_line(load: Load) -> None:
    with pytest.raises(SpecError) as err:
        load(doc("  monitor:\n    interval: 50"))
    assert "wf.yaml:5" in str(err.value) and "workflow.monitor.interval" in str(err.value)


def test_gpu_fields_start_with_index(load: Load) -> None:
    ok = load(doc("  monitor:\n    scopes:\n      gpu: {fields: 'index, power.draw'}"))
    assert ok.workflow.monitor is not None and ok.workflow.monitor.gpu_fields() == "index,power.draw"
    with pytest.raises(SpecError, match="must start with 'index'"):
        load(doc("  monitor:\n    scopes:\n      gpu: {fields: 'power.draw,index'}"))


def test_scopes_that_enable_nothing_are_a_mistake(load: Load) -> None:
    with pytest.raises(SpecError, match="enables none"):
        load(doc("  monitor:\n    scopes:\n      cpu: {enabled: false}"))
    custom = load(doc("  monitor:\n    scopes:\n      custom: {script: ['date']}"))
    assert custom.workflow.monitor is not None
    assert custom.workflow.monitor.scope_intervals() == {}
    assert custom.workflow.monitor.custom_script() == ["date"]


def test_window_markers_are_strings_or_patterns_and_need_the_report(load: Load) -> None:
    text = doc(
        task_monitor="""      monitor:
        window:
          start: MEASURE_START
          end: {pattern: "re:^END [0-9]+", select: last}""",
    )
    window = load(text).task_by_name("bench").monitor.window  # type: ignore[union-attr]
    assert window is not None
    assert window.start.pattern == "MEASURE_START" and window.start.select is None
    assert window.end.select == "last"
    with pytest.raises(SpecError, match=r"window needs report\.enabled"):
        load(text + "        report: {enabled: false}\n")
    with pytest.raises(SpecError, match="invalid regular expression"):
        load(text.replace("re:^END [0-9]+", "re:(unclosed"))
    with pytest.raises(SpecError, match="must not be empty"):
        load(text.replace("MEASURE_START", "'regex:  '"))


def test_used_by_tasks_must_name_tasks(load: Load) -> None:
    good = load(doc(task_monitor="      monitor:\n        resources: {used_by_tasks: [server]}"))
    resources = good.task_by_name("bench").monitor.resources  # type: ignore[union-attr]
    assert resources is not None and resources.used_by_tasks == ["server"]
    with pytest.raises(SpecError) as err:
        load(
            doc(task_monitor="      monitor:\n        resources:\n          used_by_tasks: [server, sever2]")
        )
    assert "monitors unknown task 'sever2'" in str(err.value)
    assert "wf.yaml:12" in str(err.value)


def test_unknown_fields_and_report_formats_are_refused(load: Load) -> None:
    with pytest.raises(SpecError, match="unknown field 'every'"):
        load(doc("  monitor: {every: 5}"))
    with pytest.raises(SpecError, match=r"report\.format"):
        load(doc("  monitor:\n    report: {format: [pdf]}"))


def test_enable_monitors_adds_defaults_and_keeps_declared_ones(load: Load) -> None:
    spec = load(doc(task_monitor="      monitor: {interval: 1000}"))
    spec.enable_monitors(True, ["server", "bench"])
    assert spec.workflow.monitor is not None and spec.workflow.monitor.interval == 5000
    assert spec.task_by_name("server").monitor is not None
    assert spec.task_by_name("bench").monitor.interval == 1000  # type: ignore[union-attr]
    with pytest.raises(KeyError, match="no task named 'nope'"):
        spec.enable_monitors(False, ["nope"])


def test_a_monitor_does_not_change_what_a_task_computes(load: Load) -> None:
    from sflow.workflow.fingerprints import task_fingerprints
    from sflow.workflow.plan import expand

    plain = load(doc())
    watched = load(doc(task_monitor="      monitor: {interval: 1000}"))
    assert task_fingerprints(plain, expand(plain)) == task_fingerprints(watched, expand(watched))
