"""Model accuracy across iterations: benchmark and field figures per registered version."""

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
from service.web.templating import render, request_lang

router = APIRouter()


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
def models_page(
    request: Request, user: User = Depends(page_user), db: Session = Depends(get_db)
) -> Response:
    t = translator(request_lang(request))
    rows = queries.model_rows(db, scope(user))
    active = next((i for i, r in enumerate(rows) if r.status == "active"), None)
    chart = (
        line_chart(
            [r.version for r in rows],
            [
                Series(t("models.worker_accuracy"), [r.worker_accuracy for r in rows]),
                Series(t("models.map50"), [r.map50 for r in rows]),
                Series(t("models.field_precision"), [r.field_precision for r in rows]),
                *(
                    [Series(t("models.field_accuracy"), [r.field_accuracy for r in rows])]
                    if any(r.field_accuracy is not None for r in rows)
                    else []
                ),
            ],
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
        chart=chart,
        history=queries.promotion_history(db),
        can_promote=has_role(user, "trainer"),
    )
