"""The PCI functions of the Intel PIIX4 (82371AB) south bridge, and the Malta's PCI interrupt routing.

On the Malta the PIIX4 is PCI device 10 (devfn 0x50, QEMU's
`pci_create_simple_multifunction(pci_bus, PCI_DEVFN(10, 0), ...)`), with
four functions whose configuration spaces match what QEMU 7.2 presents
(dumped from qemu-system-mipsel 7.2 at reset; Linux 6.1 reads them so):

    fn  id         class    what
    0   8086:7110  0x0601   PCI-ISA bridge; PIRQA-D routing 0x60-0x63 = 10, 10, 11, 11
    1   8086:7111  0x0101   IDE, prog-if 0x80 (legacy ports only), BMDMA I/O BAR4 (16 bytes)
    2   8086:7112  0x0c03   USB UHCI, I/O BAR4 (32 bytes), INTD
    3   8086:7113  0x0680   power management: PMBA 0x40, PMREGMISC 0x80, SMBBA 0x90 = 0x1101,
                            SMBHSTCFG 0xd2 = 0x09, DEVRESx as QEMU; INTA

Only configuration space lives here. The ISA devices behind function 0 and
the PM I/O block of function 3 are in `piix4.py`; `Piix4PmFunction` tells
the board where PMBA/PMREGMISC put that block (`on_pm_io_change`, e.g.
`board.IsaDevices.map_pm`). Nothing serves the IDE and USB BARs or the legacy IDE
ports (0x1f0-0x1f7, 0x3f6, 0x170-0x177, 0x376): with `region=None` the
board maps nothing and the guest reads all-ones there. Linux 6.1 on the
Malta assigns them (IDE BAR4 at I/O 0x10a0, UHCI BAR4 at 0x1040 under QEMU)
but only the modules ata_piix, uhci_hcd and i2c-piix4 (SMBus at 0x1100)
touch the ports, if an initramfs loads them: ata_piix then sees a floating
bus (status 0xff) and finds no drives; uhci_hcd would find a controller
whose registers read all-ones (expect warnings or a failed probe), so a
board whose initramfs loads it may prefer `board.attach_piix4(with_usb=False)`.
The built-in drivers only use function 3 (piix4-poweroff) and the fixups in
arch/mips/pci/fixup-malta.c.

Writable bits: QEMU makes every device-specific byte (0x40-0xff) writable;
so does this model, except for the registers whose reserved bits the
datasheet hardwires and Linux relies on: PIRQRCx (bits 6:4 read 0), PMBA
(bits 15:6 writable, bit 0 reads 1), SMBBA (bits 15:4, bit 0 reads 1).
(QEMU lets the guest clear PMBA bit 0; Linux masks it either way.)

PCI interrupt routing on the Malta (QEMU 7.2's pci_slot_get_pirq plus
piix4_set_irq, and Linux's arch/mips/pci/fixup-malta.c irq_tab agree):

    slot 10 (PIIX4 USB)          -> PIRQD
    slot 11 (AMD 79C973 ether)   -> PIRQB
    slot 12 (Crystal 4281 sound) -> PIRQC
    slots 18-21 (PCI slots 1-4)  -> PIRQ[(slot - 18 + pin - 1) & 3]  (slot 18 INTA = PIRQA)
    other slots                  -> PIRQ[pin - 1] (QEMU; Linux's irq_tab has no entry for them)

and PIRQn reaches ISA IRQ `PIRQRCn & 0x0f` unless PIRQRCn bit 7 is set.
QEMU 7.2's reset values, which Linux reads and never changes, give PIRQA and
PIRQB -> IRQ 10, PIRQC and PIRQD -> IRQ 11. An ISA IRQ is asserted while any
PIRQ routed to it is asserted, and a PIRQ while any INTx mapped to it is (a
wired OR of level-triggered lines). Put PCI devices for Linux in slots
18-21: QEMU puts `-device` PCI cards from slot 18 on (the Cirrus VGA first,
so the first virtio card lands in slot 19), and Linux's Malta irq_tab ends
at slot 21.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kvmpy.vmm.bus import IrqLine
from kvmpy.vmm.machines.malta.piix4 import PIIX4_PM_CONFIG
from kvmpy.vmm.pci import BarKind, InterruptPin, PciDevice, Status

log = logging.getLogger(__name__)

PIIX4_SLOT = 10
PIIX4_DEVFN = PIIX4_SLOT << 3  # 0x50
INTEL = 0x8086
QEMU_SUBSYSTEM_VENDOR_ID = 0x1AF4  # QEMU's default subsystem IDs on its PCI devices
QEMU_SUBSYSTEM_ID = 0x1100

NUM_PIRQS = 4
PIRQRC_BASE = 0x60  # PIRQRC[A:D], one byte each
PIRQRC_DISABLE = 0x80
PIRQRC_IRQ_MASK = 0x0F
PIRQRC_WMASK = PIRQRC_DISABLE | PIRQRC_IRQ_MASK
MALTA_PIRQ_ROUTING = (10, 10, 11, 11)  # QEMU 7.2's reset values (YAMON's routing)
NUM_ISA_IRQS = 16

PIRQ_A, PIRQ_B, PIRQ_C, PIRQ_D = range(NUM_PIRQS)
MALTA_FIRST_PCI_SLOT = 18
MALTA_LAST_PCI_SLOT = 21


def malta_slot_pirq(dev_fn: int, pin: int) -> int:
    """The PIRQ (0-3 = A-D) that INTx `pin` (1-4 = INTA-INTD) of the function at `dev_fn` drives."""
    slot, intx = dev_fn >> 3, pin - 1
    if slot == 10:
        return PIRQ_D
    if slot == 11:
        return PIRQ_B
    if slot == 12:
        return PIRQ_C
    if MALTA_FIRST_PCI_SLOT <= slot <= MALTA_LAST_PCI_SLOT:
        return (slot - MALTA_FIRST_PCI_SLOT + intx) & 3
    return intx & 3


def _open_device_registers(device: PciDevice) -> None:
    """QEMU's default: every device-specific byte (0x40-0xff) is writable."""
    for reg in range(0x40, 0x100, 4):
        device.set_wmask(reg, 4, 0xFFFFFFFF)


