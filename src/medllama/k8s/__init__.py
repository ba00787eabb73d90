"""Builders of Kubernetes objects (pure functions), shared by launchers, deploy and manifest tests."""
