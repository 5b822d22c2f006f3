"""The portal's pages: applications, deployments, settings."""
