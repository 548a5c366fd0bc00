"""The Malta FPGA registers and the board revision word, alone and on the bus."""

from __future__ import annotations

import logging

import pytest

from kvmpy.vmm.bus import Bus
from kvmpy.vmm.devices.uart16550 import Uart16550
from kvmpy.vmm.machines.malta.board import map_fpga
from kvmpy.vmm.machines.malta.malta_fpga import (
    CBUS_UART_OFFSET,
    CBUS_UART_REG_SHIFT,
    FPGA_GPA,
    FPGA_SIZE_BYTES,
    MALTA_REVISION_GPA,
    FpgaReg,
    MaltaFpga,
    MaltaRevision,
)
from kvmpy.vmm.serial import BufferSerial

ASCII_DISPLAY_POS_BASE = 0x418  # Linux's generic.h, relative to the FPGA base


@pytest.fixture
def fpga() -> MaltaFpga:
    return MaltaFpga()


def test_reset_values_match_qemu(fpga: MaltaFpga) -> None:
    expected = {
        FpgaReg.SWITCH: 0,
        FpgaReg.STATUS: 0x10,
        FpgaReg.JMPRS: 0,
        FpgaReg.LEDBAR: 0,
        FpgaReg.BRKRES: 0x0A,
        FpgaReg.GPOUT: 0,
        FpgaReg.GPINP: 0x3,  # QEMU: I2COUT while I2CSEL=1
        FpgaReg.I2CINP: 0x3,  # idle bus: SCL and SDA high
        FpgaReg.I2COE: 0,
        FpgaReg.I2COUT: 0x3,
        FpgaReg.I2CSEL: 1,
    }
    assert {reg: fpga.read(reg, 4) for reg in expected} == expected
    assert fpga.display_text == " " * 8


def test_ledbar_keeps_eight_bits(fpga: MaltaFpga) -> None:
    fpga.write(FpgaReg.LEDBAR, 4, 0x1A5)
    assert fpga.read(FpgaReg.LEDBAR, 4) == 0xA5
    assert fpga.leds == 0xA5
    assert fpga.led_text() == "# #  # #"


def test_asciiword_shows_hex(fpga: MaltaFpga) -> None:
    fpga.write(FpgaReg.ASCIIWORD, 4, 0xDEADBEEF)
    assert fpga.display_text == "DEADBEEF"
    fpga.write(FpgaReg.ASCIIWORD, 4, 0x2A)
    assert fpga.display_text == "0000002A"


def test_asciipos_as_linux_mips_display_message_writes_it(fpga: MaltaFpga) -> None:
    message = "LINUX ON"
    for i, ch in enumerate(message):
        fpga.write(ASCII_DISPLAY_POS_BASE + 8 * i, 4, ord(ch))
    assert fpga.display_text == message
    fpga.write(ASCII_DISPLAY_POS_BASE + 8 * 7, 4, ord("!"))
    assert fpga.display_text == "LINUX O!"
    assert fpga.read(ASCII_DISPLAY_POS_BASE, 4) == 0  # write-only


def test_softres_0x42_requests_reset_other_values_do_not() -> None:
    calls: list[int] = []
    fpga = MaltaFpga(on_reset=lambda: calls.append(1))
    fpga.write(FpgaReg.SOFTRES, 4, 0x41)
    fpga.write(FpgaReg.SOFTRES, 4, 0x142)
    assert calls == []
    fpga.write(FpgaReg.SOFTRES, 4, 0x42)
    assert calls == [1]


def test_softres_without_callback_leaves_the_fpga_as_it_was(fpga: MaltaFpga) -> None:
    fpga.write(FpgaReg.LEDBAR, 4, 0x5)
    fpga.write(FpgaReg.SOFTRES, 4, 0x42)  # the board resets, not the FPGA by itself
    assert fpga.leds == 0x5
    assert fpga.read(FpgaReg.SOFTRES, 4) == 0  # write-only


def test_read_only_registers_ignore_writes() -> None:
    fpga = MaltaFpga(switches=0x5)
    for reg in (FpgaReg.SWITCH, FpgaReg.STATUS, FpgaReg.JMPRS):
        before = fpga.read(reg, 4)
        fpga.write(reg, 4, 0xFFFFFFFF)
        assert fpga.read(reg, 4) == before
    assert fpga.read(FpgaReg.SWITCH, 4) == 0x5


def test_gpout_brkres_and_i2c_registers_hold_their_bits(fpga: MaltaFpga) -> None:
    fpga.write(FpgaReg.GPOUT, 4, 0x1FF)
    fpga.write(FpgaReg.BRKRES, 4, 0x133)
    fpga.write(FpgaReg.I2COE, 4, 0xFF)
    fpga.write(FpgaReg.I2CSEL, 4, 0xFE)
    assert fpga.read(FpgaReg.GPOUT, 4) == 0xFF
    assert fpga.read(FpgaReg.BRKRES, 4) == 0x33
    assert fpga.read(FpgaReg.I2COE, 4) == 0x3
    assert fpga.read(FpgaReg.I2CSEL, 4) == 0
    assert fpga.read(FpgaReg.GPINP, 4) == 0  # I2CSEL=0 disconnects the inputs