def _set_bytes(device: PciDevice, values: dict[int, int]) -> None:
    for reg, value in values.items():
        device.set_byte(reg, value)


class _IntxInput:
    """One INTx source into the PIRQ router (an `IrqLine`)."""

    def __init__(self, router: Piix4Isa, pirq: int, key: int) -> None:
        self._router = router
        self._pirq = pirq
        self._key = key

    def set(self, level: bool) -> None:
        self._router._set_source(self._pirq, self._key, level)


class Piix4Isa(PciDevice):
    """Function 0, the PCI-ISA bridge, and the PIRQ router its registers 0x60-0x63 program.

    `isa_irq(n)` gives ISA IRQ line n (e.g. `DualPic.input`); it is driven
    with the OR of the PIRQs routed to it, and only on changes. Use
    `intx_line` as the `PciBus`'s `route_intx`. The PIRQ lines are
    re-evaluated when the guest rewrites a routing register, so a moved
    PIRQ releases its old IRQ. Without `isa_irq` PCI interrupts go nowhere.
    """

    DEVICE_ID = 0x7110

    def __init__(
        self,
        isa_irq: Callable[[int], IrqLine] | None = None,
        *,
        slot_pirq: Callable[[int, int], int] = malta_slot_pirq,
        pirq_routing: tuple[int, int, int, int] = MALTA_PIRQ_ROUTING,
    ) -> None:
        super().__init__(
            vendor_id=INTEL,
            device_id=self.DEVICE_ID,
            class_code=0x060100,  # bridge, PCI-ISA
            revision=0x00,
            header_type=0x80,
            subsystem_vendor_id=QEMU_SUBSYSTEM_VENDOR_ID,
            subsystem_id=QEMU_SUBSYSTEM_ID,
            status=Status.DEVSEL_MEDIUM,
            name="piix4-isa",
        )
        _open_device_registers(self)
        _set_bytes(
            self,
            {
                0x4C: 0x4D,  # IORT: ISA I/O recovery timer
                0x4E: 0x03,  # XBCS: RTC and keyboard controller enabled
                0x69: 0x02,  # TOM: top of memory
                0x70: 0x80,  # MBIRQ0: disabled
                0x76: 0x0C,  # MBDMA0: disabled
                0x77: 0x0C,  # MBDMA1: disabled
                0x78: 0x02,  # PCSC: programmable chip select
                0xA0: 0x08,  # SMICNTL
                0xA8: 0x0F,  # SEE: system event enable
            },
        )
        for pirq, irq in enumerate(pirq_routing):
            self.set_byte(PIRQRC_BASE + pirq, irq)
            self.set_wmask(PIRQRC_BASE + pirq, 1, PIRQRC_WMASK)
        self.isa_irq = isa_irq
        self.slot_pirq = slot_pirq
        self._lock = threading.RLock()
        self._next_key = 0
        self._asserted: list[set[int]] = [set() for _ in range(NUM_PIRQS)]
        self._driven: dict[int, bool] = {}  # ISA IRQ -> level last driven
        self._lines: dict[int, IrqLine] = {}

    # ------------------------------------------------------------------ routing
    def pirq_route(self, pirq: int) -> int | None:
        """The ISA IRQ PIRQ `pirq` (0-3) is routed to, None while disabled."""
        value = self.config[PIRQRC_BASE + pirq]
        return None if value & PIRQRC_DISABLE else value & PIRQRC_IRQ_MASK

    def intx_line(self, dev_fn: int, pin: int) -> IrqLine:
        """The line INTx `pin` (1-4) of the function at `dev_fn` drives: a `route_intx` for `PciBus`."""
        with self._lock:
            key = self._next_key
            self._next_key += 1
        return _IntxInput(self, self.slot_pirq(dev_fn, pin) & 3, key)

    def pirq_level(self, pirq: int) -> bool:
        with self._lock:
            return bool(self._asserted[pirq])

    def _set_source(self, pirq: int, key: int, level: bool) -> None:
        with self._lock:
            if level:
                self._asserted[pirq].add(key)
            else:
                self._asserted[pirq].discard(key)
            self._update()

    def _update(self) -> None:
        wanted: dict[int, bool] = {}
        for pirq in range(NUM_PIRQS):
            irq = self.pirq_route(pirq)
            if irq is not None:
                wanted[irq] = wanted.get(irq, False) or bool(self._asserted[pirq])
        for irq in sorted(set(wanted) | set(self._driven)):
            level = wanted.get(irq, False)
            if level != self._driven.get(irq, False):
                self._driven[irq] = level
                self._drive(irq, level)

    def _drive(self, irq: int, level: bool) -> None:
        if self.isa_irq is None:
            return
        line = self._lines.get(irq)
        if line is None:
            line = self._lines[irq] = self.isa_irq(irq)
        line.set(level)

    def config_written(self, reg: int, size: int) -> None:
        if reg < PIRQRC_BASE + NUM_PIRQS and reg + size > PIRQRC_BASE:
            with self._lock:
                log.debug("piix4: PIRQ routing %s", [self.pirq_route(p) for p in range(NUM_PIRQS)])
                self._update()


