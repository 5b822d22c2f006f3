"""Applications: what a piped deploys, where its config lives in Git, and its sync state."""
