"""The Intel PIIX4 (82371AB) south bridge's own ISA-side parts: power management, DMA, small ports.

The Malta board (`board.add_isa_devices`) maps these with the generic chips
of `kvmpy.vmm.devices` on its port-I/O bus, by port number:

    0x00-0x1f   8237 DMA controller 1 (registers 0x00-0x0f, aliased at 0x10-0x1f)
    0x20-0x21   8259A master            0xa0-0xa1  8259A slave
    0x40-0x43   8254 PIT
    0x60, 0x64  8042 keyboard controller (i8042.py)
    0x61        NMI status and control ("port B": PIT gate 2, speaker, refresh toggle, OUT2)
    0x70-0x77   MC146818 RTC and CMOS RAM (0x74-0x77 alias 0x70-0x73)
    0x80-0x8f   DMA page registers (0x80 is the POST code port)
    0x92        port 92 (fast A20 / fast init)
    0xc0-0xdf   8237 DMA controller 2 (word-spaced registers)
    0x4d0-0x4d1 ELCR (edge/level control of the 8259s)
    0xcf9       reset control register (RC)

and creates the function-3 power-management I/O block (`Piix4Pm`, 64 bytes),
which is a PCI resource: the PCI model maps it where the guest's PMBA points
(`board.IsaDevices.map_pm`), see `PIIX4_PM_CONFIG`.

How Linux 6.1 (Debian 4kc-malta) stops the board:

- Power-off: drivers/power/reset/piix4-poweroff.c (CONFIG_POWER_RESET_PIIX4_POWEROFF=y)
  binds to PCI 8086:7113 and takes the "PIIX4 ACPI" I/O region that the
  PCI quirk (quirk_piix4_acpi) claims from PMBA; arch/mips/pci/fixup-malta.c
  (DECLARE_PCI_FIXUP_EARLY) first writes PMBA = 0x1000 and PMREGMISC = 0x01.
  pm_power_off() then: reads PMSTS (inw base+0) and writes it back until
  PWRBTN_STS (bit 8) is clear; writes PMCNTRL (outw base+4) = 0x2000
  (SUS_EN, SUS_TYP = 0 soft-off); mdelay(10); generates a PCI special cycle
  with data 0x00120002 (config write to bus 0, device 0x1f, function 7,
  register 0); mdelay(1000); "Unable to poweroff system". Like QEMU we power
  off at the PMCNTRL write with SUS_EN and SUS_TYP = 0.
- Reboot: the built-in device tree has a "syscon-reboot" node on the FPGA
  syscon (offset 0x500, mask 0x42, no value): regmap_update_bits() reads
  SOFTRES at 0x1f000500 and writes 0x42 (GORESET); mdelay(1000); "Unable to
  restart system". The PIIX4 reset control register 0xcf9 is not used by
  Linux on Malta; it is modelled (0x06/0x0e reset) for other guests.
- Halt: machine_halt() has no platform hook on Malta: interrupts off, "wait" forever.

Timers: the PIT and RTC are woken by `kvmpy.vmm.devices.timer.DeadlineTimer`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kvmpy.vmm.bus import read_lanes, write_lanes
from kvmpy.vmm.devices.i8254 import I8254

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000

# ISA IRQ assignments on the Malta.
IRQ_PIT = 0
IRQ_KEYBOARD = 1
IRQ_COM2 = 3
IRQ_COM1 = 4
IRQ_RTC = 8
IRQ_SCI = 9  # PIIX4 power management SCI (QEMU wires it to IRQ9)
IRQ_MOUSE = 12

PORT_B = 0x61
DMA1_PORT = 0x00
DMA2_PORT = 0xC0
DMA_WINDOW_BYTES = 0x20
DMA_PAGE_PORT = 0x80
DMA_PAGE_WINDOW_BYTES = 0x10
POST_PORT = 0x80
PORT_92 = 0x92
RESET_CONTROL_PORT = 0xCF9


# ====================================================================== power management (function 3)
@dataclass(frozen=True)
class Piix4PmConfig:
    """PCI configuration facts of PIIX4 function 3 (power management) for the PCI model.

    PMBA (dword at 0x40): bits 15:6 the I/O base of the 64-byte PM block,
    bit 0 hardwired 1 (I/O space). PMREGMISC (byte at 0x80) bit 0 (PMIOSE)
    enables decoding of that block. SMBBA (0x90): bits 15:4 the SMBus I/O
    base, bit 0 hardwired 1; SMBHSTCFG (0xd2) bit 0 enables it. The PM block
    is decoded only while PMIOSE is set; map it with `board.IsaDevices.map_pm`.
    Defaults are QEMU 7.2's (SMBus at 0x1100, enabled), so Linux's quirk
    prints the same "claimed by PIIX4 ACPI/SMB" lines; Linux itself sets
    PMBA = 0x1000 and PMIOSE = 1 (arch/mips/pci/fixup-malta.c).
    """

    vendor_id: int = 0x8086
    device_id: int = 0x7113
    revision: int = 0x03
    class_code: int = 0x068000  # bridge, other
    header_type: int = 0x00
    pmba_offset: int = 0x40
    pmba_default: int = 0x00000001
    pmba_write_mask: int = 0x0000FFC0
    pm_io_size_bytes: int = 64
    pmregmisc_offset: int = 0x80
    pmregmisc_default: int = 0x00
    pmregmisc_write_mask: int = 0x01
    pmregmisc_pmiose: int = 0x01
    smbba_offset: int = 0x90
    smbba_default: int = 0x00001101
    smbba_write_mask: int = 0x0000FFF0
    smbhstcfg_offset: int = 0xD2
    smbhstcfg_default: int = 0x09  # SMBus host enabled, interrupt to IRQ9 (QEMU's)

    def pm_io_port(self, pmba: int, pmregmisc: int) -> int | None:
        """The ISA port the PM block decodes at, or None while PMIOSE is clear."""
        if not pmregmisc & self.pmregmisc_pmiose:
            return None
        return pmba & self.pmba_write_mask


PIIX4_PM_CONFIG = Piix4PmConfig()


class PmReg:
    """Offsets in the PM I/O block (PIIX4 datasheet, function 3 I/O space)."""

    PMSTS = 0x00  # 16-bit, write 1 to clear
    PMEN = 0x02
    PMCNTRL = 0x04
    PMTMR = 0x08  # 32-bit read-only, 24-bit ACPI timer
    GPSTS = 0x0C  # 16-bit, write 1 to clear
    GPEN = 0x0E
    PCNTRL = 0x10
    PLVL2 = 0x14  # reads enter C2 on real hardware
    PLVL3 = 0x15
    GLBSTS = 0x18  # 16-bit, write 1 to clear
    DEVSTS = 0x1C  # 32-bit, write 1 to clear
    GLBEN = 0x20
    GLBCTL = 0x28
    DEVCTL = 0x2C
    GPIREG = 0x30  # inputs, read-only
    GPOREG = 0x34


PMSTS_PWRBTN_STS = 0x0100
PMCNTRL_SCI_EN = 0x0001
PMCNTRL_GBL_RLS = 0x0004  # write-only
PMCNTRL_SUS_TYP_SHIFT = 10
PMCNTRL_SUS_TYP_MASK = 0x1C00
PMCNTRL_SUS_EN = 0x2000  # write-only
SUS_TYP_SOFF = 0
PM_TIMER_HZ = 3_579_545
PM_IO_SIZE_BYTES = 64


def _byte_kinds() -> tuple[bytes, bytes]:
    """Per byte of the block: which bits a write stores (RW) and which it clears (W1C)."""
    rw = bytearray(PM_IO_SIZE_BYTES)
    w1c = bytearray(PM_IO_SIZE_BYTES)
    for reg, size in ((PmReg.PMSTS, 2), (PmReg.GPSTS, 2), (PmReg.GLBSTS, 2), (PmReg.DEVSTS, 4)):
        w1c[reg : reg + size] = b"\xff" * size
    for reg, size in (
        (PmReg.PMEN, 2),
        (PmReg.GPEN, 2),
        (PmReg.PCNTRL, 4),
        (PmReg.GLBEN, 2),
        (PmReg.GLBCTL, 4),
        (PmReg.DEVCTL, 4),
        (PmReg.GPOREG, 4),
    ):
        rw[reg : reg + size] = b"\xff" * size
    # PMCNTRL: SCI_EN, BM_RLD and SUS_TYP are stored; GBL_RLS and SUS_EN are write-only.
    rw[PmReg.PMCNTRL] = 0x03
    rw[PmReg.PMCNTRL + 1] = PMCNTRL_SUS_TYP_MASK >> 8
    return bytes(rw), bytes(w1c)


_PM_RW_MASK, _PM_W1C_MASK = _byte_kinds()


class Piix4Pm:
    """The PIIX4 power-management I/O block (a 64-byte `BusDevice`) and the reset control register.

    `on_poweroff` runs when the guest enters soft-off (PMCNTRL SUS_EN with
    SUS_TYP 0); `on_reset` when it writes RST_CPU to the RC register
    (`reset_control`, ISA port 0xcf9). The ACPI PM timer (PMTMR) counts at
    3.579545 MHz from the host clock; its overflow status and the SCI are
    not generated (Linux on Malta has no ACPI). Other registers are plain
    storage with the datasheet's write-1-to-clear and read-only bits.
    """

    def __init__(
        self,
        on_poweroff: Callable[[], None],
        on_reset: Callable[[], None] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.on_poweroff = on_poweroff
        self.on_reset = on_reset
        self.clock_ns = clock_ns
        self._lock = threading.Lock()
        self._regs = bytearray(PM_IO_SIZE_BYTES)
        self._timer_origin_ns = clock_ns()
        self.reset_control = ResetControl(self._request_reset)
        self.powered_off = False

    def reset(self) -> None:
        with self._lock:
            self._regs = bytearray(PM_IO_SIZE_BYTES)
            self.powered_off = False

    def press_power_button(self) -> None:
        """Set PWRBTN_STS (the guest sees it in PMSTS; no SCI is raised)."""
        with self._lock:
            self._regs[PmReg.PMSTS + 1] |= PMSTS_PWRBTN_STS >> 8

    def _pm_timer(self) -> int:
        return (self.clock_ns() - self._timer_origin_ns) * PM_TIMER_HZ // NS_PER_S & 0xFFFFFF

    def read(self, offset: int, size: int) -> int:
        with self._lock:
            timer = self._pm_timer() if offset < PmReg.PMTMR + 4 and offset + size > PmReg.PMTMR else 0
            return read_lanes(lambda port: self._read_byte(port, timer), offset, size, PM_IO_SIZE_BYTES)

    def _read_byte(self, port: int, timer: int) -> int:
        if PmReg.PMTMR <= port < PmReg.PMTMR + 4:
            return timer >> (8 * (port - PmReg.PMTMR))
        return self._regs[port]

    def write(self, offset: int, size: int, value: int) -> None:
        suspend = []
        with self._lock:
            write_lanes(lambda port, byte: suspend.append(self._write_byte(port, byte)), offset, size, value,
                        PM_IO_SIZE_BYTES)
            sus_typ = (self._regs[PmReg.PMCNTRL + 1] << 8 & PMCNTRL_SUS_TYP_MASK) >> PMCNTRL_SUS_TYP_SHIFT
        if any(suspend):
            self._enter_suspend(sus_typ)

    def _write_byte(self, port: int, byte: int) -> bool:
        """Store one byte through the RW and W1C masks; True if it sets SUS_EN."""
        regs = self._regs
        rw, w1c = _PM_RW_MASK[port], _PM_W1C_MASK[port]
        regs[port] = (regs[port] & ~rw & ~(byte & w1c)) | (byte & rw)
        return port == PmReg.PMCNTRL + 1 and bool(byte & (PMCNTRL_SUS_EN >> 8))

    def _enter_suspend(self, sus_typ: int) -> None:
        if sus_typ == SUS_TYP_SOFF:
            log.info("piix4: guest entered soft-off")
            self.powered_off = True
            self.on_poweroff()
        else:
            log.warning("piix4: suspend type %d requested; suspend is not supported, ignored", sus_typ)

    def _request_reset(self) -> None:
        log.info("piix4: guest wrote RST_CPU to the reset control register")
        if self.on_reset is not None:
            self.on_reset()


RC_SYS_RST = 0x02
RC_RST_CPU = 0x04


class ResetControl:
    """The PIIX4 reset control register at port 0xcf9.

    Bit 1 (SYS_RST) selects a hard reset; setting bit 2 (RST_CPU) resets the
    system (0x06 hard, 0x04 soft: both reset the board here). Only SYS_RST
    reads back, as in QEMU.
    """

    def __init__(self, on_reset: Callable[[], None]) -> None:
        self._on_reset = on_reset
        self._value = 0

    def read(self, offset: int, size: int) -> int:
        return read_lanes(lambda _p: self._value, offset, size, 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset != 0:
            return
        byte = value & 0xFF
        if byte & RC_RST_CPU:
            self._value = 0
            self._on_reset()
            return
        self._value = byte & RC_SYS_RST


# ====================================================================== small ISA ports
REFRESH_PERIOD_NS = 15_085  # counter 1 as firmware programs it: mode 2, count 18 (15.085 us)
PORTB_GATE2 = 0x01
PORTB_SPEAKER = 0x02
PORTB_WRITABLE = 0x0F  # gate 2, speaker data, PCI SERR# and IOCHK# NMI enables
PORTB_REFRESH = 0x10
PORTB_OUT2 = 0x20


class PortB:
    """NMI status and control (port 0x61): PIT counter 2 gate and output, speaker, refresh toggle.

    The refresh toggle (bit 4) flips every 15.085 us as if counter 1 were
    programmed for DRAM refresh, which x86-style delay loops poll. No NMI
    sources exist (bits 6, 7 read 0); the speaker has no sound backend.
    """

    def __init__(self, pit: I8254, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.pit = pit
        self.clock_ns = clock_ns
        self._value = 0
        pit.set_gate(2, False)

    def read(self, offset: int, size: int) -> int:
        if offset == 0 and size == 1:
            return self._read_byte()
        return read_lanes(lambda _p: self._read_byte(), offset, size, 1)

    def _read_byte(self) -> int:
        now = self.clock_ns()
        value = self._value
        if (now // REFRESH_PERIOD_NS) & 1:
            value |= PORTB_REFRESH
        if self.pit.output(2, now):
            value |= PORTB_OUT2
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        if offset != 0:
            return
        self._value = value & PORTB_WRITABLE
        self.pit.set_gate(2, bool(value & PORTB_GATE2))


class Port92:
    """Port 92: bit 1 fast A20, bit 0 fast init. Stored and read back only.

    On a PC a 0->1 write of bit 0 pulses INIT to the CPU; the PIIX4's INIT
    and A20M# outputs mean nothing to the Malta's MIPS core, and QEMU's Malta
    does not decode this port at all.
    """

    def __init__(self) -> None:
        self._value = 0

    def read(self, offset: int, size: int) -> int:
        return read_lanes(lambda _p: self._value, offset, size, 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            self._value = value & 0x03


class DmaPageRegisters:
    """Ports 0x80-0x8f: the DMA page registers, all read/write storage.

    Port 0x80 is also where firmware writes POST codes; the last one is kept in `post_code`.
    """

    def __init__(self) -> None:
        self._regs = bytearray(DMA_PAGE_WINDOW_BYTES)

    @property
    def post_code(self) -> int:
        return self._regs[POST_PORT - DMA_PAGE_PORT]

    def read(self, offset: int, size: int) -> int:
        return read_lanes(self._regs.__getitem__, offset, size, DMA_PAGE_WINDOW_BYTES)

    def write(self, offset: int, size: int, value: int) -> None:
        write_lanes(self._regs.__setitem__, offset, size, value, DMA_PAGE_WINDOW_BYTES)
        if offset == 0 and log.isEnabledFor(logging.DEBUG):
            log.debug("POST code %#04x", value & 0xFF)


DMA_STATUS = 0x8
DMA_COMMAND = 0x8
DMA_REQUEST = 0x9
DMA_SINGLE_MASK = 0xA
DMA_MODE = 0xB
DMA_CLEAR_FLIP_FLOP = 0xC
DMA_MASTER_CLEAR = 0xD  # write; read: temporary register
DMA_CLEAR_MASK = 0xE
DMA_ALL_MASK = 0xF


@dataclass
class DmaChannel:
    base_address: int = 0
    base_count: int = 0
    mode: int = 0


class I8237Dma:
    """One 8237 DMA controller's registers; no transfer ever runs (no ISA DMA devices).

    `reg_shift` 0 for controller 1 (0x00-0x0f, aliased up to 0x1f) and 1
    for controller 2 (0xc0-0xdf, one register per word). Address and count
    registers are 16 bits through the byte-pointer flip-flop and read back
    as written (current = base: nothing transfers). Status reads 0; the
    mask register reads back (as on later Intel south bridges); the other
    write-only registers read 0. Linux on Malta touches it once at boot:
    enable_dma(4) (write 0 to port 0xd4) unmasks the cascade channel.
    """

    def __init__(self, reg_shift: int) -> None:
        self.reg_shift = reg_shift
        self.reset()

    def reset(self) -> None:
        self.channels = [DmaChannel() for _ in range(4)]
        self.command = 0
        self.request = 0
        self.mask = 0x0F
        self._flip_flop_high = False

    def _reg(self, offset: int) -> int:
        return (offset >> self.reg_shift) & 0xF

    def read(self, offset: int, size: int) -> int:
        return read_lanes(lambda p: self._read_reg(self._reg(p)), offset, size, DMA_WINDOW_BYTES)

    def write(self, offset: int, size: int, value: int) -> None:
        write_lanes(lambda p, b: self._write_reg(self._reg(p), b), offset, size, value, DMA_WINDOW_BYTES)

    def _read_reg(self, reg: int) -> int:
        if reg < 8:
            ch = self.channels[reg >> 1]
            word = ch.base_count if reg & 1 else ch.base_address
            high = self._flip_flop_high
            self._flip_flop_high = not high
            return word >> 8 if high else word & 0xFF
        if reg == DMA_ALL_MASK:
            return self.mask
        return 0  # status (no TC, no requests), temporary register, write-only registers

    def _write_reg(self, reg: int, byte: int) -> None:
        if reg < 8:
            ch = self.channels[reg >> 1]
            high = self._flip_flop_high
            self._flip_flop_high = not high
            attr = "base_count" if reg & 1 else "base_address"
            word = getattr(ch, attr)
            word = (word & 0x00FF) | byte << 8 if high else (word & 0xFF00) | byte
            setattr(ch, attr, word)
        elif reg == DMA_COMMAND:
            self.command = byte
        elif reg == DMA_REQUEST:
            self.request = (self.request & ~(1 << (byte & 3))) | ((byte >> 2 & 1) << (byte & 3))
        elif reg == DMA_SINGLE_MASK:
            self.mask = (self.mask & ~(1 << (byte & 3))) | ((byte >> 2 & 1) << (byte & 3))
        elif reg == DMA_MODE:
            self.channels[byte & 3].mode = byte & 0xFC
        elif reg == DMA_CLEAR_FLIP_FLOP:
            self._flip_flop_high = False
        elif reg == DMA_MASTER_CLEAR:
            self.command = 0
            self.request = 0
            self.mask = 0x0F
            self._flip_flop_high = False
        elif reg == DMA_CLEAR_MASK:
            self.mask = 0
        else:
            self.mask = byte & 0x0F
