"""Shared bits only: errors, key hashing, request helpers. Keep it small."""
