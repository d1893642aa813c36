"""A service on one node of a Slurm allocation and its client on another, through the `sflow` command:
readiness by tcp_port, the client reaching the server by the address expressions give, and nothing of
ours left in the queue afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

PREFIX = f"sflow-it-svc-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
WORKFLOW = """\
version: "0.1"
variables:
  PORT: {value: 8000, type: integer}
backends:
  - name: cluster
    type: slurm
    default: true
    partition: debug
    nodes: 2
    time: "00:05:00"
    job_name: JOB_NAME
workflow:
  name: svc
  variables:
    SERVER_URL: {value: "http://${{ backends.cluster.nodes[0].ip_address }}:${{ variables.PORT }}/"}
  tasks:
    - name: server
      resources: {nodes: {indices: [0]}}
      script:
        - echo "server on $(hostname)"
        - python3 -m http.server ${{ variables.PORT }} --bind 0.0.0.0
      probes:
        readiness:
          - tcp_port: {port: "${{ variables.PORT }}"}
            interval: 0.2
            timeout: 60
    - name: client
      depends_on: [server]
      resources: {nodes: {indices: [1]}}
      script:
        - echo "client on $(hostname), server on ${{ backends.cluster.nodes[0].name }}"
        - python3 -c "import urllib.request as u; print('status', u.urlopen('${SERVER_URL}').status)"
"""


@pytest.fixture
def tmp(slurm_cluster: Any) -> Path:
    path = Path(slurm_cluster.work_dir) / f"svc-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def our_steps(job_id: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "--noheader", "--steps", "--format=%i"], capture_output=True, text=True, timeout=60
    ).stdout
    return [step for step in out.split() if step.split(".")[0] == job_id]


def test_server_on_node0_client_on_node1(slurm_cluster: Any, tmp: Path, squeue_ours: Any, free_port) -> None:
    job_name = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    wf = tmp / "svc.yaml"
    wf.write_text(WORKFLOW.replace("JOB_NAME", job_name))
    port = free_port("0.0.0.0")
    proc = subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", str(wf), "--set", f"PORT={port}", "--output-dir", "out"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (summary_path,) = (tmp / "out").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    job_id = summary["backends"]["cluster"]["job_id"]
    first, second = summary["backends"]["cluster"]["nodes"]  # node1, node2 unless others are busy
    server, client = summary["tasks"]["server"], summary["tasks"]["client"]
    assert server["nodes"] == [first] and client["nodes"] == [second] and first != second
    assert server["slurm_step_id"].startswith(f"{job_id}.") and client["slurm_step_id"].startswith(
        f"{job_id}."
    )
    assert server["start"] < server["ready"] <= client["start"] < client["end"] <= server["end"]
    client_log = Path(client["log"]).read_text()
    assert client_log == f"client on {second}, server on {first}\nstatus 200\n"  # hostname: really there
    server_log = Path(server["log"]).read_text()
    assert server_log.startswith(f"server on {first}\nServing HTTP on 0.0.0.0 port {port}")
    assert '"GET / HTTP/1.1" 200' in server_log
    assert squeue_ours(job_name) == []  # the allocation is gone...
    assert our_steps(job_id) == []  # ...and so is every step of it
    with pytest.raises(OSError):  # the server did not outlive its step
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


NEVER_READY = """\
version: "0.1"
backends:
  - {name: cluster, type: slurm, default: true, partition: debug, nodes: 2, time: "00:05:00", job_name: JOB_NAME}
workflow:
  name: never
  tasks:
    - name: server
      resources: {nodes: {indices: [0]}}
      script: ["echo starting on $(hostname)", "sleep 120"]
      probes:
        readiness:
          - tcp_port: {port: PORT}
            interval: 0.2
            timeout: 2
    - name: client
      depends_on: [server]
      resources: {nodes: {indices: [-1]}}
      script: ["echo never"]
"""


def test_service_never_ready_on_slurm_fails_and_leaves_nothing(
    slurm_cluster: Any, tmp: Path, squeue_ours: Any, free_port
) -> None:
    job_name = f"{PREFIX}never-{uuid.uuid4().hex[:6]}"
    port = free_port("0.0.0.0")
    wf = tmp / "never.yaml"
    wf.write_text(NEVER_READY.replace("JOB_NAME", job_name).replace("PORT", str(port)))
    proc = subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", str(wf), "--output-dir", "out", "--grace", "2"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"readiness probe tcp_port 127.0.0.1:{port} did not pass within 2s" in proc.stderr
    (summary_path,) = (tmp / "out").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["tasks"]["client"]["state"] == "cancelled"
    first = summary["backends"]["cluster"]["nodes"][0]
    assert Path(summary["tasks"]["server"]["log"]).read_text().startswith(f"starting on {first}\n")
    assert squeue_ours(job_name) == []
    assert our_steps(summary["backends"]["cluster"]["job_id"]) == []
