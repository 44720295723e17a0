"""Tiled inference (detector/tiling.py): windows, config validation, and on real site photos
through the real detector and the real runner: tile boxes land where the workers are, distant
heads the full frame misses are found, and only the cameras that ask for tiles get them."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from detector.config import ConfigError, load_config
from detector.inference import OnnxDetector, class_thresholds
from detector.runner import Runner
from detector.tiling import Tiling

FRAME_WH = (1920, 1080)  # a 1080p site camera
HEAD_PX = 22  # bare heads this tall in the frame: ~7 px to a 640 model, ~13 px in a 2x2 tile


# -- windows and validation (no model) ---------------------------------------------------
@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080), (500, 375), (641, 479)])
@pytest.mark.parametrize("grid,overlap", [(2, 0.2), (2, 0.0), (3, 0.25), (4, 0.1)])
def test_windows_cover_the_frame_in_equal_overlapping_tiles(width, height, grid, overlap):
    tiling = Tiling(grid, overlap)
    windows = tiling.windows(width, height)
    assert windows.shape == (grid * grid, 4)
    for axis, size in ((0, width), (1, height)):
        starts = sorted(set(windows[:, axis].tolist()))
        ends = sorted(set(windows[:, axis + 2].tolist()))
        spans = {e - s for s, e in zip(starts, ends, strict=True)}
        assert len(spans) == 1, "every tile has the same size"
        span = spans.pop()
        assert starts[0] == 0 and ends[-1] == size
        for left_end, right_start in zip(ends, starts[1:], strict=False):
            shared = left_end - right_start
            assert abs(shared - overlap * span) <= 2, (shared, overlap * span)
        # the tile is `zoom` times smaller than the frame: that is what enlarges small heads
        assert abs(size / span - tiling.zoom) < 0.05 * tiling.zoom
    assert tiling.runs == grid * grid + 1
    assert Tiling(grid, overlap, full_frame=False).runs == grid * grid


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"grid": 1}, "grid must be 2 to 4"),
        ({"grid": 5}, "grid must be 2 to 4"),
        ({"grid": 2.0}, "grid must be an integer"),
        ({"grid": True}, "grid must be an integer"),
        ({"overlap": 0.5}, "overlap must be in [0, 0.5)"),
        ({"overlap": -0.1}, "overlap must be in [0, 0.5)"),
    ],
)
def test_tiling_rejects_impossible_values(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Tiling(**kwargs)


def _camera(tiling) -> dict:
    return {"id": "far-yard", "source": "rtsp://10.0.0.9/stream", "tiling": tiling}


def test_camera_tiling_is_off_by_default_and_true_means_the_defaults():
    config = load_config(None, cameras=[{"id": "gate", "source": "rtsp://x/1"}])
    assert config.cameras[0].tiling is None
    config = load_config(None, cameras=[_camera(True)])
    tiling = config.cameras[0].tiling
    assert (tiling.grid, tiling.overlap, tiling.full_frame) == (2, 0.2, True)
    assert load_config(None, cameras=[_camera(False)]).cameras[0].tiling is None
    config = load_config(None, cameras=[_camera({"grid": 3, "overlap": 0.1, "full_frame": False})])
    tiling = config.cameras[0].tiling
    assert (tiling.grid, tiling.overlap, tiling.full_frame) == (3, 0.1, False)


@pytest.mark.parametrize(
    "tiling,expected",
    [
        ({"grid": 1}, "cameras.0.tiling.grid: Input should be greater than or equal to 2"),
        ({"grid": 8}, "cameras.0.tiling.grid: Input should be less than or equal to 4"),
        ({"overlap": 0.6}, "cameras.0.tiling.overlap: Input should be less than 0.5"),
        ({"overlap": -0.2}, "cameras.0.tiling.overlap: Input should be greater than or equal"),
        ({"grids": 2}, "cameras.0.tiling.grids: Extra inputs are not permitted"),
        ("2x2", "cameras.0.tiling: Input should be a valid dictionary"),
    ],
)
def test_bad_camera_tiling_fails_at_start_up_with_its_path(tiling, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, cameras=[_camera(tiling)])
    assert expected in str(info.value)


def test_config_bounds_match_the_tiling_module():
    """The config enforces the limits `Tiling` does (no camera passes one and fails the other)."""
    from detector.config import TilingConfig
    from detector.tiling import MAX_GRID

    grid = TilingConfig.model_fields["grid"].metadata
    assert {getattr(m, "ge", None) for m in grid} - {None} == {2}
    assert {getattr(m, "le", None) for m in grid} - {None} == {MAX_GRID}
    Tiling(MAX_GRID, 0.49)


# -- real photos through the real detector -----------------------------------------------
@pytest.fixture(scope="module")
def detector(bundled_model: Path) -> OnnxDetector:
    return OnnxDetector(bundled_model, conf=0.2)


def _labels(label: Path) -> np.ndarray:
    rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=float).reshape(-1, 5)


@pytest.fixture(scope="module")
def crowd_photos(hardhat_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation photos with at least two labelled bare heads: (image, head boxes xyxy)."""
    picked = []
    for label in sorted((hardhat_dir / "valid" / "labels").glob("*.txt")):
        rows = _labels(label)
        heads = rows[rows[:, 0] == 0]
        image = hardhat_dir / "valid" / "images" / f"{label.stem}.jpg"
        if len(heads) < 2 or not image.is_file():
            continue
        frame = cv2.imread(str(image))
        h, w = frame.shape[:2]
        cx, cy, bw, bh = heads[:, 1] * w, heads[:, 2] * h, heads[:, 3] * w, heads[:, 4] * h
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        picked.append((frame, boxes))
        if len(picked) == 12:
            break
    assert len(picked) >= 4, "not enough validation photos with bare heads"
    return picked


