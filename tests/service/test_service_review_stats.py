"""Review outcomes, stats with the confirmed rate, training samples and their YOLO export."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import yaml
from service_testkit import Live, event, jpeg, post_violation


def test_review_stats_and_samples(live: Live) -> None:
    day1 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
    day2 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    plan = [
        ("gate-1", "site", day1, "confirmed"),
        ("gate-1", "site", day1, "false_alarm"),
        ("crane-1", "roof", day1, "confirmed"),
        ("crane-1", "roof", day2, "unsure"),
        ("gate-1", "site", day2, None),
    ]
    ids = []
    with live.detector() as det:
        for i, (cam, zone, start, _) in enumerate(plan):
            body = event(cam, zone=zone, started_at=start.isoformat(), model_version="stats-m1")
            r = post_violation(det, body, jpeg(seed=10 + i), jpeg(seed=20 + i))
            assert r.status_code == 201, r.text
            ids.append(body["event_id"])
    with live.login("mgr-a") as mgr:
        for eid, (*_, outcome) in zip(ids, plan, strict=True):
            if outcome:
                r = mgr.post(
                    f"/api/v1/violations/{eid}/review",
                    json={"outcome": outcome, "comment": f"looked: {outcome}"},
                )
                assert r.status_code == 200, r.text
                assert r.json()["status"] == outcome
                assert r.json()["reviews"][-1]["user"] == "mgr-a"
                assert r.json()["reviews"][-1]["comment"] == f"looked: {outcome}"
        bad = mgr.post(f"/api/v1/violations/{ids[0]}/review", json={"outcome": "maybe"})
        assert bad.status_code == 422
        base = {"model_version": "stats-m1"}
        listed = mgr.get("/api/v1/violations", params={**base, "status": "confirmed"}).json()
        assert listed["total"] == 2
        page = mgr.get("/api/v1/violations", params={**base, "limit": 2, "offset": 4}).json()
        assert page["total"] == 5 and len(page["items"]) == 1
        since = mgr.get("/api/v1/violations", params={**base, "since": day2.isoformat()}).json()
        assert since["total"] == 2
        assert mgr.get("/api/v1/violations", params={"limit": 0}).status_code == 422
        assert mgr.get("/api/v1/violations", params={"since": "yesterday"}).status_code == 422

        by_day = mgr.get("/api/v1/stats", params={**base, "group_by": "day"}).json()["rows"]
        assert [(r["key"][:10], r["total"]) for r in by_day] == [
            ("2026-03-01", 3),
            ("2026-03-02", 2),
        ]
        assert by_day[0]["confirmed_rate"] == 2 / 3
        by_zone = {
            r["key"]: r
            for r in mgr.get("/api/v1/stats", params={**base, "group_by": "zone"}).json()["rows"]
        }
        assert by_zone["roof"]["confirmed"] == 1 and by_zone["roof"]["unsure"] == 1
        assert by_zone["roof"]["confirmed_rate"] == 1.0
        assert by_zone["site"]["unreviewed"] == 1
        by_cam = mgr.get("/api/v1/stats", params={**base, "group_by": "camera"}).json()
        assert {r["key"] for r in by_cam["rows"]} == {"gate-1", "crane-1"}
        by_kind = mgr.get("/api/v1/stats", params={**base, "group_by": "kind"}).json()
        assert by_kind["rows"][0]["key"] == "no_helmet"
        assert mgr.get("/api/v1/stats", params={"group_by": "face"}).status_code == 422

    with live.login("trainer") as trainer:
        samples = trainer.get("/api/v1/samples").json()["items"]
        mine = [s for s in samples if s["event_id"] in ids]
        # confirmed and false alarms become samples; unsure and unreviewed do not
        assert sorted(s["outcome"] for s in mine) == ["confirmed", "confirmed", "false_alarm"]
        image = trainer.get(mine[0]["image_url"])
        assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
        export = trainer.get("/api/v1/samples/export", params={"format": "yolo"})
        assert export.status_code == 200
        assert export.headers["content-type"] == "application/zip"
        zf = zipfile.ZipFile(io.BytesIO(export.content))
        names = yaml.safe_load(zf.read("data.yaml"))["names"]
        assert names[0] == "head"
        labels = {n: zf.read(n).decode() for n in zf.namelist() if n.startswith("labels/")}
        line_counts = sorted(len(text.splitlines()) for text in labels.values())
        assert line_counts[0] == 1  # the false alarm lost its head box, kept the helmet
        for text in labels.values():
            for line in text.splitlines():
                cls, *xywh = line.split()
                assert int(cls) in names and all(0 <= float(v) <= 1 for v in xywh)
        assert trainer.get("/api/v1/samples/export", params={"format": "voc"}).status_code == 422
    with live.login("admin") as admin:
        entries = admin.get("/api/v1/audit", params={"limit": 1000}).json()
    actions = [e["action"] for e in entries]
    assert "samples.export" in actions and actions.count("review") >= 4
    # the unblurred frame a trainer looked at is on record, with who looked
    views = [e for e in entries if e["action"] == "sample.view"]
    assert [(e["actor"], e["target"]) for e in views] == [("trainer", str(mine[0]["id"]))]
