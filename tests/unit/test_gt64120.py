"""The GT-64120 (registers, windows, PCI configuration cycles, IACK) and the PIIX4's PCI functions.

Expected configuration spaces are qemu-system-mipsel 7.2's (`-M malta`),
dumped through GT_PCI0_CFGADDR/CFGDATA with qtest: the non-zero dwords.
"""

from __future__ import annotations

import pytest

from kvmpy.vmm.bus import Bus
from kvmpy.vmm.machines.malta.board import Piix4Functions, attach_piix4
from kvmpy.vmm.machines.malta.gt64120 import (
    GT64120_ISD_GPA,
    GT64120_REGS_BYTES,
    INTRCAUSE_MASABORT0,
    INTRCAUSE_TARABORT0,
    PCI0_CMD_MBYTESWAP,
    Gt64120,
    GtReg,
    GtWindow,
    GtWindows,
)
from kvmpy.vmm.machines.malta.piix4_pci import PIIX4_DEVFN, malta_slot_pirq
from kvmpy.vmm.pci import BarKind, Cfg, Command, InterruptPin, PciBus, PciDevice, devfn
from tests.unit.fakes import RecordingIrq as RecordingLine

CONFIG_EN = 0x80000000
LINUX_CLEAR_ABORTS = ~(INTRCAUSE_MASABORT0 | INTRCAUSE_TARABORT0) & 0xFFFFFFFF

QEMU_CONFIG: dict[int, dict[int, int]] = {
    0x00: {  # gt64120_pci
        0x00: 0x462011AB, 0x04: 0x02800000, 0x08: 0x06000010, 0x10: 0x00000008,
        0x14: 0x01000008, 0x18: 0x1C000000, 0x1C: 0x1F000000, 0x20: 0x14000000,
        0x24: 0x14000001, 0x2C: 0x11001AF4, 0x3C: 0x00000100,
    },
    0x50: {  # piix4-isa
        0x00: 0x71108086, 0x04: 0x02000000, 0x08: 0x06010000, 0x0C: 0x00800000,
        0x2C: 0x11001AF4, 0x4C: 0x0003004D, 0x60: 0x0B0B0A0A, 0x68: 0x00000200,
        0x70: 0x00000080, 0x74: 0x0C0C0000, 0x78: 0x00000002, 0xA0: 0x00000008,
        0xA8: 0x0000000F,
    },
    0x51: {  # piix4-ide
        0x00: 0x71118086, 0x04: 0x02800000, 0x08: 0x01018000, 0x20: 0x00000001,
        0x2C: 0x11001AF4,
    },
    0x52: {  # piix4-usb-uhci
        0x00: 0x71128086, 0x08: 0x0C030001, 0x20: 0x00000001, 0x2C: 0x11001AF4,
        0x3C: 0x00000400, 0x60: 0x00000010, 0x68: 0x00010000,
    },
    0x53: {  # PIIX4_PM
        0x00: 0x71138086, 0x04: 0x02800000, 0x08: 0x06800003, 0x2C: 0x11001AF4,
        0x3C: 0x00000100, 0x40: 0x00000001, 0x58: 0x02000000, 0x5C: 0x90000000,
        0x60: 0x60000000, 0x64: 0x98000000, 0x90: 0x00001101, 0xD0: 0x00090000,
    },
}  # fmt: skip



