"""Sending files to S3 or an S3-compatible store, through boto3 (the `s3` extra).

boto3 is imported only by a run that uploads something. Credentials, and the endpoint when the
target names none, come from boto3's usual sources: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
(or `AWS_PROFILE` and the shared credentials file, or an instance role), `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sflow.errors import UserError

if TYPE_CHECKING:
    from sflow.schema.models import StorageTarget

MISSING = "uploads need boto3: pip install 'sflow[s3]'"


class S3Unavailable(UserError):
    """boto3 is not installed."""


class UploadFailed(Exception):
    """S3's answer (or the connection's error) for one file."""


def _reason(exc: BaseException) -> str:
    """What went wrong, without boto3's "Failed to upload <file> to <bucket>/<key>" wrapper
    (the caller names the file and the destination)."""
    cause = exc.__cause__ or exc.__context__
    if type(exc).__name__ == "S3UploadFailedError" and cause is not None:
        exc = cause
    return str(exc) or type(exc).__name__


def require_boto3() -> None:
    """Fail before any task starts when a workflow uploads and boto3 is missing."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise S3Unavailable(MISSING) from None


class S3Client:
    """One boto3 client per storage target, made on first use; `put` may run in any thread."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def put(self, target: StorageTarget, file: Path, key: str) -> None:
        """Upload `file` as `key` of the target's bucket; an exception says why it failed."""
        extra = {"StorageClass": target.storage_class} if target.storage_class else None
        try:
            self._client(target).upload_file(str(file), target.bucket, key, ExtraArgs=extra)
        except Exception as exc:
            raise UploadFailed(_reason(exc)) from exc

    def _client(self, target: StorageTarget) -> Any:
        with self._lock:
            client = self._clients.get(target.name)
            if client is None:
                client = self._clients[target.name] = _new_client(target)
            return client


def _new_client(target: StorageTarget) -> Any:
    require_boto3()
    import boto3
    from botocore.config import Config

    style = target.addressing_style or ("path" if target.endpoint_url else None)
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": style} if style else None,
    )
    session = boto3.session.Session()
    return session.client(
        "s3", region_name=target.region, endpoint_url=target.endpoint_url or None, config=config
    )


def s3_client() -> S3Client:
    """A client for a run that uploads: boto3 is checked (and imported) now, before any task."""
    require_boto3()
    return S3Client()
