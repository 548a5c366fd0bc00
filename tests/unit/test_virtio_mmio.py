"""The virtio-mmio transport: registers per the spec, a real driver init sequence, hostile programming."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.bus import Bus, Endian, IrqLine
from kvmpy.vmm.virtio.blk import SECTOR_SIZE, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk
from kvmpy.vmm.virtio.mmio import CONFIG_OFFSET, MAGIC_VALUE, VENDOR_ID, Reg, VirtioMmioDevice
from kvmpy.vmm.virtio.queue import VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, RamView
from kvmpy.vmm.virtio.rng import VirtioRng
from kvmpy.vmm.virtio.transport import (
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
    DeviceStatus,
)
from tests.unit.fakes import RecordingIrq
from tests.unit.virtio_fakes import EchoDevice as BaseEchoDevice

RAM_BYTES = 0x40000
DEFAULT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX
MMIO_BASE = 0xD0000000


class EchoDevice(BaseEchoDevice):
    """The echo device with a 6-byte config holding a 16-bit field; a configuration write raises `fail`."""

    device_id = 0x2A
    features = 1 << 3

    def __init__(self) -> None:
        super().__init__()
        self.config = bytearray(b"\x01\x02\x03\x04\x05\x06")

    def config_read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.config[offset : offset + size].ljust(size, b"\0"), "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        if self.fail is not None:
            raise self.fail
        if 0 <= offset < len(self.config):
            self.config[offset : offset + size] = value.to_bytes(size, "little")[: len(self.config) - offset]


class Driver:
    """A minimal virtio-mmio driver doing what Linux's virtio_mmio + virtio core do, on a RAM buffer.

    Register accesses go through an MMIO `Bus`, as the guest's loads and stores would.
    """

    def __init__(self, device: object, ram_bytes: int = RAM_BYTES, irq: IrqLine | None = None) -> None:
        self.ram = bytearray(ram_bytes)
        self.irq = RecordingIrq()
        self.dev = VirtioMmioDevice(device, RamView(self.ram), irq or self.irq)  # type: ignore[arg-type]
        self.bus = Bus()
        self.bus.add(MMIO_BASE, 0x200, self.dev, "virtio-mmio")
        self._next = 0x1000
        self.queues: dict[int, tuple[int, int, int, int]] = {}  # index -> (size, desc, avail, used)
        self.avail_idx: dict[int, int] = {}
        self.used_seen: dict[int, int] = {}
        self.next_desc: dict[int, int] = {}

    def r(self, reg: int) -> int:
        return self.bus.read(MMIO_BASE + reg, 4)

    def w(self, reg: int, value: int) -> None:
        self.bus.write(MMIO_BASE + reg, 4, value)

    def alloc(self, length: int, align: int = 16) -> int:
        gpa = (self._next + align - 1) & ~(align - 1)
        self._next = gpa + length
        return gpa

    def init(self, want: int = DEFAULT_FEATURES, queues: int = 1, size: int = 8) -> None:
        assert self.r(Reg.MAGIC_VALUE) == MAGIC_VALUE
        assert self.r(Reg.VERSION) == 2
        assert self.r(Reg.DEVICE_ID) != 0
        self.w(Reg.STATUS, 0)
        assert self.r(Reg.STATUS) == 0
        self.w(Reg.STATUS, DeviceStatus.ACKNOWLEDGE)
        self.w(Reg.STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER)
        offered = 0
        for sel in (0, 1):
            self.w(Reg.DEVICE_FEATURES_SEL, sel)
            offered |= self.r(Reg.DEVICE_FEATURES) << (32 * sel)
        chosen = offered & want
        for sel in (0, 1):
            self.w(Reg.DRIVER_FEATURES_SEL, sel)
            self.w(Reg.DRIVER_FEATURES, (chosen >> (32 * sel)) & 0xFFFFFFFF)
        status = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK
        self.w(Reg.STATUS, status)
        assert self.r(Reg.STATUS) & DeviceStatus.FEATURES_OK, "device refused the features"
        for index in range(queues):
            self.setup_queue(index, size)
        self.w(Reg.STATUS, status | DeviceStatus.DRIVER_OK)

    def setup_queue(self, index: int, size: int) -> None:
        self.w(Reg.QUEUE_SEL, index)
        assert self.r(Reg.QUEUE_READY) == 0
        assert 0 < size <= self.r(Reg.QUEUE_NUM_MAX)
        desc = self.alloc(16 * size, 16)
        avail = self.alloc(6 + 2 * size, 2)
        used = self.alloc(6 + 8 * size, 4)
        self.w(Reg.QUEUE_NUM, size)
        rings = ((Reg.QUEUE_DESC_LOW, desc), (Reg.QUEUE_DRIVER_LOW, avail), (Reg.QUEUE_DEVICE_LOW, used))
        for low, gpa in rings:
            self.w(low, gpa & 0xFFFFFFFF)
            self.w(low + 4, gpa >> 32)
        self.w(Reg.QUEUE_READY, 1)
        assert self.r(Reg.QUEUE_READY) == 1
        self.queues[index] = (size, desc, avail, used)
        self.avail_idx[index] = 0
        self.used_seen[index] = 0
        self.next_desc[index] = 0

    def submit(self, index: int, buffers: list[tuple[int, int, bool]]) -> int:
        """Put one chain of (gpa, length, device_writable) on queue `index` and notify; returns its head."""
        size, desc, avail, _ = self.queues[index]
        head = self.next_desc[index]
        for i, (gpa, length, writable) in enumerate(buffers):
            slot = (head + i) % size
            flags = VIRTQ_DESC_F_WRITE if writable else 0
            if i + 1 < len(buffers):
                flags |= VIRTQ_DESC_F_NEXT
            struct.pack_into("<QIHH", self.ram, desc + 16 * slot, gpa, length, flags, (slot + 1) % size)
        self.next_desc[index] = (head + len(buffers)) % size
        struct.pack_into("<H", self.ram, avail + 4 + 2 * (self.avail_idx[index] % size), head)
        self.avail_idx[index] = (self.avail_idx[index] + 1) & 0xFFFF
        # used_event: interrupt me once the entry after the last one I consumed is used (as Linux does)
        struct.pack_into("<H", self.ram, avail + 4 + 2 * size, self.used_seen[index])
        struct.pack_into("<H", self.ram, avail + 2, self.avail_idx[index])
        self.w(Reg.QUEUE_NOTIFY, index)
        return head

    def used(self, index: int) -> list[tuple[int, int]]:
        """New used-ring entries (id, len) since the last call."""
        size, _, _, used = self.queues[index]
        idx = struct.unpack_from("<H", self.ram, used + 2)[0]
        out = []
        while self.used_seen[index] != idx:
            out.append(struct.unpack_from("<II", self.ram, used + 4 + 8 * (self.used_seen[index] % size)))
            self.used_seen[index] = (self.used_seen[index] + 1) & 0xFFFF
        return out

    def ack(self) -> int:
        status = self.r(Reg.INTERRUPT_STATUS)
        self.w(Reg.INTERRUPT_ACK, status)
        return status


# ---------------------------------------------------------------------- registers


def test_identity_registers_and_little_endian_declaration() -> None:
    d = Driver(EchoDevice())
    assert d.r(Reg.MAGIC_VALUE) == 0x74726976
    assert d.r(Reg.MAGIC_VALUE).to_bytes(4, "little") == b"virt"
    assert d.r(Reg.VERSION) == 2
    assert d.r(Reg.DEVICE_ID) == 0x2A
    assert d.r(Reg.VENDOR_ID) == VENDOR_ID
    assert VirtioMmioDevice.endian is Endian.LITTLE


def test_device_features_in_words() -> None:
    d = Driver(EchoDevice())
    d.w(Reg.DEVICE_FEATURES_SEL, 0)
    low = d.r(Reg.DEVICE_FEATURES)
    d.w(Reg.DEVICE_FEATURES_SEL, 1)
    high = d.r(Reg.DEVICE_FEATURES)
    assert low == (1 << 3) | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    assert high == VIRTIO_F_VERSION_1 >> 32
    d.w(Reg.DEVICE_FEATURES_SEL, 7)
    assert d.r(Reg.DEVICE_FEATURES) == 0


def test_features_ok_refused_without_version_1_or_with_unknown_bits() -> None:
    d = Driver(EchoDevice())
    d.w(Reg.STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER)
    d.w(Reg.DRIVER_FEATURES_SEL, 0)
    d.w(Reg.DRIVER_FEATURES, 1 << 3)
    d.w(Reg.STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK)
    assert not d.r(Reg.STATUS) & DeviceStatus.FEATURES_OK  # no VERSION_1
    d.w(Reg.DRIVER_FEATURES_SEL, 1)
    d.w(Reg.DRIVER_FEATURES, 1 | 0x80)  # VERSION_1 plus bit 39, which nobody offered
    d.w(Reg.STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK)
    assert not d.r(Reg.STATUS) & DeviceStatus.FEATURES_OK
    d.w(Reg.DRIVER_FEATURES, 1)
    d.w(Reg.STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK)
    assert d.r(Reg.STATUS) & DeviceStatus.FEATURES_OK
    assert d.dev.virtio.acked == VIRTIO_F_VERSION_1 | (1 << 3)
    d.w(Reg.DRIVER_FEATURES, 0)  # too late: features are frozen after FEATURES_OK
    assert d.dev.core.negotiated_features == VIRTIO_F_VERSION_1 | (1 << 3)


def test_queue_registers_and_num_max() -> None:
    d = Driver(EchoDevice())
    d.w(Reg.QUEUE_SEL, 1)
    assert d.r(Reg.QUEUE_NUM_MAX) == 16
    d.w(Reg.QUEUE_SEL, 2)  # the device has two queues
    assert d.r(Reg.QUEUE_NUM_MAX) == 0 and d.r(Reg.QUEUE_READY) == 0
    d.w(Reg.QUEUE_NUM, 4)
    d.w(Reg.QUEUE_READY, 1)
    assert d.r(Reg.QUEUE_READY) == 0
    assert d.dev.guest_errors == 1


def test_config_space_is_byte_granular_little_endian() -> None:
    d = Driver(EchoDevice())
    assert d.bus.read(MMIO_BASE + CONFIG_OFFSET, 1) == 0x01
    assert d.bus.read(MMIO_BASE + CONFIG_OFFSET + 1, 2) == 0x0302
    assert d.bus.read(MMIO_BASE + CONFIG_OFFSET + 2, 4) == 0x06050403
    d.bus.write(MMIO_BASE + CONFIG_OFFSET + 4, 2, 0xBEEF)
    assert d.dev.virtio.config[4:6] == b"\xef\xbe"
    assert d.bus.read(MMIO_BASE + CONFIG_OFFSET + 0xFE, 2) == 0  # past the device's structure


def test_config_generation_and_config_interrupt() -> None:
    d = Driver(EchoDevice())
    d.init()
    gen = d.r(Reg.CONFIG_GENERATION)
    d.dev.config_changed()
    assert d.r(Reg.CONFIG_GENERATION) == gen + 1
    assert d.irq.level and d.r(Reg.INTERRUPT_STATUS) == 0x2
    d.w(Reg.INTERRUPT_ACK, 0x2)
    assert not d.irq.level


def test_no_shared_memory_regions() -> None:
    d = Driver(EchoDevice())
    d.w(Reg.SHM_SEL, 0)
    assert d.r(Reg.SHM_LEN_LOW) == 0xFFFFFFFF and d.r(Reg.SHM_LEN_HIGH) == 0xFFFFFFFF


# ---------------------------------------------------------------------- a driver running real devices


def test_echo_round_trip_with_interrupt_and_ack() -> None:
    d = Driver(EchoDevice())
    d.init(queues=2)
    src = d.alloc(5)
    d.ram[src : src + 5] = b"hello"
    dst = d.alloc(5)
    head = d.submit(1, [(src, 5, False), (dst, 5, True)])
    assert bytes(d.ram[dst : dst + 5]) == b"hello"
    assert d.used(1) == [(head, 5)]
    assert d.irq.level
    assert d.ack() == 0x1
    assert not d.irq.level and d.r(Reg.INTERRUPT_STATUS) == 0
    assert d.irq.changes == [True, False]


def test_virtio_rng_through_mmio() -> None:
    d = Driver(VirtioRng())
    d.init()
    buf = d.alloc(64)
    d.ram[buf : buf + 64] = bytes(64)
    head = d.submit(0, [(buf, 64, True)])
    assert d.used(0) == [(head, 64)]
    assert bytes(d.ram[buf : buf + 64]) != bytes(64)
    assert d.ack() == 0x1


def test_virtio_blk_write_then_read_through_mmio(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(8 * SECTOR_SIZE))
    blk = VirtioBlk(image)
    try:
        d = Driver(blk)
        d.init(want=VIRTIO_F_VERSION_1)
        capacity = d.bus.read(MMIO_BASE + CONFIG_OFFSET, 4)
        capacity |= d.bus.read(MMIO_BASE + CONFIG_OFFSET + 4, 4) << 32
        assert capacity == 8
        payload = os.urandom(SECTOR_SIZE)
        hdr, data, status = d.alloc(16), d.alloc(SECTOR_SIZE), d.alloc(1)
        struct.pack_into("<IIQ", d.ram, hdr, VIRTIO_BLK_T_OUT, 0, 3)
        d.ram[data : data + SECTOR_SIZE] = payload
        d.submit(0, [(hdr, 16, False), (data, SECTOR_SIZE, False), (status, 1, True)])
        assert d.ram[status] == VIRTIO_BLK_S_OK
        assert image.read_bytes()[3 * SECTOR_SIZE : 4 * SECTOR_SIZE] == payload
        d.ack()
        back = d.alloc(SECTOR_SIZE)
        struct.pack_into("<IIQ", d.ram, hdr, VIRTIO_BLK_T_IN, 0, 3)
        d.ram[status] = 0xFF
        d.submit(0, [(hdr, 16, False), (back, SECTOR_SIZE, True), (status, 1, True)])
        assert d.ram[status] == VIRTIO_BLK_S_OK
        assert bytes(d.ram[back : back + SECTOR_SIZE]) == payload
        assert len(d.used(0)) == 2
    finally:
        blk.close()


def test_status_zero_resets_device_and_registers() -> None:
    d = Driver(EchoDevice())
    d.init(queues=2)
    d.dev.config_changed()
    d.w(Reg.QUEUE_SEL, 1)
    d.w(Reg.STATUS, 0)
    assert d.r(Reg.STATUS) == 0 and d.r(Reg.INTERRUPT_STATUS) == 0 and not d.irq.level
    assert d.r(Reg.QUEUE_READY) == 0  # QueueSel back to 0, and queue 0 not ready
    d.w(Reg.QUEUE_SEL, 1)
    assert d.r(Reg.QUEUE_READY) == 0
    assert d.dev.virtio.resets == 2  # the driver's reset in init, and this one
    d.init(queues=2)  # and the device comes back up
    assert d.r(Reg.STATUS) & DeviceStatus.DRIVER_OK


def test_queue_ready_zero_withdraws_the_queue() -> None:
    d = Driver(EchoDevice())
    d.init()
    d.w(Reg.QUEUE_SEL, 0)
    d.w(Reg.QUEUE_READY, 0)
    assert d.r(Reg.QUEUE_READY) == 0 and d.dev.queue(0) is None
    d.w(Reg.QUEUE_NUM, 4)  # may be reprogrammed now
    assert d.dev.core.queues[0].size == 4


# ---------------------------------------------------------------------- hostile programming


@pytest.mark.parametrize("size", [0, 3, 12, 32, 0xFFFFFFFF])
def test_bad_queue_size_breaks_device_cleanly(size: int) -> None:
    d = Driver(EchoDevice())
    d.init(queues=0)
    d.w(Reg.QUEUE_SEL, 0)
    d.w(Reg.QUEUE_NUM, size)
    d.w(Reg.QUEUE_DESC_LOW, 0x1000)
    d.w(Reg.QUEUE_DRIVER_LOW, 0x2000)
    d.w(Reg.QUEUE_DEVICE_LOW, 0x3000)
    d.w(Reg.QUEUE_READY, 1)
    assert d.r(Reg.QUEUE_READY) == 0
    assert d.r(Reg.STATUS) & DeviceStatus.DEVICE_NEEDS_RESET
    assert d.irq.level and d.r(Reg.INTERRUPT_STATUS) == 0x2  # DRIVER_OK was set: config interrupt
    d.w(Reg.QUEUE_NOTIFY, 0)
    assert d.dev.core.notifies_ignored == 1
    d.w(Reg.STATUS, 0)
    assert d.r(Reg.STATUS) == 0 and not d.irq.level


@pytest.mark.parametrize("ring", [Reg.QUEUE_DESC_LOW, Reg.QUEUE_DRIVER_LOW, Reg.QUEUE_DEVICE_LOW])
def test_rings_outside_ram_break_device_cleanly(ring: Reg) -> None:
    d = Driver(EchoDevice())
    d.init(queues=0)
    d.setup_queue(0, 8)
    d.w(Reg.QUEUE_READY, 0)
    d.w(ring, RAM_BYTES - 8)
    d.w(Reg.QUEUE_READY, 1)
    assert d.r(Reg.QUEUE_READY) == 0
    assert d.r(Reg.STATUS) & DeviceStatus.DEVICE_NEEDS_RESET
    d.w(ring + 4, 0x1)  # high half: way outside RAM, still no crash
    d.w(Reg.QUEUE_READY, 1)
    assert d.r(Reg.QUEUE_READY) == 0


def test_descriptor_outside_ram_breaks_device_not_host() -> None:
    d = Driver(EchoDevice())
    d.init()
    d.submit(0, [(RAM_BYTES + 0x1000, 16, True)])
    assert d.r(Reg.STATUS) & DeviceStatus.DEVICE_NEEDS_RESET
    assert d.used(0) == []
    d.submit(0, [(0x100, 16, True)])  # ignored until reset
    assert d.used(0) == []


def test_notify_of_unready_or_missing_queue_is_ignored() -> None:
    d = Driver(EchoDevice())
    d.w(Reg.QUEUE_NOTIFY, 0)
    d.w(Reg.QUEUE_NOTIFY, 99)
    assert d.dev.core.notifies_ignored == 2
    assert d.r(Reg.STATUS) == 0 and not d.irq.changes


def test_queue_configuration_frozen_while_ready() -> None:
    d = Driver(EchoDevice())
    d.init()
    size, desc, _, _ = d.queues[0]
    d.w(Reg.QUEUE_SEL, 0)
    d.w(Reg.QUEUE_NUM, 2)
    d.w(Reg.QUEUE_DESC_LOW, 0x8000)
    q = d.dev.core.queues[0]
    assert q.size == size and q.desc == desc
    assert d.dev.guest_errors == 2


def test_wrong_widths_unknown_offsets_and_read_only_writes() -> None:
    d = Driver(EchoDevice())
    before = d.r(Reg.STATUS)
    assert d.bus.read(MMIO_BASE + Reg.MAGIC_VALUE, 2) == 0
    assert d.bus.read(MMIO_BASE + Reg.MAGIC_VALUE + 1, 4) == 0
    assert d.bus.read(MMIO_BASE + 0x018, 4) == 0  # a hole in the layout
    d.bus.write(MMIO_BASE + Reg.STATUS, 1, DeviceStatus.ACKNOWLEDGE)
    d.bus.write(MMIO_BASE + Reg.STATUS + 2, 4, DeviceStatus.ACKNOWLEDGE)
    d.w(Reg.MAGIC_VALUE, 0)
    d.w(0x0C8, 1)
    assert d.r(Reg.STATUS) == before and d.r(Reg.MAGIC_VALUE) == MAGIC_VALUE
    assert d.r(Reg.QUEUE_NOTIFY) == 0  # write-only
    assert d.dev.guest_errors == 8
    assert d.bus.fault is None


def test_device_model_exception_marks_broken_without_raising() -> None:
    d = Driver(EchoDevice())
    d.init()
    d.dev.virtio.fail = RuntimeError("model bug")
    buf = d.alloc(4)
    d.submit(0, [(buf, 4, True)])
    assert d.r(Reg.STATUS) & DeviceStatus.DEVICE_NEEDS_RESET
    d.bus.write(MMIO_BASE + CONFIG_OFFSET, 1, 0)  # ignored while broken
    assert d.bus.fault is None


_WIDTHS = st.sampled_from([1, 2, 4, 8])


@settings(max_examples=300, deadline=None)
@given(
    st.booleans(),
    st.lists(
        st.tuples(st.integers(0, 0x1FF), _WIDTHS, st.integers(0, 0xFFFFFFFFFFFFFFFF), st.booleans()),
        max_size=60,
    ),
)
def test_register_fuzz_never_raises_and_keeps_invariants(
    started: bool, ops: list[tuple[int, int, int, bool]]
) -> None:
    """Random accesses, on a fresh device or on one a driver brought up (queues ready, DRIVER_OK)."""
    d = Driver(EchoDevice(), ram_bytes=0x10000)
    if started:
        d.init(queues=2)
    for offset, size, value, is_write in ops:
        if is_write:
            d.bus.write(MMIO_BASE + offset, size, value & ((1 << (8 * size)) - 1))
        else:
            d.bus.read(MMIO_BASE + offset, size)
        core = d.dev.core
        assert d.irq.level == (core.interrupt_status != 0)
        assert d.r(Reg.MAGIC_VALUE) == MAGIC_VALUE
        for q in core.queues:
            if q.ready:  # a ready queue always has a validated ring inside RAM
                assert q.vq is not None and 0 < q.size <= q.max_size and not q.size & (q.size - 1)
                assert q.vq.mem.contains(q.desc, 16 * q.size)
        if core.broken:
            assert core.status & DeviceStatus.DEVICE_NEEDS_RESET
        if core.status & DeviceStatus.FEATURES_OK:
            assert core.driver_features & VIRTIO_F_VERSION_1
            assert not core.driver_features & ~core.device_features
    assert d.bus.fault is None
