"""The slurm backend without a cluster: salloc argv, parsing of Slurm's output, reuse of a job."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sflow.backends import create_backend
from sflow.backends import slurm as slurm_mod
from sflow.backends.slurm import (
    HOLDER,
    SlurmBackend,
    allocation_options,
    env_gpus,
    expand_hostlist,
    gpu_count,
    gpus_by_node,
    parse_node_addrs,
    parse_salloc_job_id,
    salloc_argv,
    salloc_request,
    uniform_gpus,
)
from sflow.errors import BackendError
from sflow.schema.models import SlurmBackend as SlurmBackendModel
from sflow.slurm.commands import SlurmResult
from sflow.slurm.flags import merge_extra_args, slurm_time

JOB_LINE = (
    "JobId=72 JobName=sflow-exp-g UserId=root(0) JobState=RUNNING NodeList=node[1-2] NumNodes=2 "
    "NumCPUs=2 TRES=cpu=2,mem=1000M,node=2,billing=2 JOB_GRES=gpu:3   Nodes=node1 CPU_IDs=1 Mem=500 "
    "GRES=gpu:2(IDX:0-1)   Nodes=node2 CPU_IDs=0 Mem=500 GRES=gpu:1(IDX:0) MinCPUsNode=1 "
    "TresPerJob=gres:gpu:3 Partition=debug TimeLimit=00:05:00"
)


def test_salloc_argv_from_the_spec_model() -> None:
    model = SlurmBackendModel(
        name="c",
        account="proj",
        partition="gpu",
        time="01:30:00",
        nodes=2,
        gpus_per_node=8,
        job_name="wf",
        extra_args=["--segment=2", "--exclusive", "--mem 128G", "--exclusive"],
    )
    assert salloc_argv(model) == [
        "salloc",
        "--job-name",
        "wf",
        "-A",
        "proj",
        "-p",
        "gpu",
        "-t",
        "01:30:00",
        "-N",
        "2",
        "--segment=2",
        "--exclusive",
        "--mem",
        "128G",
        "--exclusive",
        *HOLDER,  # holds the job as long as sflow lives
    ]


def test_gpus_per_node_is_for_planning_and_asks_slurm_for_nothing() -> None:
    argv = salloc_argv({"nodes": 2, "gpus_per_node": 4})
    assert not [word for word in argv if "gpu" in word]


@pytest.mark.parametrize(
    ("recipe", "command_line", "merged"),
    [
        (["--gpus-per-node=8", "--exclusive"], ["--gpus-per-node=4"], ["--gpus-per-node=4", "--exclusive"]),
        (["--mem 8G"], ["--mem=16G"], ["--mem=16G"]),
        (["--export=A=1"], ["--export=B=2", "--export=A=3"], ["--export=A=3", "--export=B=2"]),
        (["-p debug"], ["--partition=batch", "--segment=2"], ["--partition=batch", "--segment=2"]),
        (["--exclusive", "--exclusive"], [], ["--exclusive"]),
    ],
)
def test_extra_args_are_one_of_each_option_the_command_line_winning(
    recipe: list[str], command_line: list[str], merged: list[str]
) -> None:
    assert merge_extra_args(recipe, command_line) == merged


def test_minimal_config_and_option_groups() -> None:
    assert salloc_request({"nodes": 1}) == ["salloc", "--job-name", "sflow", "-N", "1"]
    groups = allocation_options({"account": "a b", "extra_args": ["--comment='x y'"]})
    assert groups == [["--job-name", "sflow"], ["-A", "a b"], ["--comment=x y"]]


def test_slurm_time() -> None:
    assert slurm_time("00:10:00") == "00:10:00"
    assert slurm_time(10) == "10"  # a bare number is minutes, as for Slurm itself
    with pytest.raises(BackendError):
        slurm_time(True)


@pytest.mark.parametrize(
    ("text", "job"),
    [
        ("salloc: Granted job allocation 68", "68"),
        ("salloc: Pending job allocation 72", "72"),
        ("salloc: job 73 queued and waiting for resources", "73"),
        ("salloc: error: Job submit/allocate failed: Node count specification invalid", None),
    ],
)
def test_parse_salloc_job_id(text: str, job: str | None) -> None:
    assert parse_salloc_job_id(text) == job


def test_expand_hostlist() -> None:
    assert expand_hostlist("node[1-3,5]") == ["node1", "node2", "node3", "node5"]
    assert expand_hostlist("gpu[08-10]a,login") == ["gpu08a", "gpu09a", "gpu10a", "login"]
    assert expand_hostlist("r[1-2]n[1-2]") == ["r1n1", "r1n2", "r2n1", "r2n2"]
    assert expand_hostlist("single") == ["single"]


@pytest.mark.parametrize(
    ("gres", "count"),
    [
        ("gpu:2(IDX:0-1)", 2),
        ("gres:gpu:a100:4", 4),
        ("gres/gpu:2", 2),
        ("gres/gpu=2", 2),
        ("gpu:a100:2(IDX:0-1),gpu:v100:1(IDX:2)", 3),
        ("gpu:1,mps:100", 1),
        ("", 0),
        ("(null)", 0),
    ],
)
def test_gpu_count(gres: str, count: int) -> None:
    assert gpu_count(gres) == count


def test_gpus_by_node_from_job_details() -> None:
    assert gpus_by_node(JOB_LINE) == {"node1": 2, "node2": 1}
    line = "JobId=1 NumNodes=2 JOB_GRES=gpu:4 Nodes=n[1-2] CPU_IDs=0 Mem=1 GRES=gpu:2(IDX:0-1) X=1"
    assert gpus_by_node(line) == {"n1": 2, "n2": 2}
    assert uniform_gpus({"TresPerNode": "gres:gpu:2"}) == 2
    assert uniform_gpus({"TresPerJob": "gres:gpu:3"}) is None


def test_parse_node_addrs_and_env_gpus() -> None:
    text = "NodeName=node1 Arch=x86_64 NodeAddr=10.0.0.1 NodeHostName=h1\nNodeName=node2 NodeAddr=n2\n"
    assert parse_node_addrs(text) == {"node1": "10.0.0.1", "node2": "n2"}
    assert env_gpus({"SLURM_GPUS_ON_NODE": "2"}) == 2
    assert env_gpus({"SLURM_GPUS_PER_NODE": "a100:4"}) == 4
    assert env_gpus({}) is None


def test_planned_allocation_placeholders() -> None:
    backend = SlurmBackend("c", {"nodes": 2, "gpus_per_node": 4}, environ={})
    alloc = backend.planned_allocation()
    assert [n.name for n in alloc.nodes] == ["slurm-node-0", "slurm-node-1"]
    assert {n.num_gpus for n in alloc.nodes} == {4}
    assert alloc.job_id is None and not alloc.reused


def test_planned_allocation_inside_a_job_shows_its_nodes() -> None:
    env = {"SLURM_JOB_ID": "9", "SLURM_JOB_NODELIST": "node[2-3]", "SLURM_GPUS_ON_NODE": "2"}
    alloc = SlurmBackend("c", {"nodes": 1}, environ=env).planned_allocation()
    assert [n.name for n in alloc.nodes] == ["node2", "node3"]
    assert alloc.reused and alloc.job_id == "9" and alloc.nodes[0].num_gpus == 2


def test_registered_with_srun_as_default_operator() -> None:
    backend = create_backend("slurm", "c", {"nodes": 1})
    assert isinstance(backend, SlurmBackend) and backend.default_operator == "srun"


def test_reuse_inside_a_job_never_runs_salloc_or_scancel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    async def fake_run(argv: list[str], **_: Any) -> SlurmResult:
        calls.append(list(argv))
        if argv[:3] == ["scontrol", "show", "job"]:
            return SlurmResult(JOB_LINE)
        if argv[:3] == ["scontrol", "show", "hostnames"]:
            return SlurmResult("node1\nnode2\n")
        return SlurmResult("NodeName=node1 NodeAddr=10.0.0.1\nNodeName=node2 NodeAddr=10.0.0.2\n")

    async def no_scancel(*_: Any, **__: Any) -> bool:
        raise AssertionError("a reused allocation must not be cancelled")

    monkeypatch.setattr(slurm_mod, "run_slurm", fake_run)
    monkeypatch.setattr(slurm_mod, "scancel", no_scancel)
    env = {"SLURM_JOB_ID": "72", "SLURM_JOB_NODELIST": "node[1-2]"}
    backend = SlurmBackend("c", {"nodes": 2}, environ=env)

    async def go() -> Any:
        alloc = await backend.allocate()
        await backend.release()
        return alloc

    alloc = asyncio.run(go())
    assert alloc.reused and alloc.job_id == "72"
    assert [(n.name, n.ip_address, n.num_gpus) for n in alloc.nodes] == [
        ("node1", "10.0.0.1", 2),
        ("node2", "10.0.0.2", 1),
    ]
    assert not any(c[0] == "salloc" for c in calls)
    assert ["scontrol", "show", "hostnames", "node[1-2]"] in calls


def test_salloc_refusal_is_a_backend_error_with_slurms_message() -> None:
    backend = SlurmBackend("c", {"nodes": 9}, environ={})
    lines = ["salloc: error: Job submit/allocate failed: Node count specification invalid"]
    with pytest.raises(BackendError, match="Node count specification invalid"):
        backend._salloc_result(1, lines)


def test_unrendered_expression_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="still an expression"):
        salloc_argv({"nodes": "${{ variables.N }}"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, "90"),  # a bare number is minutes, Slurm's own rule for --time=90
        (90.0, "90"),
        (1.5, "0:01:30"),
        ("90", "90"),
        ("1:30:00", "1:30:00"),
        ("2-12", "2-12"),
        ("UNLIMITED", "UNLIMITED"),
        ("90s", "0:01:30"),
        ("5m", "0:05:00"),
        ("1h", "1:00:00"),
        ("1h30m", "1:30:00"),
    ],
)
def test_one_time_rule_for_salloc_srun_sbatch_and_the_dispatch_executor(value: Any, expected: str) -> None:
    from sflow.dispatch.slurm import argv as dispatch_argv
    from sflow.schema.durations import slurm_time as shared_rule

    assert shared_rule(value) == expected
    assert slurm_time(value) == expected  # salloc, #SBATCH lines and srun steps
    assert dispatch_argv.resource_args({"time": value}) == [f"--time={expected}"]


def test_backend_time_with_a_unit_is_converted_in_salloc_argv() -> None:
    config = SlurmBackendModel(name="slurm", time="45m", nodes=1)
    assert salloc_request(config)[-4:] == ["-t", "0:45:00", "-N", "1"]
    with pytest.raises(ValueError, match="invalid Slurm time"):
        SlurmBackendModel(name="slurm", time="soon")


def test_salloc_is_tagged_unless_the_user_comments_the_job() -> None:
    assert salloc_argv({"nodes": 1}, "sflow:run-1:ab")[:2] == ["salloc", "--comment=sflow:run-1:ab"]
    own = {"nodes": 1, "extra_args": ["--comment=mine"]}
    assert not [w for w in salloc_argv(own, "sflow:run-1:ab") if "sflow:run-1" in w]  # theirs is kept
