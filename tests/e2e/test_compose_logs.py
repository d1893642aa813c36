"""Composition of several files (`run -f a -f b -f c`, `sflow compose`, `--missable-tasks`) and
`sflow logs` (print a task's log, follow a running service's log until the run ends)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import yaml

BASE = """
version: "0.1"
variables:
  WHO: {value: base}
  N: {value: 1, type: integer}
backends:
  - {name: local, type: local, nodes: 1}
workflow:
  name: composed
  tasks:
    - name: prepare
      script:
        - |
          echo prepare \\
            ${WHO}
    - name: train
      depends_on: [prepare]
      script: ["echo train ${WHO}"]
"""

SITE = """
version: "0.1"
variables:
  WHO: {value: site}
backends:
  - {name: local, type: local, nodes: 2}
workflow:
  tasks:
    - name: train
      depends_on: [prepare]
      resources: {nodes: {indices: [1]}}
      script: ["echo site-train ${WHO} on ${SFLOW_TASK_ASSIGNED_NODE_NAMES}"]
"""

EXTRA = """
version: "0.1"
variables:
  N: {value: 3, type: integer}
workflow:
  tasks:
    - name: report
      depends_on: [train, DEPS]
      script: ["echo report ${WHO} n=${N}"]
"""

EXPECTED_LOGS = {
    "prepare": "prepare site\n",
    "train": "site-train site on localhost-1\n",
    "report": "report site n=3\n",
}


def write_three(sflow, extra_dep: str = "prepare") -> list[str]:
    files = [
        sflow.write("a.yaml", BASE),
        sflow.write("b.yaml", SITE),
        sflow.write("c.yaml", EXTRA.replace("DEPS", extra_dep)),
    ]
    return [arg for path in files for arg in ("-f", path.name)]


def logs_of(run_dir: Path) -> dict[str, str]:
    return {name: (run_dir / name / f"{name}.log").read_text() for name in EXPECTED_LOGS}


def test_three_files_compose_into_one_workflow(sflow):
    done = sflow("run", *write_three(sflow))
    assert done.code == 0, done.err
    assert logs_of(done.run_dir()) == EXPECTED_LOGS
    assert list(done.summary()["tasks"]) == ["prepare", "train", "report"]
    warnings = [line for line in done.err.splitlines() if line.startswith("sflow: warning:")]
    assert warnings == [
        "sflow: warning: variables.WHO from b.yaml:3 overrides the one from a.yaml:3",
        "sflow: warning: backends.local from b.yaml:5 overrides the one from a.yaml:6",
        "sflow: warning: task 'train' from b.yaml:8 overrides the one from a.yaml:15",
        "sflow: warning: variables.N from c.yaml:3 overrides the one from a.yaml:4",
    ]
    assert "ComposeWarning" not in done.err and ".py:" not in done.err


def test_compose_writes_a_file_that_runs_the_same(sflow):
    args = write_three(sflow)
    composed = sflow("compose", *args, "--set", "N=3", "-o", "merged.yaml")
    assert composed.code == 0, composed.err
    assert composed.err.count("overrides the one from") == 4  # shown once, not per read
    text = (sflow.tmp / "merged.yaml").read_text()
    assert "    - |\n      echo prepare \\\n        ${WHO}\n" in text  # scripts stay readable blocks
    merged = yaml.safe_load(text)
    assert [t["name"] for t in merged["workflow"]["tasks"]] == ["prepare", "train", "report"]
    done = sflow("run", "merged.yaml")
    assert done.code == 0, done.err
    assert "warning" not in done.err
    assert logs_of(done.run_dir()) == EXPECTED_LOGS


def test_compose_applies_set(sflow):
    composed = sflow("compose", *write_three(sflow), "--set", "WHO=cli")
    assert composed.code == 0, composed.err
    assert yaml.safe_load(composed.out)["variables"]["WHO"]["value"] == "cli"


def test_missable_tasks(sflow):
    args = write_three(sflow, extra_dep="evaluate")
    strict = sflow("run", *args)
    assert strict.code == 2
    assert (
        "sflow: error: c.yaml:7: workflow.tasks[2].depends_on: depends on unknown task 'evaluate'"
        in strict.err
    )
    assert not sflow.output_dir.exists()  # nothing ran

    done = sflow("run", *args, "--missable-tasks", "eval*")
    assert done.code == 0, done.err
    assert "task 'report' no longer depends on 'evaluate': absent, and missable" in done.err
    assert logs_of(done.run_dir()) == EXPECTED_LOGS

    composed = sflow("compose", *args, "-M", "evaluate", "-o", "merged.yaml")
    assert composed.code == 0, composed.err
    merged = yaml.safe_load((sflow.tmp / "merged.yaml").read_text())
    assert merged["workflow"]["tasks"][2]["depends_on"] == ["train"]
    again = sflow("run", "merged.yaml")  # runs on its own, without the flag
    assert again.code == 0, again.err
    assert logs_of(again.run_dir()) == EXPECTED_LOGS

    one_file = sflow("run", "merged.yaml", "-M", "evaluate")  # nothing to compose: a mistake
    assert one_file.code == 2 and "--missable-tasks goes with several workflow files" in one_file.err

    # the job `sflow batch` writes runs the same way: the flag reaches its `sflow run`
    batch = sflow("batch", *args, "-M", "evaluate", "-o", "job.sbatch", "--output-dir", "batch-out")
    assert batch.code == 0, batch.err
    assert "--missable-tasks evaluate" in (sflow.tmp / "job.sbatch").read_text()
    job = subprocess.run(["bash", "job.sbatch"], cwd=sflow.tmp, capture_output=True, text=True, timeout=60)
    assert job.returncode == 0, job.stderr
    batch_runs = [p for p in (sflow.tmp / "batch-out").iterdir() if p.is_dir()]
    assert len(batch_runs) == 1 and logs_of(batch_runs[0]) == EXPECTED_LOGS

    unfixed = sflow("compose", *args, "-o", "never.yaml")
    assert unfixed.code == 2 and "depends on unknown task 'evaluate'" in unfixed.err
    assert not (sflow.tmp / "never.yaml").exists()


HELLO = """
version: "0.1"
workflow:
  name: hello
  tasks:
    - name: greet
      script: ["echo hello", "echo world"]
