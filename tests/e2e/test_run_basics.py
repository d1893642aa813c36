"""`sflow run` end to end with real processes on the local backend."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # not imported from conftest: names clash


def test_hello_runs_and_records(sflow):
    done = sflow("run", "-f", str(REPO / "examples/hello.yaml"))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    assert "hello" in run_dir.name
    log = (run_dir / "hello" / "hello.log").read_text()
    assert log.startswith("hello from ") and str(run_dir / "hello") in log
    summary = done.summary()
    assert summary["ok"] is True
    task = summary["tasks"]["hello"]
    assert task["state"] == "succeeded" and task["exit_code"] == 0 and task["attempts"] == 1
    assert task["nodes"] == ["localhost"] and task["log"].endswith("hello/hello.log")
    assert task["start"] <= task["end"]
    assert (run_dir / "sflow.log").read_text().count("hello: succeeded") == 1


def test_positional_and_several_files_merge_later_wins(sflow):
    base = sflow.write(
        "base.yaml",
        """
        version: "0.1"
        variables:
          WHO: {value: base}
        workflow:
          name: merged
          tasks:
            - name: greet
              script: ["echo hi ${WHO}"]
        """,
    )
    site = sflow.write("site.yaml", 'version: "0.1"\nvariables:\n  WHO: {value: site}\n')
    done = sflow("run", str(base), "-f", str(site))
    assert done.code == 0, done.err
    assert (done.run_dir() / "greet" / "greet.log").read_text() == "hi site\n"


def test_environment_of_a_task(sflow):
    wf = sflow.write(
        "env.yaml",
        """
        version: "0.1"
        variables:
          COUNT: {value: 3, type: integer}
        artifacts:
          notes: {uri: "file://notes.txt", content: "inline text"}
        backends:
          - {name: local, type: local, nodes: 2, gpus_per_node: 2}
        workflow:
          name: envwf
          variables:
            FIRST: {value: "${{ backends.local.nodes[1].name }}"}
          tasks:
            - name: show
              resources: {gpus: {count: 1}}
              script:
                - env | grep -E '^(SFLOW_[A-Z_]+|CUDA_VISIBLE_DEVICES|COUNT|FIRST|notes)=' | sort
                - cat "$notes"; echo
                - echo "count=${{ variables.COUNT + 1 }}"
        """,
    )
    done = sflow("run", "-f", str(wf), "--workspace-dir", str(sflow.tmp))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    lines = (run_dir / "show" / "show.log").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("count="))
    assert env["SFLOW_WORKSPACE_DIR"] == str(sflow.tmp)
    assert env["SFLOW_OUTPUT_DIR"] == str(sflow.output_dir)
    assert env["SFLOW_WORKFLOW_OUTPUT_DIR"] == str(run_dir)
    assert env["SFLOW_TASK_OUTPUT_DIR"] == str(run_dir / "show")
    assert env["SFLOW_REPLICA_INDEX"] == "0"
    assert env["SFLOW_TASK_ASSIGNED_NODE_NAMES"] == "localhost"
    assert env["SFLOW_TASK_ASSIGNED_NODE_IPS"] == "127.0.0.1"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["COUNT"] == "3" and env["FIRST"] == "localhost-1"
    assert "inline text" in lines and "count=4" in lines


def test_bash_syntax_survives_expressions(sflow):
    wf = sflow.write(
        "bash.yaml",
        """
        version: "0.1"
        workflow:
          name: bashy
          tasks:
            - name: arr
              script:
                - ARR=(a b c d)
                - 'echo "n=${#ARR[@]} {# not a comment #}"'
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    assert (done.run_dir() / "arr" / "arr.log").read_text() == "n=4 {# not a comment #}\n"


def test_set_reaches_root_and_workflow_variables(sflow):
    wf = sflow.write(
        "vars.yaml",
        """
        version: "0.1"
        variables:
          A: {value: 1, type: integer}
        workflow:
          name: setwf
          variables:
            B: {value: "x"}
          tasks:
            - name: t
              script: ['echo "${{ variables.A * 2 }} ${B}"']
        """,
    )
    done = sflow("run", "-f", str(wf), "--set", "A=21", "--set", "B=yz")
    assert done.code == 0, done.err
    assert (done.run_dir() / "t" / "t.log").read_text() == "42 yz\n"
    bad = sflow("run", "-f", str(wf), "--set", "AA=1")
    assert bad.code == 2 and "unknown variable 'AA'" in bad.err and "Traceback" not in bad.err


