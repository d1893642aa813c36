"""Services end to end: a real HTTP server and its client, readiness and failure probes, teardown."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess

import pytest

SERVER_CLIENT = r"""
version: "0.1"
variables:
  PORT: {{value: 8000, type: integer}}
workflow:
  name: web
  tasks:
    - name: server
      script:
        - echo "serving on ${{PORT}}"
        - python3 -m http.server ${{{{ variables.PORT }}}} --bind 127.0.0.1
      outputs:
        - {{name: port, pattern: 'serving on (\d+)', type: integer}}
      probes:
        readiness:
          - {probe}
            interval: 0.1
            timeout: 20
    - name: client
      depends_on: [server]
      script:
        - python3 -c "import urllib.request as u; r = u.urlopen('http://127.0.0.1:${{PORT}}/'); print('status', r.status)"
"""

PROBES = {
    "tcp_port": 'tcp_port: {port: "${{ variables.PORT }}"}',
    "http_get": 'http_get: {url: "http://127.0.0.1:${{ variables.PORT }}/"}',
}


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_http_server_and_client(sflow, kind, free_port):
    port = free_port()
    wf = sflow.write("web.yaml", SERVER_CLIENT.format(probe=PROBES[kind]))
    done = sflow("run", "-f", str(wf), "--set", f"PORT={port}")
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    assert (run_dir / "client" / "client.log").read_text() == "status 200\n"
    server_log = (run_dir / "server" / "server.log").read_text()
    assert f"serving on {port}" in server_log and '"GET / HTTP/1.1" 200' in server_log
    tasks = done.summary()["tasks"]
    server, client = tasks["server"], tasks["client"]
    assert server["state"] == "succeeded" and client["state"] == "succeeded"
    assert server["start"] < server["ready"] <= client["start"] < client["end"] <= server["end"]
    assert not listening(port), "the server outlived the run"
    # a service stopped at the end of its work still has its outputs
    assert server["outputs"] == {"port": port}
    assert json.loads((run_dir / "server" / "outputs.json").read_text()) == {"port": port}
    assert not alive(server["pid"])


LOG_READY = """
version: "0.1"
workflow:
  name: logready
  tasks:
    - name: service
      script:
        - sleep 0.3
        - echo "warming up"
        - for i in 1 2 3; do sleep 0.2; echo "worker $i listening"; done
        - sleep 60
      probes:
        readiness:
          - log_watch: {{regex_pattern: "listening", match_count: {count}}}
            interval: 0.05
            timeout: 10
    - name: user
      depends_on: [service]
      script:
        - echo "service log when I started:"
        - cat "$SFLOW_WORKFLOW_OUTPUT_DIR/service/service.log"
