"""Projects, user groups (SSO group -> role), the role matrix, API keys and the audit log."""
