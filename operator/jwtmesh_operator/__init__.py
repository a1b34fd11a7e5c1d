"""The ServiceIdentity operator (kopf)."""
