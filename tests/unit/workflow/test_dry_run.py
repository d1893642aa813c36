"""The dry-run plan: its scripts are exactly what the run would render, however they are computed."""

from __future__ import annotations

import dataclasses
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest

import sflow.workflow.context
from sflow.errors import SpecError
from sflow.schema import WorkflowSpec, load_workflow
from sflow.workflow.context import ScriptRenderer, add_backends, base_context, render_script, task_scope
from sflow.workflow.dry_run import describe_plan, plan_data, planned_allocations, simulate_placement
from sflow.workflow.plan import expand

WORKFLOW = """
    version: "0.1"
    variables:
      X: {value: b, domain: [a, b, c]}
      N: 3
      L: [1, 2]
    artifacts:
      data: {uri: "fs://data/in.txt"}
    backends:
      - name: multi
        type: local
        nodes: 3
        gpus_per_node: 2
    workflow:
      name: wf
      variables:
        W: "${{ variables.N }}-w"
      tasks:
        - name: a
          script:
            - echo ${{ workflow.name }} ${{ variables.X }} ${{ variables.N + 1 }} ${{ variables.W }}
            - echo ${{ variables["X"] }} ${{ variables.X.domain }} ${{ artifacts.data.path }}
            - echo ${{ backends.multi.nodes | length }} ${{ replica_index }} ${{ variables | length }}
        - name: b
          depends_on: [a]
          variables:
            X: override
            Y: "${{ variables.X }}-y"
          script:
            - echo ${{ variables.X }} ${{ variables.Y }} ${{ workflow.name }} ${{ variables.N }}
            - echo ${{ task.a.nodes }} ${{ task.b.nodes }} ${{ task.b.gpus }}
        - name: s
          depends_on: [b]
          replicas:
            variables: [X]
          resources:
            gpus: {count: 1}
          script:
            - echo ${{ variables.X }} ${{ variables["X"] }} ${{ variables.N }} ${{ replica_index }}
            - echo ${{ workflow.name }} ${{ task.s_a.nodes }} ${{ task.s_a.gpus }}
        - name: seq
          depends_on: [s]
          replicas: {count: 3, policy: sequential}
          resources:
            nodes: {count: 2}
          script: |
            echo ${{ replica_index }} ${{ variables.X }} ${{ variables.N }}
            echo ${{ task.s_b.gpus }} ${{ task.seq_0.nodes if replica_index else "none" }}
        - name: tpl
          script:
            - "${% for n in backends.multi.nodes %}${{ n.name }} ${% endfor %}"
            - echo "${{ '}}' }}" ${{ workflow.name | upper }} ${/* a comment */}
        - name: plain
          script: [echo no expressions]
"""


@pytest.fixture
def load(tmp_path: Path) -> Any:
    def _load(text: str) -> WorkflowSpec:
        path = tmp_path / "wf.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return load_workflow([path])

    return _load


def _planned(spec: WorkflowSpec, tmp_path: Path) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Instances in order, their placements, and a fresh run-wide context."""
    ordered = expand(spec).in_order()
    context = base_context(spec, tmp_path, tmp_path / "run", write_artifacts=False)
    allocations = planned_allocations(spec, ordered, context)
    add_backends(context, spec, allocations)
    return ordered, simulate_placement(ordered, allocations), context


def _scripts_both_ways(spec: WorkflowSpec, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Every script rendered as a run renders it (a scope per task), and by `ScriptRenderer`."""
    ordered, placements, context = _planned(spec, tmp_path)
    expected = [render_script(i, task_scope(context, i, placements[i.name])) for i in ordered]
    ordered, placements, context = _planned(spec, tmp_path)
    renderer = ScriptRenderer(context)
    return expected, [renderer.render(i, placements[i.name]) for i in ordered]


