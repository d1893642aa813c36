"""Failure semantics end to end: user mistakes, failed tasks, retries, timeouts, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def proc_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def test_yaml_mistakes_name_file_line_and_field(sflow):
    wf = sflow.write(
        "typo.yaml",
        """
        version: "0.1"
        workflow:
          name: typo
          tasks:
            - name: a
              script: ["true"]
            - name: b
              depend_on: [a]
              script: ["true"]
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 2
    assert f"{wf}:8" in done.err and "depend_on" in done.err and "did you mean 'depends_on'" in done.err
    assert "Traceback" not in done.err and done.err.count("\n") == 1


def test_broken_yaml_and_missing_file(sflow):
    wf = sflow.write("broken.yaml", 'version: "0.1"\nworkflow:\n  name: x\n  tasks: [\n')
    done = sflow("validate", str(wf))
    assert done.code == 2 and f"{wf}:" in done.err and "Traceback" not in done.err
    missing = sflow("run", "-f", "nope.yaml")
    assert missing.code == 2 and "nope.yaml" in missing.err and "Traceback" not in missing.err


def test_cycle_and_unknown_dependency(sflow):
    wf = sflow.write(
        "cycle.yaml",
        """
        version: "0.1"
        workflow:
          name: cyc
          tasks:
            - name: a
              depends_on: [b]
              script: ["true"]
            - name: b
              depends_on: [a]
              script: ["true"]
        """,
    )
    done = sflow("validate", str(wf))
    assert done.code == 2 and "dependency cycle" in done.err and f"{wf}:" in done.err
    unknown = sflow.write(
        "unknown.yaml",
        'version: "0.1"\nworkflow:\n  name: u\n  tasks:\n    - name: a\n      depends_on: [prepar]\n      script: ["true"]\n',
    )
    done = sflow("validate", str(unknown))
    assert done.code == 2 and f"{unknown}:6" in done.err and "prepar" in done.err


