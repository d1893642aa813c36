"""What a task's `uploads` send where, and `workflow.upload_all`: keys, globs, results.

A task's uploads run once it has completed, before its dependents start; the whole run folder
(`upload_all`) is zipped and sent once every task has ended, whatever their outcome, so partial
results still arrive. `on_error: warn` reports a failed upload and leaves the task completed;
`on_error: fail` fails the task (or the run). Nothing here talks to S3: that is `workflow.s3`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.schema.base import dump
from sflow.schema.expressions import render_value
from sflow.schema.validation import validated

if TYPE_CHECKING:
    from sflow.schema import WorkflowSpec
    from sflow.schema.models import StorageTarget, Upload, UploadAll
    from sflow.workflow.plan import TaskInstance

Put = Callable[["StorageTarget", Path, str], None]
"""Sends one file to a target under a key; raises an exception saying why it could not."""


class UploadResult(msgspec.Struct):
    """One file (or one pattern that matched nothing) and what became of it."""

    task: str
    source: str
    destination: str
    ok: bool
    on_error: str
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "source": self.source,
            "destination": self.destination,
            "ok": self.ok,
            "on_error": self.on_error,
            **({"error": self.error} if self.error else {}),
        }

    def line(self) -> str:
        """How sflow.log and the terminal say it."""
        who = f"task '{self.task}'" if self.task else "upload_all"
        if self.ok:
            return f"{who}: uploaded {self.source} to {self.destination}"
        return f"{who}: upload of {self.source} to {self.destination} failed: {self.error}"


def uses_storage(spec: WorkflowSpec) -> bool:
    """Whether a run of `spec` uploads anything (only then is an S3 client needed)."""
    return spec.workflow.upload_all is not None or any(t.uploads for t in spec.workflow.tasks)


def rendered_targets(spec: WorkflowSpec, context: dict[str, Any]) -> dict[str, StorageTarget]:
    """The storage targets with `${{ }}` in their fields rendered (`bucket: ${{ variables.B }}`)."""
    out = {}
    for name, target in spec.storage.items():
        data = {**dump(target), "type": target.type}
        rendered = render_value(data, context, where=target.loc(), field=target.path())
        out[name] = validated(rendered, type(target), target.locations(), target.path())
    return out


def destination(target: StorageTarget, key: str) -> str:
    return f"s3://{target.bucket}/{key}"


def remote_key(prefix: str, to: str | None, file: Path, replica: str | None = None) -> str:
    """The object key of `file`: `to` under the target's prefix (a folder when `to` ends with `/`,
    the file's name when there is no `to`); a replica's name goes before the extension."""
    key = to if to is not None and not to.endswith("/") else (to or "") + file.name
    if replica:
        head, tail = posixpath.split(key)
        stem, ext = posixpath.splitext(tail)
        key = posixpath.join(head, f"{stem}_{replica}{ext}") if head else f"{stem}_{replica}{ext}"
    return join_prefix(prefix, key)


def join_prefix(prefix: str, key: str) -> str:
    key = key.lstrip("/")
    if not prefix:
        return key
    return prefix + key if prefix.endswith("/") else f"{prefix}/{key}"


def upload_scope(scope: Mapping[str, Any], inst: TaskInstance, task_dir: Path) -> dict[str, Any]:
    """The task's context plus `task.name` and `task.output_dir`, which uploads' paths use."""
    tasks = {**scope.get("task", {}), "name": inst.name, "output_dir": str(task_dir)}
    return {**scope, "task": tasks}


def replica_label(inst: TaskInstance, upload: Upload, replicated: bool) -> str | None:
    """Replicas of one task would overwrite each other's keys unless `to` names `task.name`."""
    if not replicated or (upload.to is not None and "task.name" in upload.to):
        return None
    return inst.name


class PlannedUpload(msgspec.Struct, frozen=True):
    """One `uploads` entry of one task instance, with its paths rendered."""

    task: str
    target: str
    pattern: str
    to: str | None
    on_error: str
    replica: str | None


