"""`srun` argv and environment building, and the parsing of what srun/slurmstepd print (no cluster)."""

from __future__ import annotations

import pytest
from srun_helpers import allocation, context

from sflow.launchers.base import get_launcher
from sflow.launchers.srun import (
    JOB_PLACEHOLDER,
    STEP_FILE_ENV,
    STEP_RECORDER,
    parse_step_file,
    srun_argv,
    srun_env,
)


def test_cpu_task_is_an_overlapping_step_on_its_nodes() -> None:
    argv = srun_argv(context(nodes=(0, 1)))
    assert argv == [
        "srun",
        "--jobid",
        "42",
        "--job-name",
        "train",
        "--nodelist",
        "node1,node2",
        "-N",
        "2",
        "--ntasks",
        "2",
        "--overlap",
        "--export=ALL",
        "--kill-on-bad-exit=1",
        "bash",
        "-c",
        STEP_RECORDER,
        "/runs/r1/train/train.sh",
    ]


def test_gpu_task_asks_slurm_for_gres_and_does_not_overlap() -> None:
    ctx = context(gpus=1, env={"CUDA_VISIBLE_DEVICES": "1", "A": "b"})
    argv = srun_argv(ctx)
    assert "--gres=gpu:1" in argv and "--exact" in argv
    assert "--overlap" not in argv
    env = srun_env(ctx, environ={"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"})
    assert "CUDA_VISIBLE_DEVICES" not in env  # Slurm binds the GPUs, we do not
    assert env["A"] == "b"


def test_operator_fields_map_to_srun_flags() -> None:
    argv = srun_argv(
        context(
            nodes=(0, 1),
            ntasks_per_node=4,
            cpus_per_task=2,
            mem="8G",
            time="00:05:00",
            label=True,
            unbuffered=True,
            mpi="pmix",
            container_image="nvcr.io/x:1",
            container_mounts=["/a:/a", "/b:/b"],
            container_workdir="/w",
            container_writable=True,
            container_remap_root=True,
            extra_args=["--cpu-bind=none", "--cpu-bind cores"],
        )
    )
    text = " ".join(argv)
    assert "--ntasks 8 --ntasks-per-node 4 --cpus-per-task 2 --mem 8G --time 00:05:00" in text
    for flag in (
        "--label",
        "--unbuffered",
        "--mpi=pmix",
        "--container-image=nvcr.io/x:1",
        "--container-mounts=/a:/a,/b:/b",
        "--container-workdir=/w",
        "--container-writable",
        "--container-remap-root",
    ):
        assert flag in argv
    # extra_args in order, repeated flags kept, split like shell words, before the command
    i = argv.index("--cpu-bind=none")
    assert argv[i : i + 4] == ["--cpu-bind=none", "--cpu-bind", "cores", "--kill-on-bad-exit=1"]


def test_the_other_slurm_fields_of_the_operator_reach_srun() -> None:
    argv = srun_argv(
        context(
            partition="p1",
            account="acct",
            qos="high",
            reservation="resv",
            constraint="h100",
            chdir="/work",
            mem_per_cpu="2G",
            wait=30,
            job_id="77",
            nodelist=["n9", "n10"],
            kill_on_bad_exit=False,
        )
    )
    text = " ".join(argv)
    for flags in (
        "--partition p1",
        "--account acct",
        "--qos high",
        "--reservation resv",
        "--constraint h100",
        "--chdir /work",
        "--mem-per-cpu 2G",
        "--wait 30",
        "--jobid 77",
        "--nodelist n9,n10 -N 2 --ntasks 2",  # the operator's nodes, not placement's
    ):
        assert flags in text
    assert not [a for a in argv if a.startswith("--kill-on-bad-exit")]


def test_a_container_step_is_writable_without_home_unless_told_otherwise() -> None:
    named = srun_argv(context(container_name="dynamo"))
    assert "--container-name=dynamo" in named
    assert "--container-writable" in named and "--no-container-mount-home" in named
    by_flag = srun_argv(context(extra_args=["--container-image=x:1"], container_mount_home=True))
    assert "--container-mount-home" in by_flag and "--container-writable" in by_flag
    assert "--container-writable" not in srun_argv(context(container_image="x:1", container_writable=False))
    plain = srun_argv(context(container_writable=True))
    assert not [a for a in plain if a.startswith(("--container", "--no-container"))]