def _count_evaluations(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    real = sflow.workflow.context.evaluate

    def counting(source: str, scope: Any) -> Any:
        counts[source.strip()] = counts.get(source.strip(), 0) + 1
        return real(source, scope)

    monkeypatch.setattr(sflow.workflow.context, "evaluate", counting)
    return counts


def test_renderer_gives_every_task_the_script_its_own_scope_gives(load: Any, tmp_path: Path) -> None:
    expected, rendered = _scripts_both_ways(load(WORKFLOW), tmp_path)
    assert rendered == expected
    by_line = "\n".join(rendered)
    assert "echo override override-y wf 3" in by_line  # the task's own variable, not the cached X
    assert "echo a a 3 0" in by_line and "echo c c 3 2" in by_line  # sweep values per replica


def test_run_wide_expressions_are_evaluated_once(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load(
        """
        version: "0.1"
        variables:
          X: {value: 1, domain: [1, 2, 3, 4]}
          N: 5
        workflow:
          name: wf
          tasks:
            - name: s
              replicas:
                variables: [X]
              script:
                - echo ${{ workflow.name }} ${{ variables.N }} ${{ variables.X }} ${{ replica_index }}
                - echo ${{ task.s_1.nodes }}
            - name: v
              replicas: {count: 3}
              variables:
                N: 7
              script:
                - echo ${{ variables.N }} ${{ variables.items is defined }} ${{ variables | length }}
        """
    )
    counts = _count_evaluations(monkeypatch)
    expected, rendered = _scripts_both_ways(spec, tmp_path)
    assert rendered == expected
    counts.clear()
    ordered, placements, context = _planned(spec, tmp_path)
    renderer = ScriptRenderer(context)
    for inst in ordered:
        renderer.render(inst, placements[inst.name])
    assert counts["workflow.name"] == 1
    assert counts["variables.N"] == 1 + 3  # run-wide for the sweep, the task's own for `v`
    assert counts["variables.X"] == 4  # swept: one value per replica
    assert counts["replica_index"] == 4
    assert counts["task.s_1.nodes"] == 4
    assert counts["variables.items is defined"] == 3  # a method of each task's own dict
    assert counts["variables | length"] == 3


def test_an_impure_expression_drops_the_values_kept(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        variables:
          L: [1]
        workflow:
          name: wf
          tasks:
            - name: a
              replicas: {count: 3}
              script:
                - echo ${{ variables.L }} ${{ variables.L.append(5) }} ${{ variables.L }}
            - name: b
              script:
                - echo ${{ variables.L }} ${{ variables.L | length }}
            - name: c
              variables:
                Z: "${{ variables.L.append(7) }}"
              script:
                - echo ${{ variables.L }}
            - name: d
              script:
                - "${% set _ = variables.L.append(9) %}${{ variables.L }}"
            - name: e
              script:
                - echo ${{ variables.L }} ${{ [[1]] | map("random") | list }} ${{ [2] | random }}
            - name: f
              script:
                - echo ${{ variables.L }}
        """
    )
    expected, rendered = _scripts_both_ways(spec, tmp_path)
    assert rendered == expected
    assert rendered[-1].endswith("5, 5, 5, 7, 9]\n")  # every change reached the tasks after it


def test_renderer_errors_are_those_of_the_scope(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              script:
                - echo ${{ workflow.name }}
            - name: b
              script:
                - echo ${{ workflow.name }}
                - echo ${{ workflow.nope }}
        """
    )
    ordered, placements, context = _planned(spec, tmp_path)
    with pytest.raises(SpecError) as expected:
        for inst in ordered:
            render_script(inst, task_scope(context, inst, placements[inst.name]))
    ordered, placements, context = _planned(spec, tmp_path)
    renderer = ScriptRenderer(context)
    with pytest.raises(SpecError) as got:
        for inst in ordered:
            renderer.render(inst, placements[inst.name])
    assert str(got.value) == str(expected.value)
    assert "wf.yaml:11: workflow.tasks[1].script[1]: " in str(got.value)  # the item, not `script:`
    assert str(got.value).endswith("undefined in ${{ workflow.nope }}: workflow has no 'nope'")


def test_describe_plan_shows_every_task_in_order(load: Any, tmp_path: Path) -> None:
    text = describe_plan(load(WORKFLOW), tmp_path, tmp_path / "out")
    assert text.startswith("workflow: wf  (10 task(s))\nbackend multi [local]: ")
    assert "\n1. a\n" in text and "\n10. seq_2\n" in text
    assert f"command: bash {tmp_path}/out/<run-id>/s_b/s_b.sh" in text.replace("'", "")
    assert "   sweep: X=c\n" in text
    assert "   | echo override override-y wf 3\n" in text


def test_task_entries_are_listed_only_when_something_may_read_them(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              script:
                - echo ${{ workflow.name }}
            - name: b
              script: [echo plain]
            - name: c
              script:
                - "${% for t in task %}${{ t }} ${% endfor %}"
            - name: d
              script:
                - echo ${{ workflow.name }}
        """
    )
    ordered, placements, context = _planned(spec, tmp_path)
    renderer = ScriptRenderer(context)
    scripts = [renderer.render(i, placements[i.name]) for i in ordered[:2]]
    assert context["task"] == {}
    scripts += [renderer.render(i, placements[i.name]) for i in ordered[2:]]
    assert scripts[2] == "#!/usr/bin/env bash\na b c \n"
    assert list(context["task"]) == ["a", "b", "c"]
    assert context["task"]["a"] == {
        "nodes": ["localhost"],
        "ip_addresses": ["127.0.0.1"],
        "gpus": [],
        "replica_index": None,
        "backend": "local",
        "operator": "bash",
        "service": {"host": "127.0.0.1", "port": "", "url": ""},  # no `ports`: no port, no URL
    }


def test_a_replica_is_also_task_name_index_and_a_node_has_its_address(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        backends: [{name: l, type: local, nodes: 2}]
        workflow:
          name: wf
          tasks:
            - name: server
              replicas: {count: 2}
              resources: {nodes: {indices: [1]}}
              script: [serve]
            - name: client
              depends_on: [server]
              script:
                - echo ${{ task.server[1].nodes[0] }} ${{ task.server_1.nodes[0].ip_address }}
                - echo ${{ task.server[0].backend }} ${{ task.client.operator }} ${{ task.server | length }}
        """
    )
    client = next(t for t in plan_data(spec, tmp_path, tmp_path / "o")["tasks"] if t["name"] == "client")
    assert client["script"] == "echo localhost-1 127.0.0.1\necho l bash 2"


def test_launchers_argv_is_the_argv_they_build(load: Any, tmp_path: Path) -> None:
    from sflow.launchers.base import LaunchContext, get_launcher
    from sflow.workflow.dry_run import _PlannedLaunch

    spec = load(
        """
        version: "0.1"
        backends:
          - {name: local, type: local, nodes: 2, gpus_per_node: 2, default: true}
          - {name: cl, type: slurm, nodes: 2, gpus_per_node: 4}
        operators:
          - {name: py, type: python, python_exec: "python3 -X dev", extra_args: [-u]}
          - {name: wide, type: srun, nodes: 2, extra_args: ["--mpi=pmix"]}
        workflow:
          name: wf
          tasks:
            - {name: a, script: [echo a]}
            - {name: b, operator: py, script: ["print(1)"], resources: {gpus: {count: 1}}}
            - {name: c, backend: cl, script: [echo c]}
            - {name: d, backend: cl, operator: wide, script: [echo d], resources: {gpus: {count: 2}}}
        """
    )
    ordered, placements, context = _planned(spec, tmp_path)
    allocations = planned_allocations(spec, ordered, context)
    for inst in ordered:
        script = tmp_path / inst.name / f"{inst.name}.sh"
        fields = dict(
            task=inst.name,
            script_path=script,
            env={"X": "1"},
            cwd=tmp_path,
            placement=placements[inst.name],
            allocation=allocations[inst.backend],
            operator=inst.operator,
            base_env={},
        )
        launcher = get_launcher(inst.operator.type)
        ctx = LaunchContext(log_path=script.with_suffix(".log"), **fields)  # type: ignore[arg-type]
        del fields["script_path"]
        planned = _PlannedLaunch(f"{tmp_path}/{inst.name}/{inst.name}.sh", **fields)
        assert planned.script_path == ctx.script_path and planned.log_path == ctx.log_path
        assert planned.script_text() == ctx.script_text() == str(script)
        assert launcher.argv(planned) == launcher.argv(ctx) == launcher.build(ctx).argv, inst.name
        assert launcher.build(planned) == launcher.build(ctx)
        assert launcher.build(dataclasses.replace(planned, attempt=2)) == launcher.build(
            dataclasses.replace(ctx, attempt=2)
        )


def test_a_planned_script_path_reads_as_its_path() -> None:
    """The dry run writes `<run dir>/<task>/<task>.sh` as text; a task name keeps it normalized."""
    import re

    from sflow.schema.fieldtypes import NAME_PATTERN

    run_dir = Path("/work/out/<run-id>")
    for name in ("a", "t_0", "A.b", "x-", "9..9", "_", "a.sh", "n...", "b-_.c"):
        assert re.match(NAME_PATTERN, name)
        text = f"{run_dir}/{name}/{name}.sh"
        assert str(Path(text)) == text


def test_script_lines_are_those_after_the_shebang_line() -> None:
    from sflow.backends.placement import Node, Placement
    from sflow.schema.workflow import builtin_operator
    from sflow.workflow.dry_run import _Entries
    from sflow.workflow.plan import TaskInstance

    inst = TaskInstance("t", None, operator=builtin_operator("bash"))
    placement = Placement(nodes=(Node("n", "127.0.0.1", 0),))
    for body in ("", "a", "a\n", "a\n\n", "\n", "a\rb", "a\r\nb\x0cc", "x\u2028y", "\r"):
        script = "#!/usr/bin/env bash\n" + body + "\n"
        text = _Entries().text(1, inst, placement, ["bash", "t.sh"], body)
        assert text.split("\n   command: bash t.sh\n")[1].split("\n") == [
            f"   | {line}" for line in script.splitlines()[1:]
        ], repr(body)


def test_consecutive_tasks_on_one_placement_get_their_own_command(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        backends:
          - {name: cl, type: slurm, nodes: 1, default: true}
        workflow:
          name: wf
          tasks:
            - {name: a, script: [echo a]}
            - {name: b, script: [echo b]}
            - {name: c, script: [echo c]}
        """
    )
    text = describe_plan(spec, tmp_path, tmp_path / "out")
    for name in "abc":
        assert f"--job-name {name} " in text and f"/out/<run-id>/{name}/{name}.sh'\n" in text


def test_the_plan_shows_what_the_allocation_will_ask_slurm_for(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOBID", raising=False)
    spec = load(
        """
        version: "0.1"
        backends:
          - name: cl
            type: slurm
            default: true
            account: acct
            partition: gpu
            time: "00:10:00"
            nodes: 2
            extra_args: ["--gpus-per-node=8", "--exclusive"]
        workflow:
          name: wf
          tasks:
            - {name: a, script: [echo a]}
        """
    )
    text = describe_plan(spec, tmp_path, tmp_path / "out")
    lines = text.splitlines()
    at = lines.index("backend cl [slurm]: slurm-node-0, slurm-node-1")
    assert lines[at + 1] == (
        "  allocation: salloc --job-name wf -A acct -p gpu -t 00:10:00 -N 2 --gpus-per-node=8 --exclusive"
    )


SLURM_GPUS = """
    version: "0.1"
    backends:
      - name: cl
        type: slurm
        nodes: 2
        gpus_per_node: 4
        job_name: ${{ variables.JOB }}
    variables:
      JOB: {value: named}
    workflow:
      name: wf
      tasks:
        - name: a
          resources: {gpus: {count: 2}}
          script: [echo a]
"""


def test_the_plan_as_data_has_tasks_placement_commands_and_environment(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    data = plan_data(load(SLURM_GPUS), tmp_path, tmp_path / "out")
    assert data["backends"]["cl"]["request"][:3] == ["salloc", "--job-name", "named"]
    (task,) = data["tasks"]
    assert (task["name"], task["backend"], task["operator_type"]) == ("a", "cl", "srun")
    assert task["nodes"] == ["slurm-node-0"] and task["gpus"] == [[0, 1]]
    assert task["command"][0] == "srun" and "--gres=gpu:2" in task["command"]
    run = tmp_path / "out" / "<run-id>"
    assert task["env"]["SFLOW_TASK_RESULT_FILE"] == str(run / "a" / "result.json")
    assert task["env"]["SFLOW_WORKFLOW_RESULT_FILE"] == str(run / "results.json")
    backend = {k: v for k, v in task["env"].items() if k.startswith("SFLOW_BACKEND_")}
    assert backend == {
        "SFLOW_BACKEND_JOB_ID": "<slurm-job-id>",
        "SFLOW_BACKEND_NODELIST": "slurm-node-0,slurm-node-1",
        "SFLOW_BACKEND_NUM_NODES": "2",
    }


def test_gpus_per_node_plans_placement_and_asks_slurm_for_no_gpus(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    data = plan_data(load(SLURM_GPUS.replace("job_name: ${{ variables.JOB }}", "")), tmp_path, tmp_path / "o")
    request = data["backends"]["cl"]["request"]
    assert [n["num_gpus"] for n in data["backends"]["cl"]["nodes"]] == [4, 4]
    assert not [word for word in request if "gpu" in word]
    assert request[1:3] == ["--job-name", "wf"]  # named after the workflow


_SNIPPETS = [
    "${{ workflow.name }}",
    "${{ variables.X }}",
    '${{ variables["Y"] }}',
    "${{ variables.L }}",
    "${{ variables.L | length }}",
    "${{ variables.X ~ variables.Y }}",
    "${{ variables | length }}",
    "${{ variables.items is defined }}",
    "${{ backends.local.nodes[0].name }}",
    "${{ replica_index }}",
    "${{ task.t0.nodes if task.t0 is defined else 'none' }}",
    "${{ variables.L.append(1) }}",
    "${{ variables.L.pop() if variables.L | length > 3 else 0 }}",
    "${% for n in variables.L %}${{ n }}${% endfor %}",
    "plain",
    "${{ variables.Z }}",
]


def _random_workflow(rng: Any) -> str:
    lines = [
        'version: "0.1"',
        "variables:",
        "  X: {value: x1, domain: [x1, x2]}",
        "  Y: {value: y1, domain: [y1, y2, y3]}",
        "  L: [1, 2]",
        "workflow:",
        "  name: wf",
        "  tasks:",
    ]
    for t in range(rng.randint(1, 6)):
        lines.append(f"    - name: t{t}")
        kind = rng.random()
        if kind < 0.25:
            lines.append(f"      replicas: {{variables: [{rng.choice(['X', 'Y', 'X, Y'])}]}}")
        elif kind < 0.4:
            lines.append(f"      replicas: {{count: {rng.randint(1, 3)}}}")
        if rng.random() < 0.3:
            lines.append("      variables:")
            lines.append(f"        {rng.choice('XYZ')}: {rng.choice(['own', '${{ variables.L }}'])}")
        lines.append("      script:")
        for _ in range(rng.randint(1, 3)):
            text = " ".join(rng.choice(_SNIPPETS) for _ in range(rng.randint(1, 3))) + rng.choice(["", " ;"])
            lines.append("        - '" + text.replace("'", "''") + "'")
    return "\n".join(lines) + "\n"


def test_random_workflows_render_as_their_own_scopes_render_them(tmp_path: Path) -> None:
    import random

    rng = random.Random(20261122)
    checked = 0
    for index in range(150):
        path = tmp_path / f"wf{index}.yaml"
        path.write_text(_random_workflow(rng), encoding="utf-8")
        try:
            spec = load_workflow([path])
        except SpecError:
            continue
        results = []
        for fast in (False, True):
            ordered, placements, context = _planned(spec, tmp_path)
            renderer = ScriptRenderer(context)
            scripts: list[str] = []
            try:
                for inst in ordered:
                    placement = placements[inst.name]
                    if fast:
                        scripts.append(renderer.render(inst, placement))
                    else:
                        scripts.append(render_script(inst, task_scope(context, inst, placement)))
            except SpecError as exc:
                scripts.append(f"error: {exc}")
            results.append(scripts)
        assert results[0] == results[1], path.read_text()
        checked += 1
    assert checked > 100


def test_planning_turns_the_gc_back_on_once_a_template_leaves_cycles(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import sflow.workflow.dry_run

    spec = load(
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              script:
                - echo ${{ workflow.name }}
            - name: b
              script:
                - "${% for n in backends.local.nodes %}${{ n.name }}${% endfor %}"
            - name: c
              script:
                - echo ${{ workflow.name }}
        """
    )
    seen: list[tuple[str, bool]] = []
    render_body = ScriptRenderer.render_body

    def spying(self: ScriptRenderer, inst: Any, placement: Any) -> str:
        seen.append((inst.name, gc.isenabled()))
        return render_body(self, inst, placement)

    monkeypatch.setattr(ScriptRenderer, "render_body", spying)
    assert gc.isenabled()
    sflow.workflow.dry_run.describe_plan(spec, tmp_path, tmp_path / "out")
    assert seen == [("a", False), ("b", False), ("c", True)] and gc.isenabled()
    gc.disable()
    try:
        seen.clear()
        sflow.workflow.dry_run.describe_plan(spec, tmp_path, tmp_path / "out")
        assert seen == [("a", False), ("b", False), ("c", False)] and not gc.isenabled()
    finally:
        gc.enable()


def test_a_kept_value_goes_between_the_text_around_it(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              script: ["before ${{ workflow.name }} after", "next"]
            - name: b
              script: ["before ${{ workflow.name }} after", "next"]
            - name: c
              script: ["${{ workflow.name }}}"]
            - name: d
              script: ["${{ workflow.name }}}"]
        """
    )
    expected, rendered = _scripts_both_ways(spec, tmp_path)
    assert rendered == expected
    assert rendered[1] == "#!/usr/bin/env bash\nbefore wf after\nnext\n"
    assert rendered[3] == "#!/usr/bin/env bash\nwf}\n"


def test_every_script_mistake_is_reported_once(tmp_path: Path) -> None:
    from sflow.errors import SpecErrors

    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """
            version: "0.1"
            variables:
              EPOCHS: 3
            workflow:
              name: wf
              tasks:
                - name: a
                  replicas: {count: 3}
                  script:
                    - echo ${{ variables.EPOCH }}
                - name: b
                  script:
                    - echo ok
                    - echo ${{ task.a_9.nodes }}
            """
        ).lstrip(),
        encoding="utf-8",
    )
    with pytest.raises(SpecErrors) as err:
        describe_plan(load_workflow([path]), tmp_path, tmp_path / "out")
    assert [str(e) for e in err.value.errors] == [
        f"{path}:10: workflow.tasks[0].script[0]: undefined in ${{{{ variables.EPOCH }}}}: "
        "variables has no 'EPOCH'; did you mean 'EPOCHS'?",
        f"{path}:14: workflow.tasks[1].script[1]: undefined in ${{{{ task.a_9.nodes }}}}: "
        "task has no 'a_9'; did you mean 'a_2'?",
    ]


def test_a_task_reuses_the_gpus_its_dependencies_held_not_those_of_tasks_beside_it(
    load: Any, tmp_path: Path
) -> None:
    spec = load(
        """
        version: "0.1"
        backends: [{name: l, type: local, nodes: 2, gpus_per_node: 4}]
        workflow:
          name: wf
          tasks:
            - {name: one, resources: {gpus: {count: 2}}, script: [a]}
            - {name: beside, resources: {gpus: {count: 2}}, script: [a]}
            - {name: after, depends_on: [one], resources: {gpus: {count: 2}}, script: [a]}
        """
    )
    plan = {t["name"]: (t["nodes"], t["gpus"]) for t in plan_data(spec, tmp_path, tmp_path / "o")["tasks"]}
    assert plan["beside"] == (["localhost"], [[2, 3]])
    assert plan["after"] == (["localhost"], [[0, 1]])  # what `one` held; `beside` may still run


def test_shared_paths_are_local_artifacts_then_the_runs_folders(tmp_path: Path) -> None:
    from sflow.workflow.context import shared_paths

    (tmp_path / "models").mkdir()
    (tmp_path / "cfg.yaml").write_text("x")
    artifacts = {
        "MODEL": {"uri": "fs:///m", "path": str(tmp_path / "models")},
        "CFG": {"uri": "fs://cfg.yaml", "path": str(tmp_path / "cfg.yaml")},  # a file: its folder
        "LATER": {"uri": "file://gen/run.sh", "path": str(tmp_path / "gen" / "run.sh")},  # looks like one
        "IMAGE": {"uri": "fs:///i.sqsh", "path": "/i.sqsh"},
        "WEB": {"uri": "https://x/y", "path": "https://x/y"},
    }
    run = tmp_path / "out" / "r1"
    assert shared_paths(artifacts, tmp_path, tmp_path / "out", run, run / "t") == (
        str(tmp_path / "models"),
        str(tmp_path),
        str(tmp_path / "gen"),
        str(tmp_path / "out"),
        str(run),
        str(run / "t"),
    )


def test_a_swept_variable_keeps_its_domain_in_each_replica(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        variables:
          C: {value: 1, domain: [1, 4]}
        workflow:
          name: wf
          tasks:
            - name: t
              variables:
                F: {value: a, domain: [a, b]}
              replicas: {variables: [C, F]}
              script: ["echo ${{ variables.C }} of ${{ variables.C.domain }}, ${{ variables.F.domain }}"]
        """
    )
    scripts = [t["script"] for t in plan_data(spec, tmp_path, tmp_path / "o")["tasks"]]
    assert scripts[3] == "echo 4 of [1, 4], ['a', 'b']"


@pytest.mark.parametrize(
    ("first", "after_gets"),
    [
        ("resources: {gpus: {count: 2}}", [[0, 1]]),
        ("resources: {gpus: {count: 2, release_after: task_completion}}", [[0, 1]]),
        ("resources: {gpus: {count: 2, release_after: workflow_completion}}", [[2, 3]]),
        ("resources: {gpus: {count: 2}}, probes: {readiness: {tcp_port: {port: 80}}}", [[2, 3]]),
        (
            "resources: {gpus: {count: 2, release_after: task_completion}}, "
            "probes: {readiness: {tcp_port: {port: 80}}}",
            [[0, 1]],
        ),
    ],
)
def test_a_task_held_to_the_end_of_the_workflow_keeps_its_gpus_from_its_dependents(
    load: Any, tmp_path: Path, first: str, after_gets: list[list[int]]
) -> None:
    spec = load(
        f"""
        version: "0.1"
        backends: [{{name: l, type: local, nodes: 1, gpus_per_node: 4}}]
        workflow:
          name: wf
          tasks:
            - {{name: one, {first}, script: [a]}}
            - {{name: after, depends_on: [one], resources: {{gpus: {{count: 2}}}}, script: [a]}}
        """
    )
    plan = {t["name"]: t["gpus"] for t in plan_data(spec, tmp_path, tmp_path / "o")["tasks"]}
    assert plan["one"] == [[0, 1]] and plan["after"] == after_gets


def test_a_boolean_variable_reads_the_same_in_the_environment_and_in_a_script(
    load: Any, tmp_path: Path
) -> None:
    spec = load(
        """
        version: "0.1"
        variables:
          DP: {value: false}
          ON: {value: true, type: boolean}
        workflow:
          name: wf
          tasks:
            - name: a
              script: ["echo ${{ variables.DP }} ${{ variables.ON }}"]
        """
    )
    (task,) = plan_data(spec, tmp_path, tmp_path / "out")["tasks"]
    assert (task["env"]["DP"], task["env"]["ON"]) == ("False", "True")  # as nv-sflow exports them
    assert "echo False True" in task["script"]


def test_a_docker_task_s_label_and_name_show_where_the_run_id_goes(load: Any, tmp_path: Path) -> None:
    spec = load(
        """
        version: "0.1"
        backends:
          - {name: box, type: docker, default: true, image: img}
        workflow:
          name: wf
          tasks:
            - {name: a, script: [echo a]}
        """
    )
    text = describe_plan(spec, tmp_path, tmp_path / "out")
    assert "--label 'sflow.run=<run-id>'" in text and "'--name=sflow-<run-id>-a-1'" in text
    (task,) = plan_data(spec, tmp_path, tmp_path / "out")["tasks"]
    assert "sflow.run=<run-id>" in task["command"]


def test_gpus_a_finished_task_held_go_to_the_next_task_even_after_a_task_without_gpus(
    load: Any, tmp_path: Path
) -> None:
    """`b` (no GPUs) starts after `a` ended, so `c`, next in order, gets what `a` held."""
    spec = load(
        """
        version: "0.1"
        backends: [{name: l, type: local, nodes: 1, gpus_per_node: 4}]
        workflow:
          name: wf
          tasks:
            - {name: s, resources: {gpus: {count: 2}}, probes: {readiness: {tcp_port: {port: 80}}}, script: [a]}
            - {name: a, resources: {gpus: {count: 2}}, script: [a]}
            - {name: x, script: [a]}
            - {name: b, depends_on: [a], script: [a]}
            - {name: c, depends_on: [x], resources: {gpus: {count: 2}}, script: [a]}
        """
    )
    plan = {t["name"]: t["gpus"] for t in plan_data(spec, tmp_path, tmp_path / "o")["tasks"]}
    assert list(plan) == ["s", "a", "x", "b", "c"]
    assert plan["s"] == [[0, 1]] and plan["a"] == [[2, 3]] and plan["c"] == [[2, 3]]


@pytest.mark.parametrize("folder", ["plain", "with space", "it's", "a$b", "ünï"])
def test_each_command_line_reads_back_as_its_launchers_words(load: Any, tmp_path: Path, folder: str) -> None:
    """Words are quoted as `shlex.quote` quotes them, however many tasks share their parts."""
    spec = load(
        """
        version: "0.1"
        operators:
          - {name: py, type: python, python_exec: "python3 -X dev", extra_args: [-u, "a b"]}
        workflow:
          name: wf
          tasks:
            - {name: a, script: [echo a]}
            - {name: b, script: [echo b], operator: py}
            - {name: c, script: [echo c], operator: py}
            - {name: d, script: [echo d]}
        """
    )
    output_dir = tmp_path / folder
    text = describe_plan(spec, tmp_path, output_dir)
    commands = [line.split("command: ", 1)[1] for line in text.splitlines() if "command: " in line]
    scripts = [f"{output_dir}/<run-id>/{name}/{name}.sh" for name in "abcd"]
    assert [shlex.split(command)[-1] for command in commands] == scripts
    assert commands == [" ".join(shlex.quote(word) for word in shlex.split(c)) for c in commands]


def test_plan_pieces_start_where_lines_do_and_join_into_the_plan(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sflow.workflow import dry_run

    spec = load(WORKFLOW)
    whole = describe_plan(spec, tmp_path, tmp_path / "out")
    monkeypatch.setattr(dry_run._Pieces, "_WRITES", 2)
    pieces = dry_run.describe_plan_pieces(spec, tmp_path, tmp_path / "out")
    assert len(pieces) > 3
    assert all(piece.startswith("\n") for piece in pieces[1:])
    assert "".join(pieces) == whole


ESCAPES = """
    version: "0.1"
    workflow:
      name: wf
      tasks:
        - name: a
          script: ["echo \\e[31mred\\e[0m a"]
        - name: b
          script: ["echo b \\e[1;2"]
        - name: c
          script: ["echo \\e[4mc"]
"""


def test_the_dry_run_writes_its_plan_piece_by_piece_as_one_text(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from sflow.cli.main import main
    from sflow.workflow import dry_run

    monkeypatch.chdir(tmp_path)
    spec = load(ESCAPES)
    whole = describe_plan(spec, tmp_path, tmp_path / "sflow_output")
    assert "\x1b[31m" in whole and "b \x1b[1;2\n" in whole
    monkeypatch.setattr(dry_run._Pieces, "_WRITES", 1)
    done = CliRunner().invoke(main, ["run", "-f", str(tmp_path / "wf.yaml"), "--dry-run"])
    assert done.exit_code == 0, done.output
    assert done.output == whole.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\x1b[4m", "") + "\n"
