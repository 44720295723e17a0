"""Administration: sites, cameras (zones, required PPE), users, API keys, audit log, retention.

Sites, users, keys and the audit log are admin-only; managers may edit cameras of their sites.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.api.auth import user_out
from service.deps import AppState, get_db, get_state
from service.models import ApiKey, AuditEntry, Camera, Site, User, Violation, utcnow
from service.passwords import password_problem
from service.retention import run_retention
from service.schemas import (
    SLUG,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    AuditOut,
    CameraIn,
    CameraOut,
    CameraPatch,
    RetentionOut,
    SiteIn,
    SiteOut,
    SitePatch,
    UserIn,
    UserOut,
    UserPatch,
)
from service.security import (
    audit,
    check_site,
    hash_password,
    new_api_key,
    require_role,
    revoke_sessions,
    site_scope,
)
from service.shared_security import announce_change

router = APIRouter(tags=["admin"])
SlugPath = Annotated[str, Path(pattern=SLUG, max_length=64)]
IntPath = Annotated[int, Path(ge=1, lt=2**31)]
_ERR = {401: {}, 403: {}, 404: {}, 409: {}, 422: {}}


def site_out(s: Site) -> SiteOut:
    return SiteOut(id=s.id, name=s.name, created_at=s.created_at)


def camera_out(c: Camera) -> CameraOut:
    return CameraOut(
        id=c.id,
        site_id=c.site_id,
        name=c.name,
        zones=c.zones,
        required_ppe=c.required_ppe,
        state=c.state,
        fps=c.fps,
        frames_dropped=c.frames_dropped,
        last_frame_at=c.last_frame_at,
        last_heartbeat_at=c.last_heartbeat_at,
        detector_id=c.detector_id,
    )


def key_out(k: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id,
        name=k.name,
        prefix=k.prefix,
        site_id=k.site_id,
        user_id=k.user_id,
        created_at=k.created_at,
        revoked_at=k.revoked_at,
    )


# --- sites ------------------------------------------------------------------------------------


@router.get("/sites", response_model=list[SiteOut], responses={401: {}})
def list_sites(
    user: User = Depends(require_role("viewer")), db: Session = Depends(get_db)
) -> list[SiteOut]:
    scope = site_scope(user)
    stmt = select(Site).order_by(Site.id)
    if scope is not None:
        stmt = stmt.where(Site.id.in_(sorted(scope)))
    return [site_out(s) for s in db.scalars(stmt)]


@router.post("/sites", status_code=201, response_model=SiteOut, responses=_ERR)
def create_site(
    body: SiteIn,
    request: Request,
    user: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> SiteOut:
    with state.db.writing(db):
        if db.get(Site, body.id) is not None:
            raise HTTPException(409, f"site {body.id!r} exists")
        site = Site(id=body.id, name=body.name, created_at=utcnow())
        db.add(site)
        audit(db, request, user.username, "site.create", user=user, site_id=body.id)
    return site_out(site)


@router.patch("/sites/{site_id}", response_model=SiteOut, responses=_ERR)
def patch_site(
    site_id: SlugPath,
    body: SitePatch,
    request: Request,
    user: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> SiteOut:
    with state.db.writing(db):
        site = db.get(Site, site_id)
        if site is None:
            raise HTTPException(404, f"unknown site {site_id!r}")
        site.name = body.name
        audit(db, request, user.username, "site.update", user=user, site_id=site_id)
    return site_out(site)


# --- cameras ----------------------------------------------------------------------------------


@router.get("/cameras", response_model=list[CameraOut], responses={401: {}, 403: {}})
def list_cameras(
    site_id: str | None = Query(None, pattern=SLUG),
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> list[CameraOut]:
    stmt = select(Camera).order_by(Camera.site_id, Camera.id)
    if site_id is not None:
        check_site(user, site_id)
        stmt = stmt.where(Camera.site_id == site_id)
    scope = site_scope(user)
    if scope is not None:
        stmt = stmt.where(Camera.site_id.in_(sorted(scope)))
    return [camera_out(c) for c in db.scalars(stmt)]


def _camera(db: Session, user: User, camera_id: str) -> Camera:
    cam = db.get(Camera, camera_id)
    if cam is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    check_site(user, cam.site_id, f"unknown camera {camera_id!r}")
    return cam


@router.get("/cameras/{camera_id}", response_model=CameraOut, responses=_ERR)
def get_camera(
    camera_id: SlugPath,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> CameraOut:
    return camera_out(_camera(db, user, camera_id))


@router.post("/cameras", status_code=201, response_model=CameraOut, responses=_ERR)
def create_camera(
    body: CameraIn,
    request: Request,
    user: User = Depends(require_role("manager")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> CameraOut:
    check_site(user, body.site_id)
    with state.db.writing(db):
        if db.get(Site, body.site_id) is None:
            raise HTTPException(404, f"unknown site {body.site_id!r}")
        if db.get(Camera, body.id) is not None:
            raise HTTPException(409, f"camera {body.id!r} exists")
        cam = Camera(
            id=body.id,
            site_id=body.site_id,
            name=body.name,
            zones=[z.model_dump() for z in body.zones],
            required_ppe=list(body.required_ppe),
            created_at=utcnow(),
        )
        db.add(cam)
        audit(
            db,
            request,
            user.username,
            "camera.create",
            user=user,
            site_id=body.site_id,
            target=body.id,
        )
    return camera_out(cam)


@router.patch("/cameras/{camera_id}", response_model=CameraOut, responses=_ERR)
def patch_camera(
    camera_id: SlugPath,
    body: CameraPatch,
    request: Request,
    user: User = Depends(require_role("manager")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> CameraOut:
    with state.db.writing(db):
        cam = _camera(db, user, camera_id)
        if body.name is not None:
            cam.name = body.name
        if body.zones is not None:
            cam.zones = [z.model_dump() for z in body.zones]
        if body.required_ppe is not None:
            cam.required_ppe = list(body.required_ppe)
        audit(
            db,
            request,
            user.username,
            "camera.update",
            user=user,
            site_id=cam.site_id,
            target=camera_id,
        )
    return camera_out(cam)


@router.delete("/cameras/{camera_id}", status_code=204, responses=_ERR)
def delete_camera(
    camera_id: SlugPath,
    request: Request,
    user: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    with state.db.writing(db):
        cam = _camera(db, user, camera_id)
        n = db.scalar(select(func.count()).where(Violation.camera_id == camera_id)) or 0
        if n:
            raise HTTPException(409, f"camera has {n} violations; it cannot be deleted")
        db.delete(cam)
        state.cameras.clear()
        announce_change(db)  # the other replicas' caches too
        audit(
            db,
            request,
            user.username,
            "camera.delete",
            user=user,
            site_id=cam.site_id,
            target=camera_id,
        )
    return Response(status_code=204)


# --- users ------------------------------------------------------------------------------------


def _sites(db: Session, ids: list[str]) -> list[Site]:
    sites = list(db.scalars(select(Site).where(Site.id.in_(ids))))
    missing = sorted(set(ids) - {s.id for s in sites})
    if missing:
        raise HTTPException(404, f"unknown sites: {', '.join(missing)}")
    return sites


@router.get("/users", response_model=list[UserOut], responses={401: {}, 403: {}})
def list_users(
    _user: User = Depends(require_role("admin")), db: Session = Depends(get_db)
) -> list[UserOut]:
    return [user_out(u) for u in db.scalars(select(User).order_by(User.username))]


@router.post("/users", status_code=201, response_model=UserOut, responses=_ERR)
def create_user(
    body: UserIn,
    request: Request,
    admin: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> UserOut:
    pw_hash = hash_password(body.password)
    with state.db.writing(db):
        if db.scalar(select(User.id).where(User.username == body.username)):
            raise HTTPException(409, f"user {body.username!r} exists")
        user = User(
            username=body.username,
            password_hash=pw_hash,
            role=body.role,
            sites=_sites(db, body.sites),
            created_at=utcnow(),
        )
        db.add(user)
        audit(
            db,
            request,
            admin.username,
            "user.create",
            user=admin,
            target=body.username,
            detail={"role": body.role, "sites": body.sites},
        )
    return user_out(user)


@router.patch("/users/{user_id}", response_model=UserOut, responses=_ERR)
def patch_user(
    user_id: IntPath,
    body: UserPatch,
    request: Request,
    admin: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> UserOut:
    """Change a user. A new password (checked against the policy) or disabling the user ends
    every session of the user: a reset must lock out whoever knew the old password."""
    if body.password:
        target = db.get(User, user_id)
        problem = password_problem(body.password, target.username if target else "")
        if problem:
            raise HTTPException(422, f"password {problem}")
    pw_hash = hash_password(body.password) if body.password else None
    with state.db.writing(db):
        user = db.get(User, user_id)
        if user is None:
            raise HTTPException(404, f"unknown user {user_id}")
        if pw_hash:
            user.password_hash = pw_hash
        if body.role is not None:
            user.role = body.role
        if body.sites is not None:
            user.sites = _sites(db, body.sites)
        if body.is_active is not None:
            user.is_active = body.is_active
        ended = revoke_sessions(db, user.id) if pw_hash or body.is_active is False else 0
        audit(
            db,
            request,
            admin.username,
            "user.update",
            user=admin,
            target=user.username,
            detail={
                "fields": sorted(body.model_dump(exclude_none=True, exclude={"password"}))
                + (["password"] if pw_hash else []),
                "sessions_ended": ended,
            },
        )
    return user_out(user)


# --- API keys ---------------------------------------------------------------------------------


@router.get("/api-keys", response_model=list[ApiKeyOut], responses={401: {}, 403: {}})
def list_keys(
    _user: User = Depends(require_role("admin")), db: Session = Depends(get_db)
) -> list[ApiKeyOut]:
    return [key_out(k) for k in db.scalars(select(ApiKey).order_by(ApiKey.id))]


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, responses=_ERR)
def create_key(
    body: ApiKeyIn,
    request: Request,
    admin: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ApiKeyCreated:
    if (body.site_id is None) == (body.user_id is None):
        raise HTTPException(422, "give exactly one of site_id (detector key) or user_id (token)")
    with state.db.writing(db):
        if body.site_id is not None and db.get(Site, body.site_id) is None:
            raise HTTPException(404, f"unknown site {body.site_id!r}")
        if body.user_id is not None and db.get(User, body.user_id) is None:
            raise HTTPException(404, f"unknown user {body.user_id}")
        key, secret = new_api_key(db, body.name, site_id=body.site_id, user_id=body.user_id)
        audit(
            db,
            request,
            admin.username,
            "api_key.create",
            user=admin,
            site_id=body.site_id,
            target=body.name,
        )
    return ApiKeyCreated(**key_out(key).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", status_code=204, responses=_ERR)
def revoke_key(
    key_id: IntPath,
    request: Request,
    admin: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    with state.db.writing(db):
        key = db.get(ApiKey, key_id)
        if key is None:
            raise HTTPException(404, f"unknown key {key_id}")
        key.revoked_at = key.revoked_at or utcnow()
        state.keys.clear()
        announce_change(db)  # the other replicas drop the key at commit
        audit(
            db,
            request,
            admin.username,
            "api_key.revoke",
            user=admin,
            site_id=key.site_id,
            target=key.name,
        )
    return Response(status_code=204)


# --- audit, retention -------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], responses={401: {}, 403: {}})
def list_audit(
    action: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
    _user: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
) -> list[AuditOut]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    return [AuditOut.model_validate(e, from_attributes=True) for e in db.scalars(stmt)]


@router.post("/retention/run", response_model=RetentionOut, responses={401: {}, 403: {}})
def post_retention(
    request: Request,
    user: User = Depends(require_role("admin")),
    state: AppState = Depends(get_state),
    db: Session = Depends(get_db),
) -> RetentionOut:
    result = run_retention(state)
    with state.db.writing(db):
        audit(db, request, user.username, "retention.run", user=user, detail=result.model_dump())
    return result
