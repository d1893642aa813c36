"""The docker backend and `docker_run` operator on a real Docker daemon (scripts/dev-docker).

Each run's containers carry `sflow.run=<run id>`; every test ends by asking the daemon for that
label and expects nothing, whatever way the run ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from docker_lab import DockerLab

NO_NET = "--network=none"  # the lab's daemon has no bridge network


class Run:
    """`python -m sflow run` in a temporary folder, against the lab's daemon."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.out = tmp / "out"

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sflow", "run", "--output-dir", str(self.out), "--no-tui", *args]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), cwd=self.tmp, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run_dir(self) -> Path:
        runs = sorted(p for p in self.out.iterdir() if p.is_dir())
        assert runs, f"no run directory under {self.out}"
        return runs[-1]

    def summary(self) -> dict:
        return json.loads((self.run_dir() / "summary.json").read_text())

    def log(self, task: str) -> str:
        return (self.run_dir() / task / f"{task}.log").read_text()


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def left_over(docker_lab: DockerLab, run: Run) -> list[str]:
    return docker_lab.containers(f"sflow.run={run.run_dir().name}")


def test_nv_sflow_hello_world_sample(docker_lab: DockerLab, run: Run, nv_samples: Path) -> None:
    """The sample as shipped; its ubuntu:22.04 is the lab's image under that name (no registry)."""
    docker_lab.docker("tag", docker_lab.image, "ubuntu:22.04")
    done = run("-f", str(nv_samples / "self_contained/docker/hello_world.yaml"), "-e", NO_NET)
    assert done.returncode == 0, done.stderr
    assert run.log("hello") == "Hello from Docker\n"
    assert run.summary()["tasks"]["hello"]["state"] == "succeeded"
    assert left_over(docker_lab, run) == []


def test_paths_env_and_exit_code_are_the_containers(docker_lab: DockerLab, run: Run) -> None:
    data = run.tmp / "data"
    data.mkdir()
    (data / "input.txt").write_text("from the host\n")
    wf = run.write(
        "paths.yaml",
        f"""
        version: "0.1"
        variables:
          GREETING: {{value: "hi there"}}
        artifacts:
          - {{name: DATA, uri: "fs://{data}"}}
          - {{name: HELPER, uri: "file://helper.sh", content: "echo helper ran"}}
        backends:
          - {{name: box, type: docker, default: true, image: "{docker_lab.image}", extra_args: ["{NO_NET}"]}}
        workflow:
          name: paths
          tasks:
            - name: inside
              script:
                - cat ${{DATA}}/input.txt
                - bash ${{HELPER}}
                - echo "$GREETING" "$NVIDIA_VISIBLE_DEVICES"
                - test -f /.dockerenv && echo in-a-container
                - echo written > ${{SFLOW_TASK_OUTPUT_DIR}}/mark.txt
                - exit 7
        """,
    )
    done = run("-f", str(wf))
    assert done.returncode == 1
    assert run.log("inside") == "from the host\nhelper ran\nhi there void\nin-a-container\n"
    assert (run.run_dir() / "inside" / "mark.txt").read_text() == "written\n"
    task = run.summary()["tasks"]["inside"]
    assert task["exit_code"] == 7 and "exit code 7" in done.stderr
    assert left_over(docker_lab, run) == []


def test_missing_image_is_docker_s_reason(docker_lab: DockerLab, run: Run) -> None:
    wf = run.write(
        "missing.yaml",
        f"""
        version: "0.1"
        backends:
          - {{name: box, type: docker, default: true, image: "sflow-test:no-such-tag", extra_args: ["{NO_NET}"]}}
        workflow:
          name: missing
          tasks:
            - {{name: a, script: ["true"]}}
        """,
    )
    done = run("-f", str(wf))
    assert done.returncode == 1
    assert "exit code 125 (docker: " in done.stderr, done.stderr
    assert left_over(docker_lab, run) == []


