"""Deployments, their stages and stage logs, commands; the two status machines; approve/cancel/skip/sync."""