class Piix4Ide(PciDevice):
    """Function 1, the IDE controller in legacy mode: configuration space only (no drives)."""

    DEVICE_ID = 0x7111
    BMDMA_BAR = 4
    BMDMA_BYTES = 16

    def __init__(self) -> None:
        super().__init__(
            vendor_id=INTEL,
            device_id=self.DEVICE_ID,
            class_code=0x010180,  # IDE, prog-if 0x80: bus master, both channels in legacy mode
            revision=0x00,
            subsystem_vendor_id=QEMU_SUBSYSTEM_VENDOR_ID,
            subsystem_id=QEMU_SUBSYSTEM_ID,
            status=Status.FAST_BACK | Status.DEVSEL_MEDIUM,
            name="piix4-ide",
        )
        _open_device_registers(self)
        self.add_bar(self.BMDMA_BAR, self.BMDMA_BYTES, BarKind.IO)


class Piix4Usb(PciDevice):
    """Function 2, the UHCI USB controller: configuration space only (no controller behind BAR4)."""

    DEVICE_ID = 0x7112
    IO_BAR = 4
    IO_BYTES = 32

    def __init__(self) -> None:
        super().__init__(
            vendor_id=INTEL,
            device_id=self.DEVICE_ID,
            class_code=0x0C0300,  # serial bus, USB, UHCI
            revision=0x01,
            subsystem_vendor_id=QEMU_SUBSYSTEM_VENDOR_ID,
            subsystem_id=QEMU_SUBSYSTEM_ID,
            interrupt_pin=InterruptPin.INTD,
            name="piix4-usb",
        )
        _open_device_registers(self)
        _set_bytes(self, {0x60: 0x10, 0x6A: 0x01})  # SBRN: USB 1.0; MISCSUP (QEMU's "USB clock")
        self.add_bar(self.IO_BAR, self.IO_BYTES, BarKind.IO)


