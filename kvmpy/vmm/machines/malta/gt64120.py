"""The Galileo (Marvell) GT-64120 system controller of the Malta's CoreLV card, and its PCI host bridge.

What the guest sees is the controller's 4 KiB internal register window (ISD,
"internal space decode"). After reset it sits at 0x14000000; YAMON, and
QEMU's pseudo-bootloader that replaces it when QEMU boots a kernel directly,
move it to 0x1be00000 (ISD = 0xdf: bits 14:0 are address bits 35:21) and
program the CPU-to-PCI windows. The VMM starts the kernel directly, so this
model starts in that post-bootloader state (QEMU 7.2 hw/mips/malta.c,
write_bootloader; values confirmed by tracing qemu-system-mipsel 7.2 booting
Debian's 6.1 4kc-malta kernel):

    register (offset)   value   window
    ISD     (0x068)     0xdf    registers at GPA 0x1be00000-0x1be00fff
    PCI0IOLD (0x048)    0xc0    PCI0 I/O   0x18000000-0x181fffff (IOREMAP 0xc0)
    PCI0IOHD (0x050)    0x40
    PCI0M0LD (0x058)    0x80    PCI0 MEM0  0x10000000-0x17ffffff (M0REMAP 0x80)
    PCI0M0HD (0x060)    0x3f
    PCI0M1LD (0x080)    0xc1    PCI0 MEM1  0x18200000-0x1bdfffff (M1REMAP 0xc1)
    PCI0M1HD (0x088)    0x5e

A window spans [LD << 21, (HD + 1 - (LD & 0x7f)) << 21 + base) and is off
while (LD & 0x7f) > HD. Writing an LD register also copies its low 11 bits
into the matching REMAP register (QEMU). As in QEMU the REMAP registers are
stored but do not translate: PCI I/O port p is GPA (I/O window base + p),
PCI memory address a is GPA a. Linux (arch/mips/mti-malta/malta-init.c)
rewrites PCI0IOREMAP to 0 ("fix up PCI I/O mapping for Atlas"), writes
GT_PCI0_CMD = MBYTESWAP | SBYTESWAP, and then (malta-pci.c) only reads the
windows: the PCI I/O resource becomes ports 0x1000-0x1fffff and the PCI
memory resource the wider MEM0 window, 0x10000000-0x17ffffff, offset 0.
If the guest rewrites a decode register the board hears about it through
`on_window_change`; the new decode is kept as programmed.

Byte order (little-endian Malta, the only one this VMM builds):

- Registers are 32-bit words. On the bus a register reads as a
  little-endian integer: a 32-bit load at its offset returns the value, a
  byte load at offset + k returns bits 8k+7:8k. That is what Linux's
  GT_READ/GT_WRITE (le32_to_cpu/cpu_to_le32 of a 32-bit access) expect on a
  little-endian CPU. The CPU-interface Endianness bit (GT_CPU bit 12) reads
  1, QEMU's reset value for a little-endian CPU; if the guest clears it,
  every register access is byte-swapped as QEMU does.
- GT_PCI0_CFGDATA carries configuration data, which is little-endian on
  PCI. It is not swapped while GT_PCI0_CMD.MBYTESWAP (bit 0) is set (the
  reset value here and Linux's setting on little-endian), nor ever for the
  GT itself (bus 0, device 0: Linux uses GT_READ for it and __GT_READ for
  the others), exactly QEMU 7.2's rule. Otherwise the dword is byte-swapped.
- Sub-word accesses use their byte lane: a byte load of CFGDATA + 1 returns
  configuration byte (register + 1), a halfword store to CFGDATA + 2 writes
  two bytes. (QEMU 7.2 passes sub-word accesses to its 32-bit register
  handler and returns lane 0; Linux only uses 32-bit accesses here.)
  Sub-word stores to other registers merge into the stored word.

PCI configuration: GT_PCI0_CFGADDR (0xcf8) holds ConfigEn (bit 31), bus
(23:16), device (15:11), function (10:8) and register (7:2), masked with
0x80fffffc as QEMU. A CFGDATA access with ConfigEn clear reads all-ones and
does nothing. A cycle to a function that is absent (or to a bus other than
0) reads all-ones, drops writes and sets MASABORT0 (bit 18) in GT_INTRCAUSE,
which Linux's gt64xxx_pci0_pcibios_config_access checks after every access
(QEMU never sets it; Linux then sees the all-ones vendor ID instead, with the
same outcome). Writing GT_INTRCAUSE clears the cause bits written as 0 (bit
0, the summary, reads as "any other bit set").

The GT itself is PCI bus 0 device 0 function 0 (`Gt64120PciFunction`),
presented as QEMU 7.2 does: 11ab:4620 rev 0x10, class 0x060000 (host
bridge), read-only BARs (so Linux logs "BAR 1..5: invalid; can't size", as
under QEMU 7.2), INTA pin, subsystem 1af4:1100.

Interrupt acknowledge: a read of GT_PCI0_IACK (0xc34) runs a PCI interrupt
acknowledge cycle, i.e. the 8259's INTA (`iack`, e.g. `DualPic.acknowledge`);
its vector is in bits 7:0 (Linux: `GT_READ(GT_PCI0_IACK_OFS) & 0xff`).

Everything else (SDRAM, device and DMA parameters, timers, PCI_1) is plain
storage with QEMU's reset values: unknown registers read back what was
written. Linux 6.1 reads none of them on the Malta.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from kvmpy.vmm.bus import merge_lane, word_lane
from kvmpy.vmm.pci import InterruptPin, PciBus, PciDevice, Status

log = logging.getLogger(__name__)

GT64120_ISD_GPA = 0x1BE00000  # where YAMON / QEMU's bootloader leave the registers
GT64120_RESET_ISD_GPA = 0x14000000  # the power-on location (ISD = 0xa0)
GT64120_REGS_BYTES = 0x1000
GT_DECODE_SHIFT = 21  # decode registers hold address bits 35:21

CFGADDR_CONFIG_EN = 0x80000000
CFGADDR_MASK = 0x80FFFFFC
CFGADDR_BUS_DEV_MASK = 0x00FFF800
PCI0_CMD_MBYTESWAP = 0x00000001
PCI0_CMD_SBYTESWAP = 0x00010000
CPU_ENDIANNESS_LITTLE = 0x00001000  # GT_CPU bit 12 as QEMU sets it for a little-endian CPU

INTRCAUSE_SUMMARY = 0x00000001
INTRCAUSE_MASABORT0 = 0x00040000
INTRCAUSE_TARABORT0 = 0x00080000

SYNC_READ_VALUE = 0xC000FFEE  # QEMU: reading a sync barrier returns junk the guest ignores


class GtReg(IntEnum):
    """Register offsets in the internal space (GT-64120 datasheet; Linux's asm/gt64120.h)."""

    CPU = 0x000
    SCS10LD = 0x008
    SCS10HD = 0x010
    SCS32LD = 0x018
    SCS32HD = 0x020
    CS20LD = 0x028
    CS20HD = 0x030
    CS3BOOTLD = 0x038
    CS3BOOTHD = 0x040
    PCI0IOLD = 0x048
    PCI0IOHD = 0x050
    PCI0M0LD = 0x058
    PCI0M0HD = 0x060
    ISD = 0x068
    CPUERR_ADDRLO = 0x070
    CPUERR_ADDRHI = 0x078
    PCI0M1LD = 0x080
    PCI0M1HD = 0x088
    PCI1IOLD = 0x090
    PCI1IOHD = 0x098
    PCI1M0LD = 0x0A0
    PCI1M0HD = 0x0A8
    PCI1M1LD = 0x0B0
    PCI1M1HD = 0x0B8
    PCI0SYNC = 0x0C0
    PCI1SYNC = 0x0C8
    SCS10AR = 0x0D0
    SCS32AR = 0x0D8
    CS20R = 0x0E0
    CS3BOOTR = 0x0E8
    PCI0IOREMAP = 0x0F0
    PCI0M0REMAP = 0x0F8
    PCI0M1REMAP = 0x100
    PCI1IOREMAP = 0x108
    PCI1M0REMAP = 0x110
    PCI1M1REMAP = 0x118
    MULTI = 0x120
    CPUERR_DATALO = 0x128
    CPUERR_DATAHI = 0x130
    CPUERR_PARITY = 0x138
    SCS0LD = 0x400
    SCS0HD = 0x404
    SCS1LD = 0x408
    SCS1HD = 0x40C
    SCS2LD = 0x410
    SCS2HD = 0x414
    SCS3LD = 0x418
    SCS3HD = 0x41C
    CS0LD = 0x420
    CS0HD = 0x424
    CS1LD = 0x428
    CS1HD = 0x42C
    CS2LD = 0x430
    CS2HD = 0x434
    CS3LD = 0x438
    CS3HD = 0x43C
    BOOTLD = 0x440
    BOOTHD = 0x444
    SDRAM_CFG = 0x448
    SDRAM_B0 = 0x44C
    SDRAM_B1 = 0x450
    SDRAM_B2 = 0x454
    SDRAM_B3 = 0x458
    DEV_B0 = 0x45C
    DEV_B1 = 0x460
    DEV_B2 = 0x464
    DEV_B3 = 0x468
    DEV_BOOT = 0x46C
    ADERR = 0x470
    SDRAM_OPMODE = 0x474
    SDRAM_BM = 0x478
    SDRAM_ADDRDECODE = 0x47C
    ECC_ERRDATALO = 0x480
    ECC_ERRDATAHI = 0x484
    ECC_MEM = 0x488
    ECC_CALC = 0x48C
    ECC_ERRADDR = 0x490
    TC0 = 0x850
    TC1 = 0x854
    TC2 = 0x858
    TC3 = 0x85C
    TC_CONTROL = 0x864
    PCI0_CMD = 0xC00
    PCI0_TOR = 0xC04
    PCI0_BS_SCS10 = 0xC08
    PCI0_BS_SCS32 = 0xC0C
    PCI0_BS_CS20 = 0xC10
    PCI0_BS_CS3BT = 0xC14
    INTRCAUSE = 0xC18
    INTRMASK = 0xC1C
    PCI0_ICMASK = 0xC24
    PCI0_SERR0MASK = 0xC28
    PCI1_IACK = 0xC30
    PCI0_IACK = 0xC34
    PCI0_BARE = 0xC3C
    PCI0_PREFMBR = 0xC40
    PCI0_SCS10_BAR = 0xC48
    PCI0_SCS32_BAR = 0xC4C
    PCI0_CS20_BAR = 0xC50
    PCI0_CS3BT_BAR = 0xC54
    PCI0_SSCS10_BAR = 0xC58
    PCI0_SSCS32_BAR = 0xC5C
    PCI0_SCS3BT_BAR = 0xC64
    CPU_INTSEL = 0xC70
    PCI0_INTSEL = 0xC74
    PCI1_CMD = 0xC80
    PCI1_TOR = 0xC84
    PCI1_BS_SCS10 = 0xC88
    PCI1_BS_SCS32 = 0xC8C
    PCI1_BS_CS20 = 0xC90
    PCI1_BS_CS3BT = 0xC94
    HINTRCAUSE = 0xC98
    HINTRMASK = 0xC9C
    PCI0_HICMASK = 0xCA4
    PCI1_SERR1MASK = 0xCA8
    PCI1_BARE = 0xCBC
    PCI1_PREFMBR = 0xCC0
    PCI1_SCS10_BAR = 0xCC8
    PCI1_SCS32_BAR = 0xCCC
    PCI1_CS20_BAR = 0xCD0
    PCI1_CS3BT_BAR = 0xCD4
    PCI1_SSCS10_BAR = 0xCD8
    PCI1_SSCS32_BAR = 0xCDC
    PCI1_SCS3BT_BAR = 0xCE4
    PCI1_CFGADDR = 0xCF0
    PCI1_CFGDATA = 0xCF4
    PCI0_CFGADDR = 0xCF8
    PCI0_CFGDATA = 0xCFC


# QEMU 7.2's gt64120_reset() values (a little-endian CPU); registers not listed reset to 0.
RESET_VALUES: dict[int, int] = {
    GtReg.CPU: CPU_ENDIANNESS_LITTLE,
    GtReg.MULTI: 0x00000003,
    GtReg.SCS10HD: 0x00000007,
    GtReg.SCS32LD: 0x00000008,
    GtReg.SCS32HD: 0x0000000F,
    GtReg.CS20LD: 0x000000E0,
    GtReg.CS20HD: 0x00000070,
    GtReg.CS3BOOTLD: 0x000000F8,
    GtReg.CS3BOOTHD: 0x0000007F,
    GtReg.PCI0IOLD: 0x00000080,
    GtReg.PCI0IOHD: 0x0000000F,
    GtReg.PCI0M0LD: 0x00000090,
    GtReg.PCI0M0HD: 0x0000001F,
    GtReg.ISD: 0x000000A0,
    GtReg.PCI0M1LD: 0x00000790,
    GtReg.PCI0M1HD: 0x0000001F,
    GtReg.PCI1IOLD: 0x00000100,
    GtReg.PCI1IOHD: 0x0000000F,
    GtReg.PCI1M0LD: 0x00000110,
    GtReg.PCI1M0HD: 0x0000001F,
    GtReg.PCI1M1LD: 0x00000120,
    GtReg.PCI1M1HD: 0x0000002F,
    GtReg.SCS32AR: 0x00000008,
    GtReg.CS20R: 0x000000E0,
    GtReg.CS3BOOTR: 0x000000F8,
    GtReg.PCI0IOREMAP: 0x00000080,
    GtReg.PCI0M0REMAP: 0x00000090,
    GtReg.PCI0M1REMAP: 0x00000790,
    GtReg.PCI1IOREMAP: 0x00000100,
    GtReg.PCI1M0REMAP: 0x00000110,
    GtReg.PCI1M1REMAP: 0x00000120,
    GtReg.CPUERR_DATALO: 0xFFFFFFFF,
    GtReg.CPUERR_DATAHI: 0xFFFFFFFF,
    GtReg.CPUERR_PARITY: 0x000000FF,
    GtReg.SCS0HD: 0x00000007,
    GtReg.SCS1LD: 0x00000008,
    GtReg.SCS1HD: 0x0000000F,
    GtReg.SCS2LD: 0x00000010,
    GtReg.SCS2HD: 0x00000017,
    GtReg.SCS3LD: 0x00000018,
    GtReg.SCS3HD: 0x0000001F,
    GtReg.CS0LD: 0x000000C0,
    GtReg.CS0HD: 0x000000C7,
    GtReg.CS1LD: 0x000000C8,
    GtReg.CS1HD: 0x000000CF,
    GtReg.CS2LD: 0x000000D0,
    GtReg.CS2HD: 0x000000DF,
    GtReg.CS3LD: 0x000000F0,
    GtReg.CS3HD: 0x000000FB,
    GtReg.BOOTLD: 0x000000FC,
    GtReg.BOOTHD: 0x000000FF,
    GtReg.ADERR: 0xFFFFFFFF,
    GtReg.SDRAM_CFG: 0x00000200,
    GtReg.SDRAM_BM: 0x00000007,
    GtReg.SDRAM_ADDRDECODE: 0x00000002,
    GtReg.SDRAM_B0: 0x00000005,
    GtReg.SDRAM_B1: 0x00000005,
    GtReg.SDRAM_B2: 0x00000005,
    GtReg.SDRAM_B3: 0x00000005,
    GtReg.DEV_B0: 0x386FFFFF,
    GtReg.DEV_B1: 0x386FFFFF,
    GtReg.DEV_B2: 0x386FFFFF,
    GtReg.DEV_B3: 0x386FFFFF,
    GtReg.DEV_BOOT: 0x146FFFFF,
    GtReg.TC0: 0xFFFFFFFF,
    GtReg.TC1: 0x00FFFFFF,
    GtReg.TC2: 0x00FFFFFF,
    GtReg.TC3: 0x00FFFFFF,
    GtReg.PCI0_CMD: PCI0_CMD_MBYTESWAP | PCI0_CMD_SBYTESWAP,
    GtReg.PCI0_TOR: 0x0000070F,
    GtReg.PCI0_BS_SCS10: 0x00FFF000,
    GtReg.PCI0_BS_SCS32: 0x00FFF000,
    GtReg.PCI0_BS_CS20: 0x01FFF000,
    GtReg.PCI0_BS_CS3BT: 0x00FFF000,
    GtReg.PCI0_BARE: 0x0000000F,
    GtReg.PCI0_PREFMBR: 0x00000040,
    GtReg.PCI0_SCS32_BAR: 0x01000000,
    GtReg.PCI0_CS20_BAR: 0x1C000000,
    GtReg.PCI0_CS3BT_BAR: 0x1F000000,
    GtReg.PCI0_SSCS32_BAR: 0x01000000,
    GtReg.PCI0_SCS3BT_BAR: 0x1F000000,
    GtReg.PCI1_CMD: PCI0_CMD_MBYTESWAP | PCI0_CMD_SBYTESWAP,
    GtReg.PCI1_TOR: 0x0000070F,
    GtReg.PCI1_BS_SCS10: 0x00FFF000,
    GtReg.PCI1_BS_SCS32: 0x00FFF000,
    GtReg.PCI1_BS_CS20: 0x01FFF000,
    GtReg.PCI1_BS_CS3BT: 0x00FFF000,
    GtReg.PCI1_BARE: 0x0000000F,
    GtReg.PCI1_PREFMBR: 0x00000040,
    GtReg.PCI1_SCS32_BAR: 0x01000000,
    GtReg.PCI1_CS20_BAR: 0x1C000000,
    GtReg.PCI1_CS3BT_BAR: 0x1F000000,
    GtReg.PCI1_SSCS32_BAR: 0x01000000,
    GtReg.PCI1_SCS3BT_BAR: 0x1F000000,
}

# The register writes of QEMU 7.2's Malta bootloader ("as done by YAMON"), in order.
YAMON_SETUP: tuple[tuple[int, int], ...] = (
    (GtReg.ISD, 0xDF),
    (GtReg.PCI0IOLD, 0xC0),
    (GtReg.PCI0IOHD, 0x40),
    (GtReg.PCI0M0LD, 0x80),
    (GtReg.PCI0M0HD, 0x3F),
    (GtReg.PCI0M1LD, 0xC1),
    (GtReg.PCI0M1HD, 0x5E),
)

# Write masks (QEMU 7.2's gt64120_writel); a register not listed stores the whole word.
_LD_MASK = 0x7FFF
_HD_MASK = 0x7F
_REMAP_MASK = 0x7FF
_WRITE_MASKS: dict[int, int] = {
    **{r: _LD_MASK for r in (GtReg.PCI0IOLD, GtReg.PCI0M0LD, GtReg.PCI0M1LD, GtReg.ISD)},
    **{r: _LD_MASK for r in (GtReg.PCI1IOLD, GtReg.PCI1M0LD, GtReg.PCI1M1LD)},
    **{r: _HD_MASK for r in (GtReg.PCI0IOHD, GtReg.PCI0M0HD, GtReg.PCI0M1HD)},
    **{r: _HD_MASK for r in (GtReg.PCI1IOHD, GtReg.PCI1M0HD, GtReg.PCI1M1HD)},
    **{
        r: _REMAP_MASK
        for r in (
            GtReg.PCI0IOREMAP,
            GtReg.PCI0M0REMAP,
            GtReg.PCI0M1REMAP,
            GtReg.PCI1IOREMAP,
            GtReg.PCI1M0REMAP,
            GtReg.PCI1M1REMAP,
        )
    },
    GtReg.PCI0_CMD: 0x0401FC0F,
    GtReg.PCI1_CMD: 0x0401FC0F,
    GtReg.INTRMASK: 0x3C3FFFFE,
    GtReg.PCI0_ICMASK: 0x03FFFFFE,
    GtReg.PCI0_SERR0MASK: 0x0000003F,
}
# Writing an LD register also sets its REMAP register (QEMU; the datasheet's "remap follows LD").
_LD_REMAP = {
    GtReg.PCI0IOLD: GtReg.PCI0IOREMAP,
    GtReg.PCI0M0LD: GtReg.PCI0M0REMAP,
    GtReg.PCI0M1LD: GtReg.PCI0M1REMAP,
    GtReg.PCI1IOLD: GtReg.PCI1IOREMAP,
    GtReg.PCI1M0LD: GtReg.PCI1M0REMAP,
    GtReg.PCI1M1LD: GtReg.PCI1M1REMAP,
}
_READ_ONLY = frozenset(
    {
        GtReg.MULTI,
        GtReg.CPUERR_ADDRLO,
        GtReg.CPUERR_ADDRHI,
        GtReg.CPUERR_DATALO,
        GtReg.CPUERR_DATAHI,
        GtReg.CPUERR_PARITY,
        GtReg.PCI0SYNC,
        GtReg.PCI1SYNC,
        GtReg.ECC_ERRDATALO,
        GtReg.ECC_ERRDATAHI,
        GtReg.ECC_MEM,
        GtReg.ECC_CALC,
        GtReg.ECC_ERRADDR,
        GtReg.PCI0_IACK,
        GtReg.PCI1_IACK,
    }
)
_DECODE_REGS = frozenset(
    {
        GtReg.ISD,
        GtReg.PCI0IOLD,
        GtReg.PCI0IOHD,
        GtReg.PCI0M0LD,
        GtReg.PCI0M0HD,
        GtReg.PCI0M1LD,
        GtReg.PCI0M1HD,
    }
)


def _bswap32(value: int) -> int:
    return int.from_bytes((value & 0xFFFFFFFF).to_bytes(4, "little"), "big")


@dataclass(frozen=True)
class GtWindow:
    """A CPU address range the GT forwards (to PCI) or decodes (its registers)."""

    base_gpa: int
    size_bytes: int

    @property
    def end_gpa(self) -> int:
        """One past the last byte."""
        return self.base_gpa + self.size_bytes

    def contains(self, gpa: int) -> bool:
        return self.base_gpa <= gpa < self.end_gpa


@dataclass(frozen=True)
class GtWindows:
    """The CPU-side decode the GT is programmed with (None: window off)."""

    registers: GtWindow
    pci_io: GtWindow | None
    pci_mem0: GtWindow | None
    pci_mem1: GtWindow | None

    def io_port_gpa(self, port: int) -> int | None:
        """The GPA of PCI I/O port `port` (port = GPA - I/O window base, as QEMU), None if unreachable."""
        if self.pci_io is None or not 0 <= port < self.pci_io.size_bytes:
            return None
        return self.pci_io.base_gpa + port

    def mem_gpa(self, pci_addr: int) -> int | None:
        """The GPA of PCI memory address `pci_addr` (identity), None outside both memory windows."""
        for window in (self.pci_mem0, self.pci_mem1):
            if window is not None and window.contains(pci_addr):
                return pci_addr
        return None


def _window(ld: int, hd: int) -> GtWindow | None:
    low = ld & 0x7F
    if low > hd:
        return None
    return GtWindow(ld << GT_DECODE_SHIFT, (hd + 1 - low) << GT_DECODE_SHIFT)


class Gt64120PciFunction(PciDevice):
    """The GT-64120 as PCI bus 0 device 0: QEMU 7.2's gt64120_pci (read-only BARs)."""

    VENDOR_ID = 0x11AB  # Galileo / Marvell
    DEVICE_ID = 0x4620  # GT-64120
    REVISION = 0x10
    CLASS_HOST_BRIDGE = 0x060000
    # BAR0..5: SCS[1:0], SCS[3:2], CS[2:0], CS[3]/BootCS, ISD memory, ISD I/O (datasheet 17.16).
    BARS = (0x00000008, 0x01000008, 0x1C000000, 0x1F000000, 0x14000000, 0x14000001)

    def __init__(self) -> None:
        super().__init__(
            vendor_id=self.VENDOR_ID,
            device_id=self.DEVICE_ID,
            class_code=self.CLASS_HOST_BRIDGE,
            revision=self.REVISION,
            subsystem_vendor_id=0x1AF4,
            subsystem_id=0x1100,
            interrupt_pin=InterruptPin.INTA,
            status=Status.FAST_BACK | Status.DEVSEL_MEDIUM,
            name="gt64120-pci",
        )
        for i, value in enumerate(self.BARS):
            self.set_long(0x10 + 4 * i, value)


class Gt64120:
    """The GT-64120 register window (a `BusDevice` of `GT64120_REGS_BYTES` at `windows.registers`).

    It attaches its own PCI function at devfn 0 of `pci_bus` and forwards
    GT_PCI0_CFGADDR/CFGDATA cycles to `pci_bus`. `iack()` is the interrupt
    acknowledge cycle (the 8259 pair's INTA, returning the vector); without
    it GT_PCI0_IACK reads 0. `on_window_change(windows)` is called when the
    guest reprograms the register or PCI_0 window decode (the model keeps
    the new values; the board decides what to remap). With
    `yamon_setup=False` the GT starts in its power-on state (registers at
    0x14000000, QEMU's reset windows) instead of the bootloader's.
    """

    def __init__(
        self,
        pci_bus: PciBus,
        *,
        iack: Callable[[], int] | None = None,
        on_window_change: Callable[[GtWindows], None] | None = None,
        yamon_setup: bool = True,
    ) -> None:
        self.pci_bus = pci_bus
        self.iack = iack
        self.on_window_change = on_window_change
        self.pci_function = Gt64120PciFunction()
        pci_bus.attach(0, self.pci_function)
        self._regs = [0] * (GT64120_REGS_BYTES // 4)
        self._cfgaddr = 0
        self.reset(yamon_setup=yamon_setup)

    def reset(self, *, yamon_setup: bool = True) -> None:
        """QEMU's reset values, then (by default) the bootloader's window setup. Does not notify."""
        self._regs = [0] * (GT64120_REGS_BYTES // 4)
        for reg, value in RESET_VALUES.items():
            self._regs[reg >> 2] = value
        self._cfgaddr = 0
        if yamon_setup:
            for reg, value in YAMON_SETUP:
                self._store(reg, value)
        self._windows = self._compute_windows()

    # ------------------------------------------------------------------ state for the board
    @property
    def windows(self) -> GtWindows:
        return self._windows

    def register(self, reg: int) -> int:
        """The stored value of the register at `reg`, without side effects (tests, debugging)."""
        if reg == GtReg.PCI0_CFGADDR:
            return self._cfgaddr
        return self._regs[reg >> 2]

    @property
    def intr_cause(self) -> int:
        return self._regs[GtReg.INTRCAUSE >> 2]

    def _compute_windows(self) -> GtWindows:
        r = self._regs
        isd = (r[GtReg.ISD >> 2] << GT_DECODE_SHIFT) & 0xFFFE00000
        return GtWindows(
            registers=GtWindow(isd, GT64120_REGS_BYTES),
            pci_io=_window(r[GtReg.PCI0IOLD >> 2], r[GtReg.PCI0IOHD >> 2]),
            pci_mem0=_window(r[GtReg.PCI0M0LD >> 2], r[GtReg.PCI0M0HD >> 2]),
            pci_mem1=_window(r[GtReg.PCI0M1LD >> 2], r[GtReg.PCI0M1HD >> 2]),
        )

    # ------------------------------------------------------------------ bus
    def _cpu_swaps(self) -> bool:
        return not self._regs[GtReg.CPU >> 2] & CPU_ENDIANNESS_LITTLE

    def read(self, offset: int, size: int) -> int:
        reg = offset & ~3 & (GT64120_REGS_BYTES - 1)
        if reg == GtReg.PCI0_CFGDATA:
            return self._read_cfgdata(offset, size)
        value = self._read_reg(reg)
        if self._cpu_swaps():
            value = _bswap32(value)
        return word_lane(value, offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        reg = offset & ~3 & (GT64120_REGS_BYTES - 1)
        if reg == GtReg.PCI0_CFGDATA:
            self._write_cfgdata(offset, size, value)
            return
        swap = self._cpu_swaps()
        if size < 4:
            current = self.register(reg)
            value = merge_lane(_bswap32(current) if swap else current, offset, size, value)
        self._write_reg(reg, _bswap32(value) if swap else value)

    # ------------------------------------------------------------------ registers
    def _read_reg(self, reg: int) -> int:
        if reg == GtReg.PCI0_IACK:
            return (self.iack() & 0xFF) if self.iack is not None else 0
        if reg in (GtReg.PCI0SYNC, GtReg.PCI1SYNC):
            return SYNC_READ_VALUE
        if reg == GtReg.PCI0_CFGADDR:
            return self._cfgaddr
        return self._regs[reg >> 2]

    def _store(self, reg: int, value: int) -> None:
        self._regs[reg >> 2] = value & _WRITE_MASKS.get(reg, 0xFFFFFFFF)
        remap = _LD_REMAP.get(reg)
        if remap is not None:
            self._regs[remap >> 2] = value & _REMAP_MASK

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == GtReg.PCI0_CFGADDR:
            self._cfgaddr = value & CFGADDR_MASK
        elif reg == GtReg.INTRCAUSE:
            # Cause bits are cleared by writing 0 and cannot be set; bit 0 summarises the others.
            self._set_intr_cause(self._regs[reg >> 2] & value & ~INTRCAUSE_SUMMARY)
        elif reg in _READ_ONLY:
            log.debug("gt64120: write of %#x to read-only register %#05x ignored", value, reg)
        else:
            self._store(reg, value)
            if reg in _DECODE_REGS:
                self._decode_changed(reg)

    def _set_intr_cause(self, cause: int) -> None:
        cause &= ~INTRCAUSE_SUMMARY
        self._regs[GtReg.INTRCAUSE >> 2] = cause | (INTRCAUSE_SUMMARY if cause else 0)

    def _decode_changed(self, reg: int) -> None:
        windows = self._compute_windows()
        if windows == self._windows:
            return
        log.info("gt64120: guest reprogrammed %s: %s", GtReg(reg).name, windows)
        self._windows = windows
        if self.on_window_change is not None:
            self.on_window_change(windows)

    # ------------------------------------------------------------------ PCI configuration cycles
    def _cfg_target(self) -> tuple[int, int, int] | None:
        """(bus, devfn, register) of CFGADDR, or None while ConfigEn is clear."""
        addr = self._cfgaddr
        if not addr & CFGADDR_CONFIG_EN:
            return None
        return (addr >> 16) & 0xFF, (addr >> 8) & 0xFF, addr & 0xFC

    def _cfg_swaps(self) -> bool:
        """Whether CFGDATA appears byte-swapped to the CPU (GT_CPU endianness XOR MBYTESWAP rule)."""
        mbyteswap = (
            not self._regs[GtReg.PCI0_CMD >> 2] & PCI0_CMD_MBYTESWAP
            and self._cfgaddr & CFGADDR_BUS_DEV_MASK != 0
        )
        return mbyteswap != self._cpu_swaps()

    def _master_abort(self, target: tuple[int, int, int]) -> bool:
        bus, dev_fn, _ = target
        if self.pci_bus.present(bus, dev_fn):
            return False
        self._set_intr_cause(self.intr_cause | INTRCAUSE_MASABORT0)
        return True

    def _read_cfgdata(self, offset: int, size: int) -> int:
        target = self._cfg_target()
        if target is None or self._master_abort(target):
            return (1 << (8 * size)) - 1
        bus, dev_fn, reg = target
        if self._cfg_swaps():
            dword = _bswap32(self.pci_bus.config_read(bus, dev_fn, reg, 4))
            return word_lane(dword, offset, size)
        return self.pci_bus.config_read(bus, dev_fn, reg + (offset & 3), size)

    def _write_cfgdata(self, offset: int, size: int, value: int) -> None:
        target = self._cfg_target()
        if target is None or self._master_abort(target):
            return
        bus, dev_fn, reg = target
        if self._cfg_swaps():
            if size < 4:
                current = _bswap32(self.pci_bus.config_read(bus, dev_fn, reg, 4))
                value = merge_lane(current, offset, size, value)
            self.pci_bus.config_write(bus, dev_fn, reg, 4, _bswap32(value))
            return
        self.pci_bus.config_write(bus, dev_fn, reg + (offset & 3), size, value)