def planned_uploads(
    inst: TaskInstance, scope: Mapping[str, Any], task_dir: Path, replicated: bool
) -> list[PlannedUpload]:
    """The task instance's uploads with `from` and `to` rendered (a relative `from` is taken
    in the task's output folder)."""
    if not inst.task.uploads:
        return []
    context = upload_scope(scope, inst, task_dir)
    out = []
    for upload in inst.task.uploads:
        data = {"from": upload.source, "to": upload.to}
        rendered = render_value(data, context, where=upload.loc(), field=upload.path())
        pattern = str(rendered["from"])
        if not posixpath.isabs(pattern):
            pattern = str(task_dir / pattern)
        to = None if rendered["to"] is None else str(rendered["to"])
        label = replica_label(inst, upload, replicated)
        out.append(PlannedUpload(inst.name, upload.target, pattern, to, upload.on_error, label))
    return out


def run_uploads(
    planned: list[PlannedUpload], targets: Mapping[str, StorageTarget], put: Put
) -> list[UploadResult]:
    """Send every file each planned upload matches; one result per file (or per empty match)."""
    import glob

    results = []
    for item in planned:
        target = targets[item.target]
        files = sorted(Path(m) for m in glob.glob(item.pattern, recursive=True) if Path(m).is_file())
        if not files:
            results.append(
                UploadResult(
                    item.task, item.pattern, f"s3://{target.bucket}/", False, item.on_error, "no file matches"
                )
            )
            continue
        for file in files:
            key = remote_key(target.prefix, item.to, file, item.replica)
            results.append(_send(put, target, file, key, item.task, item.on_error))
    return results


def upload_run_folder(
    run_dir: Path,
    run_id: str,
    spec: UploadAll,
    to: str | None,
    targets: Mapping[str, StorageTarget],
    put: Put,
) -> UploadResult:
    """`workflow.upload_all`: the run folder as one zip (made outside it), sent as one object."""
    import tempfile  # here: a run without uploads does not load it

    target = targets[spec.target]
    key = join_prefix(target.prefix, to or f"{run_id}.zip")
    with tempfile.TemporaryDirectory(prefix="sflow-upload-") as tmp:
        archive = Path(tmp) / f"{run_id}.zip"
        try:
            zip_folder(run_dir, archive)
        except OSError as exc:
            return UploadResult("", str(run_dir), destination(target, key), False, spec.on_error, str(exc))
        return _send(put, target, archive, key, "", spec.on_error, source=str(run_dir))


def zip_folder(folder: Path, archive: Path) -> None:
    """Every file under `folder`, by its path relative to it."""
    import zipfile

    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())


def _send(
    put: Put, target: StorageTarget, file: Path, key: str, task: str, on_error: str, source: str = ""
) -> UploadResult:
    where = destination(target, key)
    try:
        put(target, file, key)
    except Exception as exc:
        return UploadResult(task, source or str(file), where, False, on_error, str(exc) or type(exc).__name__)
    return UploadResult(task, source or str(file), where, True, on_error)


def planned_destination(item: PlannedUpload, target: StorageTarget) -> str:
    """Where a planned upload goes, before its files exist: a key, or a folder for a glob or
    an upload without `to` (each file keeps its name there)."""
    if item.to is not None and not item.to.endswith("/"):
        return destination(target, remote_key(target.prefix, item.to, Path(item.pattern), item.replica))
    folder = join_prefix(target.prefix, item.to or "")
    return destination(target, folder if folder.endswith("/") or not folder else folder + "/")


def credentials_hint(environ: Mapping[str, str], home: Path) -> str | None:
    """What a dry run says when no S3 credentials are in sight (it asks no server)."""
    if environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE"):
        return None
    files = [environ.get("AWS_SHARED_CREDENTIALS_FILE"), str(home / ".aws" / "credentials")]
    if any(f and Path(f).is_file() for f in files):
        return None
    return (
        "uploads: no S3 credentials found (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials); "
        "a real run uploads only with them or an instance role"
    )
