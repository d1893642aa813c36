"""What a plain install carries, and what importing sflow costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_plain_install_can_store_results_and_the_dispatch_extra_adds_the_callback_server():
    """A flow stores each result with cloudpickle (resume needs it), so a plain install carries it."""
    project = _project()
    plain = " ".join(project["dependencies"]).lower()
    extra = " ".join(project["optional-dependencies"]["dispatch"]).lower()
    assert "cloudpickle" in plain and "cloudpickle" not in extra
    assert "aiohttp" in extra and "aiohttp" not in plain
    assert project["scripts"]["sflow"] == "sflow.console:run"


def test_s3_extra_carries_boto3_and_only_a_run_that_uploads_imports_it():
    project = _project()
    assert "boto3" not in " ".join(project["dependencies"]).lower()
    assert any(dep.startswith("boto3") for dep in project["optional-dependencies"]["s3"])
    loaded = _modules_after("import sflow.workflow.run, sflow.workflow.dry_run, sflow.cli.main")
    assert not {"boto3", "botocore"} & loaded


def test_samples_ship_in_the_wheel_layout():
    """The samples live inside the package folder, which the wheel carries whole."""
    from sflow.cli.sample import SAMPLES

    assert SAMPLES.is_relative_to(REPO / "src" / "sflow") and list(SAMPLES.rglob("*.yaml"))


def _printed_after(code: str) -> str:
    """What a fresh interpreter prints running `code`."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def _modules_after(code: str) -> set[str]:
    return set(_printed_after(f"{code}\nimport sys; print(' '.join(sys.modules))").split())


def test_import_sflow_is_light():
    loaded = _modules_after("import sflow")
    heavy = {"pydantic", "jinja2", "rich", "yaml", "aiohttp", "cloudpickle", "asyncio", "click"}
    assert not heavy & loaded
    assert not {"sflow.flow", "sflow.dispatch"} & loaded  # `sflow.flow`, `sflow.config`: on first use
    assert "sflow.record.report" not in loaded


def test_cli_help_loads_no_heavy_module():
    loaded = _modules_after("from sflow.cli import main")
    assert not {"pydantic", "jinja2", "rich", "aiohttp", "cloudpickle", "sflow.record.report"} & loaded


@pytest.mark.parametrize("script, jinja", [("echo plain", False), ("echo ${{ workflow.name }}", True)])
def test_a_run_imports_jinja_only_for_a_file_with_an_expression_and_never_pydantic(
    tmp_path: Path, script: str, jinja: bool
):
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        f'version: "0.1"\nworkflow:\n  name: one\n  tasks:\n    - name: t\n      script: ["{script}"]\n'
    )
    run = (
        "from sflow.cli.main import main\ntry:\n"
        f"    main(['run', '-q', '-f', {str(workflow)!r}, '--output-dir', {str(tmp_path / 'runs')!r}])\n"
        "except SystemExit as exit:\n    assert exit.code == 0"
    )
    loaded = _modules_after(run)
    assert ("jinja2" in loaded) is jinja
    assert "pydantic" not in loaded  # the models are msgspec Structs: no schema to build at start


def _one_task_run(tmp_path: Path, quiet: bool = True) -> str:
    """Code running `sflow run -q` of a one-task workflow as `bench_engine` runs it (or, not
    `quiet`, without `-q`: with its progress lines, as `bench_engine` runs it too)."""
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        'version: "0.1"\nworkflow:\n  name: one\n  tasks:\n    - name: t\n      script: ["true"]\n'
    )
    args = ["run", *(["-q"] if quiet else []), "-f", str(workflow), "--output-dir", str(tmp_path / "runs")]
    return (
        f"from sflow.cli.main import main\ntry:\n    main({args!r})\n"
        "except SystemExit as exit:\n    assert exit.code == 0"
    )


def _one_task_run_modules(tmp_path: Path) -> set[str]:
    """The modules loaded by `sflow run -q` of a one-task workflow."""
    return _modules_after(_one_task_run(tmp_path))


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "progress"])
def test_a_one_task_run_builds_its_records_without_generating_code(tmp_path: Path, quiet: bool):
    """`@dataclass` writes and compiles source for each class it makes, at import; the records a run
    loads are msgspec Structs, made in C. LaunchContext stays a dataclass: a subclass adds to it."""
    listing = (
        "import sys\nprint('records:', *(f'{name}.{key}' for name, module in list(sys.modules.items())"
        " if name.startswith('sflow.') for key, value in vars(module).items()"
        " if isinstance(value, type) and value.__module__ == name and '__dataclass_fields__' in vars(value)))"
    )
    out = _printed_after(f"{_one_task_run(tmp_path, quiet)}\n{listing}")
    records = out.rpartition("records:")[2]  # after the progress lines
    assert set(records.split()) == {"sflow.launchers.base.LaunchContext"}


def test_a_local_one_task_run_loads_no_slurm_monitor_or_upload_module(tmp_path: Path):
    """Their imports sit where they are used, so a local run does not pay for them."""
    loaded = _one_task_run_modules(tmp_path)
    slurm = {"sflow.launchers.srun", "sflow.slurm.watcher", "sflow.slurm.accounting", "sflow.slurm.commands"}
    slurm |= {"sflow.slurm.flags", "sflow.backends.slurm", "sflow.backends.salloc"}
    assert not slurm & loaded
    assert not {"sflow.monitor.sampler", "zipfile", "tempfile", "csv", "boto3"} & loaded
    assert not {"shutil", "bz2", "lzma"} & loaded  # a task's program is found on PATH without shutil
    assert not {"sflow.workflow.outputs", "sflow.schema.templates"} & loaded  # a task with outputs only
    assert "sflow.workflow.s3" not in loaded  # a run that uploads only


def test_a_one_task_run_read_by_the_fast_reader_loads_no_pyyaml(tmp_path: Path):
    """`script: ["true"]` is read by the fast reader: PyYAML is imported only for what it declines."""
    loaded = _one_task_run_modules(tmp_path)
    assert not {"yaml", "jinja2", "rich"} & loaded


def test_a_quiet_run_without_probes_or_monitors_loads_none_of_their_modules(tmp_path: Path):
    loaded = _one_task_run_modules(tmp_path)
    assert not {m for m in loaded if m.startswith("sflow.probes")}
    assert "sflow.cli.progress" not in loaded  # -q: nothing is shown
    assert "sflow.workflow.monitors" not in loaded  # no monitor either
    assert not {"secrets", "random"} & loaded  # a run id's random suffix is os.urandom's


def test_a_one_task_run_loads_no_other_command_nor_what_a_pipe_a_result_or_an_upload_needs(
    tmp_path: Path,
):
    """Each command's module loads when it is called; what a broken pipe, a Python function's
    result or an upload's file matching needs loads with its first use."""
    loaded = _one_task_run_modules(tmp_path)
    others = {"sflow.cli.batch_commands", "sflow.cli.file_commands", "sflow.cli.record_commands"}
    assert "sflow.cli.run_commands" in loaded and not others & loaded
    assert not {"sflow.cli.streams", "sflow.workflow.results", "glob"} & loaded
