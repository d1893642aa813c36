"""Sweeps end to end: replicas of a Cartesian product, their environment, outputs parsed from their
logs, the sweep table in summary.json and `<task>.outputs.csv`, and sequential replicas."""

from __future__ import annotations

import csv
import itertools
import json

SWEEP = """
version: "0.1"
variables:
  A: {value: 1, type: integer, domain: [1, 2]}
  B: {value: x, domain: [x, y, z]}
workflow:
  name: sweep
  tasks:
    - name: task
      replicas:
        variables: [A, B]
        policy: POLICY
      script:
        - echo "index=${SFLOW_REPLICA_INDEX} a=${A} b=${B} name=${SFLOW_TASK_NAME}"
        - SLEEP
        - echo "score=$(( A * 10 + SFLOW_REPLICA_INDEX ))"
        - echo "label_${B}=${B}${{ variables.A }}"
      outputs:
        - {name: score, pattern: "score=(\\\\d+)", type: integer}
        - {name: label, pattern: "label_${{ variables.B }}=(\\\\S+)"}
    - name: collect
      depends_on: [task]
      script:
        - ls "$SFLOW_WORKFLOW_OUTPUT_DIR"/task_*/outputs.json | wc -l
        - cat "$SFLOW_WORKFLOW_OUTPUT_DIR/task.outputs.csv"
"""


def sweep_yaml(policy: str = "parallel", sleep: float = 0.0) -> str:
    return SWEEP.replace("POLICY", policy).replace("SLEEP", f"sleep {sleep}")


def test_two_by_three_sweep_with_outputs(sflow):
    wf = sflow.write("sweep.yaml", sweep_yaml())
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    summary = done.summary()
    points = list(itertools.product([1, 2], ["x", "y", "z"]))
    names = [f"task_{a}_{b}" for a, b in points]  # a sweep's replicas are named by their values
    assert list(summary["tasks"]) == [*names, "collect"]
    for index, (name, (a, b)) in enumerate(zip(names, points, strict=True)):
        log = (run_dir / name / f"{name}.log").read_text()
        assert log.startswith(f"index={index} a={a} b={b} name={name}\n"), log
        outputs = {"score": a * 10 + index, "label": f"{b}{a}"}
        assert json.loads((run_dir / name / "outputs.json").read_text()) == outputs
        task = summary["tasks"][name]
        assert task["replica_index"] == index and task["sweep"] == {"A": a, "B": b}
        assert task["outputs"] == outputs
    # the dependent waited for every replica
    collect = summary["tasks"]["collect"]
    assert collect["start"] >= max(summary["tasks"][n]["end"] for n in names)
    collected = (run_dir / "collect" / "collect.log").read_text()
    # one table: in summary.json and as CSV
    rows = [
        {"replica_index": i, "A": a, "B": b, "score": a * 10 + i, "label": f"{b}{a}"}
        for i, (a, b) in enumerate(points)
    ]
    table = summary["sweeps"]["task"]
    assert table["rows"] == rows
    assert table["csv"] == str(run_dir / "task.outputs.csv")
    table_text = (run_dir / "task.outputs.csv").read_text()
    assert list(csv.DictReader(table_text.splitlines())) == [
        {k: str(v) for k, v in row.items()} for row in rows
    ]
    # the dependent saw every outputs.json and the whole table
    assert collected == "6\n" + table_text


