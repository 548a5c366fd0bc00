"""The MIPS Malta board, as the VMM builds it on top of the KVM API.

Guest physical map (the Malta's, with the GT-64120 mapping that YAMON
leaves behind):

    0x00000000 - 0x0fffffff   low RAM (up to 256 MiB)
    0x10000000 - 0x17ffffff   PCI memory (GT-64120 MEM0 window)
    0x18000000 - 0x181fffff   PCI I/O (GT-64120 window): the port-I/O bus, port = GPA - 0x18000000
    0x1be00000 - 0x1be00fff   GT-64120 registers (PCI configuration, interrupt acknowledge)
    0x1f000000 - 0x1f0fffff   FPGA registers (LEDs, ASCII display, SOFTRES)
    0x1f000900                FPGA (CBUS) UART
    0x1fc00010                board REVISION register (in the boot flash window)

Port I/O (the board's second bus; ISA devices are mapped there by port):

    0x0000 - 0x00ff   PIIX4 legacy devices (DMA, 8259s, PIT, i8042, RTC, ...)
    0x02f8, 0x03f8    16550 UARTs (COM2, COM1)
    0x04d0, 0x0cf9    ELCR, PIIX4 reset control
    0x1000            PIIX4 PM block (where the guest's PMBA puts it)

Interrupts: the PIIX4's 8259 pair drives CPU pin IP2 (Linux acknowledges it
through the GT-64120's interrupt-acknowledge register), the CBUS UART IP4,
and the core's own timer IP7.

The board boots like its firmware: the kernel ELF is copied into RAM, the
YAMON-style arguments (argc/argv/envp, memsize) are written at 0x80002000,
and the vCPU starts at the kernel entry with a0-a3 set, as QEMU's `-kernel`
does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from kvmpy.arch.mips.uapi import CP0_ID_BY_NAME, Cap, VmType
from kvmpy.kvm import Vcpu, Vm
from kvmpy.vmm.bus import Bus, BusDevice, IrqLine
from kvmpy.vmm.devices.i8042 import COMMAND_PORT as KBC_COMMAND_PORT
from kvmpy.vmm.devices.i8042 import DATA_PORT as KBC_DATA_PORT
from kvmpy.vmm.devices.i8042 import I8042
from kvmpy.vmm.devices.i8254 import I8254, PIT_PORT, PIT_WINDOW_BYTES
from kvmpy.vmm.devices.i8259 import (
    ELCR_PORT,
    ELCR_WINDOW_BYTES,
    MASTER_PORT,
    PIC_WINDOW_BYTES,
    SLAVE_PORT,
    DualPic,
)
from kvmpy.vmm.devices.mc146818 import RTC_PORT, RTC_WINDOW_BYTES, Mc146818Rtc
from kvmpy.vmm.devices.timer import DeadlineTimer
from kvmpy.vmm.devices.uart16550 import Uart16550
from kvmpy.vmm.loader.elf import inspect_elf_kernel, load_elf_kernel, load_initrd
from kvmpy.vmm.machines.base import Machine, MachineConfigError, MemoryLimits
from kvmpy.vmm.machines.malta.gt64120 import GT64120_ISD_GPA, GT64120_REGS_BYTES, Gt64120
from kvmpy.vmm.machines.malta.malta_fpga import (
    CBUS_UART_HOLE_BYTES,
    CBUS_UART_OFFSET,
    CBUS_UART_REG_SHIFT,
    FPGA_GPA,
    FPGA_SIZE_BYTES,
    MALTA_REVISION_GPA,
    MaltaFpga,
    MaltaRevision,
)
from kvmpy.vmm.machines.malta.piix4 import (
    DMA1_PORT,
    DMA2_PORT,
    DMA_PAGE_PORT,
    DMA_PAGE_WINDOW_BYTES,
    DMA_WINDOW_BYTES,
    IRQ_COM1,
    IRQ_COM2,
    IRQ_KEYBOARD,
    IRQ_MOUSE,
    IRQ_PIT,
    IRQ_RTC,
    PM_IO_SIZE_BYTES,
    PORT_92,
    PORT_B,
    RESET_CONTROL_PORT,
    DmaPageRegisters,
    I8237Dma,
    Piix4Pm,
    Port92,
    PortB,
)
from kvmpy.vmm.machines.malta.piix4_pci import (
    PIIX4_SLOT,
    Piix4Ide,
    Piix4Isa,
    Piix4PmFunction,
    Piix4Usb,
)
from kvmpy.vmm.machines.malta.yamon import ENTRY_CP0_STATUS, write_yamon_boot_args
from kvmpy.vmm.net import parse_netdev
from kvmpy.vmm.pci import BusBarMapper, PciBus, devfn
from kvmpy.vmm.runner import StopReason
from kvmpy.vmm.serial import NullSerial
from kvmpy.vmm.virtio.blk import VirtioBlk
from kvmpy.vmm.virtio.console import VirtioConsole
from kvmpy.vmm.virtio.device import VirtioDevice
from kvmpy.vmm.virtio.net import VirtioNet
from kvmpy.vmm.virtio.pci import VirtioPciDevice
from kvmpy.vmm.virtio.queue import RamView
from kvmpy.vmm.virtio.rng import VirtioRng

COM1_PORT = 0x3F8
COM2_PORT = 0x2F8
CPU_PIN_I8259 = 2
CPU_PIN_CBUS_UART = 4
# Linux's Malta routes the interrupts of PCI slots 18-21 (its pci_slot_get_pirq
# table ends there); virtio devices go there, first slot first.
VIRTIO_FIRST_SLOT = 18
VIRTIO_LAST_SLOT = 21

# --mode names and the KVM VM type each asks for
VM_TYPES = {"vz": VmType.VZ, "te": VmType.TE}


@dataclass(frozen=True)
class CpuPin:
    """A CPU interrupt input (IP2..IP7) driven through the KVM API (KVM_INTERRUPT)."""

    vcpu: Vcpu
    pin: int

    def set(self, level: bool) -> None:
        self.vcpu.interrupt(self.pin if level else -self.pin)


class Malta(Machine):
    """One Malta board with one vCPU; `run()` boots it and runs it to the end."""

    name: ClassVar[str] = "malta"
    arch: ClassVar[str] = "mips"
    description: ClassVar[str] = "MIPS Malta (CoreLV: GT-64120, PIIX4), 32-bit little-endian"
    # Low memory is all the Malta maps below the I/O window at 0x10000000.
    memory: ClassVar[MemoryLimits] = MemoryLimits(min_mib=1, max_mib=256, default_mib=256)
    modes: ClassVar[tuple[str, ...]] = tuple(VM_TYPES)
    consoles: ClassVar[tuple[str, ...]] = ("ttyS0", "hvc0")

    @classmethod
    def check_kernel(cls, path: Path) -> None:
        inspect_elf_kernel(path, board=f"the {cls.name} ({cls.arch}, 32-bit little-endian)")

    def create_vm(self) -> Vm:
        vm = self.kvm.create_vm(VM_TYPES[self.mode])
        if self.mode == "te" and not self.config.te_dyntrans:
            vm.enable_cap(Cap.MIPS_TE_DYNTRANS, 0)
        return vm

    def create_devices(self) -> None:
        mmio, pio = self.mmio, self.pio
        # South bridge: 8259s, PIT, RTC, PM (power-off), i8042, DMA and misc ports.
        self.isa: IsaDevices = add_isa_devices(
            pio, CpuPin(self.vcpu, CPU_PIN_I8259), on_poweroff=self._on_poweroff, on_reset=self._on_reset
        )
        on_uart = self.console == "ttyS0"
        self.uart0 = Uart16550(self.serial if on_uart else NullSerial(), irq=self.isa.com1_irq)
        pio.add(COM1_PORT, 8, self.uart0, "uart0")
        self.uart1 = Uart16550(NullSerial(), irq=self.isa.com2_irq)
        pio.add(COM2_PORT, 8, self.uart1, "uart1")
        # North bridge: GT-64120 with the PCI bus and the PIIX4's PCI functions. Its PCI
        # I/O window turns CPU accesses into port cycles, as the bridge does.
        self.pci = PciBus(on_bar_change=BusBarMapper(mmio, pio))
        self.gt = Gt64120(self.pci, iack=self.isa.pic.acknowledge)
        mmio.add(GT64120_ISD_GPA, GT64120_REGS_BYTES, self.gt, "gt64120")
        io_window = self.gt.windows.pci_io
        assert io_window is not None  # the bootloader setup opens it
        mmio.add(io_window.base_gpa, io_window.size_bytes, pio, "pci-io")
        attach_piix4(self.pci, isa_irq=self.isa.pic.input, on_pm_io_change=self.isa.map_pm)
        self._attach_virtio()
        self.fpga = MaltaFpga(on_reset=self._on_reset)
        self.cbus_uart = Uart16550(
            NullSerial(), irq=CpuPin(self.vcpu, CPU_PIN_CBUS_UART), reg_shift=CBUS_UART_REG_SHIFT
        )
        map_fpga(mmio, self.fpga, self.cbus_uart)
        mmio.add(MALTA_REVISION_GPA, MaltaRevision.SIZE_BYTES, MaltaRevision(), "revision")

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
        self.virtio_console: VirtioConsole | None = None
        if self.console == "hvc0":
            self.virtio_console = VirtioConsole(self.serial)
            self.virtio_console.on_input = self.vcpu.kick
            devices.append(self.virtio_console)
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
            if device is self.virtio_console:
                self.console_pci = pci_device
            if isinstance(device, VirtioNet):
                self.net_pcis.append((device, pci_device))
        for net in self.nets:
            net.start()

    def service_devices(self) -> None:
        """Deliver console input that arrived from the terminal thread (runs on the vCPU thread)."""
        console = self.virtio_console
        if console is not None and self.console_pci is not None and console.pending_input():
            self.console_pci.service_queue(0, console.deliver)
        for net, pci_device in self.net_pcis:
            if net.pending_input():
                pci_device.service_queue(0, net.deliver)

    def close_devices(self) -> None:
        self.isa.close()
        for net in self.nets:
            net.backend.close()
        for device in self.virtio_devices:
            close = getattr(device, "close", None)
            if close is not None:
                close()

    def load_guest(self) -> None:
        cfg, mem_bytes = self.config, self.mem_bytes
        kernel = load_elf_kernel(cfg.kernel, self.write_gpa, mem_bytes)
        initrd = None
        if cfg.initrd is not None:
            initrd = load_initrd(cfg.initrd, self.write_gpa, mem_bytes, kernel.high_gpa)
        boot = write_yamon_boot_args(
            self.write_gpa,
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

    def receive_input(self, data: bytes) -> None:
        if self.virtio_console is not None:
            self.virtio_console.receive(data)
        else:
            self.uart0.receive(data)

    def _on_reset(self) -> None:
        self.stop.request(StopReason.RESET, "guest reset the board")

    def _on_poweroff(self) -> None:
        self.stop.request(StopReason.SHUTDOWN, "guest powered off (PIIX4 PM)")


def map_fpga(mmio: Bus, fpga: MaltaFpga, cbus_uart: BusDevice) -> None:
    """Map the FPGA registers around the 0x100-byte hole where its CBUS UART sits (QEMU's split)."""
    high = CBUS_UART_OFFSET + CBUS_UART_HOLE_BYTES
    mmio.add(FPGA_GPA, CBUS_UART_OFFSET, fpga, "fpga0")
    mmio.add(FPGA_GPA + high, FPGA_SIZE_BYTES - high, fpga, "fpga1", offset=high)
    mmio.add(FPGA_GPA + CBUS_UART_OFFSET, 8 << CBUS_UART_REG_SHIFT, cbus_uart, "cbus-uart")


# ====================================================================== the south bridge's wiring
@dataclass
class IsaDevices:
    """The PIIX4 legacy devices of one board, as `add_isa_devices` mapped them."""

    pio: Bus
    pic: DualPic
    pit: I8254
    rtc: Mc146818Rtc
    pm: Piix4Pm
    kbc: I8042
    port_b: PortB
    port_92: Port92
    dma1: I8237Dma
    dma2: I8237Dma
    dma_pages: DmaPageRegisters
    timer: DeadlineTimer
    com1_irq: IrqLine
    com2_irq: IrqLine
    pm_port: int | None = field(default=None)

    def map_pm(self, port: int | None) -> None:
        """(Re)map the PM block at ISA `port` (from PMBA), or unmap it (None: PMIOSE clear)."""
        if port == self.pm_port:
            return
        if self.pm_port is not None:
            self.pio.remove("piix4-pm")
        self.pm_port = port
        if port is not None:
            self.pio.add(port, PM_IO_SIZE_BYTES, self.pm, "piix4-pm")

    def poll(self, now_ns: int | None = None) -> None:
        """Deliver due timer interrupts (for boards that drive time themselves instead of `timer`)."""
        self.pit.poll(now_ns)
        self.rtc.poll(now_ns)

    def next_deadline_ns(self) -> int | None:
        deadlines = [d for d in (self.pit.next_deadline_ns(), self.rtc.next_deadline_ns()) if d is not None]
        return min(deadlines) if deadlines else None

    def close(self) -> None:
        """Stop the timer thread (call when the board is discarded, e.g. on reboot)."""
        self.timer.stop()


def add_isa_devices(
    pio: Bus,
    intr: IrqLine,
    on_poweroff: Callable[[], None],
    on_reset: Callable[[], None],
    clock_ns: Callable[[], int] = time.monotonic_ns,
    *,
    wall_ns: Callable[[], int] = time.time_ns,
    start_timer: bool = True,
) -> IsaDevices:
    """Create the PIIX4's ISA devices and map them on the port-I/O bus `pio`.

    `intr` is the 8259 pair's INTR output to the CPU (on the Malta: CPU
    interrupt 2, Cause.IP2). `on_poweroff` and `on_reset` are called (on the
    vCPU thread) when the guest powers off or resets the board. `clock_ns`
    is the monotonic clock of the PIT, RTC, PM timer and refresh toggle;
    `wall_ns` the UTC clock the RTC starts from. With `start_timer` the
    `DeadlineTimer` thread starts at once; call `IsaDevices.close()` when
    the board goes away. The PM block is not mapped until the PCI model
    calls `map_pm` with the port PMBA selects.
    """
    pic = DualPic(intr)
    pit = I8254(pic.input(IRQ_PIT), clock_ns)
    rtc = Mc146818Rtc(pic.input(IRQ_RTC), clock_ns, wall_ns)
    pm = Piix4Pm(on_poweroff, on_reset, clock_ns)
    kbc = I8042(pic.input(IRQ_KEYBOARD), pic.input(IRQ_MOUSE), on_reset)
    port_b = PortB(pit, clock_ns)
    port_92 = Port92()
    dma1 = I8237Dma(reg_shift=0)
    dma2 = I8237Dma(reg_shift=1)
    dma_pages = DmaPageRegisters()
    timer = DeadlineTimer((pit, rtc), clock_ns)

    add = pio.add
    add(DMA1_PORT, DMA_WINDOW_BYTES, dma1, "dma1")
    add(MASTER_PORT, PIC_WINDOW_BYTES, pic.master, "pic-master")
    add(PIT_PORT, PIT_WINDOW_BYTES, pit, "pit")
    add(KBC_DATA_PORT, 1, kbc.data_port, "kbc-data")
    add(PORT_B, 1, port_b, "port-b")
    add(KBC_COMMAND_PORT, 1, kbc.command_port, "kbc-command")
    add(RTC_PORT, RTC_WINDOW_BYTES, rtc, "rtc")
    add(DMA_PAGE_PORT, DMA_PAGE_WINDOW_BYTES, dma_pages, "dma-pages")
    add(PORT_92, 1, port_92, "port-92")
    add(SLAVE_PORT, PIC_WINDOW_BYTES, pic.slave, "pic-slave")
    add(DMA2_PORT, DMA_WINDOW_BYTES, dma2, "dma2")
    add(ELCR_PORT, ELCR_WINDOW_BYTES, pic.elcr, "elcr")
    add(RESET_CONTROL_PORT, 1, pm.reset_control, "reset-control")

    devices = IsaDevices(
        pio=pio,
        pic=pic,
        pit=pit,
        rtc=rtc,
        pm=pm,
        kbc=kbc,
        port_b=port_b,
        port_92=port_92,
        dma1=dma1,
        dma2=dma2,
        dma_pages=dma_pages,
        timer=timer,
        com1_irq=pic.input(IRQ_COM1),
        com2_irq=pic.input(IRQ_COM2),
    )
    if start_timer:
        timer.start()
    return devices


@dataclass(frozen=True)
class Piix4Functions:
    """The PIIX4's PCI functions as `attach_piix4` put them on the bus (`usb` may be absent)."""

    isa: Piix4Isa
    ide: Piix4Ide
    usb: Piix4Usb | None
    pm: Piix4PmFunction


def attach_piix4(
    pci_bus: PciBus,
    *,
    isa_irq: Callable[[int], IrqLine] | None = None,
    on_pm_io_change: Callable[[int | None], None] | None = None,
    on_smbus_io_change: Callable[[int | None], None] | None = None,
    slot: int = PIIX4_SLOT,
    with_usb: bool = True,
    route_pci_intx: bool = True,
) -> Piix4Functions:
    """Attach the PIIX4's functions 0-3 at `slot` (the Malta's 10) of `pci_bus`.

    With `route_pci_intx` the bus's `route_intx` becomes function 0's PIRQ
    router, so every PCI function's INTx reaches `isa_irq` as on the Malta.
    """
    isa = Piix4Isa(isa_irq)
    ide = Piix4Ide()
    usb = Piix4Usb() if with_usb else None
    pm = Piix4PmFunction(on_pm_io_change=on_pm_io_change, on_smbus_io_change=on_smbus_io_change)
    pci_bus.attach(devfn(slot, 0), isa)
    pci_bus.attach(devfn(slot, 1), ide)
    if usb is not None:
        pci_bus.attach(devfn(slot, 2), usb)
    pci_bus.attach(devfn(slot, 3), pm)
    if route_pci_intx:
        pci_bus.route_intx = isa.intx_line
    return Piix4Functions(isa=isa, ide=ide, usb=usb, pm=pm)
