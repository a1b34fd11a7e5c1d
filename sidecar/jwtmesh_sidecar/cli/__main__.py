"""`python -m jwtmesh_sidecar.cli`: the `jwtmesh` command (how the tests start a sidecar)."""

from jwtmesh_sidecar.cli import main

main(prog_name="jwtmesh")
