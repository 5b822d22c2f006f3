"""The piped: runs next to the workloads, polls Git, plans and runs deployments; talks to the control plane
only through the piped API. Imports no control-plane models (there is no database on this side)."""
