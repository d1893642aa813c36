"""`python -m sflow` is the `sflow` command."""

from sflow.cli import main

main()