def test_i2c_is_an_open_drain_bus_with_nothing_on_it(fpga: MaltaFpga) -> None:
    fpga.write(FpgaReg.I2COUT, 4, 0x0)  # drive both low...
    assert fpga.read(FpgaReg.I2CINP, 4) == 0x3  # ...but outputs are not enabled
    fpga.write(FpgaReg.I2COE, 4, 0x1)  # enable SDA
    assert fpga.read(FpgaReg.I2CINP, 4) == 0x2
    fpga.write(FpgaReg.I2COE, 4, 0x3)
    assert fpga.read(FpgaReg.I2CINP, 4) == 0x0
    fpga.write(FpgaReg.I2COUT, 4, 0x3)  # release: pulled up, no device acknowledges
    assert fpga.read(FpgaReg.I2CINP, 4) == 0x3


@pytest.mark.parametrize("offset", [0x0, 0x100, 0x204, 0x409, 0x41C, 0x458, 0x600, 0xC00, 0xFFFFC])
def test_unknown_and_misaligned_offsets_read_zero_and_ignore_writes(fpga: MaltaFpga, offset: int) -> None:
    fpga.write(offset, 4, 0xFFFFFFFF)
    assert fpga.read(offset, 4) == 0
    assert fpga.leds == 0 and fpga.display_text == " " * 8


def test_reset_restores_state() -> None:
    fpga = MaltaFpga()
    fpga.write(FpgaReg.LEDBAR, 4, 0xFF)
    fpga.write(FpgaReg.ASCIIWORD, 4, 0x12345678)
    fpga.write(FpgaReg.I2CSEL, 4, 0)
    fpga.reset()
    assert fpga.leds == 0 and fpga.display_text == " " * 8 and fpga.read(FpgaReg.I2CSEL, 4) == 1


def test_changes_are_logged_at_debug(fpga: MaltaFpga, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="kvmpy.vmm.machines.malta.malta_fpga"):
        fpga.write(FpgaReg.LEDBAR, 4, 0x01)
        fpga.write(FpgaReg.LEDBAR, 4, 0x01)  # unchanged: not logged again
        fpga.write(FpgaReg.ASCIIWORD, 4, 0xCAFE)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["fpga: LEDBAR |#       |", "fpga: display |0000CAFE|"]


def test_board_maps_the_fpga_around_the_cbus_uart_hole() -> None:
    fpga = MaltaFpga()
    bus = Bus()
    serial = BufferSerial()
    uart = Uart16550(serial, reg_shift=CBUS_UART_REG_SHIFT)
    map_fpga(bus, fpga, uart)
    fpga_bytes = sum(m.size for m in bus.mappings if m.device is fpga)
    assert fpga_bytes == FPGA_SIZE_BYTES - 0x100
    bus.write(FPGA_GPA + FpgaReg.LEDBAR, 4, 0x81)
    assert fpga.leds == 0x81
    bus.write(FPGA_GPA + FpgaReg.GPOUT, 4, 0x5A)  # through the high window, which adds its offset back
    assert fpga.gpout == 0x5A and bus.read(FPGA_GPA + FpgaReg.GPOUT, 4) == 0x5A
    assert bus.read(FPGA_GPA + FpgaReg.I2CSEL, 4) == 1
    assert bus.read(FPGA_GPA + FPGA_SIZE_BYTES, 4) == 0xFFFFFFFF  # the FPGA decodes 1 MiB
    assert bus.read(FPGA_GPA + FPGA_SIZE_BYTES - 4, 4) == 0
    assert bus.read(FPGA_GPA + CBUS_UART_OFFSET + (5 << 3), 4) == 0x60  # LSR, in the hole
    bus.write(FPGA_GPA + CBUS_UART_OFFSET, 4, ord("C"))
    assert serial.output == b"C"
    assert bus.fault is None


def test_revision_word_is_malta_with_corelv() -> None:
    rev = MaltaRevision()
    value = rev.read(0, 4)
    assert value == 0x00000420
    assert (value >> 10) & 0x3F == 1  # MIPS_REVISION_CORID_CORE_LV
    assert (value >> 24) & 0xFF == 0  # MIPS_REVISION_SCONID: "other" (GT-64120 for CoreLV)
    assert (value >> 4) & 0xF == 2  # product: Malta
    assert [rev.read(i, 1) for i in range(4)] == [0x20, 0x04, 0, 0]
    assert rev.read(0, 2) == 0x0420
    rev.write(0, 4, 0)
    assert rev.read(0, 4) == 0x420
    bus = Bus()
    bus.add(MALTA_REVISION_GPA, MaltaRevision.SIZE_BYTES, rev, "revision")
    assert bus.read(MALTA_REVISION_GPA, 4) == 0x420
