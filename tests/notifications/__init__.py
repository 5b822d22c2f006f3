"""Tests of apps.notifications: routing, Slack and webhook deliveries, retries, the piped API, PIPED_OFFLINE, the page."""
