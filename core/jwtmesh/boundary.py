"""The one error boundary of every jwtmesh command (`jwtmesh ...` and `jwtmesh-operator`).

Whatever fails, the command prints one line on stderr, `Error: <where>: <what>`, and exits
with one of the codes below; never a traceback, unless `--debug` (or JWTMESH_DEBUG=1) asks
for one. `<where>` is the command and, when known, the flag, argument, key or file at fault.
The exit codes below are the one home of their meaning (docs/cli.md shows the same table).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from jwtmesh.errors import JwtmeshError

EXIT_OK = 0
EXIT_REFUSED = 1  # the command worked and the answer is "no": a refused token, lint findings
EXIT_USAGE = 2  # bad input: a flag, an argument, a file's content, the configuration
EXIT_ENVIRONMENT = 3  # the world said no: a file unreadable or unwritable, a port, the cluster
EXIT_INTERNAL = 4  # a bug in jwtmesh: run again with --debug and report the traceback

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_REFUSED: "the answer is no (a refused token, policy findings)",
    EXIT_USAGE: "bad input: a flag, an argument, a file's content, the configuration",
    EXIT_ENVIRONMENT: "the environment: a file, a port, the cluster",
    EXIT_INTERNAL: "a bug in jwtmesh (run again with --debug for the traceback)",
}
DEBUG_FLAG = "--debug"
DEBUG_ENV = "JWTMESH_DEBUG"


class CommandError(JwtmeshError):
    """A command refuses its input or cannot do its job. `where` is the flag, argument,
    key or file at fault (the command's own name is added by the boundary)."""

    def __init__(self, where: str | None, what: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(what)
        self.where = where
        self.what = what
        self.exit_code = exit_code


class _Located(click.ClickException):
    """An exception from inside a command, with where it happened (the boundary prints it)."""

    def __init__(self, where: str, what: str, exit_code: int, cause: BaseException) -> None:
        super().__init__(what)
        self.where = where
        self.status = exit_code
        self.cause = cause


def _command_path(ctx: click.Context | None) -> str:
    """`token mint` (the program's own name left out); the program's name at the top."""
    names: list[str] = []
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    names.reverse()
    return " ".join(names[1:]) or names[0] if names else ""


def describe(exc: BaseException) -> tuple[str | None, str, int]:
    """(where, what, exit code) of any exception a command let escape."""
    if isinstance(exc, CommandError):
        return exc.where, exc.what, exc.exit_code
    if isinstance(exc, JwtmeshError):
        return None, str(exc), int(getattr(exc, "exit_code", EXIT_USAGE))
    if isinstance(exc, OSError):
        where = str(exc.filename) if exc.filename is not None else None
        return where, (exc.strerror or str(exc)).lower(), EXIT_ENVIRONMENT
    name = type(exc).__name__
    return None, f"internal error ({name}: {exc}); run again with --debug", EXIT_INTERNAL


def _param_name(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return (param.metavar or param.name or "argument").upper()


def _click_error(exc: click.ClickException) -> tuple[str, str, int]:
    ctx = getattr(exc, "ctx", None)
    where = _command_path(ctx)
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        name = _param_name(exc.param)
        if isinstance(exc, click.MissingParameter):
            return f"{where} {name}".strip(), "required", exc.exit_code
        return f"{where} {name}".strip(), exc.message, exc.exit_code
    if isinstance(exc, click.BadParameter) and isinstance(exc.param_hint, str):
        return f"{where} {exc.param_hint}".strip(), exc.message, exc.exit_code
    message = exc.format_message()
    return where, message[:1].lower() + message[1:], exc.exit_code


def fail(where: str, what: str, code: int, debug: bool, cause: BaseException | None) -> NoReturn:
    if debug and cause is not None:
        traceback.print_exception(cause, file=sys.stderr)
    what = " ".join(what.split())  # one line, whatever the message held
    click.echo(f"Error: {where}: {what}" if where else f"Error: {what}", err=True)
    sys.exit(code)


class BoundaryMixin:
    """For the root command or group: `main` prints one line per failure and exits."""

    def main(self, args: Sequence[str] | None = None, *more: Any, **extra: Any) -> NoReturn:
        argv = list(sys.argv[1:] if args is None else args)
        debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV) == "1"
        if DEBUG_FLAG in argv:
            argv.remove(DEBUG_FLAG)
        extra["standalone_mode"] = False
        try:
            result = super().main(argv, *more, **extra)  # type: ignore[misc]
        except _Located as exc:
            fail(exc.where, exc.message, exc.status, debug, exc.cause)
        except click.ClickException as exc:
            where, what, code = _click_error(exc)
            fail(where, what, code, debug, exc)
        except click.Abort:
            fail("", "aborted", 130, False, None)
        except Exception as exc:  # raised outside any command (a group's own callback)
            where_detail, what, code = describe(exc)
            fail(where_detail or "", what, code, debug, exc)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


class BoundaryCommand(click.Command):
    """A command whose failures carry their place: `token mint --claim: ...`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            detail, what, code = describe(exc)
            where = _command_path(ctx)
            if detail:
                where = f"{where} {detail}".strip()
            raise _Located(where, what, code, exc) from exc


class BoundaryGroup(click.Group):
    """A group whose commands and sub-groups all carry the boundary."""

    command_class = BoundaryCommand


BoundaryGroup.group_class = BoundaryGroup


class RootGroup(BoundaryMixin, BoundaryGroup):
    """The `jwtmesh` command."""


class RootCommand(BoundaryMixin, BoundaryCommand):
    """A single-command program (`jwtmesh-operator`)."""


def debug_option(function: Any) -> Any:
    """`--debug` in --help (the boundary reads it before parsing)."""
    return click.option(
        DEBUG_FLAG,
        is_flag=True,
        expose_value=False,
        help="On failure, print the traceback too.",
    )(function)
