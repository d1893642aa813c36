"""The public surface: what `import sflow` offers, and that user code calling it type-checks.

`sflow.__all__` is the list a user (and a type checker) sees; this test is where a change to
it is made on purpose. The package ships `py.typed`, so `mypy --strict` on user code sees the
real signatures: a decorated task keeps its own, `run_yaml` returns a `YamlRunResult`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sflow

PUBLIC = [
    "WorkflowFailed",
    "YamlRunResult",
    "__version__",
    "config",
    "flow",
    "run_yaml",
    "run_yaml_async",
]

USER_CODE = """
    import asyncio

    import sflow
    import sflow.flow
    from sflow.flow import Flow

    sflow.config(environments={"here": {"executor": "local"}}, default_environment="here")

    with sflow.flow("etl", inputs={"n": 4}) as f:

        @f.task
        def numbers(n: int) -> list[int]:
            return list(range(n))

        @f.task(map="numbers", retries=1)
        async def square(x: int) -> int:
            return x * x

    same: Flow = f
    first: int = numbers(3)[0]

    try:
        result = sflow.run_yaml("wf.yaml", sets={"EPOCHS": 3}, output_dir="out")
        ok: bool = result.ok
    except sflow.WorkflowFailed as exc:
        print(exc.result.run_dir)
    except sflow.flow.TaskTimeout as timeout:
        print(timeout.task)


    async def main() -> None:
        later = await sflow.run_yaml_async(["wf.yaml"])
        print(later.states)


    asyncio.run(main())
"""

MISTAKES = """
    import sflow

    with sflow.flow("etl") as f:

        @f.task
        def numbers(n: int) -> list[int]:
            return list(range(n))

    wrong: str = numbers(3)
    missing = sflow.run_yaml("wf.yaml").no_such_field
"""


def test_all_lists_the_public_names_and_each_resolves() -> None:
    assert sorted(sflow.__all__) == PUBLIC
    for name in sflow.__all__:
        assert getattr(sflow, name) is not None
        assert name in dir(sflow)


def test_the_flow_module_is_the_flow_constructor() -> None:
    with sflow.flow("surface", record=False) as f:

        @f.task
        def one() -> int:
            return 1

    assert isinstance(f, sflow.flow.Flow) and f.result.one == 1
    assert issubclass(sflow.flow.TaskTimeout, TimeoutError)


def test_the_package_is_typed() -> None:
    assert (Path(sflow.__file__).parent / "py.typed").is_file()


def _mypy_strict(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    user = tmp_path / "user_code.py"
    user.write_text(textwrap.dedent(code), encoding="utf-8")
    config = tmp_path / "mypy.ini"  # the user's settings, not this repository's
    config.write_text("[mypy]\n", encoding="utf-8")
    cache = tmp_path / "cache"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            str(user),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_user_code_calling_the_public_api_passes_mypy_strict(tmp_path: Path) -> None:
    proc = _mypy_strict(tmp_path, USER_CODE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_sees_the_real_signatures_not_any(tmp_path: Path) -> None:
    proc = _mypy_strict(tmp_path, MISTAKES)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'has type "list[int]", variable has type "str"' in proc.stdout
    assert '"YamlRunResult" has no attribute "no_such_field"' in proc.stdout
