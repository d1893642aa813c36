"""`python -m sflow` is the `sflow` command."""

from sflow.cli import main
from sflow.cli.leave import own_process

own_process()
main()