def test_a_container_sees_the_shared_paths_at_the_same_place_one_mount_per_destination() -> None:
    argv = srun_argv(
        context(
            container_image="x:1",
            container_mounts=["/data:/data:ro"],
            extra_args=["--container-mounts=/a:/a", "--mem 8G"],
            shared_paths=("/data", "/ws"),
        )
    )
    assert "--container-mounts=/data:/data:ro,/a:/a,/ws:/ws:rw" in argv  # the operator's /data wins
    assert [a for a in argv if a.startswith("--container-mounts")] == [
        "--container-mounts=/data:/data:ro,/a:/a,/ws:/ws:rw"
    ]
    assert argv[argv.index("--mem") + 1] == "8G"
    # a container started from extra_args alone gets only the mounts it names
    by_flag = srun_argv(context(extra_args=["--container-image=x:1"], shared_paths=("/ws",)))
    assert not [a for a in by_flag if a.startswith("--container-mounts")]


def test_an_image_and_a_named_container_together_are_refused() -> None:
    with pytest.raises(ValueError, match="container_image"):
        context(container_image="x:1", container_name="x")


def test_explicit_ntasks_and_gpu_flags_win() -> None:
    argv = srun_argv(context(gpus=2, ntasks=3, gres="gpu:a100:2"))
    assert argv[argv.index("--ntasks") + 1] == "3"
    assert "--gres=gpu:a100:2" in argv and "--gres=gpu:2" not in argv
    assert "--exact" in argv


def test_operator_sharing_choice_wins() -> None:
    assert "--exclusive" in srun_argv(context(exclusive=True))
    assert "--overlap" not in srun_argv(context(exclusive=True))
    assert "--overlap" in srun_argv(context(gpus=1, overlap=True))
    assert "--exact" in srun_argv(context(overlap=False))


def test_environment_never_rides_in_argv() -> None:
    ctx = context(env={"SECRET_TOKEN": "s3cr3t-value", "SFLOW_TASK_NAME": "train"})
    argv = srun_argv(ctx)
    assert not any("s3cr3t" in a for a in argv)
    assert srun_env(ctx, environ={})["SECRET_TOKEN"] == "s3cr3t-value"


def test_restricted_export_still_passes_task_variables_by_name() -> None:
    ctx = context(export="NONE", env={"A": "1", "B": "2"})
    export = next(a for a in srun_argv(ctx) if a.startswith("--export="))
    assert export == f"--export=A,B,{STEP_FILE_ENV}"
    assert "--export=ALL,X=1" in srun_argv(context(export="ALL,X=1"))


def test_srun_input_variables_of_an_enclosing_job_are_dropped() -> None:
    environ = {"SLURM_NTASKS": "8", "SLURM_GPUS_PER_NODE": "2", "SLURM_JOB_ID": "7", "HOME": "/root"}
    env = srun_env(context(), environ=environ)
    assert "SLURM_NTASKS" not in env and "SLURM_GPUS_PER_NODE" not in env
    assert env["SLURM_JOB_ID"] == "7" and env["HOME"] == "/root"
    assert env[STEP_FILE_ENV] == "/runs/r1/train/train.attempt-1.log.step"


def test_planned_allocation_shows_a_placeholder_job() -> None:
    argv = get_launcher("srun").build(context(alloc=allocation(job_id=None))).argv
    assert argv[argv.index("--jobid") + 1] == JOB_PLACEHOLDER


def test_build_is_pure_and_info_names_the_job() -> None:
    ctx = context()
    spec_a, spec_b = get_launcher("srun").build(ctx), get_launcher("srun").build(ctx)
    assert spec_a.argv == spec_b.argv and spec_a.env == spec_b.env
    assert spec_a.info["slurm_job_id"] == "42"


def test_parse_step_file() -> None:
    assert parse_step_file("123.4\n") == "123.4"
    assert parse_step_file("") is None
    assert parse_step_file("123.") is None
