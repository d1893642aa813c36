"""`sflow batch` script generation (no cluster): #SBATCH lines, overrides, the exec line."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sflow.cli.batch import batch_command
from sflow.errors import SflowError
from sflow.schema import load_workflow
from sflow.schema.models import LocalBackend, SlurmBackend
from sflow.workflow.batch import (
    BatchOptions,
    build_batch_script,
    parse_sbatch_job_id,
    slurm_backend_config,
)

WORKFLOW = """\
version: "0.1"
variables:
  GREETING: {value: hello}
backends:
  - name: local
    type: local
  - name: slurm_cluster
    type: slurm
    default: true
    account: "your_slurm_account"
    partition: "your_slurm_partition"
    time: "00:10:00"
    nodes: 1
    extra_args: ["--gpus-per-node=8", "--segment=2", "--exclusive"]
workflow:
  name: wf
  tasks:
    - name: slurm_task
      script: ["echo ${GREETING}"]
"""


class FakeSpec:
    """The two things batch reads from a WorkflowSpec: `backends` and `workflow.name`."""

    def __init__(self, backends: dict, name: str = "wf") -> None:
        self.backends = backends
        self.workflow = type("W", (), {"name": name})()


SPEC = FakeSpec(
    {
        "local": LocalBackend(name="local"),
        "slurm_cluster": SlurmBackend(
            name="slurm_cluster",
            default=True,
            account="your_slurm_account",
            partition="your_slurm_partition",
            time="00:10:00",
            nodes=1,
            extra_args=["--gpus-per-node=8", "--segment=2", "--exclusive"],
        ),
    }
)


@pytest.fixture
def wf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return path


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_sbatch_lines_follow_the_backend_then_extras_one_of_each_option(wf: Path, tmp_path: Path) -> None:
    options = BatchOptions(
        output_dir=tmp_path / "out",
        extras=["--gpus-per-node=4", "--mem 64G"],
        partition="debug",
        time="5",
        job_name="sflow-it-x",
    )
    lines = sbatch_lines(build_batch_script([wf], SPEC, options))
    assert lines == [
        "#SBATCH --job-name sflow-it-x",
        "#SBATCH -A your_slurm_account",
        "#SBATCH -p debug",
        "#SBATCH -t 5",
        "#SBATCH -N 1",
        "#SBATCH --gpus-per-node=4",  # -e wins over the recipe's --gpus-per-node=8, in its place
        "#SBATCH --segment=2",
        "#SBATCH --exclusive",
        "#SBATCH --mem 64G",
        f"#SBATCH --output={tmp_path / 'out'}/sflow-%j.out",
    ]


def test_the_same_flag_in_the_recipe_and_on_the_command_line_is_asked_for_once(
    wf: Path, tmp_path: Path
) -> None:
    """The README's tour: extra_args ["--gpus-per-node=8"] and `-e "--gpus-per-node=8"`."""
    options = BatchOptions(output_dir=tmp_path / "out", extras=["--gpus-per-node=8", "--exclusive"])
    lines = sbatch_lines(build_batch_script([wf], SPEC, options))
    assert lines.count("#SBATCH --gpus-per-node=8") == 1
    assert lines.count("#SBATCH --exclusive") == 1


def test_body_runs_this_interpreter_with_absolute_paths(wf: Path, tmp_path: Path) -> None:
    options = BatchOptions(output_dir=Path("out"), submit_dir=tmp_path)
    script = build_batch_script(["wf.yaml"], SPEC, options)
    assert script.startswith("#!/bin/bash\n")
    body = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert body[0] == f"cd {shlex.quote(str(tmp_path))} || exit 1"
    argv = shlex.split(body[1])
    assert argv[0] == "exec" and argv[1] == sys.executable
    assert argv[2:] == ["-m", "sflow", "run", "-f", str(wf), "--output-dir", str(tmp_path / "out")]