class Board:
    """The Malta's PCI side: GT-64120 on the MMIO bus, PIIX4 functions, ISA IRQ lines."""

    def __init__(self) -> None:
        self.pci = PciBus()
        self.acks: list[int] = [0x07]
        self.window_changes: list[GtWindows] = []
        self.pm_ports: list[int | None] = []
        self.gt = Gt64120(self.pci, iack=self._iack, on_window_change=self.window_changes.append)
        self.mmio = Bus()
        self.mmio.add(GT64120_ISD_GPA, GT64120_REGS_BYTES, self.gt, "gt64120")
        self.irqs = {n: RecordingLine() for n in range(16)}
        self.piix4: Piix4Functions = attach_piix4(
            self.pci, isa_irq=self.irqs.__getitem__, on_pm_io_change=self.pm_ports.append
        )

    def _iack(self) -> int:
        return self.acks.pop(0)

    def gt_read(self, reg: int, size: int = 4) -> int:
        return self.mmio.read(GT64120_ISD_GPA + reg, size)

    def gt_write(self, reg: int, value: int, size: int = 4) -> None:
        self.mmio.write(GT64120_ISD_GPA + reg, size, value)

    def linux_config_access(self, bus: int, dev_fn: int, where: int, write: int | None = None) -> int | None:
        """arch/mips/pci/ops-gt64xxx_pci0.c: returns the dword read, or None on master/target abort."""
        self.gt_write(GtReg.INTRCAUSE, LINUX_CLEAR_ABORTS)
        self.gt_write(GtReg.PCI0_CFGADDR, bus << 16 | dev_fn << 8 | (where & 0xFC) | CONFIG_EN)
        data = None
        if write is None:
            data = self.gt_read(GtReg.PCI0_CFGDATA)
        else:
            self.gt_write(GtReg.PCI0_CFGDATA, write)
        if self.gt_read(GtReg.INTRCAUSE) & (INTRCAUSE_MASABORT0 | INTRCAUSE_TARABORT0):
            self.gt_write(GtReg.INTRCAUSE, LINUX_CLEAR_ABORTS)
            return None
        return data if write is None else 0

    def cfg_read(self, dev_fn: int, reg: int, size: int = 4) -> int:
        """A direct CFGADDR/CFGDATA access of `size` bytes at `reg` (byte lane from reg & 3)."""
        self.gt_write(GtReg.PCI0_CFGADDR, dev_fn << 8 | (reg & 0xFC) | CONFIG_EN)
        return self.gt_read(GtReg.PCI0_CFGDATA + (reg & 3), size)

    def cfg_write(self, dev_fn: int, reg: int, value: int, size: int = 4) -> None:
        self.gt_write(GtReg.PCI0_CFGADDR, dev_fn << 8 | (reg & 0xFC) | CONFIG_EN)
        self.gt_write(GtReg.PCI0_CFGDATA + (reg & 3), value, size)


@pytest.fixture
def board() -> Board:
    return Board()


# ---------------------------------------------------------------------- registers and windows
def test_state_left_by_qemus_bootloader(board: Board) -> None:
    expected = {
        GtReg.CPU: 0x00001000,
        GtReg.ISD: 0xDF,
        GtReg.PCI0IOLD: 0xC0,
        GtReg.PCI0IOHD: 0x40,
        GtReg.PCI0M0LD: 0x80,
        GtReg.PCI0M0HD: 0x3F,
        GtReg.PCI0M1LD: 0xC1,
        GtReg.PCI0M1HD: 0x5E,
        GtReg.PCI0IOREMAP: 0xC0,
        GtReg.PCI0M0REMAP: 0x80,
        GtReg.PCI0M1REMAP: 0xC1,
        GtReg.PCI0_CMD: 0x00010001,
        GtReg.MULTI: 0x00000003,
        GtReg.SDRAM_CFG: 0x00000200,
        GtReg.INTRCAUSE: 0,
    }
    assert {reg: board.gt_read(reg) for reg in expected} == expected
    assert board.gt.windows == GtWindows(
        registers=GtWindow(0x1BE00000, 0x1000),
        pci_io=GtWindow(0x18000000, 0x00200000),
        pci_mem0=GtWindow(0x10000000, 0x08000000),
        pci_mem1=GtWindow(0x18200000, 0x03C00000),
    )
    assert board.gt.windows.io_port_gpa(0x3F8) == 0x180003F8
    assert board.gt.windows.io_port_gpa(0x200000) is None
    assert board.gt.windows.mem_gpa(0x12050000) == 0x12050000
    assert board.gt.windows.mem_gpa(0x1C000000) is None


def test_power_on_state_without_bootloader() -> None:
    gt = Gt64120(PciBus(), yamon_setup=False)
    assert gt.windows.registers == GtWindow(0x14000000, 0x1000)
    assert gt.register(GtReg.PCI0IOLD) == 0x80


