"""Model registry: register candidates, list, edit, download, promote, rollback."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.field import audit_figures
from service.gate import GateResult, check_gate
from service.input_errors import error_detail
from service.models import ModelVersion, User, Violation, utcnow
from service.schemas import (
    SLUG,
    VERSION,
    AuditFigures,
    FieldOut,
    FieldPrecision,
    ModelMetaIn,
    ModelPatchIn,
    ModelVersionOut,
)
from service.security import (
    audit,
    check_site,
    current_user,
    lookup_detector_key,
    require_role,
    role_rank,
    site_scope,
)
from service.storage import BlobStore

log = logging.getLogger(__name__)
router = APIRouter(prefix="/models", tags=["models"])
VersionPath = Annotated[str, Path(pattern=VERSION, max_length=128)]
_ERR = {401: {}, 403: {}, 404: {}, 409: {}}


def field_precision(db: Session, version: str, sites: set[str] | None = None) -> FieldPrecision:
    """Reviews of `version`'s alerts on `sites` (None = every site)."""
    conf = func.sum(case((Violation.status == "confirmed", 1), else_=0))
    fa = func.sum(case((Violation.status == "false_alarm", 1), else_=0))
    stmt = select(conf, fa).where(Violation.model_version == version)
    if sites is not None:
        stmt = stmt.where(Violation.site_id.in_(sorted(sites)))
    n_conf, n_fa = db.execute(stmt).one()
    n_conf, n_fa = int(n_conf or 0), int(n_fa or 0)
    judged = n_conf + n_fa
    return FieldPrecision(
        reviewed=judged,
        confirmed=n_conf,
        false_alarm=n_fa,
        precision=(n_conf / judged) if judged else None,
    )


def _sites(user: User) -> list[str] | None:
    scope = site_scope(user)
    return None if scope is None else sorted(scope)


def to_out(
    db: Session, m: ModelVersion, user: User, figures: dict[str, AuditFigures] | None = None
) -> ModelVersionOut:
    """The record as `user` may see it: review counts, shadow reports and audit figures of the
    user's sites only (`figures`: already computed for several versions)."""
    sites = site_scope(user)
    if figures is None:
        figures = audit_figures(db, [m.version], _sites(user))
    return ModelVersionOut(
        version=m.version,
        sha256=m.sha256,
        size_bytes=m.size_bytes,
        metrics=m.metrics,
        dataset_version=m.dataset_version,
        notes=m.notes,
        status=m.status,
        created_at=m.created_at,
        promoted_at=m.promoted_at,
        file_url=f"/api/v1/models/{m.version}/file",
        field=field_precision(db, m.version, sites),
        weights_url=f"/api/v1/models/{m.version}/weights" if m.weights_sha256 else None,
        shadow_disagreements=_shadow_count(db, m.version, sites),
        audit=figures.get(m.version),
    )


def _shadow_count(db: Session, version: str, sites: set[str] | None = None) -> int:
    from service.models import ShadowReport

    query = select(func.count()).where(ShadowReport.candidate_version == version)
    if sites is not None:
        query = query.where(ShadowReport.site_id.in_(sorted(sites)))
    return int(db.scalar(query) or 0)


def _get(db: Session, version: str) -> ModelVersion:
    m = db.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if m is None:
        raise HTTPException(404, f"unknown model version {version!r}")
    return m


