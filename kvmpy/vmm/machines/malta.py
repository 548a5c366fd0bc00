"""The MIPS Malta board, as the VMM builds it on top of the KVM API.

Guest physical map (the Malta's, with the GT-64120 mapping that YAMON
leaves behind):

    0x00000000 - 0x0fffffff   low RAM (up to 256 MiB)
    0x10000000 - 0x17ffffff   PCI memory (GT-64120 MEM0 window)
    0x18000000 - 0x181fffff   PCI I/O: the PIIX4's ISA ports at 0x18000000 + port
    0x1be00000 - 0x1be00fff   GT-64120 registers (PCI configuration, interrupt acknowledge)
    0x1f000000 - 0x1f0fffff   FPGA registers (LEDs, ASCII display, SOFTRES)
    0x1f000900                FPGA (CBUS) UART
    0x1fc00010                board REVISION register (in the boot flash window)

Interrupts: the PIIX4's 8259 pair drives CPU pin IP2 (Linux acknowledges it
through the GT-64120's interrupt-acknowledge register), the CBUS UART IP4,
and the core's own timer IP7.

The board boots like its firmware: the kernel ELF is copied into RAM, the
YAMON-style arguments (argc/argv/envp, memsize) are written at 0x80002000,
and the vCPU starts at the kernel entry with a0-a3 set, as QEMU's `-kernel`
does.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from kvmpy.arch.mips.uapi import CP0_ID_BY_NAME, Cap, VmType
from kvmpy.kvm import JitSettings, Kvm, KvmError, Vcpu
from kvmpy.vmm.bus import Bus
from kvmpy.vmm.devices.gt64120 import GT64120_ISD_GPA, GT64120_REGS_BYTES, Gt64120
from kvmpy.vmm.devices.malta_fpga import (
    CBUS_UART_OFFSET,
    CBUS_UART_REG_SHIFT,
    FPGA_GPA,
    MALTA_REVISION_GPA,
    MaltaFpga,
    MaltaRevision,
)
from kvmpy.vmm.devices.piix4 import IsaDevices, add_isa_devices
from kvmpy.vmm.devices.piix4_pci import attach_piix4
from kvmpy.vmm.devices.uart16550 import Uart16550
from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.loader.elf import load_elf_kernel, load_initrd
from kvmpy.vmm.loader.yamon import ENTRY_CP0_STATUS, write_yamon_boot_args
from kvmpy.vmm.net_backends import parse_netdev
from kvmpy.vmm.pci import BusBarMapper, PciBus, devfn
from kvmpy.vmm.runner import RunOutcome, StopControl, StopReason, run_vcpu
from kvmpy.vmm.serial import NullSerial, SerialBackend
from kvmpy.vmm.virtio.blk import VirtioBlk
from kvmpy.vmm.virtio.console import VirtioConsole
from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.net import VirtioNet
from kvmpy.vmm.virtio.pci import VirtioPciDevice
from kvmpy.vmm.virtio.queue import RamView
from kvmpy.vmm.virtio.rng import VirtioRng

ISA_IO_GPA = 0x18000000
COM1_PORT = 0x3F8
COM2_PORT = 0x2F8
CPU_PIN_I8259 = 2
CPU_PIN_CBUS_UART = 4
# Linux's Malta routes the interrupts of PCI slots 18-21 (its pci_slot_get_pirq
# table ends there); virtio devices go there, first slot first.
VIRTIO_FIRST_SLOT = 18
VIRTIO_LAST_SLOT = 21
# Low memory is all the Malta maps below the I/O window at 0x10000000.
MAX_MEM_SIZE_MIB = 256


class MachineConfigError(VmmError):
    """The machine cannot be built as asked (memory size, mode...)."""


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


# --mode names and the KVM VM type each asks for
MODES = {"vz": VmType.VZ, "te": VmType.TE}


@dataclass(frozen=True)
class MaltaConfig:
    kernel: Path
    initrd: Path | None = None
    append: str = ""
    mem_size_mib: int = 256
    mode: str = "vz"
    te_dyntrans: bool = True  # te mode: rewrite trapped CP0 instructions (seed 003)
    jit: JitSettings = JitSettings()  # translate hot guest blocks to host code
    no_reboot: bool = False
    drives: tuple[DriveSpec, ...] = ()
    virtio_rng: bool = False
    # Where the user's terminal is connected: the 16550 (ttyS0) or virtio-console (hvc0).
    console: str = "ttyS0"
    netdevs: tuple[NetSpec, ...] = ()


@dataclass(frozen=True)
class CpuPin:
    """A CPU interrupt input (IP2..IP7) driven through the KVM API (KVM_INTERRUPT)."""

    vcpu: Vcpu
    pin: int

    def set(self, level: bool) -> None:
        self.vcpu.interrupt(self.pin if level else -self.pin)


class Malta:
    """One Malta board with one vCPU; `run()` boots it and runs it to the end."""

    def __init__(self, config: MaltaConfig, serial: SerialBackend) -> None:
        if config.console not in ("ttyS0", "hvc0"):
            raise MachineConfigError(f"console {config.console!r}: choose ttyS0 or hvc0")
        if not 1 <= config.mem_size_mib <= MAX_MEM_SIZE_MIB:
            raise MachineConfigError(
                f"memory size {config.mem_size_mib} MiB: the Malta maps 1 to {MAX_MEM_SIZE_MIB} MiB"
            )
        if config.mode not in MODES:
            raise MachineConfigError(f"mode {config.mode!r}: choose one of {', '.join(MODES)}")
        self.config = config
        self.serial = serial
        self.stop = StopControl()
        self.kvm = Kvm(jit=config.jit)
        self.resets = 0
        self._build()

    def _build(self) -> None:
        cfg = self.config
        mem_bytes = cfg.mem_size_mib << 20
        self.vm = self.kvm.create_vm(MODES[cfg.mode])
        if cfg.mode == "te" and not cfg.te_dyntrans:
            self.vm.enable_cap(Cap.MIPS_TE_DYNTRANS, 0)
        self.ram = mmap.mmap(-1, mem_bytes)
        self.vm.set_user_memory_region(0, 0, mem_bytes, self.ram)
        self.bus = Bus()
        self.vcpu = self.vm.create_vcpu(0)
        # South bridge: 8259s, PIT, RTC, PM (power-off), i8042, DMA and misc ports.
        self.isa: IsaDevices = add_isa_devices(
            self.bus,
            ISA_IO_GPA,
            CpuPin(self.vcpu, CPU_PIN_I8259),
            on_poweroff=self._on_poweroff,
            on_reset=self._on_reset,
        )
        on_uart = self.config.console == "ttyS0"
        self.uart0 = Uart16550(self.serial if on_uart else NullSerial(), irq=self.isa.com1_irq)
        self.bus.add(ISA_IO_GPA + COM1_PORT, 8, self.uart0, "uart0")
        self.uart1 = Uart16550(NullSerial(), irq=self.isa.com2_irq)
        self.bus.add(ISA_IO_GPA + COM2_PORT, 8, self.uart1, "uart1")
        # North bridge: GT-64120 with the PCI bus and the PIIX4's PCI functions.
        self.pci = PciBus(on_bar_change=BusBarMapper(self.bus, io_gpa_base=ISA_IO_GPA))
        self.gt = Gt64120(self.pci, iack=self.isa.pic.acknowledge)
        self.bus.add(GT64120_ISD_GPA, GT64120_REGS_BYTES, self.gt, "gt64120")
        attach_piix4(self.pci, isa_irq=self.isa.pic.input, on_pm_io_change=self.isa.map_pm)
        self._attach_virtio()
        # FPGA registers and its CBUS UART.
        self.fpga = MaltaFpga(on_reset=self._on_reset)
        for i, window in enumerate(self.fpga.windows()):
            self.bus.add(FPGA_GPA + window.offset, window.size_bytes, window.device, f"fpga{i}")
        self.cbus_uart = Uart16550(
            NullSerial(), irq=CpuPin(self.vcpu, CPU_PIN_CBUS_UART), reg_shift=CBUS_UART_REG_SHIFT
        )
        self.bus.add(FPGA_GPA + CBUS_UART_OFFSET, 8 << CBUS_UART_REG_SHIFT, self.cbus_uart, "cbus-uart")
        self.bus.add(MALTA_REVISION_GPA, 4, MaltaRevision(), "revision")
        self._load(mem_bytes)

    def _attach_virtio(self) -> None:
        cfg = self.config
        devices: list[VirtioDevice] = [VirtioBlk(d.path, d.read_only, d.serial) for d in cfg.drives]
        if cfg.virtio_rng:
            devices.append(VirtioRng())
        self.nets: list[VirtioNet] = []
        for spec in cfg.netdevs:
            try:
                backend = parse_netdev(spec.backend)
            except ValueError as exc:
                raise MachineConfigError(f"--netdev: {exc}") from exc
            net = VirtioNet(backend, spec.mac)
            net.on_input = self.vcpu.kick
            self.nets.append(net)
        devices.extend(self.nets)
        self.console: VirtioConsole | None = None
        if cfg.console == "hvc0":
            self.console = VirtioConsole(self.serial)
            self.console.on_input = self.vcpu.kick
            devices.append(self.console)
        if len(devices) > VIRTIO_LAST_SLOT - VIRTIO_FIRST_SLOT + 1:
            raise MachineConfigError(
                f"{len(devices)} virtio devices: the Malta routes interrupts for "
                f"{VIRTIO_LAST_SLOT - VIRTIO_FIRST_SLOT + 1} PCI slots"
            )
        self.virtio_devices = devices
        ram = RamView(memoryview(self.ram))
        self.console_pci: VirtioPciDevice | None = None
        self.net_pcis: list[tuple[VirtioNet, VirtioPciDevice]] = []
        for i, device in enumerate(devices):
            pci_device = VirtioPciDevice(device, ram)
            self.pci.attach(devfn(VIRTIO_FIRST_SLOT + i), pci_device)
            if device is self.console:
                self.console_pci = pci_device
            if isinstance(device, VirtioNet):
                self.net_pcis.append((device, pci_device))
        for net in self.nets:
            net.start()

    def _service_devices(self) -> None:
        """Deliver console input that arrived from the terminal thread (runs on the vCPU thread)."""
        if self.console is not None and self.console_pci is not None and self.console.pending_input():
            self.console_pci.service_queue(0, self.console.deliver)
        for net, pci_device in self.net_pcis:
            if net.pending_input():
                pci_device.service_queue(0, net.deliver)

    def _close_devices(self) -> None:
        self.isa.close()
        for net in self.nets:
            net.backend.close()
        for device in self.virtio_devices:
            close = getattr(device, "close", None)
            if close is not None:
                close()

    def _write_gpa(self, gpa: int, data: bytes) -> None:
        self.ram[gpa : gpa + len(data)] = data

    def _load(self, mem_bytes: int) -> None:
        cfg = self.config
        kernel = load_elf_kernel(cfg.kernel, self._write_gpa, mem_bytes)
        initrd = None
        if cfg.initrd is not None:
            initrd = load_initrd(cfg.initrd, self._write_gpa, mem_bytes, kernel.high_gpa)
        boot = write_yamon_boot_args(
            self._write_gpa,
            kernel=kernel,
            cmdline=cfg.append,
            ram_size_bytes=mem_bytes,
            initrd=initrd,
            kernel_name=str(cfg.kernel),
        )
        regs = self.vcpu.get_regs()
        for reg, value in boot.gprs().items():
            regs.gpr[reg] = value
        regs.pc = boot.entry_gva
        self.vcpu.set_regs(regs)
        self.vcpu.set_one_reg(CP0_ID_BY_NAME["STATUS"], ENTRY_CP0_STATUS)

    def _receive_input(self, data: bytes) -> None:
        if self.console is not None:
            self.console.receive(data)
        else:
            self.uart0.receive(data)

    def request_quit(self) -> None:
        """Stop the run from any thread (the console's quit key): the run returns QUIT."""
        self.stop.request(StopReason.QUIT, "quit from the console")
        self.vcpu.kick()

    def _on_reset(self) -> None:
        self.stop.request(StopReason.RESET, "guest reset the board")

    def _on_poweroff(self) -> None:
        self.stop.request(StopReason.SHUTDOWN, "guest powered off (PIIX4 PM)")

    def run(self, max_seconds: float | None = None) -> RunOutcome:
        """Boot and run until the guest powers off or resets (and --no-reboot), or the user quits."""
        # Input goes to the console device of the current (possibly rebooted) board.
        self.serial.start(self._receive_input)
        try:
            while True:
                outcome = run_vcpu(self.vcpu, self.bus, self.stop, max_seconds, self._service_devices)
                if outcome.reason != StopReason.RESET or self.config.no_reboot:
                    return outcome
                # A reset reboots the board: a new VM from the same files.
                self.resets += 1
                self._close_devices()
                self.stop = StopControl()
                self._build()
        except KvmError as exc:
            raise VmmError(f"hypervisor error: {exc}") from exc
        finally:
            self._close_devices()

    def stats_report(self) -> str:
        """Exit statistics of the run: exits by reason, hypervisor traps, MMIO by device."""
        s = self.vcpu.stats
        lines = [f"instructions: {s.instructions}", f"halted: {s.halted_ns / 1e9:.3f} s"]
        lines += [f"exit {k}: {v}" for k, v in sorted(s.exits.items())]
        lines += [f"trap {k}: {v}" for k, v in sorted(s.traps.items())]
        lines += [f"jit {k}: {v}" for k, v in sorted(s.jit.items())]
        lines += [f"mmio {k}: {v}" for k, v in self.bus.counts.most_common()]
        return "\n".join(lines)