def test_linux_malta_init_sequence(board: Board) -> None:
    """malta-init.c, then malta-pci.c's mips_pcibios_init(), as traced under QEMU 7.2."""
    board.gt_write(GtReg.PCI0_CMD, 0x00010001)
    start, remap = board.gt_read(GtReg.PCI0IOLD), board.gt_read(GtReg.PCI0IOREMAP)
    assert (start, remap) == (0xC0, 0xC0)
    board.gt_write(GtReg.PCI0IOREMAP, remap & ~start)
    assert board.gt_read(GtReg.PCI0IOREMAP) == 0
    assert board.window_changes == []  # remap is stored, the decode is unchanged
    board.gt_write(GtReg.PCI0_CFGADDR, 0x80000020)
    board.gt_write(GtReg.PCI0_CFGDATA, 0x1BE00000)  # GT BAR4: read-only under QEMU 7.2
    assert board.cfg_read(0x00, 0x20) == 0x14000000
    reads = [GtReg.PCI0M0LD, GtReg.PCI0M0HD, GtReg.PCI0M0REMAP, GtReg.PCI0M1LD, GtReg.PCI0M1HD]
    assert [board.gt_read(r) for r in reads] == [0x80, 0x3F, 0x80, 0xC1, 0x5E]


def test_registers_are_little_endian_words_with_byte_lanes(board: Board) -> None:
    board.gt_write(GtReg.SDRAM_B0, 0x11223344)
    assert board.gt_read(GtReg.SDRAM_B0) == 0x11223344
    assert [board.gt_read(GtReg.SDRAM_B0 + i, 1) for i in range(4)] == [0x44, 0x33, 0x22, 0x11]
    assert board.gt_read(GtReg.SDRAM_B0 + 2, 2) == 0x1122
    board.gt_write(GtReg.SDRAM_B0 + 1, 0xAA, 1)  # sub-word stores merge
    assert board.gt_read(GtReg.SDRAM_B0) == 0x1122AA44
    assert board.gt_read(GtReg.CPU + 1, 1) == 0x10  # Endianness bit 12


def test_cpu_endianness_bit_clear_swaps_registers(board: Board) -> None:
    board.gt_write(GtReg.CPU, 0)
    assert board.gt_read(GtReg.PCI0IOLD) == 0xC0000000
    board.gt_write(GtReg.CPU, 0x00100000)  # byte-swapped 0x1000: little-endian again
    assert board.gt_read(GtReg.CPU) == 0x1000
    assert board.gt_read(GtReg.PCI0IOLD) == 0xC0


def test_unknown_registers_read_back_what_was_written(board: Board) -> None:
    for reg in (0x800, 0xC70, 0xFF0, GtReg.TC0, GtReg.DEV_B0):
        board.gt_write(reg, 0xCAFEF00D)
        assert board.gt_read(reg) == 0xCAFEF00D


def test_read_only_and_special_registers(board: Board) -> None:
    board.gt_write(GtReg.MULTI, 0)
    board.gt_write(GtReg.CPUERR_DATALO, 0)
    assert board.gt_read(GtReg.MULTI) == 3
    assert board.gt_read(GtReg.CPUERR_DATALO) == 0xFFFFFFFF
    assert board.gt_read(GtReg.PCI0SYNC) == 0xC000FFEE
    board.gt_write(GtReg.PCI0_CMD, 0xFFFFFFFF)
    assert board.gt_read(GtReg.PCI0_CMD) == 0x0401FC0F


def test_window_reprogramming_is_reported_and_kept(board: Board) -> None:
    board.gt_write(GtReg.PCI0IOHD, 0x41)
    assert board.window_changes[-1].pci_io == GtWindow(0x18000000, 0x00400000)
    board.gt_write(GtReg.PCI0M1LD, 0x1C2)  # LD keeps 15 bits and sets REMAP
    assert board.gt_read(GtReg.PCI0M1REMAP) == 0x1C2
    assert board.window_changes[-1].pci_mem1 == GtWindow(0x38400000, (0x5E + 1 - 0x42) << 21)
    board.gt_write(GtReg.PCI0M0HD, 0x7F)
    board.gt_write(GtReg.PCI0M0LD, 0xFF)  # LD & 0x7f == HD: one 2 MiB window at 0xff << 21
    assert board.gt.windows.pci_mem0 == GtWindow(0x1FE00000, 0x200000)
    board.gt_write(GtReg.PCI0M0HD, 0x10)  # low > high: window off
    assert board.gt.windows.pci_mem0 is None
    count = len(board.window_changes)
    board.gt_write(GtReg.PCI0M0HD, 0x10)
    assert len(board.window_changes) == count  # no change, no call
    assert board.gt.register(GtReg.PCI0M0HD) == 0x10