def test_set_values_go_to_a_private_file_not_on_the_command_line(wf: Path, tmp_path: Path) -> None:
    options = BatchOptions(
        output_dir=Path("out"), sets=["GREETING=hi there"], submit_dir=tmp_path, sets_file=Path("job.sets")
    )
    script = build_batch_script(["wf.yaml"], SPEC, options)
    assert "hi there" not in script
    argv = shlex.split(next(line for line in script.splitlines() if line.startswith("exec ")))
    assert argv[1:] == [
        sys.executable,
        "-m",
        "sflow.cli.batch_job",
        "--set-file",
        str(tmp_path / "job.sets"),
        "run",
        "-f",
        str(wf),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    with pytest.raises(ValueError, match="sets_file"):
        build_batch_script(["wf.yaml"], SPEC, BatchOptions(output_dir=Path("out"), sets=["A=1"]))


def test_workflow_without_slurm_backend_uses_only_the_command_line(tmp_path: Path) -> None:
    spec = FakeSpec({"local": LocalBackend(name="local")}, name="plain")
    options = BatchOptions(output_dir=tmp_path, nodes=2, account="acct")
    lines = sbatch_lines(build_batch_script([tmp_path / "x.yaml"], spec, options))
    assert lines[:3] == ["#SBATCH --job-name plain", "#SBATCH -A acct", "#SBATCH -N 2"]
    assert slurm_backend_config(spec) is None


def test_default_slurm_backend_is_preferred() -> None:
    backends = [
        {"name": "a", "type": "slurm", "partition": "a"},
        {"name": "b", "type": "slurm", "default": True, "partition": "b"},
    ]

    chosen = slurm_backend_config(FakeSpec({str(i): b for i, b in enumerate(backends)}))
    assert chosen is not None and chosen["name"] == "b"
    from_list = slurm_backend_config(type("S", (), {"backends": backends})())  # a list works too
    assert from_list is not None and from_list["name"] == "b"


def test_parse_sbatch_job_id() -> None:
    assert parse_sbatch_job_id("123\n") == "123"
    assert parse_sbatch_job_id("123;cluster\n") == "123"
    with pytest.raises(SflowError):
        parse_sbatch_job_id("sbatch: error: nope")


def test_batch_command_writes_an_executable_script(
    wf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_workflow([str(wf)])  # the real loader validates the workflow first
    target = tmp_path / "job.sbatch"
    code = batch_command(
        [str(wf)],
        [],
        ["--comment=x"],
        "debug",
        "acct",
        "00:02:00",
        2,
        "sflow-it-b",
        str(target),
        False,
        "out",
    )
    assert code == 0
    assert target.stat().st_mode & 0o111
    assert str(target) in capsys.readouterr().out
    text = target.read_text()
    assert "#SBATCH -N 2" in text and "#SBATCH --comment=x" in text
    assert (tmp_path / "out").is_dir()


def test_set_values_reach_the_workflow_but_never_a_command_line_or_the_script(tmp_path: Path) -> None:
    """The generated script run by bash (the job's view, without Slurm): the value arrives, and no
    process between the job and the task has it in its command line."""
    secret = "tok-" + "s3cret-value-42"
    ancestors = tmp_path / "ancestors.txt"
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        'version: "0.1"\n'
        "variables:\n"
        "  TOKEN: {value: none}\n"
        "workflow:\n"
        "  name: secretive\n"
        "  tasks:\n"
        "    - name: check\n"
        "      script:\n"
        f'        - test "$TOKEN" = "{secret}"\n'
        f'        - p=$$; while [ "$p" -gt 1 ] && [ "$p" != {os.getpid()} ]; do'  # up to this test
        f" tr '\\0' ' ' < /proc/$p/cmdline >> {ancestors}; echo >> {ancestors};"
        " p=$(awk '{print $4}' /proc/$p/stat); done\n"
    )
    script = tmp_path / "job.sbatch"
    code = batch_command(
        [str(wf)],
        [f"TOKEN={secret}"],
        [],
        None,
        None,
        None,
        None,
        None,
        str(script),
        False,
        str(tmp_path / "out"),
    )
    assert code == 0
    sets_file = tmp_path / "job.sbatch.sets"
    assert secret not in script.read_text() and secret in sets_file.read_text()
    assert script.stat().st_mode & 0o777 == 0o700 and sets_file.stat().st_mode & 0o777 == 0o600
    job = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, job.stdout + job.stderr
    chain = ancestors.read_text()
    assert "sflow.cli.batch_job --set-file" in chain and secret not in chain


def test_backend_fields_with_expressions_are_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        'version: "0.1"\n'
        "variables:\n"
        "  PARTITION: {value: debug}\n"
        "  HOURS: {value: 2}\n"
        "backends:\n"
        "  - name: cluster\n"
        "    type: slurm\n"
        "    partition: ${{ variables.PARTITION }}\n"
        '    time: "${{ variables.HOURS }}:00:00"\n'
        "    job_name: ${{ workflow.name }}-job\n"
        "workflow:\n"
        "  name: rendered\n"
        "  tasks:\n"
        "    - name: t\n"
        "      script: [hostname]\n"
    )
    script = tmp_path / "job.sbatch"
    args = ([], None, None, None, None, None, str(script), False, "out")
    assert batch_command([str(wf)], ["PARTITION=gpu"], *args) == 0
    lines = sbatch_lines(script.read_text())
    assert lines[0].startswith("#SBATCH --comment=sflow-batch:")  # finds the job after a Ctrl-C
    assert lines[1:4] == ["#SBATCH --job-name rendered-job", "#SBATCH -p gpu", "#SBATCH -t 2:00:00"]


def test_artifacts_and_missable_tasks_reach_the_jobs_run(wf: Path, tmp_path: Path) -> None:
    wf.write_text(WORKFLOW.replace("backends:", "artifacts:\n  data: {uri: fs:///tmp/d}\nbackends:", 1))
    script = tmp_path / "job.sbatch"
    args = ([], None, None, None, None, None, str(script), False, "out")
    code = batch_command(
        [str(wf)], [], *args, artifacts=["data=fs:///scratch/d"], missable_tasks=["a", "p_*"]
    )
    assert code == 0
    exec_line = script.read_text().splitlines()[-1]
    words = shlex.split(exec_line)
    assert words[words.index("--artifact") + 1] == "data=fs:///scratch/d"
    assert [words[i + 1] for i, w in enumerate(words) if w == "--missable-tasks"] == ["a", "p_*"]


LOCAL_ONLY = """\
version: "0.1"
backends:
  - name: cluster
    type: slurm
  - name: here
    type: local
    default: true
workflow:
  name: laptop
  tasks:
    - name: a
      script: ["true"]
"""


def test_a_workflow_with_no_task_on_slurm_is_written_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ([], [], None, None, None, None, None, "job.sbatch", False, "out")
    (tmp_path / "local.yaml").write_text(LOCAL_ONLY)
    assert batch_command(["local.yaml"], *args) == 0
    err = capsys.readouterr().err
    assert "sflow: warning: no task of workflow 'laptop' runs on a slurm backend" in err
    assert "add a backend with `type: slurm`" in err

    (tmp_path / "slurm.yaml").write_text(
        LOCAL_ONLY.replace("      script", "      backend: cluster\n      script")
    )
    assert batch_command(["slurm.yaml"], *args) == 0
    assert "warning" not in capsys.readouterr().err
