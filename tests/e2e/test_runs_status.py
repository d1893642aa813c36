"""`sflow runs`, `sflow status` and `sflow clean` on real runs: live, finished, killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

GATED = """
version: "0.1"
workflow:
  name: gated
  tasks:
    - name: first
      script: ["echo first"]
    - name: wait
      depends_on: [first]
      script: ["echo $$ > wait.pid", "while [ ! -e go ]; do sleep 0.05; done", "echo went"]
    - name: last
      depends_on: [wait]
      script: ["echo last"]
"""


def start(sflow, wf: Path) -> subprocess.Popen:
    return subprocess.Popen(
        sflow.argv("run", "-q", "-f", str(wf), "--output-dir", str(sflow.output_dir)),
        cwd=sflow.tmp,
        env=sflow.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(sflow, proc: subprocess.Popen) -> int:
    """The pid the `wait` task wrote, once its run has also recorded it as running."""
    path = sflow.tmp / "wait.pid"
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text().strip() and sflow.recorded_running("wait")):
        assert time.monotonic() < deadline and proc.poll() is None, "the task never started"
        time.sleep(0.05)
    return int(path.read_text())


def test_status_of_a_live_run_from_another_process_then_of_the_finished_run(sflow):
    wf = sflow.write("wf.yaml", GATED)
    proc = start(sflow, wf)
    try:
        wait_for(sflow, proc)
        live = sflow("status", "--output-dir", str(sflow.output_dir))
        assert live.code == 0, live.err
        assert "workflow gated  running" in live.out and f"sflow pid {proc.pid}" in live.out
        rows = {
            line.split()[0]: line
            for line in live.out.splitlines()
            if line.startswith(("first", "wait", "last"))
        }
        assert rows["first"].split()[1] == "succeeded"
        assert rows["wait"].split()[1] == "running" and "localhost" in rows["wait"]
        assert rows["last"].split()[1] == "pending" and rows["last"].endswith("waits on dependencies: wait")
        listed = sflow("runs", "--output-dir", str(sflow.output_dir))
        assert (
            "gated" in listed.out
            and "running" in listed.out
            and "1 succeeded, 1 running, 1 pending" in listed.out
        )
    finally:
        (sflow.tmp / "go").touch()
        assert proc.wait(60) == 0
    done = sflow("status", "latest", "--output-dir", str(sflow.output_dir))
    assert "workflow gated  succeeded" in done.out and "3 succeeded" in done.out
    listed = sflow("runs", "--output-dir", str(sflow.output_dir), "--state", "succeeded")
    assert len(listed.out.splitlines()) == 2 and "3 succeeded" in listed.out


def test_status_and_runs_of_a_run_whose_sflow_was_killed(sflow):
    wf = sflow.write("wf.yaml", GATED)
    proc = start(sflow, wf)
    try:
        task = wait_for(sflow, proc)
        proc.kill()
        proc.wait()
    finally:
        os.killpg(task, signal.SIGKILL)
    shown = sflow("status", "--output-dir", str(sflow.output_dir))
    assert "workflow gated  killed" in shown.out
    assert f"sflow pid {proc.pid}" in shown.out and "is gone without finishing the run" in shown.out
    assert "was running when its sflow died" in shown.out
    listed = sflow("runs", "--output-dir", str(sflow.output_dir))
    assert " killed " in listed.out


def test_runs_filters_and_clean_removes_only_after_yes(sflow):
    wf = sflow.write(
        "wf.yaml", 'version: "0.1"\nworkflow:\n  name: one\n  tasks:\n    - {name: t, script: ["true"]}\n'
    )
    other = sflow.write(
        "other.yaml", 'version: "0.1"\nworkflow:\n  name: two\n  tasks:\n    - {name: t, script: ["false"]}\n'
    )
    for path in (wf, wf, wf, other):
        sflow("run", "-f", str(path))
    out = str(sflow.output_dir)
    only_two = sflow("runs", "--output-dir", out, "-w", "two").out.splitlines()
    assert len(only_two) == 2 and only_two[1].split()[1:3] == ["two", "failed"]
    assert len(sflow("runs", "--output-dir", out, "-n", "2").out.splitlines()) == 4  # header, 2, "not shown"
    dry = sflow("clean", "--output-dir", out, "--keep", "1")
    assert dry.code == 0 and dry.out.count("would remove") == 2 and "--yes" in dry.out
    assert len(list(sflow.output_dir.glob("*-one-*"))) == 3
    gone = sflow("clean", "--output-dir", out, "--keep", "1", "--yes")
    assert gone.out.count("remove ") == 2 and "removed 2 run(s)" in gone.out
    assert (
        len(list(sflow.output_dir.glob("*-one-*"))) == 1 and len(list(sflow.output_dir.glob("*-two-*"))) == 1
    )
    assert sflow("runs", "--output-dir", out).out.count(" one ") == 1
    assert "nothing" not in sflow("clean", "--output-dir", out, "--older-than", "1d").out
    bad = sflow("clean", "--output-dir", out)
    assert bad.code == 2 and "--older-than DURATION and/or --keep N" in bad.err


def test_an_index_that_cannot_be_written_warns_and_the_run_succeeds(sflow):
    sflow.output_dir.mkdir()
    (sflow.output_dir / ".runs.db").mkdir()
    wf = sflow.write(
        "wf.yaml", 'version: "0.1"\nworkflow:\n  name: one\n  tasks:\n    - {name: t, script: ["true"]}\n'
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0 and "sflow: warning: run index" in done.err and "Traceback" not in done.err
    listed = sflow("runs", "--output-dir", str(sflow.output_dir))
    assert listed.code == 0 and " one " in listed.out  # read from the run folders instead


def test_a_run_stopped_by_sflow_cancel_is_listed_as_cancelled(sflow):
    wf = sflow.write("wf.yaml", GATED)
    proc = start(sflow, wf)
    try:
        wait_for(sflow, proc)
        live = sflow("runs", "--output-dir", str(sflow.output_dir), "--state", "running")
        assert live.out.count(" running ") == 1
        cancel = subprocess.Popen(
            sflow.argv("cancel", "--output-dir", str(sflow.output_dir)),
            cwd=sflow.tmp,
            env=sflow.env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.wait(60) == 143  # reaped here, so that `sflow cancel` sees it gone
        out, _ = cancel.communicate(timeout=60)
        assert cancel.returncode == 0 and f"sent SIGTERM to sflow (pid {proc.pid})" in out
    finally:
        (sflow.tmp / "go").touch()
    shown = sflow("status", "--output-dir", str(sflow.output_dir))
    assert "workflow gated  cancelled" in shown.out and "stopped by sflow cancel at" in shown.out
    listed = sflow("runs", "--output-dir", str(sflow.output_dir), "--state", "cancelled")
    assert listed.out.count(" cancelled ") == 1, listed.out


def test_a_killed_run_that_sflow_cancel_cleaned_up_is_cancelled(sflow):
    wf = sflow.write("wf.yaml", GATED)
    proc = start(sflow, wf)
    try:
        task = wait_for(sflow, proc)
        proc.kill()
        proc.wait()
    finally:
        os.killpg(task, signal.SIGKILL)
    out = str(sflow.output_dir)
    assert " killed " in sflow("runs", "--output-dir", out).out  # indexed as killed first
    assert sflow("cancel", "--output-dir", out).code == 0
    assert "workflow gated  cancelled" in sflow("status", "--output-dir", out).out
    listed = sflow("runs", "--output-dir", out)
    assert " cancelled " in listed.out and " killed " not in listed.out


SLEEPER = """
version: "0.1"
workflow:
  name: sleeper
  tasks:
    - name: nap
      script: ["exec sleep 377"]
"""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_cancel_stops_the_task_processes_a_killed_sflow_left(sflow):
    proc = start(sflow, sflow.write("wf.yaml", SLEEPER))
    deadline = time.monotonic() + 60
    while not sflow.recorded_running("nap"):
        assert time.monotonic() < deadline and proc.poll() is None, "the task never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    events = next(sflow.output_dir.glob("*/events.jsonl")).read_text().splitlines()
    pid = next(json.loads(line)["pid"] for line in events if json.loads(line)["state"] == "running")
    out = str(sflow.output_dir)
    try:
        assert alive(pid)  # the task outlives its killed sflow
        cancel = sflow("cancel", "--output-dir", out)
        assert cancel.code == 0 and f"task nap: process group {pid}: stopped by TERM" in cancel.out, (
            cancel.out
        )
        assert not alive(pid)
        shown = sflow("status", "--output-dir", out).out
        assert "workflow sleeper  cancelled" in shown and "running" not in shown, shown
        assert "stopped by sflow cancel" in shown
        again = sflow("cancel", "--output-dir", out)
        assert again.code == 0 and "process group" not in again.out, again.out  # nothing left to stop
        assert "running" not in sflow("status", "--output-dir", out).out
    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