def test_sweep_domains_from_the_command_line(sflow):
    wf = sflow.write("sweep.yaml", sweep_yaml())
    done = sflow("run", "-f", str(wf), "--set", "A=[5,6,7]", "--set", "B=[p, q]")
    assert done.code == 0, done.err
    summary = done.summary()
    expected = [(i, a, b) for i, (a, b) in enumerate(itertools.product([5, 6, 7], ["p", "q"]))]
    rows = summary["sweeps"]["task"]["rows"]
    assert [(r["replica_index"], r["A"], r["B"]) for r in rows] == expected
    assert [r["score"] for r in rows] == [a * 10 + i for i, a, _ in expected]
    assert [r["label"] for r in rows] == [f"{b}{a}" for _, a, b in expected]
    with open(done.run_dir() / "task.outputs.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    assert "task_7_q" in summary["tasks"] and len(summary["tasks"]) == 7


def test_sequential_replicas_run_one_at_a_time(sflow):
    wf = sflow.write("sweep.yaml", sweep_yaml("sequential", sleep=0.2))
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    tasks = done.summary()["tasks"]
    names = [f"task_{a}_{b}" for a, b in itertools.product([1, 2], ["x", "y", "z"])]
    spans = [(tasks[name]["start"], tasks[name]["end"]) for name in names]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans
    assert spans[-1][1] - spans[0][0] >= 6 * 0.2
    assert len(done.summary()["sweeps"]["task"]["rows"]) == 6


def test_missing_output_is_null_with_a_note(sflow):
    wf = sflow.write(
        "missing.yaml",
        """
        version: "0.1"
        workflow:
          name: missing
          tasks:
            - name: t
              script: ["echo loss=abc"]
              outputs:
                - {name: loss, pattern: "loss=(\\\\S+)", type: float}
                - {name: acc, pattern: "acc=(\\\\S+)"}
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    assert json.loads((run_dir / "t" / "outputs.json").read_text()) == {"loss": None, "acc": None}
    notes = (run_dir / "sflow.log").read_text()
    assert "output 'loss': 'abc' is not float" in notes and "output 'acc': pattern" in notes
    assert "sweeps" not in done.summary()


def test_a_task_named_like_a_replica_is_an_error(sflow):
    sflow.write(
        "clash.yaml",
        """
        version: "0.1"
        variables:
          B: {value: x, domain: [x, y, z]}
        workflow:
          name: clash
          tasks:
            - name: task
              replicas: {variables: [B]}
              script: ["echo $B"]
            - name: task_z
              script: ["echo plain"]
            - name: task_w
              script: ["echo plain too"]
        """,
    )
    done = sflow("run", "clash.yaml")
    assert done.code == 2
    assert (
        "sflow: error: clash.yaml:10: workflow.tasks[1].name: task name 'task_z' is also the name of "
        "replica 2 of task 'task' (at clash.yaml:7); rename one of them"
    ) in done.err
    assert sflow("run", "clash.yaml", "--set", "B=[x,y]").code == 0  # task_x, task_y: no clash


def test_every_output_type_the_spec_accepts_converts(sflow):
    sflow.write(
        "types.yaml",
        r"""
        version: "0.1"
        workflow:
          name: types
          tasks:
            - name: t
              script:
                - echo 'n=7 x=2.5 ok=yes s=some text'
                - echo 'items=[1, "b"]'
                - echo 'cfg={"lr":0.1}'
              outputs:
                - {name: n, pattern: 'n=(\d+)', type: int}
                - {name: x, pattern: 'x=(\S+)', type: float}
                - {name: ok, pattern: 'ok=(\S+)', type: bool}
                - {name: s, pattern: ' s=(.*)'}
                - {name: items, pattern: 'items=(.*)', type: list}
                - {name: cfg, pattern: 'cfg=(.*)', type: dict}
                - {name: any, pattern: 'cfg=(.*)', type: json}
                - {name: notlist, pattern: 'cfg=(.*)', type: list}
        """,
    )
    done = sflow("run", "types.yaml")
    assert done.code == 0, done.err
    outputs = json.loads((done.run_dir() / "t" / "outputs.json").read_text())
    assert outputs == {
        "n": 7,
        "x": 2.5,
        "ok": True,
        "s": "some text",
        "items": [1, "b"],
        "cfg": {"lr": 0.1},
        "any": {"lr": 0.1},
        "notlist": None,
    }
    assert (
        """output 'notlist': '{"lr":0.1}' is not a JSON list""" in (done.run_dir() / "sflow.log").read_text()
    )
    sflow.write(
        "bad.yaml",
        """
        version: "0.1"
        workflow:
          name: bad
          tasks:
            - name: t
              script: ["echo"]
              outputs:
                - {name: n, pattern: 'n=(\\\\d+)', type: decimal}
        """,
    )
    bad = sflow("run", "bad.yaml")
    assert bad.code == 2
    assert "bad.yaml:8: workflow.tasks[0].outputs[0].type: unknown output type 'decimal'" in bad.err


def test_task_variables_built_from_a_swept_variable_follow_the_sweep(sflow):
    wf = sflow.write(
        "sweepvars.yaml",
        """
        version: "0.1"
        variables:
          LR: {value: 1, domain: [1, 2, 3]}
        workflow:
          name: sweepvars
          tasks:
            - name: t
              replicas: {variables: [LR]}
              variables:
                ARGS: {value: "--lr ${{ variables.LR }}"}
              script: ['echo "$ARGS"']
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    logs = [(done.run_dir() / f"t_{lr}" / f"t_{lr}.log").read_text() for lr in (1, 2, 3)]
    assert logs == ["--lr 1\n", "--lr 2\n", "--lr 3\n"]


DERIVED = """
version: "0.1"
variables:
  LR: {value: 0.1, domain: [0.1, 0.2]}
  RUN: "lr_${{ variables.LR }}"
  OTHER: plain
workflow:
  name: derived
  variables:
    OUT: "${{ variables.RUN }}/ckpt"
  tasks:
    - name: train
      replicas:
        variables: [LR]
      script:
        - echo "env $RUN $OUT $OTHER"
        - echo "expr ${{ variables.RUN }} ${{ variables.OUT }} ${{ variables.OTHER }}"
    - name: after
      depends_on: [train]
      script:
        - echo "after $RUN $OUT ${{ variables.OUT }}"
"""


def test_variables_built_from_a_swept_one_follow_the_sweep(sflow):
    wf = sflow.write("derived.yaml", DERIVED)
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    for lr in ("0.1", "0.2"):
        name = f"train_{lr.replace('.', '_')}"
        log = (run_dir / name / f"{name}.log").read_text()
        assert log == f"env lr_{lr} lr_{lr}/ckpt plain\nexpr lr_{lr} lr_{lr}/ckpt plain\n"
    # a task outside the sweep sees the defaults
    assert (run_dir / "after" / "after.log").read_text() == "after lr_0.1 lr_0.1/ckpt lr_0.1/ckpt\n"
    dry = sflow("run", "--dry-run", "-f", str(wf))
    assert dry.code == 0, dry.err
    assert "expr lr_0.2 lr_0.2/ckpt plain" in dry.out