def _long_runner(run: Run, image: str, extra: str = "") -> Path:
    """A task that says it started and then waits (log streaming), next to one that fails on request."""
    return run.write(
        "long.yaml",
        f"""
        version: "0.1"
        backends:
          - {{name: box, type: docker, default: true, image: "{image}", extra_args: ["{NO_NET}"]}}
        workflow:
          name: long
          tasks:
            - name: waiter
              {extra}
              script:
                - echo started
                - sleep 300
        """,
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_container_and_leaves_none(
    docker_lab: DockerLab, run: Run, sig: signal.Signals, code: int
) -> None:
    proc = run.start("-f", str(_long_runner(run, docker_lab.image)), "--grace", "1")
    try:
        log = lambda: run.out.exists() and any(run.out.glob("*/waiter/waiter.log")) and run.log("waiter")  # noqa: E731
        wait_for(lambda: log() == "started\n", "the container's first line in the task's log (streamed)")
        assert docker_lab.containers(f"sflow.run={run.run_dir().name}") != []
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert left_over(docker_lab, run) == []


def test_timeout_and_a_failing_sibling_leave_no_container(docker_lab: DockerLab, run: Run) -> None:
    wf = run.write(
        "fail.yaml",
        f"""
        version: "0.1"
        backends:
          - {{name: box, type: docker, default: true, image: "{docker_lab.image}", extra_args: ["{NO_NET}"]}}
        workflow:
          name: fail
          tasks:
            - name: slow
              timeout: 2
              script: ["sleep 300"]
            - name: sibling
              script: ["sleep 300"]
        """,
    )
    done = run("-f", str(wf), "--grace", "1")
    assert done.returncode == 1
    tasks = run.summary()["tasks"]
    assert "timed out" in tasks["slow"]["reason"], tasks
    assert tasks["sibling"]["state"] != "succeeded"
    assert left_over(docker_lab, run) == []


def test_killed_client_container_is_removed_at_the_end(docker_lab: DockerLab, run: Run) -> None:
    """A `docker run` client that dies leaves its container running: the run's end removes it."""
    wf = run.write(
        "orphan.yaml",
        f"""
        version: "0.1"
        backends:
          - {{name: box, type: docker, default: true, image: "{docker_lab.image}", extra_args: ["{NO_NET}"]}}
        workflow:
          name: orphan
          tasks:
            - name: victim
              script: ["echo started", "sleep 300"]
        """,
    )
    proc = run.start("-f", str(wf), "--grace", "1")
    try:
        wait_for(
            lambda: any(run.out.glob("*/victim/victim.log")) and run.log("victim") == "started\n", "start"
        )
        client = _docker_client_of(proc.pid)
        os.kill(client, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert left_over(docker_lab, run) == []


def _docker_client_of(parent: int) -> int:
    """The pid of the `docker run` process that `parent` started."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat[1]) == parent and cmd[0].endswith(b"docker") and b"run" in cmd:
                return int(entry.name)
    raise AssertionError("no docker run client found")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_reaches_a_server_in_a_container(docker_lab: DockerLab, run: Run) -> None:
    port = _free_port()
    wf = run.write(
        "service.yaml",
        f"""
        version: "0.1"
        backends:
          - {{name: box, type: docker, default: true, image: "{docker_lab.image}", extra_args: ["--network=host"]}}
        workflow:
          name: service
          tasks:
            - name: server
              script: ["exec python3 -m http.server {port} --bind 127.0.0.1"]
              probes:
                readiness:
                  http_get: {{url: "http://127.0.0.1:{port}/"}}
                  timeout: 60
                  interval: 0.2
            - name: client
              depends_on: [server]
              script:
                - python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/').status)"
        """,
    )
    done = run("-f", str(wf), "--grace", "1")
    assert done.returncode == 0, done.stderr
    assert run.log("client") == "200\n"
    assert left_over(docker_lab, run) == []


def test_release_removes_every_container_of_the_run(docker_lab: DockerLab) -> None:
    """Whatever a lost race left (a container created after its client died), the run's end removes."""
    import asyncio

    from sflow.backends.base import create_backend
    from sflow.schema.models import DockerBackend

    run_id = f"release-{os.getpid()}"
    for name in ("a", "b"):
        docker_lab.docker(
            "run", "-d", NO_NET, "--name", f"{run_id}-{name}", "--label", f"sflow.run={run_id}",
            docker_lab.image, "sleep", "300",
        )  # fmt: skip
    other = docker_lab.docker(
        "create", NO_NET, "--label", "sflow.run=another-run", docker_lab.image, "true"
    ).strip()
    backend = create_backend("docker", "box", DockerBackend(name="box", image=docker_lab.image))
    backend.run_id = run_id

    async def allocate_and_release() -> None:
        await backend.allocate()
        await backend.release()

    try:
        asyncio.run(allocate_and_release())
        assert docker_lab.containers(f"sflow.run={run_id}") == []
        assert docker_lab.containers("sflow.run=another-run") != []  # only this run's
    finally:
        docker_lab.docker("rm", "-f", other)


def test_a_two_host_pool_runs_one_container_per_node(docker_lab: DockerLab, run: Run, tmp_path: Path) -> None:
    """Two "hosts" (this daemon by address, and again through a docker context): a 2-node task runs
    once on each, its script handed over as text (nothing is mounted on a host daemon)."""
    config = tmp_path / "docker-config"
    subprocess.run(
        [
            "docker",
            "--config",
            str(config),
            "context",
            "create",
            "second",
            "--docker",
            f"host={docker_lab.host}",
        ],
        check=True,
        capture_output=True,
    )
    wf = run.write(
        "pool.yaml",
        f"""
        version: "0.1"
        backends:
          - name: pool
            type: docker
            default: true
            image: "{docker_lab.image}"
            extra_args: ["{NO_NET}"]
            hosts:
              - {{name: first, docker_host: "{docker_lab.host}", ip_address: 127.0.0.1}}
              - {{name: second, context: second, ip_address: 127.0.0.1}}
        workflow:
          name: pool
          tasks:
            - name: both
              resources: {{nodes: {{count: 2}}}}
              script: ['echo "on $SFLOW_TASK_ASSIGNED_NODE_NAMES"', "test -f /.dockerenv"]
        """,
    )
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    done = subprocess.run(
        run.argv("-f", str(wf)), cwd=run.tmp, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    task_dir = run.run_dir() / "both"
    assert (task_dir / "both.log").read_text() == "on first,second\n"
    assert (task_dir / "both.log.n1").read_text() == "on first,second\n"
    assert left_over(docker_lab, run) == []
