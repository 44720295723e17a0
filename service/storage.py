"""Content-addressed blob store for snapshots, frames and model files.

Blobs live under `<data_dir>/blobs/ab/cd/<sha256>`; the only names ever turned into paths are
64-character lowercase hex digests we computed ourselves, so no client string reaches the
filesystem::

    store = BlobStore(Path("var/service"))
    digest = store.put(jpeg_bytes)   # idempotent: same bytes, same digest, one file
    store.read(digest)
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
JPEG_SOI = b"\xff\xd8\xff"


class StorageUnavailable(RuntimeError):
    """The blob store cannot be written (disk full, read-only, wrong permissions)."""


class BlobStore:
    remote: ClassVar[bool] = False  # see `service.storage_s3.S3BlobStore` for the remote one

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "blobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: set[Path] = set()

    def path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store `data` (atomically: temp file + rename) and return its sha256."""
        return self.store(data)[0]

    def store(self, data: bytes) -> tuple[str, bool]:
        """Like `put`, also saying whether the file is new (so a failed insert can undo it)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if path.exists():
            return digest, False
        # A temp name unique to this process, thread and digest: no random-name retries as in
        # mkstemp, and two workers writing the same image never share a temp file.
        tmp = str(path.parent / f".tmp-{digest}-{os.getpid()}-{threading.get_ident()}")
        try:
            self._ensure_dir(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise StorageUnavailable(f"snapshot storage unavailable: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageUnavailable(f"snapshot storage unavailable: {exc.strerror}") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest, True

    def _ensure_dir(self, directory: Path) -> None:
        """mkdir once per fan-out directory (a mkdir per write costs a syscall on every ingest)."""
        if directory not in self._dirs:
            directory.mkdir(parents=True, exist_ok=True)
            if len(self._dirs) < 70_000:  # at most 256 * 256 directories
                self._dirs.add(directory)

    def put_file(self, src: Path) -> str:
        """Store a file by streaming it (model files can be large)."""
        sha = hashlib.sha256()
        with open(src, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".tmp-{digest}")
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    fout.write(chunk)
            os.replace(tmp, path)
        return digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def modified(self, digest: str) -> float | None:
        """When the blob was written (epoch seconds); None if it is not stored."""
        try:
            return self.path(digest).stat().st_mtime
        except FileNotFoundError:
            return None

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def digests(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if _DIGEST.fullmatch(path.name):
                yield path.name

    def writable(self) -> bool:
        """Readiness: a probe file can be written and removed."""
        try:
            probe = self.root / ".ready"
            probe.write_bytes(b"")
            probe.unlink()
            return True
        except OSError:
            return False


def looks_like_jpeg(data: bytes) -> bool:
    """Cheap structural check: JPEG start-of-image marker and an end-of-image marker near the end.

    Decoding every upload would cost ~1 ms of CPU per ingest; the detector sends encoder output,
    so a marker check is enough to reject PNGs, HTML and truncated uploads.
    """
    return len(data) > 4 and data.startswith(JPEG_SOI) and b"\xff\xd9" in data[-64:]
