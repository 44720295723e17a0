"""Content-addressed blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...).

The same interface as `service.storage.BlobStore`; objects are keyed `<prefix>/ab/cd/<sha256>`
and, as on disk, only digests we computed ourselves become keys. Every S3 or network failure
raises `StorageUnavailable` (the API answers 503 and the detector retries). Needs the `[s3]`
extra (boto3); credentials not given here come from the usual AWS variables and files::

    store = S3BlobStore("siteguard", endpoint_url="http://minio:9000")
    digest = store.put(jpeg_bytes)   # idempotent: same bytes, same digest, one object
    store.read(digest)
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from service.storage import StorageUnavailable

try:
    import boto3
    from boto3.exceptions import Boto3Error
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ModuleNotFoundError as exc:  # the base install has no boto3
    raise ModuleNotFoundError(
        "snapshot_store 's3' needs boto3: pip install 'siteguard[s3]'"
    ) from exc

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MISSING = {"404", "NoSuchKey", "NotFound"}
_REJECTED = {  # the store answered and will keep saying no: a configuration problem
    "404": "no such bucket",  # HEAD has no body: the status is the code
    "NoSuchBucket": "no such bucket",
    "403": "access denied: check the credentials and their permissions",
    "AccessDenied": "access denied: check the credentials and their permissions",
    "AllAccessDisabled": "access denied: check the credentials and their permissions",
    "InvalidAccessKeyId": "unknown access key: check the credentials",
    "SignatureDoesNotMatch": "wrong secret key: check the credentials",
    "AuthorizationHeaderMalformed": "wrong region: check s3_region",
    "PermanentRedirect": "the bucket is in another region: check s3_region",
}
_S3_ERRORS = (BotoCoreError, ClientError, Boto3Error)
_CHUNK = 1 << 20
_MULTIPART_BYTES = 16 << 20


class S3ConfigError(StorageUnavailable):
    """The S3 store rejects this configuration (no such bucket, bad credentials, no access)."""


class S3BlobStore:
    """Blobs as objects in one bucket; `remote` tells callers to overlap the round trips."""

    remote: ClassVar[bool] = True

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "blobs",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str | None = None,
        timeout_s: float = 10.0,
        max_connections: int = 16,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=max_connections,
            # Path style for a custom endpoint: MinIO and the like rarely have bucket DNS names.
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
        )
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        # Stores of one digest take turns, so exactly one of them says "created" (a post that
        # fails deletes only what it created, never an image another post stored meanwhile).
        self._locks = [threading.Lock() for _ in range(64)]

    def key(self, digest: str) -> str:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return "/".join(p for p in (self.prefix, digest[:2], digest[2:4], digest) if p)

    def check(self) -> None:
        """Start-up check: `S3ConfigError` for a wrong bucket or credentials,
        `StorageUnavailable` when the store cannot be reached."""
        with self._errors("opening the bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def put(self, data: bytes) -> str:
        """Store `data` and return its sha256."""
        return self.store(data)[0]

    def store(self, data: bytes) -> tuple[str, bool]:
        """Like `put`, also saying whether the object is new (so a failed insert can undo it)."""
        digest = hashlib.sha256(data).hexdigest()
        with self._locks[int(digest[:2], 16) % len(self._locks)]:
            if self.exists(digest):
                return digest, False
            with self._errors("storing a blob"):
                self.client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=data)
        return digest, True

    def put_file(self, src: Path) -> str:
        """Store a file by streaming it; a large one goes up as a multipart upload."""
        sha = hashlib.sha256()
        with open(src, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
        transfer = TransferConfig(
            multipart_threshold=_MULTIPART_BYTES, multipart_chunksize=_MULTIPART_BYTES
        )
        with self._locks[int(digest[:2], 16) % len(self._locks)]:
            if not self.exists(digest):
                with self._errors("uploading a file"):
                    self.client.upload_file(
                        str(src), self.bucket, self.key(digest), Config=transfer
                    )
        return digest

    def exists(self, digest: str) -> bool:
        return self._head(digest) is not None

    def modified(self, digest: str) -> float | None:
        """When the object was written (epoch seconds); None if it is not stored."""
        head = self._head(digest)
        return None if head is None else head["LastModified"].timestamp()

    def read(self, digest: str) -> bytes:
        """The blob's bytes; `FileNotFoundError` if it is not stored (as on disk)."""
        with self._errors("reading a blob"):
            return self._get(digest)["Body"].read()

    def chunks(self, digest: str) -> Iterator[bytes]:
        """The blob in 1 MiB chunks. The GET is sent before this returns, so a missing object
        or an outage raises here rather than in the middle of a response."""
        with self._errors("reading a blob"):
            body = self._get(digest)["Body"]

        def stream() -> Iterator[bytes]:
            with contextlib.closing(body), self._errors("streaming a blob"):
                yield from body.iter_chunks(_CHUNK)

        return stream()

    def delete(self, digest: str) -> bool:
        if not self.exists(digest):
            return False
        with self._errors("deleting a blob"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        return True

    def digests(self) -> Iterator[str]:
        """Every stored digest (one LIST request per 1000 objects)."""
        pages = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        with self._errors("listing blobs"):
            for page in pages.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", ()):
                    name = item["Key"].rpartition("/")[2]
                    if _DIGEST.fullmatch(name):
                        yield name

    def writable(self) -> bool:
        """Readiness: a probe object can be written and deleted."""
        probe = "/".join(p for p in (self.prefix, ".ready") if p)
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except _S3_ERRORS:
            return False
        return True

    def _head(self, digest: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._unavailable("looking up a blob", exc) from exc
        except _S3_ERRORS as exc:
            raise self._unavailable("looking up a blob", exc) from exc

    def _get(self, digest: str) -> dict[str, Any]:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(f"blob {digest} is not stored") from exc
            raise

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """boto3/botocore errors become `StorageUnavailable` (`S3ConfigError` when rejected)."""
        try:
            yield
        except _S3_ERRORS as exc:
            raise self._unavailable(doing, exc) from exc

    def _unavailable(self, doing: str, exc: BaseException) -> StorageUnavailable:
        where = f"s3://{self.bucket}/{self.prefix} at {self.endpoint_url or 'AWS'}"
        hint = _REJECTED.get(_code(exc))
        if hint is not None:
            return S3ConfigError(f"S3 snapshot storage refused {doing} ({where}): {hint}; {exc}")
        return StorageUnavailable(f"S3 snapshot storage unavailable ({doing}, {where}): {exc}")


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
