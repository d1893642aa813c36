"""Time `load_workflow` on a generated workflow: `python tests/unit/spec/bench_load.py [TASKS]`.

Each task is five lines (name, script, one script line, depends_on, timeout), the shape of a large
generated workflow. Prints wall-clock and CPU seconds of three loads.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def generate(path: Path, tasks: int) -> None:
    lines = ['version: "0.1"', "workflow:", "  name: big", "  tasks:"]
    for i in range(tasks):
        lines += [f"    - name: t{i}", "      script:", f"        - echo {i}"]
        if i:
            lines.append(f"      depends_on: [t{i - 1}]")
        lines.append("      timeout: 5m")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    from sflow.schema import load_workflow

    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        generate(path, tasks)
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            spec = load_workflow([path])
            garbage = [object() for _ in range(100_000)]  # any deferred GC work lands in the timing
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{len(spec.workflow.tasks)} tasks, {path.stat().st_size / 1e6:.1f} MB: {wall:.2f} s wall, {cpu:.2f} s cpu"
            )
            del spec, garbage


if __name__ == "__main__":
    main()
