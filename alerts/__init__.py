"""SiteGuard alerts package."""