# ---------------------------------------------------------------------- configuration cycles
def test_linux_config_reads_of_present_and_absent_functions(board: Board) -> None:
    assert board.linux_config_access(0, 0x00, 0x00) == 0x462011AB
    assert board.linux_config_access(0, PIIX4_DEVFN, 0x00) == 0x71108086
    assert board.gt.intr_cause == 0
    assert board.linux_config_access(0, devfn(0, 1), 0x00) is None  # master abort
    assert board.gt.intr_cause == 0  # and cleared again by Linux
    assert board.linux_config_access(1, 0x00, 0x00) is None  # no bus 1


def test_absent_function_reads_all_ones_and_sets_masabort(board: Board) -> None:
    board.gt_write(GtReg.PCI0_CFGADDR, CONFIG_EN | devfn(5) << 8)
    assert board.gt_read(GtReg.PCI0_CFGDATA) == 0xFFFFFFFF
    assert board.gt_read(GtReg.INTRCAUSE) == INTRCAUSE_MASABORT0 | 1
    board.gt_write(GtReg.INTRCAUSE, 0xFFFFFFFF)  # writing 1s clears nothing
    assert board.gt_read(GtReg.INTRCAUSE) == INTRCAUSE_MASABORT0 | 1
    board.gt_write(GtReg.INTRCAUSE, LINUX_CLEAR_ABORTS)
    assert board.gt_read(GtReg.INTRCAUSE) == 0
    board.gt_write(GtReg.PCI0_CFGDATA, 0x12345678)  # writes are dropped, and abort too
    assert board.gt_read(GtReg.INTRCAUSE) & INTRCAUSE_MASABORT0
    assert board.gt_read(GtReg.PCI0_CFGDATA + 3, 1) == 0xFF


def test_config_enable_clear_reads_all_ones_without_abort(board: Board) -> None:
    board.gt_write(GtReg.PCI0_CFGADDR, PIIX4_DEVFN << 8)
    assert board.gt_read(GtReg.PCI0_CFGDATA) == 0xFFFFFFFF
    board.gt_write(GtReg.PCI0_CFGDATA, 0)
    assert board.gt_read(GtReg.INTRCAUSE) == 0


def test_cfgaddr_mask(board: Board) -> None:
    board.gt_write(GtReg.PCI0_CFGADDR, 0xFFFFFFFF)
    assert board.gt_read(GtReg.PCI0_CFGADDR) == 0x80FFFFFC


def test_byte_and_halfword_config_accesses(board: Board) -> None:
    assert board.cfg_read(PIIX4_DEVFN, 0x00, 1) == 0x86
    assert board.cfg_read(PIIX4_DEVFN, 0x01, 1) == 0x80
    assert board.cfg_read(PIIX4_DEVFN, 0x02, 2) == 0x7110
    assert board.cfg_read(PIIX4_DEVFN, 0x0E, 1) == 0x80  # header type: multi-function
    assert [board.cfg_read(PIIX4_DEVFN, 0x60 + i, 1) for i in range(4)] == [10, 10, 11, 11]
    board.cfg_write(PIIX4_DEVFN, 0x69, 0xF2, 1)  # TOM |= 0xf0 (fixup-malta.c)
    assert board.cfg_read(PIIX4_DEVFN, 0x68) == 0x0000F200
    board.cfg_write(PIIX4_DEVFN, 0x3C, 0x0B, 1)
    board.cfg_write(PIIX4_DEVFN + 2, 0x3C, 0x0B, 1)
    assert board.cfg_read(PIIX4_DEVFN + 2, 0x3C) == 0x0000040B


def test_linux_style_read_modify_write(board: Board) -> None:
    """gt64xxx_pci0_pcibios_write of a byte: read the dword, merge, write the dword."""
    data = board.linux_config_access(0, PIIX4_DEVFN + 3, 0x80)
    assert data == 0
    assert board.linux_config_access(0, PIIX4_DEVFN + 3, 0x80, write=data | 0x01) == 0
    assert board.cfg_read(PIIX4_DEVFN + 3, 0x80, 1) == 0x01


