"""The `jwtmesh` command line: keys, tokens, trust bundles, explain, the cluster's day-two
commands, and the long-running sidecar.

Every command runs inside one error boundary (`jwtmesh.boundary`): a failure is one line,
`Error: <where>: <what>`, with a documented exit code (docs/cli.md), never a traceback.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import click

from jwtmesh.boundary import BoundaryCommand, RootGroup, debug_option
from jwtmesh_sidecar.cli.bundle import bundle
from jwtmesh_sidecar.cli.cluster import revoke_command, rotate_command, status_command
from jwtmesh_sidecar.cli.explain import explain_command
from jwtmesh_sidecar.cli.keys import keys
from jwtmesh_sidecar.cli.policy import policy
from jwtmesh_sidecar.cli.run import sidecar
from jwtmesh_sidecar.cli.tokens import token

SHELLS = ("bash", "zsh", "fish")


@click.group("jwtmesh", cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def main() -> None:
    """jwtmesh: service-to-service authentication with JSON Web Tokens."""


def jwtmesh_version() -> str:
    try:
        return package_version("jwtmesh")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


@main.command("version", cls=BoundaryCommand)
def version_command() -> None:
    """Print jwtmesh's version."""
    click.echo(f"jwtmesh {jwtmesh_version()}")


@main.command("completion", cls=BoundaryCommand)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script: `source <(jwtmesh completion bash)`."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(main, {}, "jwtmesh", "_JWTMESH_COMPLETE").source())


main.add_command(keys)
main.add_command(bundle)
main.add_command(token)
main.add_command(explain_command)
token.add_command(explain_command, "inspect")
main.add_command(sidecar)
main.add_command(status_command)
main.add_command(rotate_command)
main.add_command(revoke_command)
main.add_command(policy)
