"""The registry client against a real service (uvicorn on 127.0.0.1, SQLite file)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from siteguard.cli import main
from training.registry import RegistryClient, RegistryError, register_model_file

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(url, trainer token, viewer token) of a live service."""
    import socket

    import uvicorn
    from sqlalchemy import select

    from service.app import create_app
    from service.config import load_settings
    from service.models import User
    from service.security import hash_password, new_api_key

    tmp = tmp_path_factory.mktemp("svc")
    app = create_app(
        load_settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'sg.db'}")
    )
    state = app.state.siteguard
    tokens = {}
    with state.db.session() as db, state.db.writing(db):
        for name, role in (("trainer", "trainer"), ("viewer", "viewer")):
            db.add(User(username=name, password_hash=hash_password(PASSWORD), role=role))
        db.flush()
        for name in ("trainer", "viewer"):
            uid = db.scalar(select(User.id).where(User.username == name))
            _row, tokens[name] = new_api_key(db, f"token-{name}", user_id=uid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", tokens["trainer"], tokens["viewer"]
    server.should_exit = True
    thread.join(30)


def tiny_model(path: Path, version: str, dataset_version: str = "ds-abc") -> Path:
    """A real (tiny) ONNX file carrying our metadata keys, plus its evaluation JSON."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"siteguard_version": version, "dataset_version": dataset_version}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    figures = {
        "split": "test",
        "images": 10,
        "map50": 0.9,
        "map50_95": 0.6,
        "worker_accuracy": 0.91,
        "per_class": {"head": {"ap50": 0.88}},
        "data": "/x/hardhat/data.yaml",
    }
    path.with_suffix(".eval.json").write_text(json.dumps(figures))
    return path


def test_register_promote_rollback_download(service, tmp_path: Path) -> None:
    url, trainer, _ = service
    with RegistryClient(url, trainer) as client:
        first = register_model_file(client, tiny_model(tmp_path / "a.onnx", "ppe-a"))
        assert first["status"] == "candidate" and first["dataset_version"] == "ds-abc"
        assert first["metrics"]["benchmark"]["worker_accuracy"] == 0.91
        assert first["metrics"]["benchmark"]["data"] == "hardhat"
        client.promote("ppe-a")
        register_model_file(client, tiny_model(tmp_path / "b.onnx", "ppe-b"))
        assert client.promote("ppe-b")["status"] == "active"
        assert client.get("ppe-a")["status"] == "retired"
        restored = client.rollback("ppe-b")
        assert restored["version"] == "ppe-a" and restored["status"] == "active"
        updated = client.update_metrics("ppe-b", {"field": {"precision": 0.8}})
        assert updated["metrics"]["field"] == {"precision": 0.8}
        assert "benchmark" in updated["metrics"]
        out = client.download("ppe-a", tmp_path / "dl" / "a.onnx")
        assert out.read_bytes() == (tmp_path / "a.onnx").read_bytes()
        assert {m["version"] for m in client.models()} >= {"ppe-a", "ppe-b"}
        page = client.samples()
        assert page["items"] == []


def test_refusals_carry_status_and_detail(service, tmp_path: Path) -> None:
    url, trainer, viewer = service
    model = tiny_model(tmp_path / "c.onnx", "ppe-c")
    with RegistryClient(url, trainer) as client:
        register_model_file(client, model)
        with pytest.raises(RegistryError, match="already exists") as exc:
            register_model_file(client, model)
        assert exc.value.status == 409
        with pytest.raises(RegistryError) as exc:
            client.promote("no-such-version")
        assert exc.value.status == 404
        junk = tmp_path / "junk.onnx"
        junk.write_bytes(b"not onnx")
        with pytest.raises(RegistryError) as exc:
            client.register(junk, "ppe-junk")
        assert exc.value.status == 415
    with RegistryClient(url, viewer) as client, pytest.raises(RegistryError) as exc:
        register_model_file(client, tiny_model(tmp_path / "d.onnx", "ppe-d"))
    assert exc.value.status == 403
    with RegistryClient(url, "forged") as client, pytest.raises(RegistryError) as exc:
        client.models()
    assert exc.value.status == 401


def test_registry_cli(service, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, trainer, _ = service
    model = tiny_model(tmp_path / "e.onnx", "ppe-e")
    args = ["registry", "--url", url, "--token", trainer]
    assert main([*args, "register", str(model), "--promote"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "active"
    assert main([*args, "promote", "ppe-missing"]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    free = f"http://127.0.0.1:{_closed_port()}"
    assert main(["registry", "--url", free, "--token", trainer, "list"]) == 2
    assert "cannot reach the service" in capsys.readouterr().err


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_register_from_the_base_install_without_onnx(
    service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: `onnx` is only in [train]; the base install reads the metadata with
    onnxruntime, and a second evaluated data set (`cross_source`) is registered beside it."""
    url, trainer, _ = service
    model = tiny_model(tmp_path / "f.onnx", "ppe-f")
    figures = json.loads(model.with_suffix(".eval.json").read_text())
    figures["cross_source"] = {**figures, "worker_accuracy": 0.72, "data": "/x/css/data.yaml"}
    model.with_suffix(".eval.json").write_text(json.dumps(figures))
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ImportError):
        import onnx  # noqa: F401
    assert main(["registry", "--url", url, "--token", trainer, "register", str(model)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["version"] == "ppe-f" and record["dataset_version"] == "ds-abc"
    assert record["metrics"]["benchmark"]["worker_accuracy"] == 0.91
    assert record["metrics"]["cross_source"]["worker_accuracy"] == 0.72
    assert record["metrics"]["cross_source"]["data"] == "css"


def test_bundled_lineage_is_oldest_first_and_read_from_the_files() -> None:
    """The demo registers the bundled model after the earlier versions kept beside it; the
    versions come from the files' metadata, so a newer bundled model needs no code change."""
    from siteguard.demo import bundled_lineage
    from training.onnx_meta import read_metadata

    models = Path(__file__).resolve().parents[2] / "models"
    lineage = bundled_lineage(models / "siteguard-ppe.onnx")
    assert lineage[-1] == models / "siteguard-ppe.onnx"
    assert all("int8" not in p.name for p in lineage)
    dates = [read_metadata(p)["date"] for p in lineage]
    assert dates == sorted(dates) and len(lineage) >= 2
    for path in lineage:  # every version shows its own measured figures on the page
        evaluation = json.loads(path.with_suffix(".eval.json").read_text())
        assert evaluation["model_version"] == read_metadata(path)["siteguard_version"]


def test_figures_from_the_metadata_alone_keep_the_second_source_apart(
    service, tmp_path: Path
) -> None:
    """No .eval.json beside the model: the figures `siteguard export` stored in its metadata,
    with the cross-source block registered as `metrics.cross_source`, not inside `benchmark`."""
    from training.onnx_meta import write_metadata

    url, trainer, _ = service
    model = tiny_model(tmp_path / "g.onnx", "ppe-g")
    model.with_suffix(".eval.json").unlink()
    compact = {"split": "test", "images": 10, "worker_accuracy": 0.9,
               "cross_source": {"split": "test", "images": 40, "worker_accuracy": 0.7}}  # fmt: skip
    write_metadata(model, {"metrics": json.dumps(compact)})
    with RegistryClient(url, trainer) as client:
        record = register_model_file(client, model)
    assert record["metrics"]["benchmark"]["worker_accuracy"] == 0.9
    assert "cross_source" not in record["metrics"]["benchmark"]
    assert record["metrics"]["cross_source"]["worker_accuracy"] == 0.7
