"""`python -m sflow` is the `sflow` command."""

from sflow.console import run

run()
