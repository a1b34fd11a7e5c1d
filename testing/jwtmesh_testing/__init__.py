"""Helpers for tests and the demo: a real local control plane, Envoy launchers."""
