"""`result` end to end: the task's result.json and the run's results.json exist before dependents start."""

from __future__ import annotations

import json


def test_results_are_written_before_a_dependent_reads_them(sflow):
    wf = sflow.write(
        "result.yaml",
        """
        version: "0.1"
        workflow:
          name: results
          tasks:
            - name: bench
              script: ["echo 'iter=1 tok/s=10.5'", "echo 'iter=2 tok/s=12.0'"]
              result:
                patterns:
                  - {name: best, regex: 'tok/s=([0-9.]+)', aggregate: max, unit: tok/s}
                  - {name: iters, regex: 'iter=([0-9]+)', aggregate: count}
            - name: wrote
              script: ["echo '{\\"score\\": 7}' > \\"$SFLOW_TASK_RESULT_FILE\\""]
              result: {file: result.json}
            - name: reader
              depends_on: [bench, wrote]
              script: ["cat \\"$SFLOW_WORKFLOW_RESULT_FILE\\""]
        """,
    )
    done = sflow("run", "-f", str(wf))
    assert done.code == 0, done.err
    run_dir = done.run_dir()
    bench = json.loads((run_dir / "bench" / "result.json").read_text())
    assert bench["values"] == {"best": 12.0, "iters": 2} and bench["ok"] is True
    seen = json.loads((run_dir / "reader" / "reader.log").read_text())
    assert seen["tasks"]["bench"]["values"] == {"best": 12.0, "iters": 2}
    assert seen["tasks"]["wrote"]["values"] == {"score": 7}
    assert "reader" not in seen["tasks"]
