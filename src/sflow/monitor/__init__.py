"""Hardware sampling on a node: the program a monitor runs there (`python -m sflow.monitor.sampler`).

It imports nothing else of sflow, so it starts in a few milliseconds inside a Slurm step.
"""
