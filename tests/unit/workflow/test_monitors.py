"""Which nodes a monitor samples, and the commands that start its samplers."""

from __future__ import annotations

import sys
from pathlib import Path

from sflow.backends.base import Allocation
from sflow.backends.placement import Node
from sflow.schema.monitor import Monitor, MonitorResources, Scope, Scopes
from sflow.schema.resources import NodeResources
from sflow.workflow.monitors import (
    Placed,
    describe_monitor,
    monitor_dir,
    sampler_argv,
    select_nodes,
    srun_monitor_argv,
    step_name,
    task_targets,
    workflow_targets,
)

NODES = [Node(f"n{i}", f"10.0.0.{i}", i, 2) for i in range(4)]
SLURM = Allocation("cluster", NODES, job_id="42")
LOCAL = Allocation("local", [Node("localhost", "127.0.0.1", 0)])


def test_files_of_the_workflow_and_of_a_task_do_not_meet(tmp_path: Path) -> None:
    assert monitor_dir(tmp_path) == tmp_path / "monitor" / "workflow"
    assert monitor_dir(tmp_path, "workflow") == tmp_path / "monitor" / "tasks" / "workflow"


def test_sampler_command_has_each_scope_and_its_interval(tmp_path: Path) -> None:
    monitor = Monitor(interval=1000, scopes=Scopes(cpu=Scope(), network=Scope(interval=250)))
    argv = sampler_argv(monitor, tmp_path, "n1")
    assert argv[:3] == [sys.executable, "-m", "sflow.monitor.sampler"]
    assert argv[3:] == [
        "--out",
        str(tmp_path),
        "--node",
        "n1",
        "--scope",
        "cpu=1000",
        "--scope",
        "network=250",
    ]
    everything = sampler_argv(Monitor(), tmp_path, None, custom=tmp_path / "c.sh")
    assert "--node" not in everything and "--gpu-fields" in everything
    assert everything[-4:] == ["--custom", str(tmp_path / "c.sh"), "--custom-interval", "5000"]
    assert describe_monitor(monitor) == "cpu 1000 ms, network 250 ms"


def test_on_slurm_one_overlapping_step_runs_a_sampler_per_node() -> None:
    argv = srun_monitor_argv("42", ["n1", "n3"], ["python", "-m", "sflow.monitor.sampler"], step_name("b"))
    assert argv[:5] == ["srun", "--jobid", "42", "--job-name", "sflow-monitor.b"]
    assert "--overlap" in argv and not any(a.startswith(("--gres", "--gpus")) for a in argv)
    i = argv.index("--nodelist")
    assert argv[i + 1] == "n1,n3"
    assert argv[argv.index("--ntasks") + 1] == "2" and argv[argv.index("--ntasks-per-node") + 1] == "1"
    assert argv[-3:] == ["python", "-m", "sflow.monitor.sampler"]


def test_resources_nodes_pick_by_index_after_exclusion() -> None:
    assert [n.name for n in select_nodes(NODES, None)] == ["n0", "n1", "n2", "n3"]
    assert [n.name for n in select_nodes(NODES, NodeResources(indices=[-1, 1]))] == ["n3", "n1"]
    assert [n.name for n in select_nodes(NODES, NodeResources(exclude=[0], count=2))] == ["n1", "n2"]


def test_the_workflow_monitor_covers_every_node_of_every_backend() -> None:
    targets = workflow_targets(Monitor(), {"cluster": SLURM, "local": LOCAL})
    assert [(t.backend, t.nodes) for t in targets] == [
        ("cluster", ["n0", "n1", "n2", "n3"]),
        ("local", ["localhost"]),
    ]


def test_a_task_monitor_covers_its_own_nodes_or_those_of_used_by_tasks() -> None:
    own = Placed("bench", "cluster", ["n0"], [[]])
    placed = [
        Placed("prefill", "cluster", ["n1", "n2"], [[0, 1], [0, 1]]),
        Placed("decode", "cluster", ["n2"], [[1]]),
        Placed("other", "cluster", ["n3"], [[0]]),
    ]
    (mine,) = task_targets(Monitor(), own, {"cluster": SLURM}, placed)
    assert mine.nodes == ["n0"]
    used_by = Monitor(resources=MonitorResources(used_by_tasks=["prefill", "decode"]))
    (theirs,) = task_targets(used_by, own, {"cluster": SLURM}, placed)
    assert theirs.nodes == ["n1", "n2"] and theirs.gpus == {"n1": [0, 1], "n2": [0, 1]}
    assert theirs.allocation is SLURM
