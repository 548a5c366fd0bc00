"""The gdb stub's command-line flags: -s, -S and --gdb, as QEMU spells them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kvmpy.vmm.gdbstub.options import DEFAULT_GDB_PORT, GdbOptions, add_gdb_arguments, gdb_options
from kvmpy.vmm.sockets import ListenSpec


def parse(*argv: str) -> GdbOptions | None:
    parser = argparse.ArgumentParser()
    add_gdb_arguments(parser)
    return gdb_options(parser.parse_args(argv))


def test_no_flags_no_stub() -> None:
    assert parse() is None


@pytest.mark.parametrize(("argv", "expected"), [
    (("-s",), GdbOptions(ListenSpec(host="127.0.0.1", port=DEFAULT_GDB_PORT), start_stopped=False)),
    (("-s", "-S"), GdbOptions(ListenSpec(host="127.0.0.1", port=1234), start_stopped=True)),
    (("--gdb", "tcp::4321", "-S"), GdbOptions(ListenSpec(host="127.0.0.1", port=4321), start_stopped=True)),
    (("--gdb", "tcp:0.0.0.0:1"), GdbOptions(ListenSpec(host="0.0.0.0", port=1), start_stopped=False)),
    (("--gdb", "unix:/run/g"), GdbOptions(ListenSpec(unix_path=Path("/run/g")), start_stopped=False)),
])
def test_flags(argv: tuple[str, ...], expected: GdbOptions) -> None:
    assert parse(*argv) == expected


@pytest.mark.parametrize(("argv", "message"), [
    (("-S",), "-S waits for gdb"),
    (("-s", "--gdb", "tcp::1"), "give one of them"),
    (("--gdb", "tcp:1234"), "--gdb: socket spec"),
    (("--gdb", "serial:/dev/ttyS0"), "--gdb: socket spec"),
    (("--gdb", "tcp::70000"), "port must be"),
])
def test_bad_combinations_are_one_line_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message) as excinfo:
        parse(*argv)
    assert "\n" not in str(excinfo.value)