def test_set_and_artifact_have_the_short_forms_s_and_a(sflow, tmp_path):
    wf = sflow.write(
        "short.yaml",
        """
        version: "0.1"
        variables:
          A: {value: 1}
        artifacts:
          DATA: {uri: "fs:///nowhere"}
        workflow:
          name: short
          tasks:
            - name: t
              script: ['echo "${A} ${DATA}"']
        """,
    )
    done = sflow("run", "-f", str(wf), "-s", "A=7", "-a", f"DATA=fs://{tmp_path}")
    assert done.code == 0, done.err
    assert (done.run_dir() / "t" / "t.log").read_text() == f"7 {tmp_path}\n"


def test_a_set_value_reaches_a_script_as_one_word_through_quote_or_the_environment(sflow):
    wf = sflow.write(
        "quote.yaml",
        """
        version: "0.1"
        variables:
          MSG: hello
        workflow:
          name: quoting
          tasks:
            - name: t
              script:
                - printf '%s\\n' ${{ variables.MSG | quote }}
                - printf '%s\\n' "${MSG}"
        """,
    )
    hostile = 'x"; touch pwned; echo "'
    done = sflow("run", "-f", str(wf), "--set", f"MSG={hostile}")
    assert done.code == 0, done.err
    assert (done.run_dir() / "t" / "t.log").read_text() == f"{hostile}\n{hostile}\n"
    assert not list(sflow.tmp.rglob("pwned"))


def test_a_chain_starts_each_task_after_its_dependency_ended(sflow):
    """How soon after (event-driven, no poll between them) is measured by bench/bench_engine.py."""
    tasks = "\n".join(
        f'    - name: t{i}\n      script: ["true"]' + (f"\n      depends_on: [t{i - 1}]" if i else "")
        for i in range(30)
    )
    wf = sflow.write("chain.yaml", f'version: "0.1"\nworkflow:\n  name: chain\n  tasks:\n{tasks}\n')
    done = sflow("run", "-f", str(wf), "-q")
    assert done.code == 0, done.err
    ts = done.summary()["tasks"]
    gaps = [ts[f"t{i}"]["start"] - ts[f"t{i - 1}"]["end"] for i in range(1, 30)]
    assert min(gaps) >= 0, gaps


def test_dry_run_validate_visualize(sflow):
    dag = str(REPO / "examples/dag.yaml")
    dry = sflow("run", "-f", dag, "--dry-run")
    assert dry.code == 0, dry.err
    assert "1. prepare" in dry.out and "after: train_0_1, train_0_01" in dry.out
    assert "sweep: LR=0.01" in dry.out and "seq 2" in dry.out
    assert not sflow.output_dir.exists()
    ok = sflow("validate", dag)
    assert ok.code == 0 and "ok (workflow 'small-dag', 4 task(s))" in ok.out
    mermaid = sflow("visualize", dag)
    assert mermaid.out.startswith("flowchart TD") and "t_prepare --> t_train_0_1" in mermaid.out
    dot = sflow("visualize", dag, "--format", "dot")
    assert '"train_0_01" -> "report";' in dot.out


def _chain_waiting_for(sflow, flag: Path) -> Path:
    return sflow.write(
        "chain.yaml",
        f"""
        version: "0.1"
        workflow:
          name: chain
          tasks:
            - name: a
              script: ["true"]
            - name: b
              depends_on: [a]
              script: ["while [ ! -e {flag} ]; do sleep 0.05; done"]
            - name: c
              depends_on: [b]
              script: ["true"]
        """,
    )


def test_run_piped_to_head_stops_printing_quietly_and_the_run_goes_on(sflow):
    import os
    import subprocess

    flag = sflow.tmp / "go"
    wf = _chain_waiting_for(sflow, flag)
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        sflow.argv("run", "-f", str(wf), "--output-dir", str(sflow.output_dir)),
        cwd=sflow.tmp,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        env=sflow.env(),
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:  # `| head -1`: one line, then the reader is gone
        first = reader.readline()
    flag.touch()  # only now do the other tasks' events come
    _, err = proc.communicate(timeout=60)
    assert first.endswith(b"a: running\n")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    assert "workflow succeeded" in err
    (run,) = (p for p in sflow.output_dir.iterdir() if p.is_dir())  # beside the run index
    assert '"ok": true' in (run / "summary.json").read_text()