class Piix4PmFunction(PciDevice):
    """Function 3, power management: PMBA/PMREGMISC place the PM I/O block, SMBBA/SMBHSTCFG the SMBus.

    `on_pm_io_change(port)` is called when the PM block's decode changes:
    the ISA port it now decodes at (PMBA & 0xffc0 while PMREGMISC.PMIOSE is
    set), or None. `on_smbus_io_change(port)` likewise for the SMBus block
    (SMBBA & 0xfff0 while SMBHSTCFG bit 0 is set). The initial decode is in
    `pm_io_port` / `smbus_io_port` (PM off, SMBus at 0x1100).
    """

    DEVICE_ID = PIIX4_PM_CONFIG.device_id

    def __init__(
        self,
        *,
        on_pm_io_change: Callable[[int | None], None] | None = None,
        on_smbus_io_change: Callable[[int | None], None] | None = None,
    ) -> None:
        cfg = PIIX4_PM_CONFIG
        super().__init__(
            vendor_id=cfg.vendor_id,
            device_id=cfg.device_id,
            class_code=cfg.class_code,
            revision=cfg.revision,
            header_type=cfg.header_type,
            subsystem_vendor_id=QEMU_SUBSYSTEM_VENDOR_ID,
            subsystem_id=QEMU_SUBSYSTEM_ID,
            interrupt_pin=InterruptPin.INTA,
            status=Status.FAST_BACK | Status.DEVSEL_MEDIUM,
            name="piix4-pm",
        )
        _open_device_registers(self)
        self.set_long(cfg.pmba_offset, cfg.pmba_default)
        self.set_wmask(cfg.pmba_offset, 4, cfg.pmba_write_mask)
        self.set_byte(cfg.pmregmisc_offset, cfg.pmregmisc_default)
        self.set_wmask(cfg.pmregmisc_offset, 1, cfg.pmregmisc_write_mask)
        self.set_long(cfg.smbba_offset, cfg.smbba_default)
        self.set_wmask(cfg.smbba_offset, 4, cfg.smbba_write_mask)
        self.set_byte(cfg.smbhstcfg_offset, cfg.smbhstcfg_default)
        # QEMU's piix4_pm_realize: SMM marked as already set up; DEVRESA/B/C device resources.
        _set_bytes(self, {0x5B: 0x02, 0x5F: 0x90, 0x63: 0x60, 0x67: 0x98})
        self.on_pm_io_change = on_pm_io_change
        self.on_smbus_io_change = on_smbus_io_change
        self._pm_port = self._decode_pm()
        self._smbus_port = self._decode_smbus()

    @property
    def pm_io_port(self) -> int | None:
        return self._pm_port

    @property
    def smbus_io_port(self) -> int | None:
        return self._smbus_port

    def _decode_pm(self) -> int | None:
        cfg = PIIX4_PM_CONFIG
        return cfg.pm_io_port(self.get(cfg.pmba_offset, 4), self.config[cfg.pmregmisc_offset])

    def _decode_smbus(self) -> int | None:
        cfg = PIIX4_PM_CONFIG
        if not self.config[cfg.smbhstcfg_offset] & 0x01:
            return None
        return self.get(cfg.smbba_offset, 4) & cfg.smbba_write_mask

    def config_written(self, reg: int, size: int) -> None:
        pm, smbus = self._decode_pm(), self._decode_smbus()
        if pm != self._pm_port:
            log.debug("piix4: PM I/O block %s -> %s", self._pm_port, pm)
            self._pm_port = pm
            if self.on_pm_io_change is not None:
                self.on_pm_io_change(pm)
        if smbus != self._smbus_port:
            log.debug("piix4: SMBus I/O block %s -> %s", self._smbus_port, smbus)
            self._smbus_port = smbus
            if self.on_smbus_io_change is not None:
                self.on_smbus_io_change(smbus)
