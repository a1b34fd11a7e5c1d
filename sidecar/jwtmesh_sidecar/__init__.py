"""The ext_authz sidecar: one decision core, a gRPC and an HTTP adapter, metrics, /token."""
