"""The gdb stub's command-line flags, spelled as QEMU spells them.

`add_gdb_arguments(parser)` adds `-s`, `-S` and `--gdb SPEC` to an argparse
parser; `gdb_options(args)` turns the parsed flags into `GdbOptions` (or
None when no stub was asked for), raising ValueError with a one-line
message for a contradictory or malformed combination. The VMM's CLI only
has to call both and hand `GdbOptions` to `GdbStub`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from kvmpy.vmm.sockets import LISTEN_SPEC_HELP, ListenSpec, parse_listen_spec

DEFAULT_GDB_PORT = 1234


@dataclass(frozen=True)
class GdbOptions:
    """Where the stub listens and whether the guest waits for gdb before running."""

    listen: ListenSpec
    start_stopped: bool


def add_gdb_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s", dest="gdb_default_port", action="store_true",
        help=f"serve gdb on tcp::{DEFAULT_GDB_PORT} (shorthand for --gdb tcp::{DEFAULT_GDB_PORT})",
    )
    parser.add_argument(
        "-S", dest="gdb_start_stopped", action="store_true",
        help="do not run the guest until gdb resumes it (needs -s or --gdb)",
    )
    parser.add_argument("--gdb", dest="gdb_spec", metavar="SPEC", help=f"serve gdb on {LISTEN_SPEC_HELP}")


def gdb_options(args: argparse.Namespace) -> GdbOptions | None:
    """The stub the flags ask for, or None; ValueError (one line) if they do not make sense."""
    if args.gdb_default_port and args.gdb_spec is not None:
        raise ValueError("-s and --gdb both ask for a gdb stub: give one of them")
    if args.gdb_spec is not None:
        try:
            listen = parse_listen_spec(args.gdb_spec)
        except ValueError as exc:
            raise ValueError(f"--gdb: {exc}") from None
    elif args.gdb_default_port:
        listen = ListenSpec(host="127.0.0.1", port=DEFAULT_GDB_PORT)
    else:
        if args.gdb_start_stopped:
            raise ValueError("-S waits for gdb, but no gdb stub was asked for: add -s or --gdb SPEC")
        return None
    return GdbOptions(listen=listen, start_stopped=args.gdb_start_stopped)
