"""SiteGuard: PPE-compliance monitoring. The `siteguard` command lives in `siteguard.cli`."""

__version__ = "0.1.0"
