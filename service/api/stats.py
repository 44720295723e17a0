"""Aggregates for reports: counts per day / site / camera / zone / kind and the confirmed rate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from service import violations as ops
from service.deps import get_db
from service.models import User
from service.schemas import StatsOut, ViolationFilter
from service.security import require_role

router = APIRouter(tags=["stats"])
GroupBy = Literal["day", "site", "camera", "zone", "kind", "model_version"]


@router.get("/stats", response_model=StatsOut, responses={401: {}, 403: {}})
def get_stats(
    filters: Annotated[ViolationFilter, Query()],
    group_by: GroupBy = "day",
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> StatsOut:
    """`limit`/`offset` of the shared filter are ignored here: every group is returned."""
    scope = ops.user_filter(user, filters)
    return StatsOut(group_by=group_by, rows=ops.stats(db, filters, group_by, scope))
