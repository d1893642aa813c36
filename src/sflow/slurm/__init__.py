"""The Slurm client: every command sflow runs against the controller, and tagged submission."""
