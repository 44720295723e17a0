"""Detector heartbeats: camera health in, the active model version out (for hot reload)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.clock import check_times
from service.deps import AppState, get_db, get_state
from service.events import Event
from service.models import Camera, Detector, ModelVersion, utcnow
from service.schemas import ActiveModel, CameraSettings, HeartbeatIn, HeartbeatOut
from service.security import DetectorKey, detector_key

router = APIRouter(tags=["detectors"])


def active_model(db: Session) -> ActiveModel | None:
    row = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
    if row is None:
        return None
    return ActiveModel(
        version=row.version, sha256=row.sha256, url=f"/api/v1/models/{row.version}/file"
    )


@router.post("/heartbeats", response_model=HeartbeatOut, responses={401: {}, 403: {}, 404: {}})
def post_heartbeat(
    beat: HeartbeatIn,
    key: DetectorKey = Depends(detector_key),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> HeartbeatOut:
    check_times(
        state.settings,
        **{f"cameras.{i}.last_frame_at": c.last_frame_at for i, c in enumerate(beat.cameras)},
    )
    now = utcnow()
    changed: list[tuple[str, str]] = []
    with state.db.writing(db):
        cams = {c.camera_id: c for c in beat.cameras}
        rows = {c.id: c for c in db.scalars(select(Camera).where(Camera.id.in_(list(cams))))}
        for cam_id in cams:
            if cam_id not in rows:
                raise HTTPException(404, f"unknown camera {cam_id!r}")
            if rows[cam_id].site_id != key.site_id:
                raise HTTPException(403, f"camera {cam_id!r} is not in this key's site")
        det = db.get(Detector, beat.detector_id)
        if det is None:
            det = Detector(id=beat.detector_id, site_id=key.site_id)
            db.add(det)
        elif det.site_id != key.site_id:
            raise HTTPException(403, f"detector {beat.detector_id!r} belongs to another site")
        det.model_version = beat.model_version
        det.last_seen_at = now
        for cam_id, info in cams.items():
            cam = rows[cam_id]
            if cam.state != info.state:
                changed.append((cam_id, info.state))
            cam.state = info.state
            cam.fps = info.fps
            cam.frames_dropped = info.frames_dropped
            cam.last_frame_at = info.last_frame_at
            cam.last_heartbeat_at = now
            cam.detector_id = beat.detector_id
        settings = [
            CameraSettings(
                camera_id=cam_id,
                zones=list(rows[cam_id].zones or []),
                required_ppe=list(rows[cam_id].required_ppe or ["helmet"]),
            )
            for cam_id in cams
        ]
    state.metrics.heartbeats.inc()
    for cam_id, new_state in changed:
        announce_camera(state, key.site_id or "", cam_id, new_state, now)
    return HeartbeatOut(active_model=active_model(db), cameras=settings)


def announce_camera(
    state: AppState, site_id: str, camera_id: str, new_state: str, at: dt.datetime
) -> None:
    """Tell the dashboard (SSE) and the alert channels that a camera changed state."""
    state.bus.publish(Event("camera", site_id, {"camera_id": camera_id, "state": new_state}))
    state.alerts.notify_camera(site_id=site_id, camera_id=camera_id, state=new_state, at=at)
