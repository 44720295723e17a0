"""ONNX inference for Ultralytics-exported YOLO detectors: letterbox -> run -> decode -> NMS.

No torch: onnxruntime runs the model, numpy decodes the output, OpenCV does NMS. The same class
runs in the detector loop and in `training/evaluate.py`, so accuracy figures come from the code
path that runs in production (see docs/contract.md).

Example:
    >>> det = OnnxDetector("models/siteguard-ppe.onnx", conf=0.25, iou=0.5)
    >>> [detections] = det.predict([cv2.imread("site.jpg")])
    >>> detections.data["class_name"]
    array(['helmet', 'person'], dtype='<U6')
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from detector.tiling import Tiling
from detector.tiling import merge as tiling_merge
from detector.tiling import views as tiling_views

log = logging.getLogger(__name__)
# The operating threshold a trainer chose on val (`siteguard export --conf`), in the ONNX metadata.
OPERATING_CONF_KEY = "siteguard_conf"
# Per-class thresholds that override it (JSON {"head": 0.4, "helmet": 0.2}), also chosen on val:
# a bare-head alert costs a manager's attention, a missed hard hat raises nothing.
CLASS_CONF_KEY = "siteguard_class_conf"
# One head is bare or wears a hard hat, never both: these classes compete in NMS.
EXCLUSIVE_CLASSES: tuple[tuple[str, ...], ...] = (("head", "helmet"),)

PAD_VALUE = 114  # Ultralytics' letterbox grey


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: scale, then (left, top) padding."""

    scale: float
    pad_x: float
    pad_y: float

    def to_frame(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Map boxes from model-input pixels back to frame pixels, clipped to the frame."""
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to `size` (height, width), as Ultralytics does."""
    height, width = frame.shape[:2]
    target_h, target_w = size
    scale = min(target_h / height, target_w / width)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_x, pad_y = (target_w - new_w) / 2, (target_h - new_h) / 2
    if (new_w, new_h) != (width, height):
        frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(pad_y - 0.1), round(pad_y + 0.1)
    left, right = round(pad_x - 0.1), round(pad_x + 0.1)
    boxed = cv2.copyMakeBorder(
        frame, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return boxed, Letterbox(scale=scale, pad_x=float(left), pad_y=float(top))


def rect_shape(height: int, width: int, imgsz: tuple[int, int], stride: int) -> tuple[int, int]:
    """The smallest stride-aligned input that holds the frame scaled to fit `imgsz`.

    Ultralytics feeds dynamic-shape models this way (a 1280x720 frame runs at 384x640 instead of
    640x640): same scale, less padding, less compute.
    """
    scale = min(imgsz[0] / height, imgsz[1] / width)
    new_h, new_w = round(height * scale), round(width * scale)
    return (-(-new_h // stride) * stride, -(-new_w // stride) * stride)


def _nms_groups(names: dict[int, str], exclusive: Sequence[Sequence[str]]) -> np.ndarray:
    """The NMS group of each class id: its own id, or the first id of its exclusive set."""
    groups = np.arange(max(names) + 1)
    ids = {name: i for i, name in names.items()}
    for exclusive_set in exclusive:
        present = [ids[n] for n in exclusive_set if n in ids]
        for i in present[1:]:
            groups[i] = present[0]
    return groups


def _parse_conf(raw: str | None) -> float | None:
    """The operating threshold the trainer chose on val (`siteguard export --conf`), if any."""
    if raw is None:
        return None
    try:
        conf = float(raw)
    except ValueError:
        log.warning("ignoring ONNX metadata %s=%r (not a number)", OPERATING_CONF_KEY, raw)
        return None
    return conf if 0.0 < conf < 1.0 else None


def parse_class_conf(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """`"head=0.4,helmet=0.2"` (or a mapping, or JSON) -> {"head": 0.4, "helmet": 0.2}.

    Raises ValueError naming the bad part: thresholds must lie in (0, 1).
    """
    if not spec:
        return {}
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{"):
            try:
                pairs = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"class thresholds {spec!r}: not JSON ({exc})") from exc
        else:
            pairs = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                name, sep, value = part.partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"class threshold {part!r}: expected NAME=CONF")
                pairs[name.strip()] = value.strip()
    else:
        pairs = dict(spec)
    out = {}
    for name, value in pairs.items():
        try:
            conf = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"class threshold {name}={value!r}: not a number") from None
        if not 0.0 < conf < 1.0:
            raise ValueError(f"class threshold {name}={conf}: must be between 0 and 1")
        out[str(name)] = conf
    return out


def format_class_conf(class_conf: Mapping[str, float]) -> str:
    """{"head": 0.4, "helmet": 0.2} -> "head=0.4,helmet=0.2" (what `parse_class_conf` reads)."""
    return ",".join(f"{name}={conf}" for name, conf in class_conf.items())


def _metadata_class_conf(raw: str | None) -> dict[str, float]:
    """`siteguard_class_conf` from the ONNX metadata; a bad value is ignored with a warning."""
    try:
        return parse_class_conf(raw)
    except ValueError as exc:
        log.warning("ignoring ONNX metadata %s: %s", CLASS_CONF_KEY, exc)
        return {}


def class_thresholds(
    names: Mapping[int, str], class_conf: Mapping[str, float], default: float
) -> np.ndarray:
    """Per class id (0..max id), the confidence at which a detection of that class counts."""
    size = max(names, default=-1) + 1
    return np.array(
        [class_conf.get(names.get(i, ""), default) for i in range(size)], dtype=np.float32
    )


def _parse_names(raw: str | None) -> dict[int, str]:
    if not raw:
        raise ValueError("ONNX metadata has no 'names' (export the model with Ultralytics)")
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"ONNX metadata 'names' is not a dict literal: {raw[:80]!r}") from exc
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise ValueError(f"ONNX metadata 'names' must be a non-empty dict, got {raw[:80]!r}")
    return {int(k): str(v) for k, v in names.items()}


def _parse_imgsz(raw: str | None, input_shape: Sequence[object]) -> tuple[int, int]:
    if raw:
        value = ast.literal_eval(raw)
        if isinstance(value, int):
            return (value, value)
        return (int(value[0]), int(value[1]))
    height, width = input_shape[2], input_shape[3]
    if isinstance(height, int) and isinstance(width, int):
        return (height, width)
    return (640, 640)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxDetector:
    """A YOLO detector exported by Ultralytics to ONNX, run by onnxruntime on the CPU.

    `rect` feeds dynamic-shape models a stride-aligned input instead of a square one (as
    Ultralytics does); `spin_wait=False` stops idle onnxruntime threads from busy-waiting.
    Raises `ValueError` at construction when the file is not a usable detector (unreadable,
    wrong input/output shape, no class names), so a bad model never reaches the loop.

    `exclusive` names classes that are states of one object: their boxes compete in NMS, so one
    head is a `head` or a `helmet`, never both (per-class NMS would keep both when the model is
    unsure, i.e. a bare head and a hard hat on the same person). Chosen on the validation split:
    worker accuracy +0.2 to +0.3 points and fewer false alarms on two models (docs/benchmarks.md).
    """

    def __init__(
        self,
        model: str | Path,
        conf: float = 0.25,
        iou: float = 0.5,
        max_det: int = 300,
        threads: int = 0,
        rect: bool = True,
        spin_wait: bool = False,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        exclusive: Sequence[Sequence[str]] = EXCLUSIVE_CLASSES,
    ) -> None:
        if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
            raise ValueError(f"conf and iou must be in [0, 1], got conf={conf}, iou={iou}")
        self.path = Path(model)
        if not self.path.is_file():
            raise ValueError(f"model file not found: {self.path}")
        self.conf, self.iou, self.max_det = conf, iou, max_det
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        if not spin_wait:
            # onnxruntime's pool threads busy-wait between operators by default. On a small
            # edge box shared with other cameras/processes that burns the CPU they need: off.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"cannot load ONNX model {self.path}: {exc}") from exc
        self.sha256 = file_sha256(self.path)
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, "3"):
            shapes = [i.shape for i in inputs]
            raise ValueError(f"{self.path}: expected one input (batch, 3, h, w), got {shapes}")
        self.input_name = inputs[0].name
        self.names = _parse_names(meta.get("names"))
        self.imgsz = _parse_imgsz(meta.get("imgsz"), inputs[0].shape)
        self.dynamic_batch = not isinstance(inputs[0].shape[0], int)
        self.stride = int(meta.get("stride", 32))
        # Minimal padding needs a model whose height/width axes are dynamic.
        self.rect = rect and not all(isinstance(d, int) for d in inputs[0].shape[2:])
        self.task = meta.get("task", "detect")
        self.version = meta.get("siteguard_version") or f"{self.path.stem}-{self.sha256[:8]}"
        self.metadata = dict(meta)
        self.nms_group = _nms_groups(self.names, exclusive)
        self.operating_conf = _parse_conf(meta.get(OPERATING_CONF_KEY))
        self.class_conf = _metadata_class_conf(meta.get(CLASS_CONF_KEY))
        out_shape = outputs[0].shape
        expected = 4 + len(self.names)
        if len(out_shape) != 3 or (isinstance(out_shape[1], int) and out_shape[1] != expected):
            raise ValueError(
                f"{self.path}: expected output (batch, {expected}, anchors) for "
                f"{len(self.names)} classes, got {out_shape}"
            )
        self._check_runs()

    def _check_runs(self) -> None:
        """One run on a blank input: catches models whose real output does not match."""
        blank = np.zeros((1, 3, *self.imgsz), dtype=np.float32)
        try:
            (out,) = self.session.run(None, {self.input_name: blank})[:1]
        except Exception as exc:
            raise ValueError(f"{self.path}: test run failed: {exc}") from exc
        if out.ndim != 3 or out.shape[1] != 4 + len(self.names):
            raise ValueError(
                f"{self.path}: output shape {out.shape} does not fit {len(self.names)} classes"
            )

    def __repr__(self) -> str:
        return f"OnnxDetector({str(self.path)!r}, version={self.version!r}, imgsz={self.imgsz})"

    def preprocess(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """BGR uint8 frames -> one NCHW float32 RGB blob in [0, 1], plus how each was boxed."""
        size = self.imgsz
        if self.rect:  # one shape for the batch: the largest any frame needs
            shapes = [rect_shape(*f.shape[:2], self.imgsz, self.stride) for f in frames]
            size = (max(h for h, _ in shapes), max(w for _, w in shapes))
        blob = np.empty((len(frames), 3, *size), dtype=np.float32)
        boxes = []
        scale = np.float32(1 / 255.0)
        for i, frame in enumerate(frames):
            image, box = letterbox(frame, size)
            boxes.append(box)
            # BGR planes -> RGB channels scaled to [0, 1], written straight into the blob
            # (about 15x less CPU than cv2.dnn.blobFromImages here).
            for channel, plane in enumerate(reversed(cv2.split(image))):
                np.multiply(plane, scale, out=blob[i, channel], casting="unsafe")
        return blob, boxes

    def run(self, blob: np.ndarray) -> np.ndarray:
        """session.run on a blob, in one call when the batch axis is dynamic."""
        if self.dynamic_batch or blob.shape[0] == 1:
            return self.session.run(None, {self.input_name: blob})[0]
        parts = [
            self.session.run(None, {self.input_name: blob[i : i + 1]})[0] for i in range(len(blob))
        ]
        return np.concatenate(parts)

    def decode(self, output: np.ndarray, box: Letterbox, width: int, height: int) -> sv.Detections:
        """One frame's raw output (4 + nc, anchors) -> NMS-filtered detections in frame pixels."""
        # Work in the output's own (4 + nc, anchors) layout: row-wise max is contiguous and
        # cheap; only the few anchors above `conf` are looked at again.
        class_scores = output[4:]
        best = class_scores.max(axis=0)
        keep = np.flatnonzero(best >= self.conf)
        if not len(keep):
            return self._empty()
        class_ids = class_scores[:, keep].argmax(axis=0)
        scores = best[keep]
        preds = output[:4, keep].T
        cx, cy, w, h = preds[:, 0], preds[:, 1], preds[:, 2], preds[:, 3]
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        index = self.nms(xyxy, scores, class_ids)
        frame_xyxy = box.to_frame(xyxy[index], width, height).astype(np.float32)
        ids = class_ids[index].astype(int)
        return sv.Detections(
            xyxy=frame_xyxy,
            confidence=scores[index].astype(np.float32),
            class_id=ids,
            data={"class_name": np.array([self.names.get(i, str(i)) for i in ids], dtype=str)},
        )

    def nms(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Indices of the boxes NMS keeps (best first, at most `max_det`).

        Per-class NMS (as Ultralytics does), except that `exclusive` classes share a group:
        boxes are offset by group so groups never suppress one another, then one OpenCV call on
        (x, y, w, h) boxes. Tiled inference merges its views with this same call.
        """
        offset = self.nms_group[class_ids][:, None].astype(np.float32) * 7680.0
        shifted = xyxy + offset
        xywh = np.concatenate([shifted[:, :2], shifted[:, 2:] - shifted[:, :2]], axis=1)
        index = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.conf, self.iou)
        return np.asarray(index, dtype=int).reshape(-1)[: self.max_det]

    def _empty(self) -> sv.Detections:
        detections = sv.Detections.empty()
        detections.data["class_name"] = np.array([], dtype=str)
        return detections

    def predict(
        self,
        frames: Sequence[np.ndarray],
        tiling: Tiling | Sequence[Tiling | None] | None = None,
    ) -> list[sv.Detections]:
        """Detections for each BGR frame (one onnxruntime call for all when batching is allowed).

        `tiling` (one for all frames, or one per frame; None = off) adds tiled inference for
        small, distant workers (detector/tiling.py): a tiled frame's full-frame pass and tiles
        run in the same onnxruntime call as the other frames, and are merged by `nms`.
        """
        if not frames:
            return []
        plans = list(tiling) if isinstance(tiling, Sequence) else [tiling] * len(frames)
        if len(plans) != len(frames):
            raise ValueError(f"{len(plans)} tilings for {len(frames)} frames")
        if any(plan is not None for plan in plans):
            return self._predict_tiled(frames, plans)
        blob, boxes = self.preprocess(frames)
        output = self.run(blob)
        return [
            self.decode(output[i], boxes[i], frame.shape[1], frame.shape[0])
            for i, frame in enumerate(frames)
        ]

    def _predict_tiled(
        self, frames: Sequence[np.ndarray], plans: Sequence[Tiling | None]
    ) -> list[sv.Detections]:
        images: list[np.ndarray] = []
        spans: list[tuple[int, int, np.ndarray | None]] = []  # (first view, views, windows)
        for frame, plan in zip(frames, plans, strict=True):
            if plan is None:
                spans.append((len(images), 1, None))
                images.append(frame)
                continue
            frame_views, windows = tiling_views(frame, plan)
            spans.append((len(images), len(frame_views), windows))
            images.extend(frame_views)
        parts = self.predict(images)
        out = []
        for frame, plan, (first, count, windows) in zip(frames, plans, spans, strict=True):
            if plan is None:
                out.append(parts[first])
                continue
            height, width = frame.shape[:2]
            out.append(
                tiling_merge(parts[first : first + count], windows, width, height, plan, self.nms)
            )
        return out
