"""The run directory: every attempt's log, events, summary.json, and reading logs back."""
