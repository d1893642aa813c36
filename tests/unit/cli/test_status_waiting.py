"""`sflow status` says why a pending task waits, from plan.json and the recorded states."""

from __future__ import annotations

import textwrap
from pathlib import Path

from sflow.cli.runs import _detail
from sflow.record.status import RunStatus, TaskStatus
from sflow.schema import load_workflow
from sflow.workflow.plan import expand
from sflow.workflow.run_plan import RunPlan


def status(state: str, tasks: dict[str, str], plan: dict[str, dict]) -> RunStatus:
    return RunStatus(
        "r1",
        "wf",
        Path("/runs/r1"),
        state,
        None,
        None,
        {name: TaskStatus(name, state=s) for name, s in tasks.items()},
        deps={name: list(entry.get("deps", ())) for name, entry in plan.items()},
        plan=plan,
    )


def test_sflow_status_reads_services_and_gpus_from_the_plan():
    plan = {
        "db": {"deps": [], "service": True},
        "api": {"deps": ["db"]},
        "train": {"deps": ["prep"], "gpus": True},
        "prep": {"deps": []},
    }
    live = status(
        "running", {"db": "running", "api": "pending", "train": "pending", "prep": "succeeded"}, plan
    )
    assert _detail(live.tasks["api"], live) == "waits on service db"
    assert _detail(live.tasks["train"], live) == "waits for GPUs"
    ended = status(
        "killed", {"db": "running", "api": "pending", "train": "pending", "prep": "succeeded"}, plan
    )
    assert _detail(ended.tasks["train"], ended) == ""  # nothing is placed once its sflow is gone


def test_plan_json_marks_the_tasks_that_ask_for_gpus_and_the_services(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """
            version: "0.1"
            backends:
              - {name: local, type: local, default: true, gpus_per_node: 2}
            workflow:
              name: wf
              tasks:
                - name: db
                  script: [sleep 1]
                  probes: {readiness: {tcp_port: {port: 5432}}}
                - name: train
                  depends_on: [db]
                  resources: {gpus: {count: 1}}
                  script: [echo]
            """
        ),
        encoding="utf-8",
    )
    plan = RunPlan(expand(load_workflow([path]))).plan_record()
    assert plan["db"].get("service") and not plan["db"].get("gpus")
    assert plan["train"].get("gpus") and not plan["train"].get("service")