def _distant_scene(photo: np.ndarray, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The photo shrunk until its bare heads are HEAD_PX tall, pasted into a 1080p frame inside
    the first tile (workers far from the camera); None when it does not fit there."""
    scale = HEAD_PX / float(np.median(heads[:, 3] - heads[:, 1]))
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x0, y0 = 200, 120
    if x0 + small.shape[1] > 1000 or y0 + small.shape[0] > 560:  # first tile ends at 1067x600
        return None
    frame = np.full((FRAME_WH[1], FRAME_WH[0], 3), 114, dtype=np.uint8)
    frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return frame, heads * scale + np.array([x0, y0, x0, y0])


def _heads_found(detector: OnnxDetector, detections: sv.Detections, heads: np.ndarray) -> int:
    """Labelled bare heads that a `head` detection at the model's own threshold overlaps."""
    thresholds = class_thresholds(
        detector.names, detector.class_conf, detector.operating_conf or 0.25
    )
    kept = detections[detections.confidence >= thresholds[detections.class_id]]
    kept = kept[kept.data["class_name"] == "head"]
    if not len(kept):
        return 0
    return int((sv.box_iou_batch(heads, kept.xyxy).max(axis=1) >= 0.3).sum())


@pytest.mark.shared
def test_tiles_find_distant_bare_heads_that_the_full_frame_misses(detector, crowd_photos):
    """Real site photos shrunk into a 1080p frame so heads are 22 px tall (~7 px to a 640 px
    model): the full frame finds (almost) none, 2x2 tiles + full frame find them where they are."""
    full = tiled = heads_total = scenes = 0
    for photo, heads in crowd_photos:
        scene = _distant_scene(photo, heads)
        if scene is None:
            continue
        frame, frame_heads = scene
        scenes += 1
        heads_total += len(frame_heads)
        [plain] = detector.predict([frame])
        [tiles] = detector.predict([frame], tiling=Tiling(2, 0.2))
        full += _heads_found(detector, plain, frame_heads)
        tiled += _heads_found(detector, tiles, frame_heads)
    assert scenes >= 3
    assert tiled >= max(5, 3 * full), (full, tiled, heads_total)


@pytest.mark.shared
def test_tile_boxes_map_back_to_frame_coordinates(detector, crowd_photos):
    """Four real photos as a 2x2 mosaic, tiles without overlap = the four photos: the tiled
    result is exactly each photo's own detections, shifted to where the photo lies."""
    photos = [cv2.resize(photo, (480, 360)) for photo, _ in crowd_photos[:4]]
    mosaic = np.vstack([np.hstack(photos[:2]), np.hstack(photos[2:])])
    tiling = Tiling(2, 0.0, full_frame=False)
    assert tiling.windows(960, 720).tolist() == [
        [0, 0, 480, 360], [480, 0, 960, 360], [0, 360, 480, 720], [480, 360, 960, 720],
    ]  # fmt: skip
    [merged] = detector.predict([mosaic], tiling=tiling)
    expected = []
    for photo, (x0, y0) in zip(photos, [(0, 0), (480, 0), (0, 360), (480, 360)], strict=True):
        [own] = detector.predict([photo])
        own.xyxy = own.xyxy + np.array([x0, y0, x0, y0], dtype=np.float32)
        expected.append(own)
    expected = sv.Detections.merge(expected)
    assert len(expected) >= 8 and len(merged) == len(expected)
    order_m = np.lexsort((merged.xyxy[:, 1], merged.xyxy[:, 0], merged.class_id))
    order_e = np.lexsort((expected.xyxy[:, 1], expected.xyxy[:, 0], expected.class_id))
    np.testing.assert_allclose(merged.xyxy[order_m], expected.xyxy[order_e], atol=0.05)
    np.testing.assert_allclose(merged.confidence[order_m], expected.confidence[order_e], atol=1e-4)
    assert (merged.class_id[order_m] == expected.class_id[order_e]).all()
    assert (merged.data["class_name"][order_m] == expected.data["class_name"][order_e]).all()


@pytest.mark.shared
def test_head_and_helmet_compete_across_tiles_and_full_frame(detector, crowd_photos):
    """The merge is the detector's class-exclusive NMS: no `head` and `helmet` on the same
    person, and no two boxes of one group that overlap more than the NMS IoU."""
    for photo, _ in crowd_photos[:4]:
        [tiled] = detector.predict([photo], tiling=Tiling(2, 0.2))
        workers = tiled[np.isin(tiled.data["class_name"], ["head", "helmet"])]
        iou = sv.box_iou_batch(workers.xyxy, workers.xyxy)
        np.fill_diagonal(iou, 0.0)
        assert iou.max(initial=0.0) <= detector.iou + 1e-6


@pytest.mark.shared
def test_default_path_is_unchanged_and_tiling_is_per_frame(detector, crowd_photos):
    # one frame size: a batch of mixed sizes shares one letterbox shape, tiled or not
    frames = [cv2.resize(photo, (640, 480)) for photo, _ in crowd_photos[:3]]
    plain = detector.predict(frames)
    mixed = detector.predict(frames, tiling=[None, Tiling(2, 0.2), None])
    alone = detector.predict([frames[1]], tiling=Tiling(2, 0.2))[0]
    for i in (0, 2):
        np.testing.assert_allclose(mixed[i].xyxy, plain[i].xyxy, atol=0.05)
        assert (mixed[i].class_id == plain[i].class_id).all()
    np.testing.assert_allclose(mixed[1].xyxy, alone.xyxy, atol=0.05)
    with pytest.raises(ValueError, match="2 tilings for 3 frames"):
        detector.predict(frames, tiling=[None, None])


# -- the runner honours the camera option ------------------------------------------------
@pytest.mark.shared
def test_runner_tiles_only_the_cameras_that_ask(
    detector, crowd_photos, bundled_model: Path, tmp_path: Path
):
    """Two cameras watch the same distant-worker frame; only `far` has `tiling`. Through the
    real runner (readers, batching, one onnxruntime call) each gets what the detector gives
    for its own option, and only the tiled camera sees the bare heads."""
    scenes = [s for p, h in crowd_photos if (s := _distant_scene(p, h)) is not None]
    frame, heads = max(  # the scene where tiles make the most difference
        scenes,
        key=lambda s: (
            _heads_found(detector, detector.predict([s[0]], tiling=Tiling())[0], s[1])
            - _heads_found(detector, detector.predict([s[0]])[0], s[1])
        ),
    )
    folder = tmp_path / "yard"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame.png"), frame)  # lossless: the reader sees this very frame
    camera = {"source": str(folder), "fps": 50, "playback_fps": 20}
    config = load_config(
        None,
        # fp32, as the `detector` it is compared with (an int8 runner would box a little apart)
        model={
            "path": str(bundled_model),
            "use_int8": False,
            "watch": False,
            "follow_promotions": False,
        },
        outbox={"path": str(tmp_path / "outbox.sqlite3")},
        motion={"enabled": False},
        metrics={"enabled": False},
        cameras=[{"id": "near", **camera}, {"id": "far", **camera, "tiling": {"grid": 2}}],
    )
    runner = Runner(config)
    assert runner.cameras["near"].tiling is None
    assert runner.cameras["far"].tiling == Tiling(2, 0.2, full_frame=True)
    for pipe in runner.cameras.values():
        pipe.reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            p.last_detections is None for p in runner.cameras.values()
        ):
            runner.step()
            time.sleep(0.02)
    finally:
        runner.stop()
    near, far = (runner.cameras[c].last_detections for c in ("near", "far"))
    assert near is not None and far is not None, "the runner processed no frame"
    [plain] = detector.predict([frame])
    [tiled] = detector.predict([frame], tiling=Tiling(2, 0.2))
    np.testing.assert_allclose(near.xyxy, plain.xyxy, atol=0.05)
    np.testing.assert_allclose(far.xyxy, tiled.xyxy, atol=0.05)
    assert _heads_found(detector, far, heads) > _heads_found(detector, near, heads)
