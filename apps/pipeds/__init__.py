"""Pipeds: registration, hashed keys (two at most, for rotation), status from heartbeats; the piped API."""
