"""The ``edge-agent`` command: one entry point, one module per subcommand.

Each module in ``edge_agent.commands`` defines ``add_arguments(parser)`` and
``run(args) -> int`` (the exit code). Command modules keep heavy imports (asyncua,
pymodbus) inside ``run`` so that ``edge-agent validate`` starts fast on a small gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol, TextIO, cast

from edge_agent.redaction import RedactingStream

# name -> (module under edge_agent.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the agent on a site file"),
    "validate": ("validate", "check site and hub files and report every problem"),
    "print-config": ("print_config", "print the resolved configuration, secrets hidden"),
    "read": ("read", "read every sensor once and print what came back (wiring check)"),
    "certificate": (
        "certificate",
        "make an OPC UA connection's client certificate, or fetch and pin the server's",
    ),
    "replay": ("replay", "run a recorded trace of readings through the rules"),
    "discover": ("discover", "browse an OPC UA server and print sensors for the site file"),
    "import": ("import_map", "turn a Modbus register map (CSV) into the site file's sensors"),
    "history": ("history", "a sensor's recent readings: a chart, or CSV"),
    "outbox": ("outbox", "inspect the disk outbox and its dead letters"),
    "alarms": (
        "alarms",
        "list, shelve, unshelve, take out of service, return or acknowledge alarms of the "
        "running agent",
    ),
    "demo": ("demo", "simulated plant + MaintainX stand-in + agent, on this machine"),
    "simulate": ("simulate", "run a simulator: modbus, opcua or maintainx"),
    "hub": ("hub", "run the central hub: site alerts become MaintainX work orders"),
}


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule:
    module_name, _ = COMMANDS[name]
    return cast(CommandModule, importlib.import_module(f"edge_agent.commands.{module_name}"))


class _VersionAction(argparse.Action):
    """``--version``: the version and the commit, looked up only when asked for (the commit
    may cost a ``git`` call)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        from edge_agent.build_info import version_line

        print(version_line())
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand with its help line; the arguments of ``command`` only, or of every
    subcommand when None. Loading a command module imports what it stands on (the
    simulators, the hub, rich...): ``edge-agent run`` loading them all kept about 10 MiB
    of modules it never used resident for good (issue 16)."""
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="SCADA edge agent: sensors in, alarm rules, work orders out.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and commit, then exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            _load(name).add_arguments(command_parser)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is no option), if it is one; None
    (every command's arguments) otherwise, so that argparse says what is wrong as ever."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, what a shell tool's status is when its reader closed the pipe."""


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_named(words))
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help()
        return 2
    # Every line any command prints passes the redaction point (secrets are registered as
    # they are resolved, see edge_agent.redaction).
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _redacting(stdout), _redacting(stderr)
    try:
        code = _load(args.command).run(args)
        sys.stdout.flush()  # here, so that a reader gone by now is a broken pipe too
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as the shell's own tools do; what
        # is still buffered goes to /dev/null instead of raising again at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr


def _redacting(stream: TextIO) -> TextIO:
    return cast(TextIO, RedactingStream(stream))


if __name__ == "__main__":
    sys.exit(main())
