"""Hardware monitors on the local backend: real samples of a busy task, no sampler left behind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from sflow.workflow.monitors import monitor_dir

BUSY = """
version: "0.1"
workflow:
  name: watched
  monitor:
    interval: 200
    scopes: {cpu: {}, memory: {}}
  tasks:
    - name: warm
      script: ["sleep 0.5"]
    - name: busy
      depends_on: [warm]
      script:
        - end=$((SECONDS+2)); while [ "$SECONDS" -lt "$end" ]; do :; done
        - echo busy done
      monitor:
        interval: 200
        scopes: {cpu: {}}
"""


def rows(path: Path) -> tuple[list[str], list[list[str]]]:
    header, *body = list(csv.reader(path.open()))
    return header, body


def samplers_of(run_dir: Path) -> list[int]:
    """Live processes whose command line names this run's monitor folder."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sflow.monitor.sampler" in cmdline and str(run_dir).encode() in cmdline:
            found.append(int(pid))
    return found


def test_workflow_and_task_monitors_sample_for_as_long_as_their_owner(sflow):
    done = sflow("run", "-f", str(sflow.write("wf.yaml", BUSY)))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    summary = done.summary()["tasks"]["busy"]

    header, task_rows = rows(monitor_dir(run_dir, "busy") / "localhost.csv")
    assert header == ["time", "cpu.util_percent", "cpu.load1"]
    times = [float(r[0]) for r in task_rows]
    assert len(task_rows) >= 3  # 2 s at 200 ms, even on a loaded machine
    assert summary["start"] - 1 <= times[0] and times[-1] <= summary["end"] + 1
    assert all(0.0 <= float(r[1]) <= 100.0 for r in task_rows if r[1])

    header, run_rows = rows(monitor_dir(run_dir) / "localhost.csv")
    assert header[:3] == ["time", "cpu.util_percent", "cpu.load1"] and "memory.used_mib" in header
    assert float(run_rows[0][0]) < times[0] and len(run_rows) > len(task_rows)
    described = json.loads((monitor_dir(run_dir, "busy") / "monitor.json").read_text())
    assert described["targets"] == [{"backend": "local", "nodes": ["localhost"], "gpus": {"localhost": []}}]
    assert samplers_of(run_dir) == []


def test_enable_task_monitor_adds_a_default_monitor_to_named_tasks(sflow):
    wf = sflow.write(
        "plain.yaml",
        """
        version: "0.1"
        workflow:
          name: plain
          tasks:
            - {name: a, script: ["sleep 0.3"]}
            - {name: b, script: ["true"]}
        """,
    )
    done = sflow("run", "-f", str(wf), "--enable-task-monitor", "a", "--enable-workflow-monitor")
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    header, _ = rows(monitor_dir(run_dir, "a") / "localhost.csv")
    assert {"cpu.util_percent", "memory.used_mib", "disk.read_bytes_per_s", "network.rx_bytes_per_s"} <= set(
        header
    )
    assert (monitor_dir(run_dir) / "localhost.csv").exists()
    assert not monitor_dir(run_dir, "b").exists()
    refused = sflow("run", "-f", str(wf), "--enable-task-monitor", "a,zz")
    assert refused.code == 2 and "no task named 'zz'" in refused.err


def test_a_failing_task_leaves_no_sampler(sflow):
    wf = sflow.write(
        "fails.yaml",
        """
        version: "0.1"
        workflow:
          name: fails
          monitor: {interval: 100}
          tasks:
            - name: bad
              script: ["sleep 0.5", "exit 3"]
              monitor: {interval: 100}
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 1
    run_dir = done.run_dir()
    assert len(rows(monitor_dir(run_dir, "bad") / "localhost.csv")[1]) >= 1
    assert samplers_of(run_dir) == []


def test_a_run_stopped_by_sigterm_leaves_no_sampler(sflow):
    wf = sflow.write(
        "long.yaml",
        """
        version: "0.1"
        workflow:
          name: long
          monitor: {interval: 100}
          tasks:
            - name: sleeper
              script: ["sleep 600"]
              monitor: {interval: 100}
        """,
    )
    argv = sflow.argv("run", "-f", str(wf), "--output-dir", str(sflow.output_dir))
    proc = subprocess.Popen(
        argv, cwd=sflow.tmp, env=sflow.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        csvs: list[Path] = []
        while len(csvs) < 2:
            assert time.monotonic() < deadline, "the monitors wrote no samples"
            time.sleep(0.05)
            csvs = [p for p in sflow.output_dir.glob("*/monitor/**/localhost.csv") if p.stat().st_size > 60]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    run_dir = csvs[0].parents[1] if csvs[0].parent.name == "workflow" else csvs[0].parents[2]
    assert samplers_of(run_dir) == []


def test_a_task_that_ends_at_once_still_has_its_samples(sflow):
    """The sampler needs a moment to start; the task's end waits for it, so its rows are there."""
    wf = sflow.write(
        "quick.yaml",
        """
        version: "0.1"
        workflow:
          name: quick
          tasks:
            - name: quick
              script: ["true"]
              monitor: {scopes: {memory: {}}}
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    header, body = rows(monitor_dir(done.run_dir(), "quick") / "localhost.csv")
    assert header == ["time", "memory.used_mib", "memory.total_mib", "memory.used_percent"]
    assert len(body) >= 1 and float(body[-1][2]) > 0
