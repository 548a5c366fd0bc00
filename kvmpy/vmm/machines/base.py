"""What every board is: a `Machine` subclass that declares its facts once and builds itself.

A board class declares, as class attributes, everything the command line
and the generic code need to know about it (`name`, `arch`, `memory`,
`modes`, `consoles`) and implements `check_kernel` (is this file a kernel
the board can load?), `create_vm` (the VM type its modes ask for),
`create_devices` and `load_guest`. The base class creates the memory, the
two buses and the vCPU, runs the vCPU through the runner (rebooting on a
guest reset), and reports statistics. `kvmpy.vmm.machines` finds board
classes by name.
"""

from __future__ import annotations

import mmap
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kvmpy.kvm import JitSettings, Kvm, KvmError, Vm
from kvmpy.vmm.bus import Bus
from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.gdbstub import GdbStub, mips32
from kvmpy.vmm.gdbstub.arch import ArchDescription
from kvmpy.vmm.gdbstub.kvm_target import KvmDebugTarget, RamRegion
from kvmpy.vmm.gdbstub.options import GdbOptions
from kvmpy.vmm.runner import RunOutcome, StopControl, StopReason, run_vcpu
from kvmpy.vmm.serial import SerialBackend
from kvmpy.vmm.sockets import SocketListenError

# gdb's register description of each guest architecture kvmpy boots.
GDB_ARCHES: dict[str, ArchDescription] = {"mips": mips32()}


class MachineConfigError(VmmError):
    """The machine cannot be built as asked (memory size, mode...)."""


@dataclass(frozen=True)
class MemoryLimits:
    """The RAM sizes a board can map, in MiB, and the one it gets by default."""

    min_mib: int
    max_mib: int
    default_mib: int


@dataclass(frozen=True)
class DriveSpec:
    """A virtio-blk disk: `file=PATH[,readonly=on][,serial=ID]` on the command line."""

    path: Path
    read_only: bool = False
    serial: str = ""

    @classmethod
    def parse(cls, spec: str) -> DriveSpec:
        opts: dict[str, str] = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            if not sep or key not in ("file", "readonly", "serial") or key in opts:
                raise MachineConfigError(f"--drive {spec!r}: expected file=PATH[,readonly=on][,serial=ID]")
            opts[key] = value
        if not opts.get("file"):
            raise MachineConfigError(f"--drive {spec!r}: file=PATH is required")
        readonly = opts.get("readonly", "off")
        if readonly not in ("on", "off"):
            raise MachineConfigError(f"--drive {spec!r}: readonly must be on or off")
        return cls(Path(opts["file"]), readonly == "on", opts.get("serial", ""))


@dataclass(frozen=True)
class NetSpec:
    """A virtio-net card: `--netdev BACKEND_SPEC[,mac=52:54:00:xx:xx:xx]`."""

    backend: str
    mac: bytes

    @classmethod
    def parse(cls, spec: str, index: int) -> NetSpec:
        parts = spec.split(",")
        mac_parts = [p for p in parts if p.startswith("mac=")]
        backend = ",".join(p for p in parts if not p.startswith("mac="))
        if len(mac_parts) > 1:
            raise MachineConfigError(f"--netdev {spec!r}: mac given twice")
        # QEMU's default OUI with the card number, so several cards differ
        mac = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56 + index])
        if mac_parts:
            try:
                mac = bytes(int(b, 16) for b in mac_parts[0][4:].split(":"))
            except ValueError:
                mac = b""
            if len(mac) != 6:
                raise MachineConfigError(f"--netdev {spec!r}: mac must be six hex bytes, 52:54:00:12:34:56")
        return cls(backend, mac)