def _check_onnx(path: FsPath) -> None:
    """Load the file with onnxruntime: a registered version must be a model the detector can run."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several types
        raise HTTPException(415, f"file is not a loadable ONNX model: {exc}") from None


@router.get("", response_model=list[ModelVersionOut], responses={401: {}})
def list_models(
    user: User = Depends(require_role("viewer")), db: Session = Depends(get_db)
) -> list[ModelVersionOut]:
    rows = db.scalars(select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.id))
    figures = audit_figures(db, site_ids=_sites(user))
    return [to_out(db, m, user, figures) for m in rows]


@router.post(
    "",
    status_code=201,
    response_model=ModelVersionOut,
    responses={**_ERR, 413: {}, 415: {}, 422: {}},
)
def register_model(
    request: Request,
    user: User = Depends(require_role("trainer")),
    meta: str = Form(description='JSON: {"version", "dataset_version", "metrics", "notes"}'),
    file: UploadFile = File(description="the ONNX model"),
    weights: UploadFile | None = File(None, description="the Ultralytics .pt it came from"),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ModelVersionOut:
    try:
        parsed = ModelMetaIn.model_validate_json(meta)
    except ValidationError as exc:
        detail = error_detail(exc.errors(include_url=False, include_context=False))
        raise HTTPException(422, detail) from None
    if db.scalar(select(ModelVersion.id).where(ModelVersion.version == parsed.version)):
        raise HTTPException(409, f"model version {parsed.version!r} already exists")
    digest, size = _store_upload(file, state, "model", _check_onnx)
    weights_digest, weights_size = (
        _store_upload(weights, state, "weights", _check_checkpoint) if weights else (None, None)
    )
    row = ModelVersion(
        version=parsed.version,
        sha256=digest,
        size_bytes=size,
        metrics=parsed.metrics,
        dataset_version=parsed.dataset_version,
        notes=parsed.notes,
        status="candidate",
        created_by=user.id,
        created_at=utcnow(),
        weights_sha256=weights_digest,
        weights_size_bytes=weights_size,
    )
    try:
        with state.db.writing(db):
            db.add(row)
            audit(
                db,
                request,
                user.username,
                "model.register",
                user=user,
                target=row.version,
                detail={"sha256": digest, "size_bytes": size, "weights_sha256": weights_digest},
            )
    except Exception:
        if not db.scalar(select(ModelVersion.id).where(ModelVersion.sha256 == digest)):
            state.blobs.delete(digest)
        raise
    return to_out(db, row, user)


def _store_upload(
    upload: UploadFile, state: AppState, what: str, check: Callable[[FsPath], None]
) -> tuple[str, int]:
    """Spool an upload to a temporary file (at most `max_model_bytes`), check it, then store
    it in the blob store; returns (sha256, size)."""
    limit = state.settings.max_model_bytes
    with tempfile.NamedTemporaryFile(dir=state.settings.data_dir, prefix=".upload-") as tmp:
        size = 0
        for chunk in iter(lambda: upload.file.read(1 << 20), b""):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{what} larger than {limit} bytes")
            tmp.write(chunk)
        tmp.flush()
        if size == 0:
            raise HTTPException(415, f"empty {what} file")
        check(FsPath(tmp.name))
        return state.blobs.put_file(FsPath(tmp.name)), size


def _check_checkpoint(path: FsPath) -> None:
    """An Ultralytics .pt is a torch zip archive (not unpickled here: never trust its code)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise HTTPException(415, "weights are not a PyTorch checkpoint (.pt zip archive)")


