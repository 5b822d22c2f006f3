"""Logging in: the static admin, SSO (django-allauth), and the portal session that carries the role."""