def test_failed_task_is_reported_with_exit_code_log_and_tail(sflow):
    wf = sflow.write(
        "fail.yaml",
        """
        version: "0.1"
        workflow:
          name: failing
          tasks:
            - name: boom
              script:
                - for i in $(seq 30); do echo "line $i"; done
                - exit 7
            - name: never
              depends_on: [boom]
              script: ["echo should not run"]
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 1
    assert "task 'boom' failed: exit code 7" in done.err
    assert "boom/boom.log" in done.err and "| line 30" in done.err and "| line 5\n" not in done.err
    summary = done.summary()
    assert summary["tasks"]["boom"]["state"] == "failed" and summary["tasks"]["boom"]["exit_code"] == 7
    assert summary["tasks"]["never"]["state"] == "cancelled"
    assert not (done.run_dir() / "never" / "never.log").exists()


def test_the_failure_tail_passes_no_escape_sequence_and_no_huge_line(sflow):
    wf = sflow.write(
        "hostile.yaml",
        r"""
        version: "0.1"
        workflow:
          name: hostile
          tasks:
            - name: boom
              script:
                - head -c 60000 /dev/zero | tr '\0' x; echo
                - printf '\033]0;pwned\007title\n\033[2Jcleared\n'
                - exit 3
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 1 and "task 'boom' failed: exit code 3" in done.err
    assert "\x1b" not in done.err and "\x07" not in done.err
    assert "| title\n" in done.err and "| cleared\n" in done.err
    assert max(len(line) for line in done.err.splitlines()) < 600
    assert "more characters in the log]" in done.err
    log = (done.run_dir() / "boom" / "boom.log").read_bytes()  # the log itself keeps every byte
    assert log == b"x" * 60000 + b"\n\x1b]0;pwned\x07title\n\x1b[2Jcleared\n"


def test_retries_keep_every_attempt_log(sflow):
    wf = sflow.write(
        "retry.yaml",
        """
        version: "0.1"
        workflow:
          name: retrying
          tasks:
            - name: flaky
              retries: {count: 2, interval: 0.1, backoff: 2}
              script:
                - echo "attempt $SFLOW_ATTEMPT"
                - test "$SFLOW_ATTEMPT" -ge 3
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    task_dir = done.run_dir() / "flaky"
    assert (task_dir / "flaky.attempt1.log").read_text() == "attempt 1\n"
    assert (task_dir / "flaky.attempt2.log").read_text() == "attempt 2\n"
    assert (task_dir / "flaky.log").read_text() == "attempt 3\n"
    assert done.summary()["tasks"]["flaky"]["attempts"] == 3


def test_task_and_workflow_timeouts_are_enforced(sflow):
    wf = sflow.write(
        "timeout.yaml",
        """
        version: "0.1"
        workflow:
          name: slow
          tasks:
            - name: sleeper
              timeout: 0.5
              script: ["sleep 300"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--grace", "1")  # a sleep that ran on would outlast this call
    assert done.code == 1 and "timed out after 0.5s" in done.err
    wf2 = sflow.write(
        "wtimeout.yaml",
        """
        version: "0.1"
        workflow:
          name: slowwf
          timeout: 1s
          tasks:
            - name: sleeper
              script: ["echo working on it", "sleep 300"]
        """,
    )
    done = sflow("run", "-f", str(wf2), "--grace", "1")
    assert done.code == 1 and "workflow timed out after 1s" in done.err
    # what the timeout cut short is reported like a failure: its log and its last lines
    log = done.run_dir() / "sleeper" / "sleeper.log"
    assert (
        "sflow: task 'sleeper' was stopped: workflow timed out after 1s (killed by SIGTERM, attempt 1)"
        in done.err
    )
    assert f"  log: {log}\n" in done.err and "    | working on it\n" in done.err


def test_keep_going_lets_independent_branches_finish(sflow):
    wf = sflow.write(
        "keep.yaml",
        """
        version: "0.1"
        workflow:
          name: keep
          tasks:
            - name: bad
              script: ["exit 1"]
            - name: after_bad
              depends_on: [bad]
              script: ["true"]
            - name: other
              script: ["sleep 0.3"]
            - name: after_other
              depends_on: [other]
              script: ["true"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--keep-going")
    assert done.code == 1
    states = {n: t["state"] for n, t in done.summary()["tasks"].items()}
    assert states == {
        "bad": "failed",
        "after_bad": "skipped",
        "other": "succeeded",
        "after_other": "succeeded",
    }


def _start_and_interrupt(sflow, wf: Path, sig: int) -> tuple[subprocess.Popen, int, str]:
    proc = subprocess.Popen(
        sflow.argv("run", "-f", str(wf), "--output-dir", str(sflow.output_dir), "--grace", "2"),
        cwd=sflow.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sflow.env(),
    )
    pidfile = sflow.tmp / "grandchild.pid"
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "task did not start"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc, int(pidfile.read_text()), err


def _interruptible(sflow) -> Path:
    return sflow.write(
        "long.yaml",
        f"""
        version: "0.1"
        workflow:
          name: long
          tasks:
            - name: parent
              script:
                - echo started
                - sleep 300 &
                - echo $! > {sflow.tmp}/grandchild.pid
                - wait
            - name: later
              depends_on: [parent]
              script: ["true"]
        """,
    )


def test_ctrl_c_stops_everything_and_exits_130(sflow):
    proc, grandchild, err = _start_and_interrupt(sflow, _interruptible(sflow), signal.SIGINT)
    assert proc.returncode == 130, err
    assert not proc_alive(grandchild)
    done_summary = sorted(p for p in sflow.output_dir.iterdir() if p.is_dir())[-1] / "summary.json"
    assert done_summary.exists()
    log = (done_summary.parent / "parent" / "parent.log").read_text()
    assert log == "started\n"


def test_sigterm_is_a_clean_stop_too(sflow):
    proc, grandchild, err = _start_and_interrupt(sflow, _interruptible(sflow), signal.SIGTERM)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as for any program a TERM stops
    assert not proc_alive(grandchild)
    assert "interrupted" in err


def test_no_orphan_after_a_failure(sflow):
    wf = sflow.write(
        "orphan.yaml",
        f"""
        version: "0.1"
        workflow:
          name: orphan
          tasks:
            - name: spawner
              script:
                - sleep 300 &
                - echo $! > {sflow.tmp}/bg.pid
                - sleep 300
            - name: bad
              script: ["sleep 0.5; exit 3"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--grace", "1")
    assert done.code == 1
    assert not proc_alive(int((sflow.tmp / "bg.pid").read_text()))
    assert os.path.exists(done.run_dir() / "summary.json")


def _detaching(sflow, then: str) -> Path:
    """A task that starts a process in a session of its own (out of reach of its group's signals).

    The process writes its pid once it is in its new session, and the task waits for that
    before it goes on: a task that ended first would leave a process still in its group.
    """
    return sflow.write(
        "detach.yaml",
        f"""
        version: "0.1"
        workflow:
          name: detach
          tasks:
            - name: parent
              script:
                - setsid sh -c 'echo $$ > {sflow.tmp}/detached.pid; exec sleep 300' &
                - until [ -s {sflow.tmp}/detached.pid ]; do sleep 0.01; done
                - cp {sflow.tmp}/detached.pid {sflow.tmp}/grandchild.pid
                - {then}
        """,
    )


def test_a_process_a_task_detached_does_not_outlive_the_run(sflow):
    done = sflow("run", "-f", str(_detaching(sflow, "echo end")), "--grace", "2")
    assert done.code == 0, done.err
    detached = int((sflow.tmp / "detached.pid").read_text())
    assert not proc_alive(detached)
    log = (done.run_dir() / "sflow.log").read_text()
    assert f"stopped 1 process(es) that tasks had left running (pids {detached})" in log


def test_ctrl_c_stops_a_detached_process_too(sflow):
    proc, detached, err = _start_and_interrupt(sflow, _detaching(sflow, "sleep 300"), signal.SIGINT)
    assert proc.returncode == 130, err
    assert not proc_alive(detached)


def test_unwritable_output_dir_is_one_line_and_exit_2(sflow):
    wf = sflow.write(
        "ok.yaml", 'version: "0.1"\nworkflow:\n  name: ok\n  tasks:\n    - name: a\n      script: ["true"]\n'
    )
    done = sflow("run", "-f", str(wf), "--output-dir", "/dev/null/runs")
    assert done.code == 2 and "cannot create the run directory" in done.err
    assert "Traceback" not in done.err


def test_logs_follow_stops_when_the_runs_sflow_is_gone(sflow, tmp_path):
    import json
    import subprocess
    import sys

    dead = subprocess.Popen(["true"])
    dead.wait()
    run_dir = tmp_path / "out" / "20260101-000000-000-x-dead"
    (run_dir / "a").mkdir(parents=True)
    (run_dir / "sflow.log").write_text("")
    (run_dir / "a" / "a.log").write_text("last words\n")
    (run_dir / "run.json").write_text(
        json.dumps({"pid": dead.pid, "host": __import__("socket").gethostname()})
    )
    out = subprocess.run(  # a follower waiting for a run that is gone would never end
        [sys.executable, "-m", "sflow", "logs", str(run_dir), "a", "-f"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == "last words\n"


def test_an_undefined_name_in_a_later_task_stops_the_run_before_anything_starts(sflow):
    wf = sflow.write(
        "late.yaml",
        """
        version: "0.1"
        workflow:
          name: late
          tasks:
            - name: first
              script: ["sleep 5"]
            - name: second
              depends_on: [first]
              script: ["echo ${{ variables.NOPE }}"]
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 2 and f"{wf}:9" in done.err and "NOPE" in done.err
    assert not sflow.output_dir.exists()  # no run directory: `first` never started
    check = sflow("validate", str(wf))
    assert check.code == 2 and "NOPE" in check.err


def test_an_undefined_name_points_at_its_script_line_and_suggests_the_close_name(sflow):
    wf = sflow.write(
        "epochs.yaml",
        """
        version: "0.1"
        variables:
          EPOCHS: {value: 2}
        workflow:
          name: epochs
          tasks:
            - name: train
              script:
                - echo start
                - |
                  echo one
                  echo ${{ variables.EPOCH }}
        """,
    )
    done = sflow("validate", str(wf))
    assert done.code == 2 and "Traceback" not in done.err
    assert done.err.strip() == (
        f"sflow: error: {wf}:12: workflow.tasks[0].script[1]: undefined in ${{{{ variables.EPOCH }}}}: "
        "variables has no 'EPOCH'; did you mean 'EPOCHS'?"
    )


def test_a_request_the_backend_cannot_offer_is_located_at_the_resources(sflow):
    wf = sflow.write(
        "gpus.yaml",
        """
        version: "0.1"
        workflow:
          name: gpus
          tasks:
            - name: a
              resources: {gpus: {count: 4}}
              script: [echo a]
        """,
    )
    for command in ("validate", "run"):
        done = sflow(command, str(wf))
        assert done.code == 2 and done.err.count("\n") == 1, done.err
        assert (
            f"{wf}:6: workflow.tasks[0].resources: task 'a' asks for 1 node(s) with 4 GPU(s) each" in done.err
        )