def test_run_with_stdout_and_stderr_closed_still_runs_to_its_end(sflow):
    import os
    import subprocess

    flag = sflow.tmp / "go"
    flag.touch()
    wf = _chain_waiting_for(sflow, flag)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `2>&1 | true`: nobody reads either stream
    code = subprocess.call(
        sflow.argv("run", "-f", str(wf), "--output-dir", str(sflow.output_dir)),
        cwd=sflow.tmp,
        stdout=write_end,
        stderr=write_end,
        env=sflow.env(),
        timeout=60,
    )
    os.close(write_end)
    assert code == 0
    (run,) = (p for p in sflow.output_dir.iterdir() if p.is_dir())  # beside the run index
    assert '"ok": true' in (run / "summary.json").read_text()
    assert (run / "sflow.log").read_text().count(": succeeded") == 3


def _counting_replicas(sflow, limit_line: str) -> Path:
    """Six replicas that each note how many of them run while it runs (a directory of markers)."""
    running = sflow.tmp / "running"
    running.mkdir()
    return sflow.write(
        "many.yaml",
        f"""
        version: "0.1"
        backends:
          - name: here
            type: local
            {limit_line}
        workflow:
          name: many
          tasks:
            - name: work
              replicas: {{count: 6}}
              script:
                - touch {running}/$SFLOW_REPLICA_INDEX
                - ls {running} | wc -l >> {sflow.tmp}/seen
                - sleep 0.3
                - ls {running} | wc -l >> {sflow.tmp}/seen
                - rm {running}/$SFLOW_REPLICA_INDEX
        """,
    )


def test_a_backends_max_concurrent_bounds_the_tasks_running_at_once(sflow):
    wf = _counting_replicas(sflow, "max_concurrent: 2")
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    seen = [int(n) for n in (sflow.tmp / "seen").read_text().split()]
    assert len(seen) == 12 and max(seen) <= 2, seen
    assert "at most 2 task(s) at once" in (done.run_dir() / "sflow.log").read_text()


def test_the_command_line_limit_wins_over_the_backends(sflow):
    wf = _counting_replicas(sflow, "max_concurrent: 6")
    done = sflow("run", "-f", str(wf), "--max-concurrent", "1")
    assert done.code == 0, done.err
    seen = [int(n) for n in (sflow.tmp / "seen").read_text().split()]
    assert seen == [1] * 12


def test_services_do_not_deadlock_against_the_limit(sflow):
    """One slot, two services and a client needing both: each ready service gives its slot back."""
    wf = sflow.write(
        "svc.yaml",
        """
        version: "0.1"
        workflow:
          name: svc
          timeout: 60
          tasks:
            - name: db
              script: ["echo ready", "sleep 300"]
              probes:
                readiness:
                  - log_watch: {regex_pattern: ready}
            - name: cache
              script: ["echo ready", "sleep 300"]
              probes:
                readiness:
                  - log_watch: {regex_pattern: ready}
            - name: client
              depends_on: [db, cache]
              script: ["echo client done"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--max-concurrent", "1", "--grace", "1", timeout=120)
    assert done.code == 0, done.err
    tasks = done.summary()["tasks"]
    assert tasks["client"]["state"] == "succeeded"
    assert tasks["db"]["ready"] is not None and tasks["cache"]["ready"] is not None


def test_dry_run_plan_written_to_a_pipe_has_no_escape_sequences(sflow):
    """The plan reaches a file or pipe without the terminal escape sequences a script holds (and
    with everything else it says)."""
    path = sflow.write(
        "wf.yaml",
        'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n'
        '    - name: a\n      script:\n        - "echo \\e[31mred\\e[0m done"\n',
    )
    dry = sflow("run", "-f", path, "--dry-run")
    assert dry.code == 0, dry.err
    assert "\x1b" not in dry.out
    assert "   | echo red done\n" in dry.out