@router.get("/{version}", response_model=ModelVersionOut, responses=_ERR)
def get_model(
    version: VersionPath,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> ModelVersionOut:
    return to_out(db, _get(db, version), user)


@router.get("/{version}/field", response_model=FieldOut, responses=_ERR)
def get_field(
    version: VersionPath,
    site_id: str | None = Query(None, pattern=SLUG, description="one site (default: yours)"),
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> FieldOut:
    """Field figures of a version on the user's sites: precision from managers' reviews, and
    worker accuracy, violation precision and recall from labelled audit frames (service/field.py),
    each with the counts behind it."""
    m = _get(db, version)
    if site_id is not None:
        check_site(user, site_id)
    scope = {site_id} if site_id is not None else site_scope(user)
    sites = None if scope is None else sorted(scope)
    empty = AuditFigures(
        frames=0, workers=0, heads=0, head_detections=0, false_alarms=0,
        worker_accuracy=None, violation_precision=None, violation_recall=None,
    )  # fmt: skip
    return FieldOut(
        version=m.version,
        site_id=site_id,
        reviews=field_precision(db, m.version, None if scope is None else set(scope)),
        audit=audit_figures(db, [m.version], sites).get(m.version, empty),
    )


@router.patch("/{version}", response_model=ModelVersionOut, responses={**_ERR, 422: {}})
def patch_model(
    version: VersionPath,
    body: ModelPatchIn,
    request: Request,
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ModelVersionOut:
    """Update metrics (merged key by key, e.g. add `field`), dataset version or notes."""
    with state.db.writing(db):
        m = _get(db, version)
        if body.metrics is not None:
            m.metrics = {**m.metrics, **body.metrics}
        if body.dataset_version is not None:
            m.dataset_version = body.dataset_version
        if body.notes is not None:
            m.notes = body.notes
        audit(
            db,
            request,
            user.username,
            "model.update",
            user=user,
            target=version,
            detail={"fields": sorted(body.model_dump(exclude_none=True))},
        )
    return to_out(db, m, user)


@router.delete("/{version}", status_code=204, responses=_ERR)
def delete_model(
    version: VersionPath,
    request: Request,
    user: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    with state.db.writing(db):
        m = _get(db, version)
        if m.status == "active":
            raise HTTPException(409, "cannot delete the active model; promote another first")
        digest = m.sha256
        db.delete(m)
        audit(db, request, user.username, "model.delete", user=user, target=version)
    if not db.scalar(select(ModelVersion.id).where(ModelVersion.sha256 == digest)):
        state.blobs.delete(digest)
    return Response(status_code=204)


def _file_reader(request: Request, db: Session = Depends(get_db)) -> str:
    """A detector key, or a trainer (or admin) user."""
    secret = request.headers.get("x-api-key")
    if secret:
        key = lookup_detector_key(request.app.state.siteguard, secret)
        if key is None:
            raise HTTPException(401, "invalid or revoked API key")
        return key.name
    user = current_user(request, db)
    if role_rank(user.role) < role_rank("trainer"):
        raise HTTPException(403, "needs role trainer or higher")
    return user.username


@router.get(
    "/{version}/file",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **_ERR},
)
def get_model_file(
    version: VersionPath,
    _who: str = Depends(_file_reader),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    m = _get(db, version)
    return _download(state, m.sha256, f"{m.version}.onnx", "model file missing from the store")


@router.get("/{version}/weights", response_class=FileResponse, responses=_ERR)
def get_model_weights(
    version: VersionPath,
    _user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """The Ultralytics .pt a version was exported from (what `siteguard retrain` fine-tunes)."""
    m = _get(db, version)
    missing = f"no weights stored for {version!r}"
    if m.weights_sha256 is None:
        raise HTTPException(404, missing)
    return _download(state, m.weights_sha256, f"{m.version}.pt", missing)


def _download(state: AppState, digest: str, filename: str, missing: str) -> Response:
    """A stored file as an attachment: from disk as a file (ranges work), from a remote store
    streamed through (no local copy)."""
    headers = {"X-Model-Sha256": digest}
    if isinstance(state.blobs, BlobStore):
        path = state.blobs.path(digest)
        if not path.is_file():
            raise HTTPException(404, missing)
        return FileResponse(
            path, media_type="application/octet-stream", filename=filename, headers=headers
        )
    try:
        chunks = state.blobs.chunks(digest)
    except FileNotFoundError:
        raise HTTPException(404, missing) from None
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


def _gate(db: Session, m: ModelVersion, state: AppState) -> GateResult:
    active = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
    if active is None or active.id == m.id:
        return check_gate(m.metrics, None, None)
    live = audit_figures(db, [active.version]).get(active.version)  # every site
    return check_gate(
        m.metrics,
        active.version,
        active.metrics,
        state.settings.promotion_tolerance,
        state.settings.promotion_field_tolerance,
        active_audit=live.model_dump() if live is not None else None,
        audit_tolerance=state.settings.promotion_audit_tolerance,
    )


@router.get("/{version}/gate", responses=_ERR)
def get_gate(
    version: VersionPath,
    _user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> dict:
    """Would promoting this version pass the gate (service/gate.py)? Each check with figures."""
    return _gate(db, _get(db, version), state).as_dict()


@router.post("/{version}/promote", response_model=ModelVersionOut, responses=_ERR)
def promote(
    version: VersionPath,
    request: Request,
    force: bool = Query(False, description="admin only: promote although the gate refuses"),
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ModelVersionOut:
    """Make this version the active one (the previous active one is retired) if it passes the
    promotion gate; an admin may force it (audited with the failed checks)."""
    if force and role_rank(user.role) < role_rank("admin"):
        raise HTTPException(403, "only an admin may force a promotion past the gate")
    with state.db.writing(db):
        m = _get(db, version)
        gate = _gate(db, m, state)
        if not gate.ok and not force:
            message = f"promotion gate refused {version!r}: {gate.failures()}"
            raise HTTPException(409, {"message": message, "gate": gate.as_dict()})
        previous = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
        if previous is not None and previous.id != m.id:
            previous.status = "retired"
        m.status = "active"
        m.promoted_at = utcnow()
        m.promoted_by = user.id
        audit(
            db,
            request,
            user.username,
            "model.promote",
            user=user,
            target=version,
            detail={
                "previous": previous.version if previous else None,
                "gate": "passed" if gate.ok else "forced",
                "checks": [c.__dict__ for c in gate.checks],
            },
        )
    return to_out(db, m, user)


@router.post("/{version}/rollback", response_model=ModelVersionOut, responses=_ERR)
def rollback(
    version: VersionPath,
    request: Request,
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ModelVersionOut:
    """Retire the active `version` and re-activate the most recently promoted earlier one."""
    with state.db.writing(db):
        m = _get(db, version)
        if m.status != "active":
            raise HTTPException(409, f"{version!r} is not the active model")
        previous = db.scalar(
            select(ModelVersion)
            .where(ModelVersion.id != m.id, ModelVersion.promoted_at.is_not(None))
            .order_by(ModelVersion.promoted_at.desc())
            .limit(1)
        )
        if previous is None:
            raise HTTPException(409, "no earlier promoted version to roll back to")
        m.status = "retired"
        previous.status = "active"
        previous.promoted_at = utcnow()
        previous.promoted_by = user.id
        audit(
            db,
            request,
            user.username,
            "model.rollback",
            user=user,
            target=version,
            detail={"restored": previous.version},
        )
    return to_out(db, previous, user)
