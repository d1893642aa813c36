"""The `sflow` command: faces only (parse arguments, call the library, show progress)."""

from sflow.cli.main import main

__all__ = ["main"]
