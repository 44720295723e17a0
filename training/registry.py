"""HTTP client for the service's model registry and training samples (docs/contract.md,
"Training -> service"). Auth: a trainer's user token, `Authorization: Bearer <token>` (make one
with `siteguard admin create-api-key --user NAME`).

Example:
    >>> with RegistryClient("http://127.0.0.1:8000", token) as registry:
    ...     registry.register("models/siteguard-ppe.onnx", version="siteguard-ppe-2026.11.23",
    ...                       metrics={"benchmark": figures}, dataset_version="hardhat-...")
    ...     registry.promote("siteguard-ppe-2026.11.23")
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

API = "/api/v1"


class RegistryError(RuntimeError):
    """The service refused a request; carries the HTTP status and the service's detail."""

    def __init__(self, status: int, detail: Any, what: str) -> None:
        shown = detail.get("message", detail) if isinstance(detail, dict) else detail
        super().__init__(f"{what}: HTTP {status}: {shown}")
        self.status, self.detail = status, detail


class RegistryClient:
    """Register, list, update, promote and roll back model versions; fetch reviewed samples."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"service URL must start with http:// or https://, got {url!r}")
        if not token:
            raise ValueError("a trainer token is required (siteguard admin create-api-key --user)")
        self._http = httpx.Client(
            base_url=url.rstrip("/") + API,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response, what: str) -> Any:
        if response.is_success:
            return response.json() if response.content else None
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RegistryError(response.status_code, detail, what)

    def register(
        self,
        model: str | Path,
        version: str,
        metrics: dict[str, Any] | None = None,
        dataset_version: str | None = None,
        notes: str = "",
        weights: str | Path | None = None,
    ) -> dict[str, Any]:
        """Upload an ONNX file as a candidate version (with the .pt it was exported from, so a
        later `siteguard retrain` can fine-tune it); returns the registered record."""
        from contextlib import ExitStack

        model = Path(model)
        for path in (model, weights):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"model not found: {path}")
        meta = {"version": version, "metrics": metrics or {}, "notes": notes}
        if dataset_version:
            meta["dataset_version"] = dataset_version
        with ExitStack() as stack:
            files = {"file": (model.name, stack.enter_context(model.open("rb")))}
            if weights is not None:
                handle = stack.enter_context(Path(weights).open("rb"))
                files["weights"] = (Path(weights).name, handle)
            response = self._http.post("/models", data={"meta": json.dumps(meta)}, files=files)
        return self._check(response, f"register {version}")

    def models(self) -> list[dict[str, Any]]:
        return self._check(self._http.get("/models"), "list models")

    def get(self, version: str) -> dict[str, Any]:
        return self._check(self._http.get(f"/models/{version}"), f"get {version}")

    def update_metrics(self, version: str, metrics: dict[str, Any]) -> dict[str, Any]:
        """Merge metrics key by key (e.g. add `field` figures after a trial)."""
        response = self._http.patch(f"/models/{version}", json={"metrics": metrics})
        return self._check(response, f"update {version}")

    def promote(self, version: str, force: bool = False) -> dict[str, Any]:
        """Promote past the service's gate (409 with the failed checks); `force`: admins only."""
        params = {"force": "true"} if force else {}
        response = self._http.post(f"/models/{version}/promote", params=params)
        return self._check(response, f"promote {version}")

    def gate(self, version: str) -> dict[str, Any]:
        """The promotion gate's verdict on `version`, check by check, without promoting."""
        return self._check(self._http.get(f"/models/{version}/gate"), f"gate {version}")

    def rollback(self, version: str) -> dict[str, Any]:
        """Retire the active `version`; returns the version that became active again."""
        return self._check(self._http.post(f"/models/{version}/rollback"), f"rollback {version}")

    def download(self, version: str, out: str | Path, what: str = "file") -> Path:
        """The ONNX bytes (`what="weights"`: the .pt) of a registered version, to `out`."""
        out = Path(out)
        with self._http.stream("GET", f"/models/{version}/{what}") as response:
            if not response.is_success:
                response.read()
                self._check(response, f"download {version} {what}")
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return out

    def samples(
        self,
        since: str | None = None,
        limit: int = 500,
        kind: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """One page of samples: {"items": [...], "next_since": ...}; `kind` "review" or "audit"
        (random frames a detector sent), `status` "to_label" or "labelled" (audit samples)."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("since", since), ("kind", kind), ("status", status)):
            if value:
                params[name] = value
        return self._check(self._http.get("/samples", params=params), "list samples")

    def export_samples(self, out: str | Path, since: str | None = None, fmt: str = "yolo") -> Path:
        """Samples as a YOLO-layout zip (for `siteguard dataset import`), or COCO: reviewed
        alerts' frames and labelled audit frames (manifest.json gives each one's `kind`)."""
        params = {"format": fmt, **({"since": since} if since else {})}
        out = Path(out)
        with self._http.stream("GET", "/samples/export", params=params) as response:
            if not response.is_success:
                response.read()
                self._check(response, "export samples")
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return out


def benchmark_metrics(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The registry's metrics shape, {"benchmark": {...}}, from an evaluation JSON; a second
    data set measured the same way (`cross_source`: footage from another source, same figure
    names) rides along as {"cross_source": {...}}."""
    from training.export import compact_metrics

    metrics = {"benchmark": compact_metrics(evaluation)}
    cross = evaluation.get("cross_source")
    if isinstance(cross, dict) and cross:
        metrics["cross_source"] = compact_metrics(cross)
    return metrics


def register_model_file(
    client: RegistryClient,
    model: Path,
    evaluation: Path | None = None,
    notes: str = "",
    weights: Path | None = None,
) -> dict[str, Any]:
    """Register an exported model with the version, dataset version and figures it carries
    (its ONNX metadata, and MODEL.eval.json or `evaluation` when present)."""
    from training.onnx_meta import read_metadata

    if not model.is_file():
        raise FileNotFoundError(f"model not found: {model}")
    meta = read_metadata(model)
    version = meta.get("siteguard_version")
    if not version:
        raise ValueError(f"{model} has no siteguard_version metadata; export it with siteguard")
    eval_path = evaluation or model.with_suffix(".eval.json")
    if eval_path.is_file():
        metrics = benchmark_metrics(json.loads(eval_path.read_text()))
    elif meta.get("metrics"):
        benchmark = json.loads(meta["metrics"])
        cross = benchmark.pop("cross_source", None) if isinstance(benchmark, dict) else None
        metrics = {"benchmark": benchmark, **({"cross_source": cross} if cross else {})}
    else:
        metrics = {}
    dataset = meta.get("dataset_version")
    return client.register(
        model,
        version,
        metrics=metrics,
        dataset_version=None if dataset in (None, "unknown") else dataset,
        notes=notes,
        weights=weights,
    )
