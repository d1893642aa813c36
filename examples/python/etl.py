"""A small ETL pipeline with sflow's Python front door.

    python examples/python/etl.py                 # everything in this process
    python examples/python/etl.py --slurm debug   # `transform` as one Slurm job array

Each task's parameter names say what it needs: `fetch` maps over the input `pages`,
`transform` maps over `fetch`'s results, `load` receives both `transform` and the input
`out_dir`. Independent work runs concurrently; a task starts as soon as its own inputs
are ready. The run record (summary.json, one log per task) lands in ./sflow_output/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from pathlib import Path

import sflow
import sflow.flow


def clean(record: dict) -> dict:
    """A sync, CPU-ish step: runs in a thread locally, or in a job on Slurm."""
    words = record["text"].split()
    return {"page": record["page"], "words": len(words), "longest": max(words, key=len)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=12)
    parser.add_argument("--slurm", metavar="PARTITION", help="run `transform` on this Slurm partition")
    args = parser.parse_args()

    transform_env = None
    if args.slurm:
        sflow.config(
            environments={"slurm": {"executor": "slurm", "executor_config": {"partition": args.slurm}}}
        )
        transform_env = "slurm"

    with sflow.flow("etl", inputs={"pages": list(range(args.pages)), "out_dir": Path("etl_out")}) as f:

        @f.task(map="pages", max_concurrent=4, retries={"count": 3, "interval": 0.1, "backoff": 2}, timeout=5)
        async def fetch(page):
            """Pretend to download a page (async I/O, on the event loop)."""
            await asyncio.sleep(random.uniform(0.01, 0.05))
            if random.random() < 0.1:
                raise ConnectionError(f"page {page}: connection reset")  # retried, only this item
            return {"page": page, "text": " ".join(f"word{page}x{i}" for i in range(page + 3))}

        f.task(clean, name="transform", map="fetch", environment=transform_env)

        @f.task
        def stats(transform):
            return {"pages": len(transform), "words": sum(r["words"] for r in transform)}

        @f.task
        def load(transform, stats, out_dir):
            out_dir.mkdir(exist_ok=True)
            path = out_dir / "pages.json"
            path.write_text(json.dumps({"stats": stats, "pages": transform}, indent=2))
            return str(path)

    print(f"{f.result.stats['pages']} pages, {f.result.stats['words']} words -> {f.result.load}")
    print(f"run record: {f.run_dir}")


if __name__ == "__main__":
    main()
