"""GPUs reserved across two concurrent sflow runs on one Docker daemon (scripts/dev-docker).

There is no GPU here: a `docker` on PATH records each command line and drops `--gpus` before
handing it to the real client, so the containers run and the GPU flags are checked as written.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from docker_lab import DockerLab
from test_docker_run import NO_NET, Run, left_over, wait_for


@pytest.fixture
def docker_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file every `docker` command line of these runs is appended to (one per line)."""
    record = tmp_path / "docker-argv.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "docker"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'printf "%s\\n" "$*" >> {record}\n'
        "args=()\n"
        'for a in "$@"; do case "$a" in --gpus=*) ;; *) args+=("$a") ;; esac; done\n'
        f'exec {shutil.which("docker")} "${{args[@]}}"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SFLOW_GPU_LOCK_DIR", str(tmp_path / "gpu-locks"))
    return record


def _workflow(run: Run, image: str, gpus: int, wait: str = "", script: str = "echo started") -> Path:
    control = run.tmp.parent / "control"
    control.mkdir(exist_ok=True)
    return run.write(
        "gpus.yaml",
        f"""
        version: "0.1"
        artifacts:
          - {{name: CONTROL, uri: "fs://{control}"}}
        backends:
          - name: box
            type: docker
            default: true
            image: "{image}"
            gpus_per_node: 2
            extra_args: ["{NO_NET}"]
            {wait}
        workflow:
          name: gpus
          tasks:
            - name: holder
              resources: {{gpus: {{count: {gpus}}}}}
              script:
                - {script}
        """,
    )


def _runs_of(record: Path, run: Run) -> list[str]:
    label = f"sflow.run={run.run_dir().name}"
    return [line for line in record.read_text().splitlines() if line.startswith("run ") and label in line]


@pytest.mark.parametrize("wait_from", ["yaml", "env"])
def test_a_second_run_fails_fast_or_waits_for_gpus_a_live_run_holds(
    docker_lab: DockerLab, tmp_path: Path, docker_argv: Path, wait_from: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = (Run(tmp_path / n) for n in ("first", "second", "third"))
    for r in (first, second, third):
        r.tmp.mkdir()
    release = tmp_path / "control" / "release"
    hold = f"echo started; while [ ! -e {release} ]; do sleep 0.1; done"
    proc = first.start("-f", str(_workflow(first, docker_lab.image, 2, script=f'"{hold}"')))
    waiting = None
    try:
        log = lambda r: any(r.out.glob("*/holder/holder.log")) and r.log("holder")  # noqa: E731
        wait_for(lambda: first.out.exists() and log(first) == "started\n", "the first run's container")
        holder = f"sflow run {first.run_dir().name} (pid {proc.pid}, task 'holder')"

        # without wait_for_gpus: fails at once, naming the run that holds the GPU; no container
        done = second("-f", str(_workflow(second, docker_lab.image, 1)))
        assert done.returncode == 1, done.stderr
        assert f"GPU 0 of docker host '{docker_lab.host}' is held by {holder}" in done.stderr
        assert _runs_of(docker_argv, second) == []

        # with wait_for_gpus (or --wait-for-gpus, here as its SFLOW_WAIT_FOR_GPUS): waits, then runs
        # on the GPU once the first run lets it go
        if wait_from == "env":
            monkeypatch.setenv("SFLOW_WAIT_FOR_GPUS", "120")
        wait = "wait_for_gpus: 120" if wait_from == "yaml" else ""
        waiting = third.start("-f", str(_workflow(third, docker_lab.image, 1, wait=wait)))
        wait_for(lambda: third.out.exists() and holder in (log(third) or ""), "the third run to wait")
        assert _runs_of(docker_argv, third) == []
        release.touch()
        _, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert proc.wait(timeout=60) == 0
    finally:
        for p in (proc, waiting):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=60)
    assert ['--gpus="device=0,1"' in line for line in _runs_of(docker_argv, first)] == [True]
    assert ['--gpus="device=0"' in line for line in _runs_of(docker_argv, third)] == [True]
    assert third.log("holder").endswith("started\n")
    for r in (first, second, third):
        assert left_over(docker_lab, r) == []