@dataclass(frozen=True)
class MachineConfig:
    """What the user asked for; the board checks it against what it declares.

    `mem_size_mib` and `mode` of None mean the board's defaults.
    """

    kernel: Path
    initrd: Path | None = None
    append: str = ""
    mem_size_mib: int | None = None
    mode: str | None = None
    te_dyntrans: bool = True  # te mode: rewrite trapped privileged instructions (seed 003)
    jit: JitSettings = JitSettings()  # translate hot guest blocks to host code
    no_reboot: bool = False
    drives: tuple[DriveSpec, ...] = ()
    virtio_rng: bool = False
    # Where the user's terminal is connected: one of the board's `consoles`.
    console: str | None = None
    netdevs: tuple[NetSpec, ...] = ()


class Machine(ABC):
    """A board with one vCPU; `run()` boots it and runs it to the end.

    Subclasses set the class attributes below and implement the abstract
    methods. After `__init__`, `self.mode`, `self.mem_size_mib` and
    `self.console` hold the resolved choices.
    """

    name: ClassVar[str]  # what --machine says
    arch: ClassVar[str]  # the guest architecture, as kvmpy.kvm names it
    description: ClassVar[str]
    memory: ClassVar[MemoryLimits]
    modes: ClassVar[tuple[str, ...]]  # hypervisor modes; the first is the default
    consoles: ClassVar[tuple[str, ...]]  # where --serial can connect; the first is the default

    def __init__(self, config: MachineConfig, serial: SerialBackend) -> None:
        self.mode = config.mode or self.modes[0]
        self.mem_size_mib = self.memory.default_mib if config.mem_size_mib is None else config.mem_size_mib
        self.console = config.console or self.consoles[0]
        self.check_config(self.mem_size_mib, self.mode, self.console)
        self.config = config
        self.serial = serial
        self.stop = StopControl()
        self.kvm = Kvm(arch=self.arch, jit=config.jit)
        self.resets = 0
        self._build()

    # ------------------------------------------------------------------ declared facts
    @classmethod
    def check_config(cls, mem_size_mib: int, mode: str, console: str) -> None:
        """Raise MachineConfigError unless the board supports these choices."""
        lim = cls.memory
        if not lim.min_mib <= mem_size_mib <= lim.max_mib:
            raise MachineConfigError(
                f"memory size {mem_size_mib} MiB is out of range: "
                f"the {cls.name} maps {lim.min_mib}..{lim.max_mib} MiB"
            )
        if mode not in cls.modes:
            raise MachineConfigError(f"mode {mode!r}: the {cls.name} offers {', '.join(cls.modes)}")
        if console not in cls.consoles:
            raise MachineConfigError(f"console {console!r}: choose {' or '.join(cls.consoles)}")

    @classmethod
    @abstractmethod
    def check_kernel(cls, path: Path) -> None:
        """Raise a VmmError (one line, naming the board's architecture) unless `path` is a kernel it boots."""

    # ------------------------------------------------------------------ what a board builds
    @abstractmethod
    def create_vm(self) -> Vm:
        """The VM for `self.mode` (type and capabilities)."""

    @abstractmethod
    def create_devices(self) -> None:
        """Put the board's devices on `self.mmio` and `self.pio` (RAM and the vCPU exist)."""

    @abstractmethod
    def load_guest(self) -> None:
        """Load the kernel (and initrd) into `self.ram` and set the vCPU's entry state."""

    def handle_arch_exit(self, exit_: object) -> bool:
        """Complete an architecture exit the runner does not know; False if the board does not either."""
        return False

    @abstractmethod
    def service_devices(self) -> None:
        """Move input that arrived on other threads into the guest (on the vCPU thread, after each exit)."""

    @abstractmethod
    def close_devices(self) -> None:
        """Release host resources (threads, sockets, files) of this instance of the board."""

    @abstractmethod
    def receive_input(self, data: bytes) -> None:
        """Bytes typed at the user's terminal, for the board's console device."""

    def write_gpa(self, gpa: int, data: bytes) -> None:
        self.ram[gpa : gpa + len(data)] = data

    # ------------------------------------------------------------------ lifecycle
    def _build(self) -> None:
        self.mem_bytes = self.mem_size_mib << 20
        self.vm = self.create_vm()
        self.ram = mmap.mmap(-1, self.mem_bytes)
        self.vm.set_user_memory_region(0, 0, self.mem_bytes, self.ram)
        self.mmio = Bus("mmio")
        self.pio = Bus("pio")
        self.vcpu = self.vm.create_vcpu(0)
        self.create_devices()
        self.load_guest()

    def request_quit(self) -> None:
        """Stop the run from any thread (the console's quit key): the run returns QUIT."""
        self.stop.request(StopReason.QUIT, "quit from the console")
        self.vcpu.kick()

    def run(self, max_seconds: float | None = None, gdb: GdbOptions | None = None) -> RunOutcome:
        """Boot and run until the guest powers off or resets (and no_reboot), or the user quits.

        With `gdb`, the vCPU runs under the gdb stub listening there (a
        reset then ends the run, and `max_seconds` does not apply).
        """
        # Input goes to the console device of the current (possibly rebooted) board.
        self.serial.start(self.receive_input)
        if gdb is not None:
            try:
                return self._run_under_gdb(gdb)
            except KvmError as exc:
                raise VmmError(f"hypervisor error: {exc}") from exc
            finally:
                self.close_devices()
        try:
            while True:
                outcome = run_vcpu(
                    self.vcpu,
                    self.mmio,
                    self.pio,
                    self.stop,
                    max_seconds,
                    self.service_devices,
                    self.handle_arch_exit,
                )
                if outcome.reason != StopReason.RESET or self.config.no_reboot:
                    return outcome
                # A reset reboots the board: a new VM from the same files.
                self.resets += 1
                self.close_devices()
                self.stop = StopControl()
                self._build()
        except KvmError as exc:
            raise VmmError(f"hypervisor error: {exc}") from exc
        finally:
            self.close_devices()

    def _run_under_gdb(self, gdb: GdbOptions) -> RunOutcome:
        arch = GDB_ARCHES.get(self.arch)
        if arch is None:
            raise VmmError(f"the gdb stub has no register description for {self.arch} guests yet")
        target = KvmDebugTarget(
            self.vcpu, [RamRegion(0, self.ram)], self.mmio, self.pio, self.stop,
            self.service_devices, self.handle_arch_exit,
        )
        try:
            stub = GdbStub(target, arch, gdb.listen, start_stopped=gdb.start_stopped)
        except (SocketListenError, OSError) as exc:
            raise VmmError(f"--gdb: {exc}") from None
        try:
            where = stub.address
            shown = where if isinstance(where, str) else f"tcp:{where[0]}:{where[1]}"
            print(f"kvmpy: waiting for gdb on {shown}" if gdb.start_stopped
                  else f"kvmpy: gdb stub on {shown}", file=sys.stderr, flush=True)
            result = stub.serve()
        finally:
            stub.close()
        if self.stop.reason is not None:
            return RunOutcome(self.stop.reason, self.stop.detail)
        if result.exit_code == 9:
            return RunOutcome(StopReason.GDB_KILL, result.message)
        return RunOutcome(StopReason.QUIT, result.message)

    def stats_report(self) -> str:
        """Exit statistics of the run: exits by reason, hypervisor traps, accesses by device."""
        s = self.vcpu.stats
        lines = [f"instructions: {s.instructions}", f"halted: {s.halted_ns / 1e9:.3f} s"]
        lines += [f"exit {k}: {v}" for k, v in sorted(s.exits.items())]
        lines += [f"trap {k}: {v}" for k, v in sorted(s.traps.items())]
        lines += [f"jit {k}: {v}" for k, v in sorted(s.jit.items())]
        lines += [f"mmio {k}: {v}" for k, v in self.mmio.counts.most_common()]
        lines += [f"pio {k}: {v}" for k, v in self.pio.counts.most_common()]
        return "\n".join(lines)