"""


@pytest.mark.parametrize("count", [1, 3])
def test_log_watch_readiness(sflow, count):
    wf = sflow.write("logready.yaml", LOG_READY.format(count=count))
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    seen = (run_dir / "user" / "user.log").read_text()
    assert seen.count("listening") >= count  # the user started only once the pattern was there
    assert seen.count("listening") <= count + 1  # ...and right away, not at the end of the service
    tasks = done.summary()["tasks"]
    assert tasks["service"]["state"] == "succeeded"
    assert tasks["service"]["ready"] - tasks["service"]["start"] >= 0.3 + 0.2 * count - 0.05
    assert tasks["service"]["end"] - tasks["service"]["start"] < 10  # stopped, not waited for


def test_failure_probe_fires(sflow):
    wf = sflow.write(
        "fatal.yaml",
        """
        version: "0.1"
        workflow:
          name: fatal
          tasks:
            - name: worker
              script:
                - echo "starting"
                - sleep 0.3
                - 'echo "FATAL: out of cheese"'
                - sleep 60
              probes:
                failure:
                  - log_watch: {regex_pattern: "FATAL"}
                    interval: 0.05
            - name: after
              depends_on: [worker]
              script: ["echo never"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--grace", "2")
    assert done.code == 1, done.err
    assert "task 'worker' failed: failure probe log_watch 'FATAL' fired" in done.err
    assert "FATAL: out of cheese" in done.err  # the log tail is in the report
    tasks = done.summary()["tasks"]
    assert tasks["worker"]["state"] == "failed"
    assert tasks["worker"]["failure_probe"].startswith("failure probe log_watch 'FATAL' fired")
    assert tasks["worker"]["end"] - tasks["worker"]["start"] < 5
    assert tasks["after"]["state"] == "cancelled"


def test_service_exits_before_ready(sflow):
    wf = sflow.write(
        "early.yaml",
        """
        version: "0.1"
        workflow:
          name: early
          tasks:
            - name: server
              script:
                - echo "cannot bind" >&2
                - exit 3
              probes:
                readiness:
                  - tcp_port: {port: 1}
                    interval: 0.1
            - name: client
              depends_on: [server]
              script: ["echo never"]
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 1
    assert "task 'server' failed: exited before it became ready (exit code 3)" in done.err
    assert "cannot bind" in done.err
    tasks = done.summary()["tasks"]
    assert tasks["server"]["exit_code"] == 3 and tasks["client"]["state"] == "cancelled"


def test_readiness_timeout_names_the_probe(sflow, free_port):
    port = free_port()
    wf = sflow.write(
        "never.yaml",
        """
        version: "0.1"
        variables:
          PORT: {value: 1, type: integer}
        workflow:
          name: never
          tasks:
            - name: server
              script: ["echo pretending", "sleep 60"]
              probes:
                readiness:
                  - tcp_port: {port: "${{ variables.PORT }}"}
                    interval: 0.1
                    timeout: 0.8
            - name: client
              depends_on: [server]
              script: ["echo never"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--set", f"PORT={port}", "--grace", "2")
    assert done.code == 1
    expected = (
        f"readiness probe tcp_port 127.0.0.1:{port} did not pass within 0.8s (last try: Connection refused)"
    )
    assert f"task 'server' failed: {expected}" in done.err
    tasks = done.summary()["tasks"]
    assert tasks["server"]["end"] - tasks["server"]["start"] < 5
    assert tasks["client"]["state"] == "cancelled"


def test_service_dying_while_needed_fails_the_run(sflow):
    wf = sflow.write(
        "dies.yaml",
        """
        version: "0.1"
        workflow:
          name: dies
          tasks:
            - name: server
              script: ["echo listening", "sleep 0.3", "echo crash", "exit 4"]
              probes:
                readiness:
                  - log_watch: {regex_pattern: listening}
                    interval: 0.05
            - name: client
              depends_on: [server]
              script: ["sleep 30"]
        """,
    )
    done = sflow("run", "-f", str(wf), "--grace", "2")
    assert done.code == 1
    assert "task 'server' failed: service ended: exit code 4 (still needed by client)" in done.err
    tasks = done.summary()["tasks"]
    assert tasks["server"]["exit_code"] == 4 and tasks["client"]["state"] == "cancelled"
    assert tasks["client"]["end"] - tasks["client"]["start"] < 5


def test_a_task_needing_the_gpus_its_service_holds_fails_instead_of_waiting(sflow):
    wf = sflow.write(
        "gpus.yaml",
        """
        version: "0.1"
        backends:
          - {name: local, type: local, nodes: 1, gpus_per_node: 2}
        workflow:
          name: gpus
          tasks:
            - name: server
              script: ["echo listening", "sleep 60"]
              resources: {gpus: {count: 2}}
              probes:
                readiness:
                  - log_watch: {regex_pattern: listening}
                    interval: 0.05
            - name: client
              depends_on: [server]
              script: ["echo never"]
              resources: {gpus: {count: 1}}
        """,
    )
    done = sflow("run", "-f", str(wf), "--grace", "2", timeout=30)
    assert done.code == 1, done.err
    assert "task 'client' failed: could not start: it needs 1 node(s) with 1 free GPU(s) each" in done.err
    assert "the running service(s) 'server' hold them" in done.err
    tasks = done.summary()["tasks"]
    assert tasks["client"]["state"] == "failed" and tasks["client"]["attempts"] == 1
    assert tasks["server"]["end"] - tasks["server"]["start"] < 10  # stopped, not left for its 60 s


def test_python_service_output_reaches_its_log_while_it_runs(sflow):
    """A log is a file: without help, Python would buffer "listening" until it exits."""
    wf = sflow.write(
        "pyservice.yaml",
        """
        version: "0.1"
        workflow:
          name: pyservice
          tasks:
            - name: service
              script:
                - python3 -c "import time; time.sleep(0.2); print('listening'); time.sleep(60)"
              probes:
                readiness:
                  - log_watch: {regex_pattern: listening}
                    interval: 0.05
                    timeout: 5
            - name: user
              depends_on: [service]
              script: ['echo "PYTHONUNBUFFERED=${PYTHONUNBUFFERED-unset}"']
        """,
    )
    argv = sflow.argv("run", "-f", str(wf), "--output-dir", str(sflow.output_dir), "--grace", "2")
    host = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(argv, cwd=sflow.tmp, env=host, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    (user_log,) = sflow.output_dir.glob("*/user/user.log")
    assert user_log.read_text() == "PYTHONUNBUFFERED=1\n"
    # a value the user chose is kept
    done = subprocess.run(
        argv, cwd=sflow.tmp, env={**host, "PYTHONUNBUFFERED": "x"}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    logs = sorted(sflow.output_dir.glob("*/user/user.log"))
    assert {p.read_text() for p in logs} == {"PYTHONUNBUFFERED=1\n", "PYTHONUNBUFFERED=x\n"}


LOGGER = """
version: "0.1"
workflow:
  name: relay
  tasks:
    - name: loader
      script:
        - sleep 0.5
        - echo "weights loaded"
        - sleep 30
      probes:
        readiness:
          - log_watch: {match_pattern: "weights loaded"}
            interval: 0.05
            timeout: 20
    - name: router
      script: ["echo routing; sleep 30"]
      probes:
        readiness:
          - log_watch: {match_pattern: "re:weights (loaded|cached)", logger: loader}
            interval: 0.05
            timeout: 20
    - name: client
      depends_on: [router, loader]
      script: ["echo done"]
"""


def test_a_log_watch_logger_watches_another_tasks_log(sflow):
    """`router` prints nothing like the pattern itself: only `loader`'s log can make it ready."""
    sflow.write("wf.yaml", LOGGER)
    done = sflow("run", "wf.yaml")
    assert done.code == 0, done.err
    assert (done.run_dir() / "client" / "client.log").read_text() == "done\n"
    events = [json.loads(line) for line in (done.run_dir() / "events.jsonl").read_text().splitlines()]
    ready = [e for e in events if e.get("task") == "router" and "ready" in json.dumps(e)]
    assert ready, events
    broken = sflow.write("broken.yaml", LOGGER.replace("logger: loader", "logger: lodaer"))
    refused = sflow("run", broken.name)
    assert refused.code == 2
    assert "logger names unknown task 'lodaer'; did you mean 'loader'?" in refused.err
