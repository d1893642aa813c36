"""The run report from run directories written by hand: edge cases of the graph, the timeline,
escaping and monitor data. The report of real runs, in a real browser, is tests/e2e/test_report_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

from sflow.record.report import render_report
from sflow.record.report_svg import Bar, collapse, layered, timeline, worst


def _run_dir(tmp_path: Path, tasks: dict[str, dict], events: list[dict], plan: dict | None = None) -> Path:
    run = tmp_path / "20260101-000000-000-wf-abcd"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": run.name, "workflow": "wf", "started": 100.0}))
    (run / "sflow.log").write_text("")
    plan = plan or {name: {"task": name, "deps": entry.pop("deps", [])} for name, entry in tasks.items()}
    (run / "plan.json").write_text(json.dumps({"tasks": plan}))
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = {"workflow": "wf", "ok": False, "elapsed": 5.0, "tasks": tasks}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_a_log_line_with_markup_reaches_the_page_as_text(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("fine\n<script>alert('x')</script> & <img src=x onerror=alert(1)>\n\x1b]0;title\x07done\n")
    run = _run_dir(tmp_path, {"a": {"state": "failed", "attempts": 1, "exit_code": 3, "log": str(log)}}, [])
    page = render_report(run)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    assert page.count("<script>") == 1  # the page's own filter script, nothing else


def test_a_task_name_with_markup_is_escaped_in_graph_table_and_timeline(tmp_path):
    name = 'x"><svg onload=alert(1)>'
    events = [
        {"time": 101.0, "task": name, "state": "running", "attempt": 1, "nodes": ["n1"], "gpus": []},
        {"time": 102.0, "task": name, "state": "succeeded", "attempt": 1},
    ]
    run = _run_dir(tmp_path, {name: {"state": "succeeded", "attempts": 1}}, events)
    page = render_report(run)
    assert "<svg onload" not in page and "&lt;svg onload=alert(1)&gt;" in page


def test_graph_layers_follow_the_longest_dependency_chain():
    deps = {"a": [], "b": ["a"], "c": ["a", "b"], "d": []}
    graph = layered(dict.fromkeys(deps, "succeeded"), deps)
    depth = {n.name: n.y for n in graph.nodes}
    assert depth["a"] == depth["d"] < depth["b"] < depth["c"]
    assert {(a.name, b.name) for a, b in graph.edges} == {("a", "b"), ("a", "c"), ("b", "c")}


def test_a_large_graph_shows_each_task_once_in_the_state_of_its_worst_replica(tmp_path):
    tasks = {"prep": {"state": "succeeded", "attempts": 1}}
    plan = {"prep": {"task": "prep", "deps": []}}
    for i in range(200):
        tasks[f"train_{i}"] = {"state": "failed" if i == 7 else "succeeded", "attempts": 1}
        plan[f"train_{i}"] = {"task": "train", "deps": ["prep"]}
    run = _run_dir(tmp_path, tasks, [], plan)
    page = render_report(run)
    assert page.count('class="node ') == 2
    assert 'data-task="train" data-state="failed"' in page and "train \u00d7200" in page
    assert page.count("<tr id=") == 201  # the table still has every task


def test_collapse_keeps_dependencies_between_groups_only():
    states = {"p": "succeeded", "t_0": "succeeded", "t_1": "cancelled", "r": "skipped"}
    deps = {"t_0": ["p"], "t_1": ["p", "t_0"], "r": ["t_0", "t_1"]}
    group = {"t_0": "t", "t_1": "t"}
    group_state, group_deps, members = collapse(states, deps, group)
    assert group_state == {"p": "succeeded", "t": "cancelled", "r": "skipped"}
    assert group_deps == {"p": [], "t": ["p"], "r": ["t"]} and members["t"] == ["t_0", "t_1"]
    assert worst(["succeeded", "pending"]) == "pending"


def test_timeline_has_a_lane_per_gpu_and_stacks_overlapping_attempts():
    two_gpus = (Bar("train", 1, "succeeded", 0.0, 10.0), ["n1 gpu 0", "n1 gpu 1"])
    cpu_a = (Bar("a", 1, "failed", 0.0, 4.0), ["n2"])
    cpu_b = (Bar("b", 1, "succeeded", 2.0, 6.0), ["n2"])
    cpu_c = (Bar("c", 1, "succeeded", 5.0, 8.0), ["n2"])  # after a ended: a's row again
    line = timeline([two_gpus, cpu_a, cpu_b, cpu_c])
    assert [lane.label for lane in line.lanes] == ["n1 gpu 0", "n1 gpu 1", "n2"]
    rows = {bar.task: bar.y for bar in line.bars if bar.task in "abc"}
    assert rows["a"] == rows["c"] < rows["b"]
    assert [b.task for b in line.bars].count("train") == 2
    widest = max(line.bars, key=lambda b: b.w)
    assert widest.task == "train" and widest.x == line.bars[0].x


def test_retried_attempts_and_an_attempt_cut_short_by_a_kill_are_on_the_timeline(tmp_path):
    events = [
        {"time": 101.0, "task": "a", "state": "running", "attempt": 1, "nodes": ["n1"], "gpus": [[0]]},
        {"time": 102.0, "task": "a", "state": "retrying", "attempt": 1, "exit_code": 1},
        {"time": 103.0, "task": "a", "state": "running", "attempt": 2, "nodes": ["n1"], "gpus": [[1]]},
        {"time": 104.0, "task": "a", "state": "succeeded", "attempt": 2},
    ]
    tasks = {"a": {"state": "succeeded", "attempts": 2, "nodes": ["n1"], "gpus": [[1]]}}
    tasks["b"] = {"state": "failed", "attempts": 1, "nodes": ["n1", "n2"], "gpus": [[0, 1], [0, 1]]}
    events += [
        {
            "time": 104.0,
            "task": "b",
            "state": "running",
            "attempt": 1,
            "nodes": ["n1", "n2"],
            "gpus": [[0], [1]],
        },
    ]
    run = _run_dir(tmp_path, tasks, events)
    page = render_report(run)
    assert 'class="bar st-retrying" data-task="a" data-attempt="1"' in page
    assert "<td>n1,n2</td><td>n1:0,1 n2:0,1</td>" in page
    assert page.count('data-task="b" data-attempt="1"') == 2  # n1 gpu 0 and n2 gpu 1, still running
    assert ">n2 gpu 1<" in page
    assert 'class="bar st-succeeded" data-task="a" data-attempt="2"' in page
    assert ">n1 gpu 0<" in page and ">n1 gpu 1<" in page


def test_monitor_csv_files_become_one_plot_per_numeric_column(tmp_path):
    run = _run_dir(tmp_path, {"a": {"state": "succeeded", "attempts": 1}}, [])
    (run / "monitor" / "train").mkdir(parents=True)  # <run>/monitor/<owner>/<node>.csv
    (run / "monitor" / "train" / "node1.csv").write_text(
        "time,gpu_util,mem_used,host\n0,10,100,n1\n1,80,200,n1\n2,95,300,n1\n"
    )
    page = render_report(run)
    assert "<b>gpu_util</b> (10 \u2013 95)" in page and "<b>mem_used</b> (100 \u2013 300)" in page
    assert "<b>host</b>" not in page  # not a number: no plot
    assert page.count("<polyline") == 2 and "monitor/train/node1.csv" in page


def test_no_monitor_section_without_monitor_data(tmp_path):
    run = _run_dir(tmp_path, {"a": {"state": "succeeded", "attempts": 1}}, [])
    assert "<h2>Monitor</h2>" not in render_report(run)


def test_a_map_items_retry_does_not_end_its_tasks_bar_on_the_timeline(tmp_path):
    events = [
        {"time": 101.0, "task": "m", "state": "running", "attempt": 1, "nodes": ["n1"], "gpus": []},
        {"time": 102.0, "task": "m", "item": 7, "attempt": 1, "state": "retrying", "reason": "boom"},
        {"time": 103.0, "task": "m", "item": 7, "attempt": 2, "state": "succeeded"},
        {"time": 109.0, "task": "m", "state": "succeeded", "attempt": 1},
    ]
    run = _run_dir(tmp_path, {"m": {"state": "succeeded", "attempts": 1, "nodes": ["n1"]}}, events)
    page = render_report(run)
    assert page.count('data-task="m" data-attempt="1"') == 1
    assert 'class="bar st-succeeded" data-task="m" data-attempt="1"' in page
