"""Which tasks a resumed run keeps, and why the others run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sflow.errors import UserError
from sflow.record.resume import EarlierRun, EarlierTask, check_resumable, decide


def earlier(tasks: dict[str, tuple[str, str]], tmp_path: Path) -> EarlierRun:
    """An earlier run whose tasks ended in `state` with fingerprint `fp` (and have a folder)."""
    return EarlierRun(
        run_id="r1",
        run_dir=tmp_path,
        workflow="wf",
        tasks={
            name: EarlierTask(state=state, fingerprint=fp, origin_run="r1", origin_dir=tmp_path / name)
            for name, (state, fp) in tasks.items()
        },
        finished=True,
    )


def choose(run: EarlierRun, prints, deps, services=()):
    order = list(prints)
    out = decide(run, prints, deps, order, set(services))
    return {name: (d.keep, d.reason) for name, d in out.items()}


def test_succeeded_and_unchanged_is_kept_the_failed_and_what_follows_runs(tmp_path):
    run = earlier({"a": ("succeeded", "A"), "b": ("failed", "B"), "c": ("cancelled", "C")}, tmp_path)
    got = choose(run, {"a": "A", "b": "B", "c": "C"}, {"b": ["a"], "c": ["b"]})
    assert got == {
        "a": (True, "succeeded, unchanged"),
        "b": (False, "failed"),
        "c": (False, "never started"),
    }


def test_a_changed_task_runs_again_with_everything_downstream(tmp_path):
    run = earlier({n: ("succeeded", n.upper()) for n in "abcd"}, tmp_path)
    got = choose(run, {"a": "A", "b": "B2", "c": "C", "d": "D"}, {"b": ["a"], "c": ["b"], "d": ["a"]})
    assert got["a"] == (True, "succeeded, unchanged")
    assert got["b"] == (False, "changed")
    assert got["c"] == (False, "after 'b', which runs again")
    assert got["d"] == (True, "succeeded, unchanged")


def test_new_tasks_and_tasks_without_a_recorded_fingerprint_run(tmp_path):
    run = earlier({"a": ("succeeded", None)}, tmp_path)
    got = choose(run, {"a": "A", "new": "N"}, {})
    assert got == {"a": (False, "no fingerprint recorded"), "new": (False, "new task")}


def test_a_service_needed_by_a_rerun_task_starts_again_but_its_other_users_are_kept(tmp_path):
    run = earlier(
        {
            "prep": ("succeeded", "P"),
            "server": ("succeeded", "S"),
            "client_ok": ("succeeded", "OK"),
            "client_bad": ("failed", "BAD"),
        },
        tmp_path,
    )
    got = choose(
        run,
        {"prep": "P", "server": "S", "client_ok": "OK", "client_bad": "BAD"},
        {"server": ["prep"], "client_ok": ["server"], "client_bad": ["server"]},
        services=["server"],
    )
    assert got["server"] == (False, "service needed by 'client_bad'")
    assert got["client_ok"] == (True, "succeeded, unchanged")  # the service only serves it
    assert got["prep"] == (True, "succeeded, unchanged")  # not a service: its result is on disk


def test_a_service_a_restarted_service_needs_starts_too(tmp_path):
    run = earlier({"db": ("succeeded", "D"), "api": ("succeeded", "A"), "job": ("failed", "J")}, tmp_path)
    got = choose(
        run, {"db": "D", "api": "A", "job": "J"}, {"api": ["db"], "job": ["api"]}, services=["db", "api"]
    )
    assert got["api"] == (False, "service needed by 'job'")
    assert got["db"] == (False, "service needed by 'api'")


def test_a_killed_run_is_read_from_its_event_log(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r1", "workflow": "wf"}))
    plan = {"tasks": {n: {"deps": [], "fingerprint": n.upper()} for n in ("a", "b", "c")}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    events = [
        {"task": "a", "state": "running", "attempt": 1},
        {"task": "b", "state": "running", "attempt": 1},
        {"task": "a", "state": "succeeded", "attempt": 1, "reason": "exit code 0"},
    ]
    text = "\n".join(json.dumps(e) for e in events) + '\n{"task": "c", "sta'  # cut mid-line
    (tmp_path / "events.jsonl").write_text(text)
    run = EarlierRun.load(tmp_path)
    assert not run.finished
    assert run.tasks["a"].state == "succeeded" and run.tasks["a"].origin_dir == tmp_path / "a"
    got = choose(run, {"a": "A", "b": "B", "c": "C"}, {})
    assert got == {
        "a": (True, "succeeded, unchanged"),
        "b": (False, "unfinished (its run ended without a word)"),
        "c": (False, "never started"),
    }


def test_a_kept_task_of_a_resumed_run_points_at_the_run_that_made_it(tmp_path):
    first = tmp_path / "r1"
    (first / "a").mkdir(parents=True)
    second = tmp_path / "r2"
    second.mkdir()
    (second / "a").symlink_to("../r1/a")
    summary = {"workflow": "wf", "tasks": {"a": {"state": "succeeded", "kept_from": "r1"}}}
    (second / "summary.json").write_text(json.dumps(summary))
    task = EarlierRun.load(second).tasks["a"]
    assert task.origin_run == "r1" and task.origin_dir == first / "a"


def test_a_run_of_another_workflow_or_one_still_running_cannot_be_resumed(tmp_path):
    run = earlier({}, tmp_path)
    with pytest.raises(UserError, match="is of workflow 'wf', not 'other'"):
        check_resumable(run, "other", alive=False)
    run.finished = False
    with pytest.raises(UserError, match="still running"):
        check_resumable(run, "wf", alive=True)
    check_resumable(run, "wf", alive=False)  # killed: resumable
