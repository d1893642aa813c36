"""`sflow run --resume` and `--task` end to end: what a resumed run keeps, reruns and says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

# Each task appends its name to `starts` in the workspace: what really ran, across runs.
PIPELINE = """
version: "0.1"
workflow:
  name: pipe
  tasks:
    - name: prep
      script:
        - echo prep >> starts
        - echo data > $SFLOW_TASK_OUTPUT_DIR/data.txt
    - name: train
      depends_on: [prep]
      replicas: {count: 2}
      outputs: [{name: loss, pattern: 'loss=(\\S+)'}]
      script:
        - echo train_$SFLOW_REPLICA_INDEX >> starts
        - cat $SFLOW_WORKFLOW_OUTPUT_DIR/prep/data.txt || exit 4
        - if [ $SFLOW_REPLICA_INDEX = 1 ] && [ -e broken ]; then echo boom; exit 3; fi
        - echo loss=0.$SFLOW_REPLICA_INDEX
    - name: report
      depends_on: [train]
      script:
        - echo report >> starts
        - cat $SFLOW_WORKFLOW_OUTPUT_DIR/train.outputs.csv
"""


def starts(sflow) -> list[str]:
    path = sflow.tmp / "starts"
    return path.read_text().split() if path.exists() else []


def runs(sflow) -> list[Path]:
    return sorted(p for p in sflow.output_dir.iterdir() if (p / "sflow.log").exists())


def test_a_failed_run_resumed_keeps_what_succeeded_and_runs_the_rest(sflow):
    wf = sflow.write("wf.yaml", PIPELINE)
    (sflow.tmp / "broken").touch()
    first = sflow("run", "-f", str(wf), "--keep-going")  # train_0 ends however late it is
    assert first.code == 1
    assert sorted(starts(sflow)) == ["prep", "train_0", "train_1"]
    first_dir = first.run_dir()
    first_files = {p: p.read_bytes() for p in first_dir.rglob("*") if p.is_file()}

    (sflow.tmp / "broken").unlink()
    plan = sflow("run", "-f", str(wf), "--resume", "latest", "--dry-run")
    assert plan.code == 0, plan.err
    assert f"resuming run {first_dir.name}: keep 2 (prep, train_0); run 2" in plan.out
    assert "train_1 (failed (exit code 3))" in plan.out
    assert plan.out.count("resume: keep (succeeded, unchanged)") == 2
    assert "resume: run (skipped ('train_1' failed))" in plan.out
    assert len(runs(sflow)) == 1  # a dry run makes no run

    (sflow.tmp / "starts").unlink()
    second = sflow("run", "-f", str(wf), "--resume", "latest")
    assert second.code == 0, second.err
    assert starts(sflow) == ["train_1", "report"]  # prep and train_0 did not run again
    assert f"sflow: resuming run {first_dir.name}: keep 2" in second.err
    assert "prep: succeeded (kept: succeeded, unchanged)" in second.out
    run_dir = second.run_dir()
    assert run_dir != first_dir
    summary = second.summary()
    prep = summary["tasks"]["prep"]
    assert prep["kept_from"] == first_dir.name and prep["reason"] == "kept: succeeded, unchanged"
    assert prep["log"] == str(first_dir / "prep" / "prep.log") and prep["attempts"] == 1
    # kept tasks' logs and files are reachable from the new run; the sweep table has every replica
    assert (run_dir / "prep" / "data.txt").read_text() == "data\n"
    assert (run_dir / "train_0" / "train_0.log").read_text() == "data\nloss=0.0\n"
    assert (run_dir / "report" / "report.log").read_text() == "replica_index,loss\n0,0.0\n1,0.1\n"
    assert json.loads((run_dir / "run.json").read_text())["resumed_from"] == first_dir.name
    plan_json = json.loads((run_dir / "plan.json").read_text())["tasks"]
    assert plan_json["train_1"]["resume"] == "run: failed (exit code 3)"
    assert "resume: keep prep (succeeded, unchanged)" in (run_dir / "sflow.log").read_text()
    # nothing of the first run was touched
    assert {p: p.read_bytes() for p in first_dir.rglob("*") if p.is_file()} == first_files


def test_an_edited_task_runs_again_with_what_follows_it(sflow):
    wf = sflow.write("wf.yaml", PIPELINE)
    assert sflow("run", "-f", str(wf)).code == 0
    edited = sflow.write("wf.yaml", PIPELINE.replace("echo report >> starts", "echo report >> starts; true"))
    (sflow.tmp / "starts").unlink()
    again = sflow("run", "-f", str(edited), "--resume", "latest")
    assert again.code == 0, again.err
    assert starts(sflow) == ["report"]
    third = sflow("run", "-f", str(edited), "--resume", "latest")  # resume the resumed run: all kept
    assert third.code == 0 and starts(sflow) == ["report"]
    assert third.summary()["tasks"]["prep"]["kept_from"] == runs(sflow)[0].name  # the run that made it


def test_resume_of_a_run_whose_sflow_was_killed(sflow):
    wf = sflow.write(
        "wf.yaml",
        """
        version: "0.1"
        workflow:
          name: killed
          tasks:
            - name: quick
              script: ["echo quick >> starts"]
            - name: slow
              depends_on: [quick]
              script: ["echo slow >> starts", "echo $$ > slow.pid", "[ -e fast ] || sleep 300"]
        """,
    )
    proc = subprocess.Popen(
        sflow.argv("run", "-q", "-f", str(wf), "--output-dir", str(sflow.output_dir)),
        cwd=sflow.tmp,
        env=sflow.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = sflow.tmp / "slow.pid"
    try:
        # the task writes its pid the moment it runs, which may be before sflow has recorded it
        # running: wait for both, so that the run is killed with `slow` recorded as running
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip() and sflow.recorded_running("slow")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.kill()  # sflow dies without a word; its task is left to us
        proc.wait()
    finally:
        if pid_file.exists() and pid_file.read_text().strip():
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    assert not (runs(sflow)[0] / "summary.json").exists()
    (sflow.tmp / "fast").touch()
    (sflow.tmp / "starts").unlink()
    resumed = sflow("run", "-f", str(wf), "--resume", "latest")
    assert resumed.code == 0, resumed.err
    assert starts(sflow) == ["slow"]
    assert "slow (unfinished (its run ended without a word))" in resumed.err


def test_a_service_a_rerun_task_needs_starts_again(sflow):
    wf = sflow.write(
        "wf.yaml",
        """
        version: "0.1"
        workflow:
          name: svc
          tasks:
            - name: server
              script: ["echo server >> starts", "echo listening", "sleep 300"]
              probes:
                readiness:
                  - log_watch: {regex_pattern: listening}
                    interval: 0.05
            - name: good
              depends_on: [server]
              script: ["echo good >> starts"]
            - name: flaky
              depends_on: [server]
              script: ["echo flaky >> starts", "[ ! -e broken ]"]
        """,
    )
    (sflow.tmp / "broken").touch()
    assert sflow("run", "-f", str(wf), "--keep-going").code == 1
    (sflow.tmp / "broken").unlink()
    (sflow.tmp / "starts").unlink()
    resumed = sflow("run", "-f", str(wf), "--resume", "latest")
    assert resumed.code == 0, resumed.err
    assert starts(sflow) == ["server", "flaky"]
    assert "server (service needed by 'flaky')" in resumed.err


def test_task_selection_runs_a_task_with_what_it_needs_or_alone(sflow):
    wf = sflow.write("wf.yaml", PIPELINE)
    with_deps = sflow("run", "-f", str(wf), "-t", "train_1")
    assert with_deps.code == 0, with_deps.err
    assert starts(sflow) == ["prep", "train_1"]
    assert sorted(with_deps.summary()["tasks"]) == ["prep", "train_1"]
    (sflow.tmp / "starts").unlink()
    # --keep-going: the first replica to fail must not stop the other before it starts (under load)
    alone = sflow("run", "-f", str(wf), "--task", "train", "--skip-dependencies", "--keep-going")
    assert sorted(starts(sflow)) == ["train_0", "train_1"]
    assert alone.code == 1  # prep/data.txt is not in this run: the task fails, honestly
    typo = sflow("run", "-f", str(wf), "-t", "reprot")
    assert typo.code == 2 and "--task reprot: no such task; did you mean 'report'?" in typo.err
    assert "Traceback" not in typo.err
    bare = sflow("run", "-f", str(wf), "--skip-dependencies")
    assert bare.code == 2 and "--skip-dependencies needs --task NAME" in bare.err


def test_resume_mistakes_are_one_line(sflow):
    wf = sflow.write("wf.yaml", PIPELINE)
    none = sflow("run", "-f", str(wf), "--resume", "latest")
    assert none.code == 2 and "no runs under" in none.err and "Traceback" not in none.err
    assert sflow("run", "-f", str(wf)).code == 0
    other = sflow.write("other.yaml", PIPELINE.replace("name: pipe", "name: other"))
    wrong = sflow("run", "-f", str(other), "--resume", runs(sflow)[0].name)
    assert wrong.code == 2 and "is of workflow 'pipe', not 'other'" in wrong.err


def test_the_dry_run_as_json_follows_task_selection_and_shows_resume_decisions(sflow):
    wf = sflow.write("wf.yaml", PIPELINE)
    (sflow.tmp / "broken").touch()
    assert sflow("run", "-f", str(wf)).code == 1
    done = sflow("run", "-f", str(wf), "--resume", "latest", "-t", "train_1", "--dry-run", "--json")
    assert done.code == 0, done.err
    tasks = {t["name"]: t["resume"] for t in json.loads(done.out)["tasks"]}
    assert tasks == {
        "prep": {"keep": True, "reason": "succeeded, unchanged"},
        "train_1": {"keep": False, "reason": "failed (exit code 3)"},
    }
