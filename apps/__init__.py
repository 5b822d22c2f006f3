"""PipePortal's Django apps, one per domain noun."""
