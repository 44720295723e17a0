"""A tiny time-bounded cache for hot lookups on the ingest path (API keys, camera -> site).

Entries live `ttl_s` seconds; this process clears it on revocation or deletion, other replicas
see such a change within `ttl_s`.

    cache = TTLCache(5.0)
    cache.put("k", 1); cache.get("k")  # -> 1
"""

from __future__ import annotations

import time
from typing import Any

_MISSING = object()


class TTLCache:
    def __init__(self, ttl_s: float = 5.0, max_items: int = 10_000) -> None:
        if ttl_s < 0 or max_items < 1:
            raise ValueError("ttl_s >= 0 and max_items >= 1 required")
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        hit = self._items.get(key, _MISSING)
        if hit is _MISSING:
            return default
        expires, value = hit  # type: ignore[misc]
        if time.monotonic() >= expires:
            self._items.pop(key, None)
            return default
        return value

    def put(self, key: Any, value: Any) -> None:
        if self.ttl_s == 0:
            return
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)

    def clear(self) -> None:
        self._items.clear()