def test_mbyteswap_clear_swaps_config_data_except_for_the_gt(board: Board) -> None:
    board.gt_write(GtReg.PCI0_CMD, 0x00010000)
    assert board.cfg_read(PIIX4_DEVFN, 0x00) == 0x86801071
    assert board.cfg_read(PIIX4_DEVFN, 0x00, 1) == 0x71
    assert board.cfg_read(0x00, 0x00) == 0x462011AB  # device 0 is never swapped
    board.cfg_write(PIIX4_DEVFN, 0x68, 0x00F20000)  # swapped: TOM byte 0x69 = 0xf2
    board.gt_write(GtReg.PCI0_CMD, PCI0_CMD_MBYTESWAP)
    assert board.cfg_read(PIIX4_DEVFN, 0x69, 1) == 0xF2


def test_full_bus_scan_finds_the_malta_functions(board: Board) -> None:
    found = {}
    for dev_fn in range(0, 31 * 8):  # Linux never probes slot 31 (GT erratum)
        vendor_device = board.linux_config_access(0, dev_fn, 0)
        if vendor_device is not None:
            found[dev_fn] = vendor_device
    assert found == {
        0x00: 0x462011AB,
        0x50: 0x71108086,
        0x51: 0x71118086,
        0x52: 0x71128086,
        0x53: 0x71138086,
    }


@pytest.mark.parametrize("dev_fn", sorted(QEMU_CONFIG))
def test_configuration_spaces_match_qemu_7_2(board: Board, dev_fn: int) -> None:
    space = {reg: board.cfg_read(dev_fn, reg) for reg in range(0, 256, 4)}
    assert {reg: value for reg, value in space.items() if value} == QEMU_CONFIG[dev_fn]


@pytest.mark.parametrize(
    ("dev_fn", "reg", "probed"),
    [(0x00, 0x14, 0x01000008), (0x00, 0x20, 0x14000000), (0x51, 0x10, 0), (0x51, 0x20, 0xFFFFFFF1),
     (0x52, 0x20, 0xFFFFFFE1), (0x52, 0x24, 0), (0x53, 0x10, 0)],
)  # fmt: skip
def test_bar_sizing_matches_qemu_7_2(board: Board, dev_fn: int, reg: int, probed: int) -> None:
    old = board.cfg_read(dev_fn, reg)
    board.cfg_write(dev_fn, reg, 0xFFFFFFFF)
    assert board.cfg_read(dev_fn, reg) == probed
    board.cfg_write(dev_fn, reg, old)


# ---------------------------------------------------------------------- interrupt acknowledge
def test_iack_runs_one_inta_cycle_per_read(board: Board) -> None:
    board.acks = [0x07, 0x100 | 0x0A, 0x03]
    assert board.gt_read(GtReg.PCI0_IACK) == 0x07
    assert board.gt_read(GtReg.PCI0_IACK) == 0x0A  # the vector is bits 7:0
    assert board.gt_read(GtReg.PCI0_IACK, 1) == 0x03
    assert board.acks == []


def test_iack_without_a_pic_reads_zero() -> None:
    gt = Gt64120(PciBus())
    assert gt.read(GtReg.PCI0_IACK, 4) == 0


# ---------------------------------------------------------------------- PIIX4 functions
def test_pm_function_linux_fixup_maps_the_pm_block(board: Board) -> None:
    pm = board.piix4.pm
    assert pm.pm_io_port is None
    assert pm.smbus_io_port == 0x1100
    board.linux_config_access(0, PIIX4_DEVFN + 3, 0x40, write=0x1000)  # malta_piix_func3_base_fixup
    assert board.pm_ports == []
    assert board.cfg_read(PIIX4_DEVFN + 3, 0x40) == 0x1001  # bit 0 hardwired
    board.cfg_write(PIIX4_DEVFN + 3, 0x80, 0x01, 1)
    assert board.pm_ports == [0x1000]
    board.cfg_write(PIIX4_DEVFN + 3, 0x40, 0xFFFF, 2)
    assert board.pm_ports == [0x1000, 0xFFC0]
    board.cfg_write(PIIX4_DEVFN + 3, 0x80, 0x00, 1)
    assert board.pm_ports == [0x1000, 0xFFC0, None]
    assert pm.pm_io_port is None


