"""Notifications: Slack and signed webhooks for deployments, applications and pipeds.

Two sides in one app. The piped side (events, notifier, hooks, slack, webhook, delivery) builds events,
routes them with the piped config and delivers them; it imports no Django models. The control-plane side
(models, services, pipedapi, tasks, views, admin) keeps the delivery attempts the pipeds report, shows
them to Admins, and raises PIPED_OFFLINE itself.
"""
