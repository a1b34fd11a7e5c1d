"""jwtmesh: service-to-service JWT authentication for Kubernetes."""
