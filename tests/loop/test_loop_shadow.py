"""Shadow mode with real models on real images: the candidate (here the bundled model at a much
higher threshold, so it misses bare heads the active model flags) raises no alert; its
disagreements reach a real service and are counted on the candidate's model record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
from loop_testlib import CAMERA, LoopService, bare_head_images, start_service, wait_until

from detector.inference import OnnxDetector
from detector.shadow import ShadowMode, compare
from training.registry import RegistryClient

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopService]:
    service = start_service(tmp_path_factory.mktemp("shadow-svc"))
    yield service
    service.stop()


def _det(rows: list[tuple[str, list[float]]]) -> sv.Detections:
    det = sv.Detections(
        xyxy=np.array([r[1] for r in rows], dtype=np.float32).reshape(-1, 4),
        confidence=np.ones(len(rows), dtype=np.float32),
        class_id=np.zeros(len(rows), dtype=int),
    )
    det.data["class_name"] = np.array([r[0] for r in rows], dtype=str)
    return det


def test_compare_names_each_kind_of_disagreement() -> None:
    head, other = [10, 10, 50, 50], [200, 200, 240, 240]
    assert compare(_det([("head", head)]), _det([("head", [11, 11, 51, 51])])) == []
    assert compare(_det([("head", head)]), _det([])) == ["missed_violation"]
    assert compare(_det([]), _det([("head", head)])) == ["extra_violation"]
    assert compare(_det([("head", head)]), _det([("helmet", head)])) == ["class_changed"]
    both = compare(_det([("head", head), ("helmet", other)]), _det([("head", other)]))
    assert both == ["class_changed", "missed_violation"]
    assert compare(_det([("person", head)]), _det([])) == []  # persons are not violations


def test_candidate_disagreements_reach_the_service(
    svc: LoopService, bundled_model: Path, hardhat_dir: Path
) -> None:
    with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
        record = registry.register(bundled_model, "shadow-cand")
    active = OnnxDetector(bundled_model, conf=0.25)
    strict = OnnxDetector(bundled_model, conf=0.9)
    strict.version = record["version"]  # the registered candidate
    shadow = ShadowMode(strict, lambda: "active-v1", svc.url, svc.detector_key, "edge-shadow")
    shadow.start()
    try:
        expected = 0
        for image_path in bare_head_images(hardhat_dir, "test", 3):
            frame = cv2.imread(str(image_path))
            [seen] = active.predict([frame])
            [strict_seen] = strict.predict([frame])
            expected += len(compare(seen, strict_seen))
            shadow.observe(CAMERA, frame, seen, 1_700_000_000.0)
            wait_until(lambda: shadow._frames.empty(), timeout=60)  # one frame at a time
        assert expected > 0, "the strict candidate should miss some bare heads"
        wait_until(lambda: shadow.counts["posted"] == expected, timeout=60)
    finally:
        shadow.stop()
    assert shadow.counts["frames"] == 3 and shadow.counts["dropped"] == 0
    with svc.client("trainer") as trainer:
        rows = trainer.get("/api/v1/shadow", params={"candidate_version": "shadow-cand"}).json()
        assert len(rows) == expected
        assert {r["active_version"] for r in rows} == {"active-v1"}
        assert "missed_violation" in {r["kind"] for r in rows}
        assert trainer.get("/api/v1/models/shadow-cand").json()["shadow_disagreements"] == expected
