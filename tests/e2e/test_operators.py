"""Operators on the local backend: python runs Python source; one with no launcher is a clear error."""

from __future__ import annotations


def test_python_operator_runs_the_script_as_python(sflow):
    wf = sflow.write(
        "py.yaml",
        """
        version: "0.1"
        variables:
          N: {value: 3, type: integer}
        operators:
          - name: py
            type: python
            python_exec: python3 -u
        workflow:
          name: pyop
          tasks:
            - name: compute
              operator: py
              script:
                - import os
                - print(sum(range(${{ variables.N }})), os.environ["SFLOW_TASK_NAME"])
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    assert (done.run_dir() / "compute" / "compute.log").read_text() == "3 compute\n"


def test_operator_without_a_launcher_is_one_line(sflow):
    wf = sflow.write(
        "ssh.yaml",
        """
        version: "0.1"
        operators:
          - {name: remote, type: ssh, host: example}
        workflow:
          name: sshop
          tasks:
            - name: t
              operator: remote
              script: ["true"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--dry-run")
    assert done.code == 2, done.err
    assert done.err == (
        f"sflow: error: {wf}:8: workflow.tasks[0].operator.name: operator 'remote' is of type 'ssh', "
        "which this version reads but cannot run; use one of: bash, srun, python, docker_run\n"
    )


def test_fail_fast_stops_a_shell_script_at_its_first_failing_command(sflow):
    """nv-sflow's `fail_fast`: `set -e` for shell scripts; unset, the last command decides."""
    wf = sflow.write(
        "ff.yaml",
        """
        version: "0.1"
        operators:
          - {name: py, type: python, python_exec: python3 -u}
        workflow:
          name: ff
          tasks:
            - name: lenient
              script: ["false", "echo after"]
            - name: strict
              fail_fast: true
              script: ["echo before", "false", "echo after"]
            - name: python_too
              operator: py
              fail_fast: true
              script: ["print('python ignores fail_fast')"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--keep-going")
    assert done.code == 1, done.err
    run = done.run_dir()
    states = {name: t["state"] for name, t in done.summary()["tasks"].items()}
    assert states == {"lenient": "succeeded", "strict": "failed", "python_too": "succeeded"}
    assert (run / "lenient" / "lenient.log").read_text() == "after\n"
    assert (run / "strict" / "strict.log").read_text() == "before\n"
    assert (run / "python_too" / "python_too.log").read_text() == "python ignores fail_fast\n"


def test_a_tasks_first_port_is_its_service_in_expressions(sflow):
    """nv-sflow's `ports`: `task.<name>.service.{host, port, url}` from the first port and node."""
    wf = sflow.write(
        "ports.yaml",
        """
        version: "0.1"
        variables:
          PORT: {value: 8123}
        workflow:
          name: ports
          tasks:
            - name: server
              ports:
                - {port: "${{ variables.PORT }}", name: http}
              script: ["echo ${{ task.server.service.port }}"]
            - name: client
              depends_on: [server]
              script: ["echo ${{ task.server.service.url }} [${{ task.client.service.url }}]"]
        """,
    )
    done = sflow("run", "-f", str(wf), "-s", "PORT=9001")
    assert done.code == 0, done.err
    run = done.run_dir()
    assert (run / "server" / "server.log").read_text() == "9001\n"
    assert (run / "client" / "client.log").read_text() == "http://127.0.0.1:9001 []\n"
