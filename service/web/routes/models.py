"""Model accuracy across iterations: benchmark and field figures per registered version (field:
managers' reviews, the held-back samples, and labelled audit frames with the counts behind them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from service.deps import get_db
from service.models import User
from service.web import queries
from service.web.access import has_role, page_user, scope
from service.web.charts import Series, line_chart
from service.web.i18n import translator
from service.web.model_figures import MIN_REVIEWS, enough_reviews, shown_classes, version_figures
from service.web.templating import render, request_lang

router = APIRouter()


def _audit(row: queries.ModelRow) -> float | None:
    return row.audit.worker_accuracy if row.audit is not None else None


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
def models_page(
    request: Request, user: User = Depends(page_user), db: Session = Depends(get_db)
) -> Response:
    t = translator(request_lang(request))
    rows = queries.model_rows(db, scope(user))
    figures = {r.version: version_figures(r.metrics) for r in rows}
    classes = shown_classes(figures.values())
    active = next((i for i, r in enumerate(rows) if r.status == "active"), None)
    candidates = [
        Series(t("models.worker_accuracy"), [r.worker_accuracy for r in rows]),
        *(
            Series(
                t("models.class_ap50", cls=t(f"class.{name}")),
                [figures[r.version].ap50(name) for r in rows],
            )
            for name in classes
        ),
        Series(t("models.cross_source"), [figures[r.version].cross_source for r in rows]),
        Series(
            t("models.cross_source_recall"),
            [figures[r.version].cross_source_recall for r in rows],
        ),
        Series(t("models.field_accuracy"), [r.field_accuracy for r in rows]),
        Series(
            t("models.field_precision_enough", n=MIN_REVIEWS),
            [r.field_precision if enough_reviews(r.reviewed) else None for r in rows],
        ),
        Series(t("models.audit_accuracy"), [_audit(r) for r in rows]),
    ]
    chart = (
        line_chart(
            [r.version for r in rows],
            [s for s in candidates if any(v is not None for v in s.values)],
            title=t("models.chart"),
            marked=active,
            marked_label=t("models.active"),
        )
        if rows
        else ""
    )
    return render(
        request,
        "models.html",
        user,
        nav="models",
        rows=list(reversed(rows)),
        figures=figures,
        classes=classes,
        any_cross_source=any(f.cross_source is not None for f in figures.values()),
        min_reviews=MIN_REVIEWS,
        chart=chart,
        history=queries.promotion_history(db),
        can_promote=has_role(user, "trainer"),
    )
