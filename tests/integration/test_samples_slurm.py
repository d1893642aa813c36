"""The Slurm sample that ships with sflow (`sflow sample slurm/multi_node_serve`), run for real on
the test cluster: a 2-node server with 2 GPUs on each node, and a client on a third node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from sflow.cli.sample import SAMPLES

PREFIX = f"sflow-it-sample-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")


def test_multi_node_serve_runs_on_the_cluster(slurm_cluster: Any, free_port: Any) -> None:
    tmp = Path(slurm_cluster.work_dir) / f"sample-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    done = subprocess.run(
        [
            sys.executable, "-m", "sflow", "run", str(SAMPLES / "slurm" / "multi_node_serve.yaml"), "--no-tui",
            "-s", f"PARTITION={slurm_cluster.partition}", "-s", f"PORT={free_port()}", "-s", "REQUESTS=5",
            "-e", f"--job-name={PREFIX}{uuid.uuid4().hex[:6]}",
        ],
        cwd=tmp, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (path,) = (tmp / "sflow_output").glob("*/summary.json")
    summary = json.loads(path.read_text())
    server, benchmark = summary["tasks"]["server"], summary["tasks"]["benchmark"]
    assert server["state"] == benchmark["state"] == "succeeded"
    assert len(server["nodes"]) == 2 and benchmark["nodes"][0] not in server["nodes"]
    ranks = sorted(line for line in Path(server["log"]).read_text().splitlines() if line.startswith("rank "))
    assert [r.split(" gpus=")[1] for r in ranks] == ["0,1", "0,1"]  # 2 GPUs on each of its nodes
    assert json.loads((path.parent / "benchmark" / "outputs.json").read_text()) == {"requests_ok": 5}
