"""Clear 4xx answers for bad input, whatever the input was.

Two seams where a bad post used to turn into a 500 or a misleading 503:

- `error_detail`: pydantic echoes the offending input in each error, and a NaN, an infinity or
  bytes that are not UTF-8 cannot be written as JSON, so answering the 422 itself failed. Inputs
  are echoed only as short JSON-safe scalars.
- `database_refusal`: a value the schema let through but the database refuses (defence in depth
  behind `service.schemas.Inbound`) is the post's own fault: 422 naming the reason, never the
  "database unavailable" 503 that tells the detector to retry it forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException
from sqlalchemy.exc import DataError, IntegrityError, StatementError

MAX_ECHO = 200  # characters of a string input echoed in an error


def error_detail(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic / FastAPI validation errors as a JSON-safe 422 `detail` (type, loc, msg, input,
    ctx)."""
    detail = []
    for error in errors:
        entry: dict[str, Any] = {
            "type": str(error.get("type", "value_error")),
            "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            "msg": str(error.get("msg", "invalid value")),
        }
        echo = _echo(error.get("input"))
        if echo is not None:
            entry["input"] = echo
        context = _context(error.get("ctx"))
        if context:
            entry["ctx"] = context  # e.g. max_length: what the panel tells the user
        detail.append(entry)
    return detail


def _echo(value: Any) -> Any:
    """The input as a short JSON-safe scalar; None for containers (the loc names the field)."""
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # "nan", "inf"
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "…"
    return None


def _context(ctx: Any) -> dict[str, Any]:
    """The error's context (limits such as `max_length`, `ge`) kept where JSON-safe; a raised
    exception in it (`error`) becomes its message."""
    if not isinstance(ctx, Mapping):
        return {}
    safe = {
        str(k): _echo(v if not isinstance(v, BaseException) else str(v)) for k, v in ctx.items()
    }
    return {k: v for k, v in safe.items() if v is not None}


def database_refusal(exc: BaseException) -> HTTPException | None:
    """A 422 when the database refused the post's own values; None when the fault is not the
    post's (connection lost, lock timeout, disk full: retryable, answered 503 elsewhere)."""
    if isinstance(exc, IntegrityError):
        return None  # a repeated id is answered with the stored record; the rest is ours
    if isinstance(exc, DataError):  # NUL in a string, a number out of the column's range
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return HTTPException(422, f"the database refused this event: {reason}")
    if isinstance(exc, StatementError) and isinstance(exc.orig, ValueError | OverflowError):
        # Raised while binding a value in Python (a time that leaves the range in UTC).
        return HTTPException(422, f"the database refused this event: {exc.orig}")
    return None
