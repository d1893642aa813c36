"""nv-sflow's `outputs` form end to end: a task prints values, templates pick them out of its log
(or a file it wrote) into nv-sflow's `outputs.json`, and a dependent reads them from there."""

from __future__ import annotations

import json

WORKFLOW = """
version: "0.1"
workflow:
  name: templates
  tasks:
    - name: bench
      script:
        - 'echo "TTFT: 12.5 ms"'
        - 'echo "TTFT: 13.0 ms"'
        - echo "model=llama tokens=128" >&2
        - 'echo "accuracy: 0.93" > "$SFLOW_TASK_OUTPUT_DIR/metrics.txt"'
      outputs:
        - pattern: "TTFT: {ttft:f} ms"
        - pattern: "model={model} tokens={tokens:d}"
          source: stderr
        - pattern: "accuracy: {accuracy:f}"
          source: metrics.txt
    - name: report
      depends_on: [bench]
      script:
        - >-
          python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))["outputs"];
          print("last ttft", v["ttft"][-1], "tokens", v["tokens"], "model", v["model"], "accuracy", v["accuracy"])'
          "$SFLOW_WORKFLOW_OUTPUT_DIR/bench/outputs.json"
"""


def test_a_dependent_reads_the_values_a_task_printed(sflow):
    wf = sflow.write("templates.yaml", WORKFLOW)
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    values = {"ttft": [12.5, 13.0], "model": "llama", "tokens": 128, "accuracy": 0.93}
    written = json.loads((run_dir / "bench" / "outputs.json").read_text())
    assert written == {
        "task": "bench",
        "specs": [
            {"pattern": "TTFT: {ttft:f} ms", "source": "stdout"},
            {"pattern": "model={model} tokens={tokens:d}", "source": "stderr"},
            {"pattern": "accuracy: {accuracy:f}", "source": "metrics.txt"},
        ],
        "outputs": values,
    }
    assert done.summary()["tasks"]["bench"]["outputs"] == values
    report = (run_dir / "report" / "report.log").read_text()
    assert report == "last ttft 13.0 tokens 128 model llama accuracy 0.93\n"


def test_a_bad_template_is_an_input_error(sflow):
    wf = sflow.write(
        "bad.yaml",
        """
        version: "0.1"
        workflow:
          name: bad
          tasks:
            - name: t
              script: ["echo"]
              outputs:
                - pattern: "TTFT: {ttft:ms}"
        """,
    )
    bad = sflow("run", str(wf))
    assert bad.code == 2
    assert "bad.yaml:8: workflow.tasks[0].outputs[0].pattern: invalid output template" in bad.err
    assert "Traceback" not in bad.err
