"""`sflow.flow(..., resume=RUN)`: functions whose stored result is unchanged are not called again."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import sflow.flow
from sflow.engine import State
from sflow.errors import UserError

CALLS: list[str] = []


def one(n):
    CALLS.append("one")
    return n + 1


def one_edited(n):
    CALLS.append("one")
    return n + 2


def two(one):
    CALLS.append("two")
    return one * 10


def three_broken(two):
    CALLS.append("three")
    raise ValueError("step three is broken")


def three_fixed(two):
    CALLS.append("three")
    return two + 3


def four(three):
    CALLS.append("four")
    return three * 2


def _run(first=one, third=three_fixed, n=1, resume=None):
    """Four steps in a chain; the flow object, whether or not it failed."""
    CALLS.clear()
    f = sflow.flow("chain", inputs={"n": n}, resume=resume)
    try:
        with f:
            f.task(name="one")(first)
            f.task(name="two")(two)
            f.task(name="three")(third)
            f.task(name="four")(four)
    except ValueError:
        pass
    return f


def _plan(run_dir: Path) -> dict:
    return json.loads((run_dir / "plan.json").read_text())["tasks"]


def test_a_fixed_step_resumes_after_the_steps_that_succeeded():
    failed = _run(third=three_broken)
    assert CALLS == ["one", "two", "three"] and failed.states["three"] is State.FAILED
    fixed = _run(third=three_fixed, resume="latest")
    assert CALLS == ["three", "four"]  # one and two were not called again
    assert dict(fixed.result) == {"one": 2, "two": 20, "three": 23, "four": 46}
    assert all(s is State.SUCCEEDED for s in fixed.states.values())
    assert fixed.run_dir is not None and failed.run_dir is not None
    plan = _plan(fixed.run_dir)
    assert plan["one"]["resume"] == "keep: succeeded, unchanged"
    assert plan["two"]["resume"] == "keep: succeeded, unchanged"
    assert plan["three"]["resume"] == "run: failed (ValueError: step three is broken)"
    assert plan["four"]["resume"] == "run: never started"
    summary = json.loads((fixed.run_dir / "summary.json").read_text())
    assert summary["tasks"]["one"]["kept_from"] == failed.run_dir.name
    assert (fixed.run_dir / "one" / "result.pkl").is_file()  # linked to the run that made it
    log = (fixed.run_dir / "sflow.log").read_text()
    assert f"resuming run {failed.run_dir.name}" in log and "resume: keep two (succeeded, unchanged)" in log
    assert "globals, closure variables, functions it calls and files not in reads= are not compared" in log


def test_an_edited_first_step_runs_everything_again():
    _run()
    assert CALLS == ["one", "two", "three", "four"]
    again = _run(first=one_edited, resume="latest")
    assert CALLS == ["one", "two", "three", "four"]
    assert again.result.four == (3 * 10 + 3) * 2
    assert again.run_dir is not None
    plan = _plan(again.run_dir)
    assert plan["one"]["resume"] == "run: changed"
    assert plan["two"]["resume"] == "run: changed"  # its own code is the same; its input is not


def test_a_changed_input_runs_what_takes_it_and_what_follows():
    _run(n=1)
    _run(n=1, resume="latest")
    assert CALLS == []  # nothing changed: nothing is called
    changed = _run(n=5, resume="latest")
    assert CALLS == ["one", "two", "three", "four"] and changed.result.one == 6


def test_a_result_that_cannot_be_pickled_is_computed_again():
    def build(resume=None):
        CALLS.clear()
        with sflow.flow("lock", resume=resume) as f:

            @f.task
            def make():
                CALLS.append("make")
                return threading.Lock()

            @f.task
            def use(make):
                CALLS.append("use")
                return make.locked()

        return f

    first = build()
    assert first.run_dir is not None
    assert "make: result not stored" in (first.run_dir / "sflow.log").read_text()
    again = build(resume="latest")
    assert CALLS == ["make", "use"]
    assert again.run_dir is not None
    assert _plan(again.run_dir)["make"]["resume"] == "run: its result was not stored"


def test_resume_names_a_run_of_this_flow():
    _run()
    with (
        pytest.raises(UserError, match="no run of workflow 'other'"),
        sflow.flow("other", inputs={"n": 1}, resume="latest") as f,
    ):
        f.task(name="one")(one)


def test_resume_needs_the_run_record():
    with pytest.raises(sflow.flow.FlowDefinitionError, match="resume needs the run record"):
        sflow.flow("x", record=False, resume="latest")


def _counting(resume: str | None = None) -> sflow.flow.Flow:
    """`count` reads data.csv and the folder conf/ (declared); `total` takes its result."""
    CALLS.clear()
    with sflow.flow("files", resume=resume) as f:

        @f.task(reads=["data.csv", Path("conf")])
        def count():
            CALLS.append("count")
            return len(Path("data.csv").read_text().splitlines())

        @f.task
        def total(count):
            CALLS.append("total")
            return count

    return f


def test_a_file_declared_in_reads_runs_the_task_again_when_its_content_changes():
    Path("data.csv").write_text("1\n2\n")
    Path("conf").mkdir()
    (Path("conf") / "a.toml").write_text("x = 1\n")
    _counting()
    _counting(resume="latest")
    assert CALLS == []  # same content: kept
    Path("data.csv").write_text("1\n2\n")  # written again, same bytes: still kept
    _counting(resume="latest")
    assert CALLS == []
    Path("data.csv").write_text("1\n2\n3\n")
    changed = _counting(resume="latest")
    assert CALLS == ["count", "total"] and changed.result.total == 3
    assert changed.run_dir is not None and _plan(changed.run_dir)["count"]["resume"] == "run: changed"


def test_a_file_added_to_a_folder_in_reads_runs_the_task_again():
    Path("data.csv").write_text("1\n")
    Path("conf").mkdir()
    _counting()
    (Path("conf") / "b.toml").write_text("y = 2\n")
    _counting(resume="latest")
    assert CALLS == ["count", "total"]
    _counting(resume="latest")
    assert CALLS == []
