"""The one error a bad alerts configuration raises at start-up."""

from __future__ import annotations


class AlertsConfigError(ValueError):
    """Invalid alerts configuration; every problem is named by its key path.

    >>> str(AlertsConfigError([("routes[0].channels[1]", "unknown channel 'sms'")]))
    "invalid alerts config:\\n  routes[0].channels[1]: unknown channel 'sms'"
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"  {path}: {message}" if path else f"  {message}" for path, message in problems]
        super().__init__(f"invalid alerts config{where}:\n" + "\n".join(lines))

    @property
    def paths(self) -> list[str]:
        """The key paths at fault, e.g. ``["channels.ops.url"]``."""
        return [path for path, _ in self.problems]
