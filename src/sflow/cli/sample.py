"""`sflow sample`: the workflows that ship with sflow (`sflow/samples/`), listed or copied out.

Each sample is one self-contained YAML file; the comment lines it starts with say what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sflow.cli.output_file import names_a_folder, write_output
from sflow.errors import UserError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@dataclass(frozen=True)
class Sample:
    name: str  # its path under samples/, without `.yaml`: `local/serve_and_bench`
    path: Path

    @property
    def description(self) -> str:
        """The sample's opening comment, as one line."""
        words = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            words.append(line.lstrip("#").strip())
        return " ".join(w for w in words if w)


def all_samples(root: Path = SAMPLES) -> list[Sample]:
    return [
        Sample(path.relative_to(root).with_suffix("").as_posix(), path)
        for path in sorted(root.rglob("*.yaml"))
    ]


def listing(samples: list[Sample]) -> str:
    """One line per sample: its name and what it is."""
    width = max(len(s.name) for s in samples)
    lines = [f"{s.name:<{width}}  {s.description}" for s in samples]
    lines.append("\ncopy one with `sflow sample NAME` (-o PATH to choose where)")
    return "\n".join(lines)


def find(name: str, samples: list[Sample]) -> Sample:
    """The sample called `name` (`local/serve_and_bench`, or `serve_and_bench` when unambiguous)."""
    name = name.removesuffix(".yaml")
    matches = [s for s in samples if s.name == name] or [s for s in samples if s.name.split("/")[-1] == name]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(s.name for s in samples)
    if matches:
        raise UserError(f"sample '{name}' is ambiguous: {', '.join(s.name for s in matches)}")
    raise UserError(f"no sample '{name}' (samples: {known})")


def copy_sample(sample: Sample, output: str | None, force: bool) -> Path:
    """Write the sample to `output` (a file, or a folder: an existing one or one ending in `/`;
    default `./<its file name>`); an existing file only with `force`."""
    target = Path(output or sample.path.name)
    if output and names_a_folder(output):
        target = target / sample.path.name
    if target.exists() and not force:
        raise UserError(f"{target} exists (--force to overwrite it)")
    return write_output(target, sample.path.read_text(encoding="utf-8"))
