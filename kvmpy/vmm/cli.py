"""The `kvmpy` command: run a guest kernel on a virtual board.

    kvmpy run [--machine malta] --kernel vmlinux [--initrd initrd.gz]
              [--append "console=ttyS0"] [-m 256] [--mode vz] [--serial stdio]
              [--stats] [--max-seconds S] [--no-reboot]

The boards come from the registry in `kvmpy.vmm.machines`; each declares its
memory limits, modes, consoles and kernel format, which this module only
reads (it names no board).

Exit status: the run's (0 when the guest powered off or reset, 124 when
--max-seconds expired, 1 when the VM stopped on an error), 2 for a command
line that is wrong or asks for something unsupported, 1 for any other error
(missing or unusable files, a kernel this board cannot run). Every error is
one line `kvmpy: error: ...` on stderr; set KVMPY_TRACEBACK=1 to also see
the traceback of an unexpected internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from kvmpy.kvm import JitSettings
from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.gdbstub.options import add_gdb_arguments, gdb_options
from kvmpy.vmm.loader.elf import InitrdError
from kvmpy.vmm.machines import DEFAULT_MACHINE, find_machine, machine_names
from kvmpy.vmm.machines.base import DriveSpec, Machine, MachineConfig, MachineConfigError, NetSpec
from kvmpy.vmm.serial import SPEC_HELP, SerialBackend, open_serial, parse_serial_spec

PROG = "kvmpy"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line instead of usage text plus exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _memory_mib(text: str) -> int:
    value = text.strip().upper().removesuffix("IB").removesuffix("M")
    multiplier = 1
    if value.endswith("G"):
        value, multiplier = value[:-1], 1024
    try:
        return int(value) * multiplier
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid memory size {text!r} (MiB, e.g. 256 or 256M)") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--max-seconds must be positive, got {text}")
    return value


def _jit_threshold(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jit-threshold must be at least 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="KVM written in Python: run a guest kernel on a virtual board.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="boot a kernel on a virtual board", description="Boot a kernel.")
    run.add_argument(
        "--machine",
        choices=machine_names(),
        default=DEFAULT_MACHINE,
        help=f"board (default: {DEFAULT_MACHINE})",
    )
    run.add_argument("--kernel", type=Path, required=True, metavar="K", help="kernel ELF (vmlinux/vmlinuz)")
    run.add_argument("--initrd", type=Path, metavar="I", help="initial ramdisk")
    run.add_argument("--append", default="", metavar="CMDLINE", help="kernel command line")
    run.add_argument(
        "-m",
        "--memory",
        type=_memory_mib,
        metavar="MiB",
        help="RAM size in MiB (default and limits: the board's)",
    )
    run.add_argument(
        "--mode", help="hypervisor mode, one the board offers (MIPS: vz, hardware-assisted; te, trap and "
        "emulate; default: the board's first)"
    )
    run.add_argument(
        "--no-dyntrans", action="store_true",
        help="te mode: never rewrite trapped CP0 instructions (every one traps every time)",
    )
    run.add_argument(
        "--no-jit", action="store_true",
        help="interpret every guest instruction (no translation of hot blocks to host code)",
    )
    run.add_argument(
        "--jit-threshold", type=_jit_threshold, default=JitSettings().threshold, metavar="N",
        help=f"translate a block of guest code once it has run N times (default: {JitSettings().threshold})",
    )
    run.add_argument("--serial", default="stdio", metavar="SPEC", help=f"console UART: {SPEC_HELP}")
    run.add_argument(
        "--drive",
        action="append",
        default=[],
        metavar="file=PATH[,readonly=on][,serial=ID]",
        help="a virtio-blk disk backed by a raw image (repeatable)",
    )
    run.add_argument(
        "--netdev",
        action="append",
        default=[],
        metavar="socket,listen|connect=PATH|HOST:PORT | passt | tap,ifname=NAME [,mac=..]",
        help="a virtio-net card on a socket (loopback or unix), passt or TAP backend (repeatable)",
    )
    run.add_argument(
        "--console",
        help="where --serial connects, one the board offers: a UART (ttyS0) or virtio-console (hvc0); "
        "default: the board's first",
    )
    run.add_argument(
        "--device",
        action="append",
        default=[],
        choices=("virtio-rng",),
        help="an extra device (repeatable): virtio-rng",
    )
    run.add_argument("--stats", action="store_true", help="print exit statistics to stderr at the end")
    run.add_argument(
        "--max-seconds", type=_seconds, metavar="S", help="stop after S seconds (exit status 124)"
    )
    add_gdb_arguments(run)
    run.add_argument(
        "--no-reboot", action="store_true", help="exit when the guest resets instead of rebooting"
    )
    return parser


def _error(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _validate(args: argparse.Namespace) -> type[Machine]:
    """Checks that need no file access; return the board class, raise UsageError."""
    try:
        machine = find_machine(args.machine)
    except MachineConfigError as exc:
        raise UsageError(str(exc)) from None
    # the board's defaults for what the command line leaves out
    if args.memory is None:
        args.memory = machine.memory.default_mib
    args.mode = args.mode or machine.modes[0]
    args.console = args.console or machine.consoles[0]
    try:
        machine.check_config(args.memory, args.mode, args.console)
    except MachineConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        parse_serial_spec(args.serial)
    except ValueError as exc:
        raise UsageError(f"--serial: {exc}") from None
    try:
        gdb_options(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return machine


def _check_files(args: argparse.Namespace, machine: type[Machine]) -> None:
    """Check the images before the terminal goes raw; raise VmmError."""
    machine.check_kernel(args.kernel)
    if args.initrd is not None:
        if not args.initrd.exists():
            raise InitrdError(f"initrd {args.initrd}: no such file")
        if not args.initrd.is_file():
            raise InitrdError(f"initrd {args.initrd}: not a regular file")
        if not os.access(args.initrd, os.R_OK):
            raise InitrdError(f"initrd {args.initrd}: cannot read: permission denied")


def _run(args: argparse.Namespace, machine_class: type[Machine]) -> int:
    machine: Machine | None = None
    quit_requested = threading.Event()

    def on_quit() -> None:
        # Called from the console input thread (Ctrl-A x).
        quit_requested.set()
        if machine is not None:
            machine.request_quit()

    gdb = gdb_options(args)  # validated by _validate
    serial: SerialBackend = open_serial(args.serial, on_quit)
    try:
        config = MachineConfig(
            kernel=args.kernel,
            initrd=args.initrd,
            append=args.append,
            mem_size_mib=args.memory,
            mode=args.mode,
            te_dyntrans=not args.no_dyntrans,
            jit=JitSettings(enabled=not args.no_jit, threshold=args.jit_threshold),
            no_reboot=args.no_reboot,
            drives=tuple(DriveSpec.parse(d) for d in args.drive),
            virtio_rng="virtio-rng" in args.device,
            console=args.console,
            netdevs=tuple(NetSpec.parse(n, i) for i, n in enumerate(args.netdev)),
        )
        machine = machine_class(config, serial)
        outcome = machine.run(max_seconds=args.max_seconds, gdb=gdb)
    except KeyboardInterrupt:
        if quit_requested.is_set():
            return 0
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        serial.close()  # restores the terminal before anything else is printed
    if args.stats:
        print(machine.stats_report(), file=sys.stderr)
    if outcome.exit_code != 0:
        print(f"{PROG}: {outcome}", file=sys.stderr)
    return outcome.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kvmpy` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("no command given (try: kvmpy run --kernel vmlinux)")
        machine_class = _validate(args)
    except UsageError as exc:
        return _error(str(exc), EXIT_USAGE)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        _check_files(args, machine_class)
        return _run(args, machine_class)
    except VmmError as exc:
        return _error(str(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        return _error("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback unless asked
        if os.environ.get("KVMPY_TRACEBACK"):
            raise
        return _error(
            f"internal error: {type(exc).__name__}: {exc} (KVMPY_TRACEBACK=1 shows where)", EXIT_ERROR
        )


if __name__ == "__main__":
    sys.exit(main())
