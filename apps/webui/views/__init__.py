"""Portal views, one module per area: applications, deployments, settings."""
