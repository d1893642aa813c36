"""The YAML door: a loaded workflow spec → plan → run, dry run, outputs, batch script, visualize."""
