"""Compliance reports: daily/weekly counts per site/camera/zone/kind, as a page and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import User
from service.security import audit
from service.web import queries
from service.web.access import page_user, scope
from service.web.charts import Series, bar_sparkline, count_chart
from service.web.i18n import translator
from service.web.report_trend import compliance_trend
from service.web.templating import render, request_lang, request_tz

router = APIRouter()
PERIODS = ("daily", "weekly")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A text cell a spreadsheet will not run: one starting like a formula (`=HYPERLINK(...)`
    in a detector's zone name) gets a leading apostrophe (the OWASP CSV-injection advice)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _report(
    request: Request, user: User, db: Session, period: str, group: str, days: int, site: str | None
) -> tuple[list[queries.ReportRow], str | None]:
    """The report rows, or an error message for a bad parameter."""
    if period not in PERIODS:
        return [], f"period must be one of {', '.join(PERIODS)}"
    if group not in queries.GROUPS:
        return [], f"group must be one of {', '.join(queries.GROUPS)}"
    site_ids = scope(user)
    if site and site_ids is not None and site not in site_ids:
        return [], "no access to that site"
    _, tz = request_tz(request)
    today = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - dt.timedelta(days=days - 1)).astimezone(dt.UTC)
    rows = queries.compliance_report(
        db, site_ids, since=since, tz=tz, period=period, group=group, site=site or None
    )
    return rows, None


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page(
    request: Request,
    period: str = "daily",
    group: str = "site",
    days: int = Query(14, ge=1, le=366),
    site: str | None = None,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
) -> Response:
    rows, error = _report(request, user, db, period, group, days, site)
    if error:
        return render(request, "error.html", user, status_code=400, message=error)
    t = translator(request_lang(request))
    params = {"period": period, "group": group, "days": days, "site": site or ""}
    totals = queries.ReportRow("", "")
    for r in rows:
        totals.total += r.total
        totals.confirmed += r.confirmed
        totals.false_alarms += r.false_alarms
        totals.unsure += r.unsure
        totals.unreviewed += r.unreviewed
    _, tz = request_tz(request)
    trend = compliance_trend(db, scope(user), tz=tz, group=group, days=days, site=site or None)

    def shown(name: str) -> str:
        if group == "kind":
            return t(f"kind.{name}")
        return t("zone.site") if group == "zone" and name == "site" else name

    title = t(f"reports.trend_title_{trend.period}", group=t(f"common.{group}").lower())
    chart = count_chart(
        trend.labels, [Series(shown(s.label), s.values) for s in trend.series], title=title
    )
    return render(
        request,
        "reports.html",
        user,
        nav="reports",
        rows=rows,
        totals=totals,
        params=params,
        groups=queries.GROUPS,
        periods=PERIODS,
        sites=queries.visible_sites(db, scope(user)),
        csv_url="/reports.csv?" + urlencode({k: v for k, v in params.items() if v}),
        trend=trend,
        trend_chart=chart if trend.series else "",
        trend_title=title,
        shown=shown,
        spark=lambda r: bar_sparkline(r.trend, title=f"{t('reports.trend')} {r.group}"),
    )


@router.get("/reports.csv", include_in_schema=False)
def reports_csv(
    request: Request,
    period: str = "daily",
    group: str = "site",
    days: int = Query(14, ge=1, le=366),
    site: str | None = None,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    rows, error = _report(request, user, db, period, group, days, site)
    if error:
        return Response(error + "\n", status_code=400, media_type="text/plain")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "period",
            group,
            "violations",
            "confirmed",
            "false_alarms",
            "unsure",
            "unreviewed",
            "confirmed_rate",
        ]
    )
    for r in rows:
        rate = "" if r.confirmed_rate is None else f"{r.confirmed_rate:.4f}"
        writer.writerow(
            [
                csv_cell(r.period),
                csv_cell(r.group),
                r.total,
                r.confirmed,
                r.false_alarms,
                r.unsure,
                r.unreviewed,
                rate,
            ]
        )
    with state.db.writing(db):
        audit(
            db,
            request,
            user.username,
            "report.export",
            user=user,
            site_id=site or None,
            detail={"period": period, "group": group, "days": days, "rows": len(rows)},
        )
    name = f"siteguard-{period}-{group}-{dt.date.today().isoformat()}.csv"
    return Response(
        "\ufeff" + out.getvalue(),  # BOM: Excel opens UTF-8 (Chinese names) correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
