"""`resources.*.release_after` at run time: GPUs freed when a service is ready, or held to the end."""

from __future__ import annotations

GPUS = """
version: "0.1"
backends:
  - {{name: local, type: local, nodes: 1, gpus_per_node: 2}}
workflow:
  name: release
  tasks:
{tasks}
"""


def test_task_ready_gives_a_ready_services_gpus_to_its_dependents(sflow):
    tasks = """
    - name: loader
      script: ["echo loaded", "sleep 60"]
      resources: {gpus: {count: 2, release_after: task_ready}}
      probes:
        readiness:
          - log_watch: {regex_pattern: loaded}
            interval: 0.05
    - name: user
      depends_on: [loader]
      script: ["echo gpus=$CUDA_VISIBLE_DEVICES"]
      resources: {gpus: {count: 2}}
"""
    done = sflow(
        "run", "-f", str(sflow.write("ready.yaml", GPUS.format(tasks=tasks))), "--grace", "2", timeout=60
    )
    assert done.code == 0, done.err
    assert (done.run_dir() / "user" / "user.log").read_text() == "gpus=0,1\n"
    summary = done.summary()["tasks"]
    assert summary["user"]["end"] <= summary["loader"]["end"]  # it ran while the loader still did


def test_workflow_completion_keeps_a_finished_tasks_gpus_from_the_next(sflow):
    tasks = """
    - name: first
      script: ["echo gpus=$CUDA_VISIBLE_DEVICES"]
      resources: {gpus: {count: 1, release_after: workflow_completion}}
    - name: second
      depends_on: [first]
      script: ["echo gpus=$CUDA_VISIBLE_DEVICES"]
      resources: {gpus: {count: 1}}
    - name: third
      depends_on: [second]
      script: ["echo gpus=$CUDA_VISIBLE_DEVICES"]
      resources: {gpus: {count: 1}}
"""
    done = sflow("run", "-f", str(sflow.write("held.yaml", GPUS.format(tasks=tasks))), timeout=60)
    assert done.code == 0, done.err
    logs = {
        name: (done.run_dir() / name / f"{name}.log").read_text() for name in ("first", "second", "third")
    }
    assert logs == {"first": "gpus=0\n", "second": "gpus=1\n", "third": "gpus=1\n"}
