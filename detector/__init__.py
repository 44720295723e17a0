"""SiteGuard detector package."""
