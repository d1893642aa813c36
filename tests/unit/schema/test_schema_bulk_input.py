"""`--bulk-input CSV`: rows of nv-sflow's bulk CSV format as workflow files and variable values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.errors import SpecError, UserError
from sflow.schema.bulk_input import pick, read_rows, resolve_row, select

BACKEND = """
    version: "0.1"
    variables:
      NODES: {value: 1}
      MODEL: {value: small}
    artifacts:
      - name: WEIGHTS
        uri: fs:///models/default
    """
WORKFLOW = """
    version: "0.1"
    workflow:
      name: wf
      variables:
        TP: {value: 1}
      tasks:
        - name: t
          script: ["echo ${{ variables.MODEL }} ${{ variables.TP }}"]
    """


@pytest.fixture
def csv_file(tmp_path: Path, write: Callable[..., Path]) -> Callable[[str], Path]:
    """csv_file(text) -> a CSV beside `backend.yaml` and `sub/workflow.yaml`."""
    write(BACKEND, "backend.yaml")
    (tmp_path / "sub").mkdir()
    write(WORKFLOW, "sub/workflow.yaml")

    def _csv(text: str) -> Path:
        path = tmp_path / "jobs.csv"
        path.write_text(text.lstrip("\n"), encoding="utf-8")
        return path

    return _csv


def test_a_row_names_files_relative_to_the_csv_and_sets_its_columns(csv_file: Callable[[str], Path]) -> None:
    path = csv_file(
        "sflow_config_file,NODES,TP,MODEL,WEIGHTS,job_name,missable_tasks\n"
        'backend.yaml sub/workflow.yaml,2,4,,fs:///models/big,first,"a b"\n'
    )
    row = resolve_row(path, read_rows(path)[0])
    base = path.parent.resolve()
    assert row.files == [str(base / "backend.yaml"), str(base / "sub" / "workflow.yaml")]
    assert row.sets == ["NODES=2", "TP=4"]  # the empty MODEL cell keeps the workflow's value
    assert row.artifacts == ["WEIGHTS=fs:///models/big"]
    assert row.missable == ["a", "b"]
    assert (row.job_name, row.name) == ("first", "first")


def test_commas_separate_files_too(csv_file: Callable[[str], Path]) -> None:
    path = csv_file('sflow_config_file\n"backend.yaml,sub/workflow.yaml"\n')
    assert [Path(f).name for f in resolve_row(path, read_rows(path)[0]).files] == [
        "backend.yaml",
        "workflow.yaml",
    ]


def test_the_command_line_files_come_first_and_its_values_win(
    csv_file: Callable[[str], Path], tmp_path: Path
) -> None:
    path = csv_file("sflow_config_file,NODES,TP\nbackend.yaml sub/workflow.yaml,2,4\n")
    backend = str(tmp_path / "backend.yaml")
    row = resolve_row(path, read_rows(path)[0], cli_files=[backend], cli_sets=["NODES=8"])
    assert row.files == [str(Path(backend).resolve()), str((tmp_path / "sub" / "workflow.yaml").resolve())]
    assert row.sets == ["TP=4", "NODES=8"]


def test_a_column_naming_nothing_of_the_workflow_names_the_csv_line(csv_file: Callable[[str], Path]) -> None:
    path = csv_file("sflow_config_file,TP,NUM_GPUS\nbackend.yaml sub/workflow.yaml,2,\nbackend.yaml,,4\n")
    rows = read_rows(path)
    resolve_row(path, rows[0])  # an empty cell of an unknown column is fine
    with pytest.raises(SpecError) as err:
        resolve_row(path, rows[1])
    assert err.value.where == f"{path}:3"
    assert err.value.field == "NUM_GPUS"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("config,NODES\na.yaml,1\n", 1, "'sflow_config_file' column"),
        ("sflow_config_file,NODES\n", 2, "no data rows"),
        ("sflow_config_file,NODES\nbackend.yaml,1\n,2\n", 3, "no workflow file"),
    ],
)
def test_a_malformed_csv_is_refused_at_its_line(
    csv_file: Callable[[str], Path], text: str, line: int, words: str
) -> None:
    path = csv_file(text)
    with pytest.raises(SpecError, match=words) as err:
        read_rows(path)
    assert err.value.where == f"{path}:{line}"


def test_a_missing_csv_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such bulk-input file"):
        read_rows(tmp_path / "nope.csv")


def test_rows_count_from_one_and_from_the_end(csv_file: Callable[[str], Path]) -> None:
    path = csv_file("sflow_config_file,NODES\nbackend.yaml,1\nbackend.yaml,2\nbackend.yaml,3\n")
    rows = read_rows(path)
    assert [pick(rows, n, path).cells["NODES"] for n in (1, 3, -1, -3)] == ["1", "3", "3", "1"]
    for number in (0, 4, -4):
        with pytest.raises(UserError, match="has 3 data row"):
            pick(rows, number, path)


@pytest.mark.parametrize(
    ("selectors", "rows"),
    [
        ((), [1, 2, 3, 4, 5, 6]),
        (("2",), [2]),
        (("-1",), [6]),
        (("3", "1"), [1, 3]),
        (("1,3,5",), [1, 3, 5]),
        (("1:4",), [1, 2, 3]),
        (("[1:4]",), [1, 2, 3]),
        (("1:6:2",), [1, 3, 5]),
        (("-2:",), [5, 6]),
        (("4:",), [4, 5, 6]),
        (("2", "1:3"), [1, 2]),
    ],
)
def test_row_selectors(selectors: tuple[str, ...], rows: list[int]) -> None:
    assert select(selectors, 6) == rows


@pytest.mark.parametrize("bad", ["0", "7", "-7", "x", "1:2:3:4", "1:5:0"])
def test_bad_row_selectors_are_user_errors(bad: str) -> None:
    with pytest.raises(UserError, match="--row"):
        select([bad], 6)
