"""Running PipePortal in production: health checks, Prometheus metrics, JSON logs, retention, filestore."""
