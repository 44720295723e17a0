"""SiteGuard service package."""
