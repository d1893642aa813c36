"""The job side of `sflow batch`: `python -m sflow.cli.batch_job --set-file PATH run ARGS...`.

`--set` values are often secrets: the script `sflow batch` writes keeps them in a 0600 file and
runs this module, which reads them and runs `sflow run` in the same process, so they never
appear on a command line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    """Read the `--set` values of PATH and run `sflow run ARGS...` with them (see the module doc).

    Runs `sflow run ARGS...` in this process with the `--set` values read from PATH, so they
    never appear on a command line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[0] != "--set-file":
        print(
            "usage: python -m sflow.cli.batch_job --set-file PATH run ARGS... (as written by `sflow batch`)",
            file=sys.stderr,
        )
        sys.exit(2)
    path, command = args[1], args[2:]
    try:
        sets = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"sflow: error: cannot read the --set values of this job from {path}: {exc}", file=sys.stderr)
        sys.exit(2)
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        print(f"sflow: error: {path} is not a JSON list of NAME=VALUE strings", file=sys.stderr)
        sys.exit(2)
    from sflow.cli.main import main as sflow_command

    sflow_command(args=[*command, *(word for s in sets for word in ("--set", s))], prog_name="sflow")


if __name__ == "__main__":
    main()
