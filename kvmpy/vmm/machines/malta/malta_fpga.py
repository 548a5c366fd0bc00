"""The Malta board's FPGA register block (GPA 0x1f000000) and the board revision word.

Register offsets, reset values and behaviour follow QEMU 7.2's hw/mips/malta.c
(malta_fpga_read/write/reset) and what Linux's arch/mips/mti-malta uses
(ASCII display at 0x418 + 8*i, SOFTRES at 0x500 with GORESET 0x42).

The FPGA decodes 1 MiB (QEMU: `addr & 0xfffff`), with the CBUS UART (a
16550, registers 8 bytes apart) at offset 0x900. QEMU maps the FPGA as two
windows around a 0x100-byte hole for the UART; the board maps the same
split (the upper part with the bus's window offset) and the UART in the hole:

    [0x00000, 0x00900)  registers below the UART
    [0x00900, 0x00a00)  CBUS UART hole (Uart16550 with reg_shift=3 at 0x900)
    [0x00a00, 0x100000) GPOUT, GPINP and the I2C pins, then zeros

Every register is a 32-bit word; an access that does not start at a
register's offset reads 0 and is ignored on write, as in QEMU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum

from kvmpy.vmm.bus import word_lane

log = logging.getLogger(__name__)

FPGA_GPA = 0x1F000000
FPGA_SIZE_BYTES = 0x100000
CBUS_UART_OFFSET = 0x900
CBUS_UART_HOLE_BYTES = 0x100
CBUS_UART_REG_SHIFT = 3

MALTA_REVISION_GPA = 0x1FC00010
# Product 2 (Malta) in bits 7:4, core card 1 (CoreLV, GT-64120 system controller) in bits 15:10.
MALTA_REVISION_VALUE = 0x00000420

SOFTRES_GORESET = 0x42
DISPLAY_CHARS = 8


class FpgaReg(IntEnum):
    """Register offsets inside the FPGA block."""

    SWITCH = 0x200
    STATUS = 0x208
    JMPRS = 0x210
    LEDBAR = 0x408
    ASCIIWORD = 0x410
    ASCIIPOS0 = 0x418  # ASCIIPOS1..7 follow every 8 bytes, up to 0x450
    SOFTRES = 0x500
    BRKRES = 0x508
    GPOUT = 0xA00
    GPINP = 0xA08
    I2CINP = 0xB00
    I2COE = 0xB08
    I2COUT = 0xB10
    I2CSEL = 0xB18


ASCIIPOS_LAST = FpgaReg.ASCIIPOS0 + 8 * (DISPLAY_CHARS - 1)
# STATUS on a little-endian board (QEMU returns 0x12 when big-endian).
STATUS_LITTLE_ENDIAN = 0x10
I2C_SDA = 0x1
I2C_SCL = 0x2


class MaltaFpga:
    """The Malta FPGA registers, as a `BusDevice` taking offsets from FPGA_GPA.

    State a user may want to look at: `leds` (LEDBAR, 8 bits), `display_text`
    (the 8-character ASCII display), `gpout`. A write of 0x42 to SOFTRES
    calls `on_reset()`. The I2C pins model an idle open-drain bus with no
    device on it: a line reads 0 only while the FPGA drives it low
    (I2COE bit set and I2COUT bit clear). QEMU hangs its SPD EEPROM model
    here; Linux never uses this bus (it reads the SPD through the PIIX4
    SMBus), so none is modelled.
    """

    def __init__(self, on_reset: Callable[[], None] | None = None, switches: int = 0) -> None:
        self.on_reset = on_reset
        self.switches = switches & 0xFF
        self.reset()

    def reset(self) -> None:
        """Board reset values (QEMU's malta_fpga_reset)."""
        self.leds = 0
        self.brkres = 0x0A
        self.gpout = 0
        self.i2coe = 0
        self.i2cout = 0x3
        self.i2csel = 0x1
        self._display = [" "] * DISPLAY_CHARS

    @property
    def display_text(self) -> str:
        return "".join(self._display)

    def led_text(self) -> str:
        """The LED bar as 8 characters, '#' for a lit LED, bit 0 leftmost (QEMU's rendering)."""
        return "".join("#" if self.leds & (1 << i) else " " for i in range(8))

    # ------------------------------------------------------------------ bus
    def read(self, offset: int, size: int) -> int:
        match offset:
            case FpgaReg.SWITCH:
                return self.switches
            case FpgaReg.STATUS:
                return STATUS_LITTLE_ENDIAN
            case FpgaReg.JMPRS:
                return 0
            case FpgaReg.LEDBAR:
                return self.leds
            case FpgaReg.BRKRES:
                return self.brkres
            case FpgaReg.GPOUT:
                return self.gpout
            case FpgaReg.GPINP:
                # QEMU wires the inputs to I2COUT while I2CSEL selects the FPGA I2C.
                return self.i2cout if self.i2csel else 0
            case FpgaReg.I2CINP:
                return self._i2c_lines()
            case FpgaReg.I2COE:
                return self.i2coe
            case FpgaReg.I2COUT:
                return self.i2cout
            case FpgaReg.I2CSEL:
                return self.i2csel
            case _:
                return 0  # ASCII display and SOFTRES are write-only; unknown offsets read 0

    def write(self, offset: int, size: int, value: int) -> None:
        match offset:
            case FpgaReg.LEDBAR:
                self._set_leds(value & 0xFF)
            case FpgaReg.ASCIIWORD:
                self._set_display(list(f"{value & 0xFFFFFFFF:08X}"))
            case _ if FpgaReg.ASCIIPOS0 <= offset <= ASCIIPOS_LAST and offset % 8 == 0:
                chars = list(self._display)
                chars[(offset - FpgaReg.ASCIIPOS0) // 8] = chr(value & 0xFF)
                self._set_display(chars)
            case FpgaReg.SOFTRES:
                if value == SOFTRES_GORESET:
                    log.debug("fpga: SOFTRES: board reset requested")
                    if self.on_reset is not None:
                        self.on_reset()
            case FpgaReg.BRKRES:
                self.brkres = value & 0xFF
            case FpgaReg.GPOUT:
                self.gpout = value & 0xFF
            case FpgaReg.I2COE:
                self.i2coe = value & 0x3
            case FpgaReg.I2COUT:
                self.i2cout = value & 0x3
            case FpgaReg.I2CSEL:
                self.i2csel = value & 0x1
            case _:
                pass  # SWITCH, STATUS, JMPRS are read-only; unknown offsets ignore writes

    # ------------------------------------------------------------------ helpers
    def _set_leds(self, leds: int) -> None:
        if leds != self.leds:
            self.leds = leds
            log.debug("fpga: LEDBAR |%s|", self.led_text())

    def _set_display(self, chars: list[str]) -> None:
        if chars != self._display:
            self._display = chars
            log.debug("fpga: display |%s|", self.display_text)

    def _i2c_lines(self) -> int:
        driven_low = self.i2coe & ~self.i2cout & (I2C_SCL | I2C_SDA)
        return (I2C_SCL | I2C_SDA) & ~driven_low


class MaltaRevision:
    """The board revision word at GPA 0x1fc00010 (in the boot flash window), read-only.

    QEMU patches 0x00000420 into its boot ROM copy there ("Malta Board with
    CoreLV"); Linux reads it as MIPS_REVISION_CORID (bits 15:10 = 1,
    CoreLV, which means a GT-64120 system controller) and
    MIPS_REVISION_SCONID (bits 31:24 = 0). Map it over 4 bytes.
    """

    SIZE_BYTES = 4

    def read(self, offset: int, size: int) -> int:
        if offset < 0 or offset >= self.SIZE_BYTES:
            return 0
        return word_lane(MALTA_REVISION_VALUE, offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        pass  # flash: writes need the CFI command sequence, which this word does not model