"""


def test_logs_prints_a_task_log(sflow):
    wf = sflow.write("hello.yaml", HELLO)
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    for ref in (run_dir.name, run_dir.name[:22], "latest", str(run_dir)):
        shown = sflow("logs", ref, "greet", "--output-dir", "out")
        assert shown.code == 0, shown.err
        assert shown.out == "hello\nworld\n"
    events = sflow("logs", "latest", "--output-dir", "out")
    assert "greet: succeeded" in events.out
    missing = sflow("logs", "latest", "nosuch", "--output-dir", "out")
    assert missing.code == 2 and "has no task 'nosuch' (tasks: greet)" in missing.err
    typo = sflow("logs", "latest", "greeet", "--output-dir", "out")
    assert typo.code == 2 and "has no task 'greeet'; did you mean 'greet'?" in typo.err
    follow_missing = sflow("logs", "latest", "nosuch", "-f", "--output-dir", "out", timeout=10)
    assert follow_missing.code == 2 and "has no task 'nosuch'" in follow_missing.err


def test_logs_given_a_task_where_the_run_goes_names_the_command_for_it(sflow):
    wf = sflow.write("hello.yaml", HELLO)
    assert sflow("run", "-f", str(wf)).code == 0
    done = sflow("logs", "greet", "--output-dir", "out")
    assert done.code == 2
    assert done.err == (
        "sflow: error: run 'greet' not found under out; "
        "'greet' is a task of the latest run: sflow logs latest greet\n"
    )
    other = sflow("logs", "nosuch", "--output-dir", "out")
    assert other.code == 2 and other.err == "sflow: error: run 'nosuch' not found under out\n"


def test_logs_of_a_task_that_never_started_says_why(sflow):
    wf = sflow.write(
        "fails.yaml",
        """
        version: "0.1"
        workflow:
          name: fails
          tasks:
            - name: boom
              script: ["exit 3"]
            - name: after
              depends_on: [boom]
              script: ["true"]
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 1, done.err
    for follow in ([], ["-f"]):
        shown = sflow("logs", "latest", "after", *follow, "--output-dir", "out", timeout=10)
        assert shown.code == 2 and "Traceback" not in shown.err
        assert "task 'after' never started (cancelled: task 'boom' failed)" in shown.err, shown.err