def test_smbus_decode(board: Board) -> None:
    changes: list[int | None] = []
    board.piix4.pm.on_smbus_io_change = changes.append
    board.cfg_write(PIIX4_DEVFN + 3, 0xD2, 0x08, 1)
    board.cfg_write(PIIX4_DEVFN + 3, 0x90, 0x2000, 2)
    board.cfg_write(PIIX4_DEVFN + 3, 0xD2, 0x09, 1)
    assert changes == [None, 0x2000]
    assert board.cfg_read(PIIX4_DEVFN + 3, 0x90) == 0x2001


def test_without_usb() -> None:
    pci = PciBus()
    functions = attach_piix4(pci, with_usb=False)
    assert functions.usb is None
    assert not pci.present(0, PIIX4_DEVFN + 2)
    assert pci.present(0, PIIX4_DEVFN + 3)


# ---------------------------------------------------------------------- PCI interrupt routing
@pytest.mark.parametrize(
    ("slot", "pin", "pirq"),
    [(10, 4, 3), (11, 1, 1), (12, 1, 2), (18, 1, 0), (18, 2, 1), (19, 1, 1), (20, 1, 2), (21, 1, 3),
     (21, 2, 0), (19, 4, 0), (5, 3, 2)],
)  # fmt: skip
def test_malta_slot_to_pirq(slot: int, pin: int, pirq: int) -> None:
    assert malta_slot_pirq(devfn(slot), pin) == pirq


def nic(pin: int = InterruptPin.INTA) -> PciDevice:
    dev = PciDevice(vendor_id=0x1AF4, device_id=0x1000, class_code=0x020000, interrupt_pin=pin)
    dev.add_bar(0, 0x20, BarKind.IO)
    return dev


def test_pci_intx_reaches_the_routed_isa_irq(board: Board) -> None:
    slot18, slot20 = nic(), nic()
    board.pci.attach(devfn(18), slot18)  # INTA -> PIRQA -> IRQ 10
    board.pci.attach(devfn(20), slot20)  # INTA -> PIRQC -> IRQ 11
    slot18.set_irq(True)
    assert board.irqs[10].levels == [True]
    slot20.set_irq(True)
    assert board.irqs[11].levels == [True]
    slot18.set_irq(False)
    assert board.irqs[10].levels == [True, False]
    assert board.irqs[11].level


def test_shared_irq_is_a_wired_or(board: Board) -> None:
    slot18, slot19 = nic(), nic()  # PIRQA and PIRQB, both on IRQ 10
    board.pci.attach(devfn(18), slot18)
    board.pci.attach(devfn(19), slot19)
    slot18.set_irq(True)
    slot19.set_irq(True)
    slot18.set_irq(False)
    assert board.irqs[10].levels == [True]  # still held by slot 19
    slot19.set_irq(False)
    assert board.irqs[10].levels == [True, False]


def test_rerouting_moves_an_asserted_pirq(board: Board) -> None:
    dev = nic()
    board.pci.attach(devfn(18), dev)
    dev.set_irq(True)
    board.cfg_write(PIIX4_DEVFN, 0x60, 0x05, 1)  # PIRQA -> IRQ 5
    assert board.irqs[10].levels == [True, False]
    assert board.irqs[5].levels == [True]
    board.cfg_write(PIIX4_DEVFN, 0x60, 0x85, 1)  # routing disabled
    assert board.irqs[5].levels == [True, False]
    assert board.piix4.isa.pirq_route(0) is None
    assert board.piix4.isa.pirq_level(0)
    assert board.cfg_read(PIIX4_DEVFN, 0x60, 1) == 0x85
    board.cfg_write(PIIX4_DEVFN, 0x60, 0xFF, 1)  # reserved bits 6:4 read 0
    assert board.cfg_read(PIIX4_DEVFN, 0x60, 1) == 0x8F


def test_usb_function_intd_uses_pirqd(board: Board) -> None:
    usb = board.piix4.usb
    assert usb is not None
    usb.set_irq(True)
    assert board.irqs[11].levels == [True]
    usb.config_write(Cfg.COMMAND, 2, Command.INTX_DISABLE)
    assert board.irqs[11].levels == [True, False]
