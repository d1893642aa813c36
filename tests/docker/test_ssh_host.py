"""A two-host docker pool where one host is `ssh://root@localhost:<port>` (a private sshd in front
of the lab's daemon) and the other the lab's local socket: tasks land on both, and whatever way
the run ends, neither daemon keeps a container of it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from docker_lab import DockerLab
from ssh_host import SshDockerHost
from test_docker_run import NO_NET, Run, wait_for


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def _pool(run: Run, lab: DockerLab, ssh: SshDockerHost, script: str) -> Path:
    tasks = "".join(
        f"""
            - name: on_{host}
              resources: {{nodes: {{indices: [{i}]}}}}
              script:
                - echo "on_{host} in $(hostname)"
                - {script}
        """
        for i, host in enumerate(("remote", "local"))
    )
    return run.write(
        "pool.yaml",
        f"""
        version: "0.1"
        backends:
          - name: pool
            type: docker
            default: true
            image: "{lab.image}"
            extra_args: ["{NO_NET}"]
            hosts:
              - {{name: remote, docker_host: "{ssh.url}", ip_address: 127.0.0.1}}
              - {{name: local, docker_host: "{lab.host}", ip_address: 127.0.0.1}}
        workflow:
          name: pool
          tasks:{tasks}
        """,
    )


def _left_over(run: Run, daemon: str) -> list[str]:
    """The run's containers (any state) as `daemon` lists them (through ssh for the remote one)."""
    label = f"label=sflow.run={run.run_dir().name}"
    out = subprocess.run(
        ["docker", "-H", daemon, "ps", "--all", "--filter", label, "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.split()


def _both_started(run: Run) -> bool:
    logs = [list(run.out.glob(f"*/on_{h}/on_{h}.log")) for h in ("remote", "local")]
    return all(found and found[0].read_text() for found in logs)


def test_tasks_land_on_an_ssh_host_and_a_local_one(
    docker_lab: DockerLab, ssh_docker_host: SshDockerHost, run: Run
) -> None:
    done = run("-f", str(_pool(run, docker_lab, ssh_docker_host, "exit 0")))
    assert done.returncode == 0, done.stderr
    tasks = run.summary()["tasks"]
    for host, daemon in (("remote", ssh_docker_host.url), ("local", docker_lab.host)):
        assert run.log(f"on_{host}").startswith(f"on_{host} in "), run.log(f"on_{host}")
        assert tasks[f"on_{host}"]["state"] == "succeeded"
        assert _left_over(run, daemon) == []
    assert ssh_docker_host.sessions() > 0  # the remote task's client really went through sshd


def test_ctrl_c_leaves_no_container_on_either_host(
    docker_lab: DockerLab, ssh_docker_host: SshDockerHost, run: Run
) -> None:
    proc = run.start("-f", str(_pool(run, docker_lab, ssh_docker_host, "sleep 300")), "--grace", "1")
    try:
        wait_for(lambda: _both_started(run), "both containers' first lines")
        assert _left_over(run, ssh_docker_host.url) != [] and _left_over(run, docker_lab.host) != []
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert _left_over(run, ssh_docker_host.url) == []
    assert _left_over(run, docker_lab.host) == []