SERVICE = """
version: "0.1"
workflow:
  name: followed
  tasks:
    - name: server
      script:
        - echo "listening"
        - for i in $(seq 1 100); do echo "tick $i"; sleep 0.1; done
      probes:
        readiness:
          - log_watch: {regex_pattern: listening}
            interval: 0.05
    - name: client
      depends_on: [server]
      script: ["sleep 1.5", "echo done"]
"""


def test_logs_follow_a_running_service_until_the_run_ends(sflow):
    wf = sflow.write("service.yaml", SERVICE)
    run = subprocess.Popen(
        sflow.argv("run", "-f", str(wf), "--output-dir", "out", "-q", "--grace", "2"),
        cwd=sflow.tmp,
        env=sflow.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    follower = None
    try:
        deadline = time.monotonic() + 60  # a hang guard: sflow starts slowly on a loaded machine
        while not list(sflow.output_dir.glob("*/server/server.log")):
            assert time.monotonic() < deadline and run.poll() is None, "the run did not start"
            time.sleep(0.05)
        follower = subprocess.Popen(
            sflow.argv("logs", "latest", "server", "-f", "--output-dir", "out"),
            cwd=sflow.tmp,
            env=sflow.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.wait(timeout=60) == 0, run.stderr.read() if run.stderr else ""
        out, err = follower.communicate(timeout=60)  # a follower that missed the end never stops
    finally:
        for proc in (run, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert follower.returncode == 0, err
    (log,) = sflow.output_dir.glob("*/server/server.log")
    full = log.read_text()
    assert out == full  # everything, once, in order
    ticks = [line for line in out.splitlines() if line.startswith("tick")]
    assert out.startswith("listening\n") and len(ticks) >= 10  # it kept printing while the run went on
    assert len(ticks) < 100  # the service was stopped when the client was done


RETRIED = """
version: "0.1"
workflow:
  name: retried
  tasks:
    - name: flaky
      retries: {count: 1, interval: 0.2}
      script:
        - |
          if [ "$SFLOW_ATTEMPT" = 1 ]; then
            echo "first attempt: a long line that is longer than the second attempt's whole log"
            while [ ! -e "$SFLOW_WORKSPACE_DIR/followed" ]; do sleep 0.05; done
            exit 1
          fi
          echo "second"
          sleep 0.5
"""


def test_logs_follow_goes_on_with_the_retry(sflow):
    wf = sflow.write("retried.yaml", RETRIED)
    run = subprocess.Popen(
        sflow.argv("run", "-f", str(wf), "--output-dir", "out", "-q"),
        cwd=sflow.tmp,
        env=sflow.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    follower = None
    try:
        deadline = time.monotonic() + 30
        while not list(sflow.output_dir.glob("*/flaky/flaky.log")):
            assert time.monotonic() < deadline and run.poll() is None, "the run did not start"
            time.sleep(0.05)
        follower = subprocess.Popen(
            sflow.argv("logs", "latest", "flaky", "-f", "--output-dir", "out"),
            cwd=sflow.tmp,
            env=sflow.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        first_line = follower.stdout.readline()  # the first attempt still runs: it waits for us
        (sflow.tmp / "followed").touch()
        rest, err = follower.communicate(timeout=60)
        assert run.wait(timeout=60) == 0
    finally:
        for proc in (run, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert follower.returncode == 0, err
    run_dir = next(p for p in sflow.output_dir.iterdir() if p.is_dir())
    first = (run_dir / "flaky" / "flaky.attempt1.log").read_text()
    assert first_line + rest == first + "second\n"
    assert "moved aside for a retry" in err
