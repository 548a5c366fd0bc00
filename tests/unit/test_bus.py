"""The VMM's buses: bytes in guest memory order, device endianness, windows, faults, byte lanes."""

from __future__ import annotations

import pytest

from kvmpy.vmm.bus import (
    Bus,
    BusError,
    Endian,
    merge_lane,
    read_lanes,
    word_lane,
    write_lanes,
)


class WordRegs:
    """32-bit registers that remember (offset, size, value) of every write."""

    def __init__(self, endian: Endian = Endian.LITTLE) -> None:
        self.endian = endian
        self.regs: dict[int, int] = {}
        self.writes: list[tuple[int, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        return self.regs.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))
        self.regs[offset] = value


class Broken:
    def read(self, offset: int, size: int) -> int:
        raise RuntimeError("model bug")

    def write(self, offset: int, size: int, value: int) -> None:
        raise RuntimeError("model bug")


def load(bus: Bus, addr: int, size: int) -> bytes:
    data = bytearray(size)
    bus.load(addr, data)
    return bytes(data)


def test_little_endian_device_sees_the_bytes_as_a_little_endian_value() -> None:
    bus, dev = Bus(), WordRegs()
    bus.add(0x1000, 0x100, dev, "le")
    bus.store(0x1004, b"\x78\x56\x34\x12")
    assert dev.writes == [(4, 4, 0x12345678)]
    assert load(bus, 0x1004, 4) == b"\x78\x56\x34\x12"
    dev.regs[8] = 0xBEEF
    assert load(bus, 0x1008, 2) == b"\xef\xbe"


def test_device_without_endian_attribute_is_little_endian() -> None:
    class Plain:
        def read(self, offset: int, size: int) -> int:
            return 0x0102

        def write(self, offset: int, size: int, value: int) -> None:
            pass

    bus = Bus()
    bus.add(0, 4, Plain(), "plain")
    assert load(bus, 0, 2) == b"\x02\x01"


def test_big_endian_board_with_big_and_little_endian_devices() -> None:
    """A PowerPC 440-like board: its own registers are big-endian, virtio's little-endian.

    The guest stores 0x12345678 with a plain store to the big-endian device
    (bytes 12 34 56 78) and with a byte-reversed store (what Linux's writel
    does on a big-endian CPU: bytes 78 56 34 12) to the little-endian one:
    both devices see the same value, and neither swaps anything itself.
    """
    bus, be, le = Bus(), WordRegs(Endian.BIG), WordRegs(Endian.LITTLE)
    bus.add(0x2000, 0x100, be, "dcr-like")
    bus.add(0x3000, 0x100, le, "virtio-mmio")
    value = 0x12345678
    bus.store(0x2010, value.to_bytes(4, "big"))
    bus.store(0x3010, value.to_bytes(4, "little"))
    assert be.writes == [(0x10, 4, value)] and le.writes == [(0x10, 4, value)]
    assert load(bus, 0x2010, 4) == b"\x12\x34\x56\x78"
    assert load(bus, 0x3010, 4) == b"\x78\x56\x34\x12"
    be.regs[0x20] = 0xCAFE
    assert load(bus, 0x2020, 2) == b"\xca\xfe"


def test_register_value_path_does_not_convert() -> None:
    bus, be = Bus(), WordRegs(Endian.BIG)
    bus.add(0, 0x10, be, "be")
    bus.write(4, 4, 0x11223344)
    assert be.writes == [(4, 4, 0x11223344)]
    assert bus.read(4, 4) == 0x11223344


def test_unassigned_reads_all_ones_and_writes_vanish() -> None:
    bus = Bus()
    assert load(bus, 0x5000, 4) == b"\xff" * 4
    assert bus.read(0x5000, 2) == 0xFFFF
    bus.store(0x5000, b"\x01")
    assert bus.counts["unassigned"] == 3 and bus.fault is None


def test_overlap_and_empty_range_are_refused() -> None:
    bus = Bus()
    bus.add(0x100, 0x10, WordRegs(), "a")
    with pytest.raises(BusError, match="overlaps a"):
        bus.add(0x108, 0x10, WordRegs(), "b")
    with pytest.raises(BusError, match="empty"):
        bus.add(0x200, 0, WordRegs(), "c")


def test_a_device_mapped_in_pieces_sees_its_own_offsets() -> None:
    bus, dev = Bus(), WordRegs()
    bus.add(0x1000, 0x100, dev, "low")
    bus.add(0x1200, 0x100, dev, "high", offset=0x200)  # a hole at 0x100..0x1ff
    bus.write(0x1204, 4, 7)
    bus.write(0x1004, 4, 9)
    assert dev.writes == [(0x204, 4, 7), (0x4, 4, 9)]
    assert bus.find(0x1100) is None


def test_window_onto_the_port_bus_forwards_bytes_and_faults() -> None:
    mmio, pio = Bus("mmio"), Bus("pio")
    mmio.add(0x18000000, 0x10000, pio, "pci-io")
    uart = WordRegs()
    pio.add(0x3F8, 8, uart, "uart")
    mmio.store(0x180003F9, b"\x41")
    assert uart.writes == [(1, 1, 0x41)]
    uart.regs[5] = 0x60
    assert load(mmio, 0x180003FD, 1) == b"\x60"
    assert mmio.read(0x180003FD, 1) == 0x60
    assert load(mmio, 0x18000400, 2) == b"\xff\xff"  # nothing at that port
    assert pio.counts["uart"] == 3 and mmio.counts["pci-io"] == 4
    pio.add(0x80, 1, Broken(), "post")
    mmio.store(0x18000080, b"\x01")
    assert pio.fault is not None and mmio.fault is pio.fault
    assert str(mmio.fault) == "device post failed on write at port 0x0080: RuntimeError('model bug')"


def test_a_raising_device_is_recorded_once_and_reads_zero() -> None:
    bus = Bus()
    bus.add(0x1000, 4, Broken(), "broken")
    assert load(bus, 0x1000, 4) == bytes(4)
    first = bus.fault
    assert first is not None and not first.is_write and first.addr == 0x1000
    bus.store(0x1000, b"\x00")
    assert bus.fault is first
    assert "device broken failed on read at 0x00001000" in str(first)


# ---------------------------------------------------------------------- byte lanes
def test_read_lanes_splits_a_wide_access_and_floats_beyond_the_window() -> None:
    regs = [0x11, 0x22, 0x33]
    assert read_lanes(regs.__getitem__, 0, 2, 3) == 0x2211
    assert read_lanes(regs.__getitem__, 1, 4, 3) == 0xFFFF3322
    assert read_lanes(lambda _p: 0x1FF, 0, 1, 1) == 0xFF  # a register's stray high bits stay in its lane


def test_write_lanes_writes_each_byte_inside_the_window() -> None:
    seen: list[tuple[int, int]] = []
    write_lanes(lambda p, b: seen.append((p, b)), 1, 4, 0xAABBCCDD, 3)
    assert seen == [(1, 0xDD), (2, 0xCC)]


def test_word_lane_and_merge_lane() -> None:
    assert word_lane(0x11223344, 1, 2) == 0x2233
    assert word_lane(0x11223344, 7, 1) == 0x11  # the offset within the register counts
    assert merge_lane(0x11223344, 2, 1, 0xAB) == 0x11AB3344
    assert merge_lane(0x11223344, 0, 2, 0x1FFFF) == 0x1122FFFF
