"""The PCI model: configuration space masks, BAR sizing and decoding, capabilities, INTx, the bus."""

from __future__ import annotations

import logging

import pytest

from kvmpy.vmm.bus import Bus
from kvmpy.vmm.pci import (
    CAP_ID_VENDOR_SPECIFIC,
    HEADER_TYPE_MULTI_FUNCTION,
    BarKind,
    BusBarMapper,
    Cfg,
    Command,
    InterruptPin,
    PciBus,
    PciDevice,
    PciError,
    Status,
    devfn,
    devfn_str,
)
from tests.unit.fakes import RecordingIrq as RecordingLine


class Registers:
    """A tiny BusDevice: a byte array."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.data[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        self.data[offset : offset + size] = value.to_bytes(size, "little")


def make_device(**kwargs: object) -> PciDevice:
    args: dict[str, object] = {
        "vendor_id": 0x1AF4,
        "device_id": 0x1000,
        "class_code": 0x020000,
        "revision": 0x02,
        "subsystem_vendor_id": 0x1AF4,
        "subsystem_id": 0x0001,
        "interrupt_pin": InterruptPin.INTA,
        "name": "test-nic",
    }
    args.update(kwargs)
    return PciDevice(**args)  # type: ignore[arg-type]


def test_header_identity() -> None:
    dev = make_device()
    assert dev.config_read(Cfg.VENDOR_ID, 4) == 0x10001AF4
    assert dev.config_read(Cfg.REVISION_ID, 4) == 0x02000002
    assert dev.config_read(Cfg.CLASS, 1) == 0x02
    assert dev.config_read(Cfg.SUBSYSTEM_VENDOR_ID, 4) == 0x00011AF4
    assert dev.config_read(Cfg.INTERRUPT_LINE, 2) == 0x0100  # pin INTA, line 0
    assert dev.config_read(Cfg.HEADER_TYPE, 1) == 0


def test_identity_registers_are_read_only() -> None:
    dev = make_device()
    dev.config_write(Cfg.VENDOR_ID, 4, 0xFFFFFFFF)
    dev.config_write(Cfg.REVISION_ID, 4, 0xFFFFFFFF)
    dev.config_write(Cfg.INTERRUPT_PIN, 1, 0x03)
    assert dev.config_read(Cfg.VENDOR_ID, 4) == 0x10001AF4
    assert dev.config_read(Cfg.REVISION_ID, 4) == 0x02000002
    assert dev.config_read(Cfg.INTERRUPT_PIN, 1) == 1


def test_command_write_mask_is_qemus() -> None:
    dev = make_device()
    dev.config_write(Cfg.COMMAND, 2, 0xFFFF)
    assert dev.config_read(Cfg.COMMAND, 2) == 0x0507
    dev.config_write(Cfg.COMMAND, 2, 0)
    assert dev.command == 0


def test_cache_line_and_interrupt_line_writable_latency_timer_not() -> None:
    dev = make_device()
    dev.config_write(Cfg.CACHE_LINE_SIZE, 4, 0xFFFFFFFF)
    assert dev.config_read(Cfg.CACHE_LINE_SIZE, 4) == 0x000000FF
    dev.config_write(Cfg.INTERRUPT_LINE, 1, 11)
    assert dev.config_read(Cfg.INTERRUPT_LINE, 2) == 0x010B


def test_status_error_bits_are_write_one_to_clear() -> None:
    dev = make_device(status=Status.DEVSEL_MEDIUM)
    dev.set_word(Cfg.STATUS, dev.get(Cfg.STATUS, 2) | Status.REC_MASTER_ABORT | Status.SIG_TARGET_ABORT)
    dev.config_write(Cfg.STATUS, 2, 0)  # writing 0 changes nothing
    assert dev.config_read(Cfg.STATUS, 2) == 0x2A00
    dev.config_write(Cfg.STATUS, 2, Status.REC_MASTER_ABORT | Status.DEVSEL_MEDIUM)
    assert dev.config_read(Cfg.STATUS, 2) == 0x0A00  # DEVSEL is read-only, MA cleared


def test_byte_and_halfword_accesses_see_little_endian_bytes() -> None:
    dev = make_device()
    assert dev.config_read(0x00, 1) == 0xF4
    assert dev.config_read(0x01, 1) == 0x1A
    assert dev.config_read(0x02, 2) == 0x1000
    assert dev.config_read(0x03, 1) == 0x10


@pytest.mark.parametrize(("reg", "size"), [(0x02, 4), (0x03, 2), (0xFE, 4), (0x100, 1), (0x00, 3)])
def test_bad_accesses_raise(reg: int, size: int) -> None:
    with pytest.raises(PciError):
        make_device().config_read(reg, size)


# ---------------------------------------------------------------------- BARs
@pytest.mark.parametrize(
    ("kind", "size", "prefetchable", "initial", "probed"),
    [
        (BarKind.IO, 0x20, False, 0x00000001, 0xFFFFFFE1),
        (BarKind.IO, 0x10, False, 0x00000001, 0xFFFFFFF1),
        (BarKind.MEM32, 0x1000, False, 0x00000000, 0xFFFFF000),
        (BarKind.MEM32, 0x4000, True, 0x00000008, 0xFFFFC008),
        (BarKind.MEM64, 0x4000, True, 0x0000000C, 0xFFFFC00C),
    ],
)
def test_bar_size_probing(kind: BarKind, size: int, prefetchable: bool, initial: int, probed: int) -> None:
    dev = make_device()
    dev.add_bar(0, size, kind, prefetchable=prefetchable)
    assert dev.config_read(Cfg.BAR0, 4) == initial
    dev.config_write(Cfg.BAR0, 4, 0xFFFFFFFF)
    assert dev.config_read(Cfg.BAR0, 4) == probed
    dev.config_write(Cfg.BAR0, 4, initial)
    assert dev.config_read(Cfg.BAR0, 4) == initial


def test_mem64_bar_upper_dword() -> None:
    dev = make_device()
    dev.add_bar(4, 0x4000, BarKind.MEM64, prefetchable=True)
    dev.config_write(Cfg.BAR0 + 20, 4, 0xFFFFFFFF)
    assert dev.config_read(Cfg.BAR0 + 20, 4) == 0xFFFFFFFF
    dev.config_write(Cfg.BAR0 + 16, 4, 0x12050000)
    dev.config_write(Cfg.BAR0 + 20, 4, 0x00000001)
    dev.config_write(Cfg.COMMAND, 2, Command.MEMORY)
    bar = dev.bar(4)
    assert bar is not None and bar.address == 0x1_12050000


def test_undeclared_bars_and_rom_are_read_only() -> None:
    dev = make_device()
    for reg in range(Cfg.BAR0, Cfg.BAR0 + 24, 4):
        dev.config_write(reg, 4, 0xFFFFFFFF)
        assert dev.config_read(reg, 4) == 0
    dev.config_write(Cfg.ROM_ADDRESS, 4, 0xFFFFF800)
    assert dev.config_read(Cfg.ROM_ADDRESS, 4) == 0


@pytest.mark.parametrize(
    ("index", "size", "kind"),
    [(6, 16, BarKind.IO), (5, 16, BarKind.MEM64), (0, 24, BarKind.MEM32), (0, 8, BarKind.MEM32)],
)
def test_bad_bar_declarations(index: int, size: int, kind: BarKind) -> None:
    with pytest.raises(PciError):
        make_device().add_bar(index, size, kind)


def test_overlapping_bar_declarations() -> None:
    dev = make_device()
    dev.add_bar(0, 0x1000, BarKind.MEM64)
    with pytest.raises(PciError):
        dev.add_bar(1, 0x10, BarKind.IO)


class BarLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int | None, int | None]] = []

    def __call__(self, device: PciDevice, bar_index: int, old: int | None, new: int | None) -> None:
        self.events.append((device.name, bar_index, old, new))


def test_bar_decoding_follows_command_and_address() -> None:
    events = BarLog()
    bus = PciBus(on_bar_change=events)
    dev = make_device()
    dev.add_bar(0, 0x20, BarKind.IO)
    dev.add_bar(1, 0x1000, BarKind.MEM32)
    bus.attach(devfn(19), dev)
    # Linux: size with decode off, assign, then enable.
    dev.config_write(Cfg.BAR0, 4, 0xFFFFFFFF)
    dev.config_write(Cfg.BAR0, 4, 0x1080)
    dev.config_write(Cfg.BAR0 + 4, 4, 0x12055000)
    assert events.events == []
    dev.config_write(Cfg.COMMAND, 2, Command.IO | Command.MEMORY)
    assert events.events == [("test-nic", 0, None, 0x1080), ("test-nic", 1, None, 0x12055000)]
    events.events.clear()
    dev.config_write(Cfg.BAR0, 4, 0x10C0)  # moved while decoding
    assert events.events == [("test-nic", 0, 0x1080, 0x10C0)]
    events.events.clear()
    dev.config_write(Cfg.BAR0 + 4, 4, 0xFFFFFFFF)  # sizing with decode on: not a mapping
    assert events.events == [("test-nic", 1, 0x12055000, None)]
    events.events.clear()
    dev.config_write(Cfg.BAR0 + 4, 4, 0x12055000)
    dev.config_write(Cfg.COMMAND, 2, Command.MEMORY)
    assert events.events == [("test-nic", 1, None, 0x12055000), ("test-nic", 0, 0x10C0, None)]


def test_zero_address_does_not_decode() -> None:
    events = BarLog()
    bus = PciBus(on_bar_change=events)
    dev = make_device()
    dev.add_bar(0, 0x20, BarKind.IO)
    bus.attach(devfn(18), dev)
    dev.config_write(Cfg.COMMAND, 2, Command.IO)
    assert events.events == []


# ---------------------------------------------------------------------- capabilities
def test_capability_list() -> None:
    dev = make_device()
    first = dev.add_capability(CAP_ID_VENDOR_SPECIFIC, bytes([16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
    second = dev.add_capability(CAP_ID_VENDOR_SPECIFIC, bytes([4, 2]), wmask=bytes([0, 0xFF]))
    assert first == 0x40 and second == 0x50
    assert dev.config_read(Cfg.STATUS, 2) & Status.CAP_LIST
    assert dev.config_read(Cfg.CAPABILITIES_POINTER, 1) == 0x40
    assert dev.config_read(0x40, 4) == 0x01105009  # id, next=0x50, len 16, type 1
    assert dev.config_read(0x50, 4) == 0x02040009  # id, next=0 (end), len 4, type 2
    assert list(dev.capabilities()) == [(0x40, 0x09), (0x50, 0x09)]
    dev.config_write(0x50, 4, 0xFFFFFFFF)  # only the last byte is writable
    assert dev.config_read(0x50, 4) == 0xFF040009
    dev.config_write(0x40, 4, 0)
    assert dev.config_read(0x40, 4) == 0x01105009


def test_capability_must_fit() -> None:
    dev = make_device()
    with pytest.raises(PciError):
        dev.add_capability(CAP_ID_VENDOR_SPECIFIC, bytes(20), offset=0xF0)
    with pytest.raises(PciError):
        dev.add_capability(CAP_ID_VENDOR_SPECIFIC, bytes(2), offset=0x42)


# ---------------------------------------------------------------------- the bus
def test_absent_functions_read_all_ones_and_drop_writes() -> None:
    bus = PciBus()
    bus.attach(devfn(10), make_device())
    assert bus.present(0, devfn(10))
    assert not bus.present(0, devfn(11))
    assert not bus.present(1, devfn(10))
    assert bus.config_read(0, devfn(11), 0, 4) == 0xFFFFFFFF
    assert bus.config_read(0, devfn(11), 2, 2) == 0xFFFF
    assert bus.config_read(0, devfn(11), 3, 1) == 0xFF
    assert bus.config_read(1, devfn(10), 0, 4) == 0xFFFFFFFF
    bus.config_write(0, devfn(11), 0x3C, 1, 5)
    assert bus.config_read(0, devfn(10), 0, 4) == 0x10001AF4


def test_attach_rejects_a_taken_devfn_and_a_second_bus() -> None:
    bus = PciBus()
    dev = make_device()
    bus.attach(devfn(3), dev)
    with pytest.raises(PciError):
        bus.attach(devfn(3), make_device())
    with pytest.raises(PciError):
        PciBus().attach(0, dev)


def test_function_zero_becomes_multi_function() -> None:
    bus = PciBus()
    fn1, fn0 = make_device(name="fn1"), make_device(name="fn0")
    bus.attach(devfn(5, 1), fn1)  # in either order
    bus.attach(devfn(5, 0), fn0)
    assert fn0.config_read(Cfg.HEADER_TYPE, 1) == HEADER_TYPE_MULTI_FUNCTION
    assert fn1.config_read(Cfg.HEADER_TYPE, 1) == 0
    lone = make_device(name="lone")
    bus.attach(devfn(6, 0), lone)
    assert lone.config_read(Cfg.HEADER_TYPE, 1) == 0
    assert [devfn_str(d) for d, _ in bus.devices()] == ["05.0", "05.1", "06.0"]


# ---------------------------------------------------------------------- INTx
def test_intx_routed_lazily_and_masked_by_intx_disable() -> None:
    lines: dict[tuple[int, int], RecordingLine] = {}

    def route(dev_fn: int, pin: int) -> RecordingLine:
        return lines.setdefault((dev_fn, pin), RecordingLine())

    bus = PciBus()
    dev = make_device(interrupt_pin=InterruptPin.INTB)
    bus.attach(devfn(19), dev)
    bus.route_intx = route  # set after attach, as the Malta does
    dev.set_irq(True)
    line = lines[(devfn(19), 2)]
    assert line.levels == [True]
    assert dev.config_read(Cfg.STATUS, 2) & Status.INTERRUPT
    dev.set_irq(True)  # no change, no new edge
    assert line.levels == [True]
    dev.config_write(Cfg.COMMAND, 2, Command.INTX_DISABLE)
    assert line.levels == [True, False]
    assert dev.config_read(Cfg.STATUS, 2) & Status.INTERRUPT  # status still shows the request
    dev.config_write(Cfg.COMMAND, 2, 0)
    assert line.levels == [True, False, True]
    dev.set_irq(False)
    assert line.levels == [True, False, True, False]
    assert not dev.config_read(Cfg.STATUS, 2) & Status.INTERRUPT


def test_function_without_pin_drives_nothing() -> None:
    routed: list[tuple[int, int]] = []

    def route(dev_fn: int, pin: int) -> RecordingLine:
        routed.append((dev_fn, pin))
        return RecordingLine()

    bus = PciBus(route_intx=route)
    dev = make_device(interrupt_pin=InterruptPin.NONE)
    bus.attach(devfn(20), dev)
    dev.set_irq(True)
    assert routed == []


# ---------------------------------------------------------------------- BAR mapping onto the buses
def test_bus_bar_mapper_maps_io_bars_by_port_and_memory_bars_by_address() -> None:
    mmio, pio = Bus(), Bus("pio")
    mmio.add(0x18000000, 0x200000, pio, "pci-io")  # the Malta's host bridge window
    bus = PciBus(on_bar_change=BusBarMapper(mmio, pio))
    dev = make_device()
    io_regs, mem_regs = Registers(0x20), Registers(0x1000)
    dev.add_bar(0, 0x20, BarKind.IO, region=io_regs)
    dev.add_bar(1, 0x1000, BarKind.MEM32, region=mem_regs)
    dev.add_bar(2, 0x100, BarKind.MEM32)  # nothing behind it: not mapped
    bus.attach(devfn(19), dev)
    dev.config_write(Cfg.BAR0, 4, 0x1080)
    dev.config_write(Cfg.BAR0 + 4, 4, 0x12055000)
    dev.config_write(Cfg.BAR0 + 8, 4, 0x12056000)
    dev.config_write(Cfg.COMMAND, 2, Command.IO | Command.MEMORY)
    pio.write(0x1084, 2, 0xBEEF)
    assert io_regs.read(4, 2) == 0xBEEF
    mmio.write(0x18001086, 2, 0xCAFE)
    assert io_regs.read(6, 2) == 0xCAFE
    mmio.write(0x12055010, 4, 0x12345678)
    assert mem_regs.read(0x10, 4) == 0x12345678
    assert mmio.find(0x12056000) is None
    dev.config_write(Cfg.COMMAND, 2, Command.MEMORY)
    assert pio.find(0x1084) is None
    assert mmio.find(0x12055010) is not None


def test_bus_bar_mapper_leaves_overlapping_bar_unmapped(caplog: pytest.LogCaptureFixture) -> None:
    mmio, pio = Bus(), Bus("pio")
    pio.add(0x1000, 0x100, Registers(0x100), "someone")
    bus = PciBus(on_bar_change=BusBarMapper(mmio, pio))
    dev = make_device()
    dev.add_bar(0, 0x20, BarKind.IO, region=Registers(0x20))
    bus.attach(devfn(19), dev)
    dev.config_write(Cfg.BAR0, 4, 0x1020)
    with caplog.at_level(logging.WARNING):
        dev.config_write(Cfg.COMMAND, 2, Command.IO)
    assert "left unmapped" in caplog.text
    mapping = pio.find(0x1020)
    assert mapping is not None and mapping.name == "someone"
