"""`--bulk-input CSV` on `run`, `compose` and `batch`, and `batch --bulk-submit`, through the real command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

BACKEND = """
version: "0.1"
variables:
  WHO: {value: nobody}
backends:
  - {name: local, type: local, nodes: 1}
"""

WORKFLOW = """
version: "0.1"
workflow:
  name: greet
  variables:
    TIMES: {value: 1, type: integer}
  tasks:
    - name: hello
      script: ["echo hello ${WHO} x${TIMES}"]
    - name: after
      depends_on: [hello, cleanup]
      script: ["echo after ${WHO}"]
"""

CSV = """sflow_config_file,WHO,TIMES,missable_tasks,job_name
base.yaml wf/greet.yaml,alice,2,cleanup,
base.yaml wf/greet.yaml,bob,,cleanup,bob-job
base.yaml wf/greet.yaml,carol,3,cleanup,
"""


def write_bulk(sflow) -> Path:
    sflow.write("base.yaml", BACKEND)
    (sflow.tmp / "wf").mkdir()
    sflow.write("wf/greet.yaml", WORKFLOW)
    return sflow.write("jobs.csv", CSV)


def log(run_dir: Path, task: str) -> str:
    return (run_dir / task / f"{task}.log").read_text()


def test_run_takes_a_row_of_the_csv(sflow):
    write_bulk(sflow)
    done = sflow("run", "--bulk-input", "jobs.csv", "--row", "1")
    assert done.code == 0, done.err
    assert log(done.run_dir(), "hello") == "hello alice x2\n"
    assert log(done.run_dir(), "after") == "after alice\n"  # `cleanup` is missable in every row

    last = sflow("run", "-b", "jobs.csv", "--row=-2", "--set", "WHO=dave")
    assert last.code == 0, last.err
    assert log(last.run_dir(), "hello") == "hello dave x1\n"  # --set wins; an empty cell keeps 1


def test_run_bulk_mistakes_are_one_line_and_exit_2(sflow):
    write_bulk(sflow)
    no_row = sflow("run", "--bulk-input", "jobs.csv")
    assert no_row.code == 2 and "--bulk-input needs --row N" in no_row.err
    past = sflow("run", "--bulk-input", "jobs.csv", "--row", "4")
    assert past.code == 2
    assert past.err.strip() == "sflow: error: --row 4: jobs.csv has 3 data row(s) (rows count from 1)"
    sflow.write("bad.csv", "sflow_config_file,WHOM\nbase.yaml wf/greet.yaml,x\n")
    bad = sflow("run", "--bulk-input", "bad.csv", "--row", "1")
    assert bad.code == 2
    assert bad.err.startswith("sflow: error: bad.csv:2: WHOM: this column names no variable or artifact")
    assert "Traceback" not in bad.err + past.err + no_row.err


def test_compose_writes_one_file_per_row(sflow):
    write_bulk(sflow)
    done = sflow("compose", "--bulk-input", "jobs.csv", "--row", "2:", "-o", "composed")
    assert done.code == 0, done.err
    assert sorted(p.name for p in (sflow.tmp / "composed").iterdir()) == ["bob-job.yaml", "jobs-row3.yaml"]
    carol = yaml.safe_load((sflow.tmp / "composed" / "jobs-row3.yaml").read_text())
    assert carol["variables"]["WHO"]["value"] == "carol"
    assert carol["workflow"]["tasks"][1]["depends_on"] == ["hello"]  # cleanup dropped: missable
    again = sflow("run", "composed/jobs-row3.yaml")
    assert again.code == 0, again.err
    assert log(again.run_dir(), "hello") == "hello carol x3\n"


def test_batch_writes_one_job_per_row_each_with_its_values(sflow):
    write_bulk(sflow)
    done = sflow("batch", "--bulk-input", "jobs.csv", "--output-dir", "out")
    assert done.code == 0, done.err
    folders = list((sflow.tmp / "out").glob("bulk-*"))
    assert len(folders) == 1
    scripts = sorted(folders[0].glob("*.sbatch"))
    assert [s.name for s in scripts] == ["bob-job.sbatch", "jobs-row1.sbatch", "jobs-row3.sbatch"]
    assert json.loads(Path(f"{folders[0]}/jobs-row1.sbatch.sets").read_text()) == ["WHO=alice", "TIMES=2"]
    assert "#SBATCH --job-name bob-job" in (folders[0] / "bob-job.sbatch").read_text()
    for script in scripts:  # each job runs its row (the same script sbatch would run)
        job = subprocess.run(["bash", str(script)], cwd=sflow.tmp, capture_output=True, text=True, timeout=60)
        assert job.returncode == 0, job.stderr
    hellos = sorted(log(run, "hello") for run in (sflow.tmp / "out").iterdir() if (run / "hello").is_dir())
    assert hellos == ["hello alice x2\n", "hello bob x1\n", "hello carol x3\n"]


def test_batch_checks_every_row_before_writing_any(sflow):
    write_bulk(sflow)
    sflow.write("bad.csv", "sflow_config_file,TIMES\nbase.yaml wf/greet.yaml,2\nbase.yaml wf/greet.yaml,x\n")
    done = sflow("batch", "--bulk-input", "bad.csv", "--output-dir", "out")
    assert done.code == 2, done.err
    assert "bad.csv:3 (row 2): --set: workflow.variables.TIMES" in done.err
    assert not (sflow.tmp / "out").exists()


def test_bulk_submit_makes_one_job_per_workflow_file(sflow):
    write_bulk(sflow)
    (sflow.tmp / "jobs").mkdir()
    sflow.write("jobs/one.yaml", (BACKEND + WORKFLOW.split("\n", 2)[2]).replace(", cleanup", ""))
    sflow.write("jobs/two.yml", (BACKEND + WORKFLOW.split("\n", 2)[2]).replace(", cleanup", ""))
    done = sflow("batch", "--bulk-submit", "jobs", "--set", "WHO=all", "--output-dir", "out")
    assert done.code == 0, done.err
    scripts = sorted(p.name for p in next((sflow.tmp / "out").glob("bulk-*")).glob("*.sbatch"))
    assert scripts == ["one.sbatch", "two.sbatch"]
    clash = sflow("batch", "--bulk-submit", "jobs", "--bulk-input", "jobs.csv")
    assert clash.code == 2 and "use one" in clash.err
