"""The S3 snapshot store (`snapshot_store: s3`) against a real S3 HTTP server on 127.0.0.1
(moto's server mode): the blob interface, the whole service on it (ingest, snapshots served by
the same role and site rules, model files streamed), an outage (503, nothing half-stored, the
retry succeeds), and a wrong bucket or wrong credentials refused at start-up.

The behaviour tests of ingest and of the model registry run here a second time, on this
module's `live` fixture: the same service with its blobs in S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_testkit import (
    BACKENDS,
    Live,
    ServerThread,
    event,
    jpeg,
    make_db_url,
    post_violation,
    seed,
)

pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

# The same behaviour, run again on S3 (pytest collects these names in this module too).
from test_service_ingest import test_ingest_is_idempotent_and_stores_snapshot  # noqa: E402
from test_service_models import onnx_bytes, test_register_promote_download_rollback  # noqa: E402

from service.config import ConfigError, load_settings  # noqa: E402
from service.models import Violation  # noqa: E402
from service.retention import collect_garbage  # noqa: E402
from service.storage import StorageUnavailable  # noqa: E402
from service.storage_s3 import S3BlobStore  # noqa: E402

__all__ = [
    "onnx_bytes",
    "test_ingest_is_idempotent_and_stores_snapshot",
    "test_register_promote_download_rollback",
]
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


class S3Server:
    """moto's S3 server on 127.0.0.1 that can be stopped (connections refused) and restarted
    on the same port; its buckets live in this process and survive a restart."""

    def __init__(self) -> None:
        self.port = 0
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = moto_server.ThreadedMotoServer("127.0.0.1", self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]

    def stop(self) -> None:
        self._server.stop()
        self._server._server.server_close()  # stop() leaves the socket listening

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, **KEYS)

    def new_bucket(self) -> str:
        name = f"sg-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", ()))

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


def s3_settings(tmp: Path, db_url: str, s3: S3Server, bucket: str, **overrides: Any) -> Any:
    values = {
        "data_dir": tmp / "data",
        "database_url": db_url,
        "login_max_failures": 3,
        "max_model_bytes": 20 * 1024 * 1024,
        "snapshot_store": "s3",
        "s3_bucket": bucket,
        "s3_endpoint_url": s3.url,
        "s3_region": REGION,
        "s3_access_key_id": KEYS["aws_access_key_id"],
        "s3_secret_access_key": KEYS["aws_secret_access_key"],
        "s3_timeout_s": 2.0,
    }
    return load_settings(**{**values, **overrides})


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3: S3Server
) -> Iterator[Live]:
    """The service (uvicorn on 127.0.0.1, SQLite or PostgreSQL) with its blobs in S3."""
    from service.app import create_app

    tmp = tmp_path_factory.mktemp(f"svc-s3-{request.param}")
    gen = make_db_url(request.param, tmp)
    try:
        app = create_app(s3_settings(tmp, next(gen), s3, s3.new_bucket()))
        keys, tokens = seed(app.state.siteguard)
        with ServerThread(app) as server:
            yield Live(url=server.url, app=app, data_dir=tmp / "data", keys=keys, tokens=tokens)
    finally:
        gen.close()


@pytest.fixture
def store(s3: S3Server) -> S3BlobStore:
    return S3BlobStore(s3.new_bucket(), endpoint_url=s3.url, region=REGION, **_store_keys())


def _store_keys() -> dict[str, str]:
    return {
        "access_key_id": KEYS["aws_access_key_id"],
        "secret_access_key": KEYS["aws_secret_access_key"],
    }


# --- the blob interface -----------------------------------------------------------------------


def test_blob_round_trip(store: S3BlobStore, s3: S3Server, tmp_path: Path) -> None:
    data = jpeg(seed=7)
    digest, created = store.store(data)
    assert digest == hashlib.sha256(data).hexdigest() and created
    assert store.store(data) == (digest, False)  # content-addressed: stored once
    assert store.put(data) == digest
    assert s3.keys(store.bucket) == [f"blobs/{digest[:2]}/{digest[2:4]}/{digest}"]
    assert store.exists(digest) and store.read(digest) == data
    assert b"".join(store.chunks(digest)) == data
    modified = store.modified(digest)
    assert modified is not None and modified > 0

    big = tmp_path / "model.bin"  # over the multipart threshold: uploaded in parts
    big.write_bytes(b"\x00\x01" * (9 << 20))
    big_digest = store.put_file(big)
    assert big_digest == hashlib.sha256(big.read_bytes()).hexdigest()
    assert store.put_file(big) == big_digest
    assert store.read(big_digest) == big.read_bytes()
    assert set(store.digests()) == {digest, big_digest}

    assert store.delete(digest) is True and store.delete(digest) is False
    assert not store.exists(digest) and store.modified(digest) is None
    with pytest.raises(FileNotFoundError):
        store.read(digest)
    with pytest.raises(FileNotFoundError):
        store.chunks(digest)
    assert list(store.digests()) == [big_digest]
    assert store.writable()
    with pytest.raises(ValueError):
        store.read("../../etc/passwd")  # only digests become keys


def test_custom_prefix_and_listing(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="other/readme.txt", Body=b"not ours")
    store = S3BlobStore(bucket, prefix="sg/", endpoint_url=s3.url, region=REGION, **_store_keys())
    digest = store.put(b"\xff\xd8\xff tiny \xff\xd9")
    assert f"sg/{digest[:2]}/{digest[2:4]}/{digest}" in s3.keys(bucket)
    assert list(store.digests()) == [digest]  # other keys in the bucket are not blobs


def test_outage_is_storage_unavailable(store: S3BlobStore, s3: S3Server) -> None:
    digest = store.put(b"kept")
    with s3.down():
        for call in (
            lambda: store.put(b"new"),
            lambda: store.read(digest),
            lambda: store.exists(digest),
            lambda: store.delete(digest),
            lambda: list(store.digests()),
        ):
            with pytest.raises(StorageUnavailable, match="S3 snapshot storage unavailable"):
                call()
        assert not store.writable()
    assert store.read(digest) == b"kept"


# --- the service on S3 ------------------------------------------------------------------------


def bucket_blobs(live: Live) -> set[str]:
    return set(live.state.blobs.digests())


def test_snapshots_live_in_the_bucket_not_on_disk(live: Live) -> None:
    snap, frame = jpeg(seed=11), jpeg(seed=12)
    with live.detector() as det:
        r = post_violation(det, event(), snap, frame)
    assert r.status_code == 201, r.text
    digests = {hashlib.sha256(snap).hexdigest(), hashlib.sha256(frame).hexdigest()}
    assert digests <= bucket_blobs(live)
    assert not list((live.data_dir / "blobs").glob("??/??/*"))
    url = r.json()["snapshot_url"]
    with live.login("mgr-a") as mgr:
        got = mgr.get(url)
        assert got.status_code == 200 and got.content == snap
        assert got.headers["content-type"] == "image/jpeg"
    with live.login("view-a") as viewer:
        assert viewer.get(url).content == snap
        assert viewer.get("/api/v1/violations/no-such-event/snapshot").status_code == 404
    with live.login("mgr-b") as other:
        assert other.get(url).status_code == 404  # another site's: as if it did not exist
    with live.client() as anonymous:
        assert anonymous.get(url).status_code == 401
    with live.client() as c:
        assert c.get("/readyz").status_code == 200


def test_same_image_in_one_round_is_kept_for_every_post(live: Live) -> None:
    """Uploads of a round run side by side; a repeat's cleanup must not delete the image a
    concurrent post of the same bytes stored."""
    snap = jpeg(size=5_000, seed=21)
    bodies = [event() for _ in range(12)]
    posts = [(b, snap) for b in bodies] + [(bodies[0], snap)] * 3

    async def post_all() -> list[httpx.Response]:
        headers = {"X-API-Key": live.keys["site-a"]}
        async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/api/v1/violations", files=_files(body, data))
                    for body, data in posts
                )
            )

    answers = asyncio.run(post_all())
    assert sorted(r.status_code for r in answers) == [200] * 3 + [201] * 12
    assert hashlib.sha256(snap).hexdigest() in bucket_blobs(live)
    with live.login("mgr-a") as mgr:
        for r in answers:
            assert mgr.get(r.json()["snapshot_url"]).content == snap


def test_s3_down_ingest_is_503_then_the_retry_is_stored(live: Live, s3: S3Server) -> None:
    body, snap = event(), jpeg(seed=31)
    rows, blobs = live.count(Violation), bucket_blobs(live)
    with s3.down(), live.detector() as det:
        r = post_violation(det, body, snap, jpeg(seed=32))
        assert r.status_code == 503, r.text
        assert "S3 snapshot storage unavailable" in r.json()["detail"]
        assert "retry later" in r.json()["detail"]
        assert live.count(Violation) == rows  # no row without its images
        with live.client() as c:
            assert c.get("/readyz").status_code == 503
    assert bucket_blobs(live) == blobs  # and no image without its row
    with live.detector() as det:  # the detector's retry, once S3 is back
        again = post_violation(det, body, snap, jpeg(seed=32))
    assert again.status_code == 201, again.text
    assert live.count(Violation) == rows + 1
    with live.login("mgr-a") as mgr:
        assert mgr.get(again.json()["snapshot_url"]).content == snap


def test_s3_down_reads_are_503(live: Live, s3: S3Server) -> None:
    with live.detector() as det:
        r = post_violation(det, event(), jpeg(seed=41))
    assert r.status_code == 201
    with live.login("mgr-a") as mgr, s3.down():
        got = mgr.get(r.json()["snapshot_url"])
        assert got.status_code == 503 and "S3" in got.json()["detail"]


def test_garbage_collection_lists_the_bucket(live: Live, s3: S3Server) -> None:
    with live.detector() as det:
        r = post_violation(det, event(), jpeg(seed=51))
    assert r.status_code == 201
    orphan = live.state.blobs.put(b"\xff\xd8\xff nobody refers to this \xff\xd9")
    assert collect_garbage(live.state, min_age_s=3600) == 0  # too young to collect
    assert collect_garbage(live.state, min_age_s=0) >= 1
    assert orphan not in bucket_blobs(live)
    with live.login("mgr-a") as mgr:
        assert mgr.get(r.json()["snapshot_url"]).status_code == 200


def test_missing_bucket_deleted_while_running_is_503(live: Live, s3: S3Server) -> None:
    """A bucket that disappears under a running service: 503 naming the store, never a 500."""
    from service.app import create_app

    client = s3.client()
    bucket = s3.new_bucket()
    settings = s3_settings(live.data_dir.parent / "gone", live.state.settings.db_url, s3, bucket)
    app = create_app(settings, housekeeping=False)
    client.delete_bucket(Bucket=bucket)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as det:
        det.headers["X-API-Key"] = live.keys["site-a"]
        r = post_violation(det, event(), jpeg(seed=61))
        assert r.status_code == 503, r.text
        assert bucket in r.json()["detail"]
        assert det.get("/readyz").status_code == 503


# --- start-up -----------------------------------------------------------------------------------


def test_wrong_bucket_is_refused_at_start_up(s3: S3Server, tmp_path: Path) -> None:
    from service.app import create_app

    settings = s3_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", s3, "no-such-bucket")
    with pytest.raises(ConfigError, match="no-such-bucket.*no such bucket"):
        create_app(settings)


def test_wrong_credentials_are_refused_at_start_up(s3: S3Server, tmp_path: Path) -> None:
    from service.app import create_app

    bucket = s3.new_bucket()
    settings = s3_settings(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", s3, bucket, s3_access_key_id="AKIAWRONG"
    )
    with moto_auth(s3), pytest.raises(ConfigError, match="access denied: check the credentials"):
        create_app(settings)


def test_unreachable_store_starts_and_answers_503(s3: S3Server, tmp_path: Path) -> None:
    """S3 not up yet at start-up: the service starts (not ready), ingest answers 503."""
    from service.app import create_app

    bucket = s3.new_bucket()
    settings = s3_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", s3, bucket)
    with s3.down():
        app = create_app(settings, housekeeping=False)
        keys, _tokens = seed(app.state.siteguard)
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as det:
            det.headers["X-API-Key"] = keys["site-a"]
            assert det.get("/readyz").status_code == 503
            assert post_violation(det, event(), jpeg(seed=71)).status_code == 503


def test_s3_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs s3_bucket"):
        load_settings(snapshot_store="s3")
    with pytest.raises(ConfigError, match="snapshot_store"):
        load_settings(snapshot_store="ftp")
    secret = load_settings(snapshot_store="s3", s3_bucket="b", s3_secret_access_key="hush")
    assert "hush" not in repr(secret)


@contextlib.contextmanager
def moto_auth(s3: S3Server) -> Iterator[None]:
    """Make moto check credentials (it accepts any by default) while the block runs."""
    httpx.post(f"{s3.url}/moto-api/reset-auth", content=b"0").raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{s3.url}/moto-api/reset-auth", content=b"inf").raise_for_status()


def _files(body: dict[str, Any], snapshot: bytes) -> dict[str, Any]:
    import json

    return {"event": (None, json.dumps(body)), "snapshot": ("s.jpg", snapshot, "image/jpeg")}
