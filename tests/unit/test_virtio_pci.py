"""The modern virtio-pci transport: identity, capabilities, handshake, queues, ISR and INTx."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.pci import CAP_ID_VENDOR_SPECIFIC, Cfg, PciBus, devfn
from kvmpy.vmm.virtio.pci import (
    BAR_INDEX,
    NOTIFY_OFFSET,
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_VERSION_1,
    CfgType,
    Common,
    DeviceStatus,
    VirtioPciDevice,
)
from kvmpy.vmm.virtio.queue import VIRTQ_DESC_F_WRITE, RamView
from tests.unit.fakes import RecordingIrq
from tests.unit.virtio_fakes import EchoDevice as BaseEchoDevice

FEATURE_X = 1 << 5
ISR = 0x1000
DEVCFG = 0x2000


class EchoDevice(BaseEchoDevice):
    """The echo device as an entropy device (ID 4) with a 4-byte configuration space."""

    device_id = 4
    features = FEATURE_X

    def __init__(self) -> None:
        super().__init__()
        self.config = bytearray(b"\x11\x22\x33\x44")

    def config_read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.config[offset : offset + size], "little") if offset < 4 else 0

    def config_write(self, offset: int, size: int, value: int) -> None:
        if offset < 4:
            self.config[offset : offset + size] = value.to_bytes(size, "little")[: 4 - offset]


def make(mem_bytes: int = 0x10000) -> tuple[VirtioPciDevice, EchoDevice, RecordingIrq, bytearray]:
    ram = bytearray(mem_bytes)
    dev = EchoDevice()
    vp = VirtioPciDevice(dev, RamView(memoryview(ram)))
    irq = RecordingIrq()
    bus = PciBus(route_intx=lambda _devfn, _pin: irq)
    bus.attach(devfn(3), vp)
    return vp, dev, irq, ram


def negotiate(vp: VirtioPciDevice, features: int = VIRTIO_F_VERSION_1 | FEATURE_X) -> int:
    vp.write(Common.DEVICE_STATUS, 1, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER)
    for sel in (0, 1):
        vp.write(Common.DRIVER_FEATURE_SELECT, 4, sel)
        vp.write(Common.DRIVER_FEATURE, 4, (features >> (32 * sel)) & 0xFFFFFFFF)
    status = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK
    vp.write(Common.DEVICE_STATUS, 1, status)
    return vp.read(Common.DEVICE_STATUS, 1)


def setup_queue(vp: VirtioPciDevice, index: int, size: int, desc: int, avail: int, used: int) -> None:
    vp.write(Common.QUEUE_SELECT, 2, index)
    vp.write(Common.QUEUE_SIZE, 2, size)
    for reg, addr in ((Common.QUEUE_DESC, desc), (Common.QUEUE_DRIVER, avail), (Common.QUEUE_DEVICE, used)):
        vp.write(reg, 4, addr & 0xFFFFFFFF)
        vp.write(reg + 4, 4, addr >> 32)
    vp.write(Common.QUEUE_ENABLE, 2, 1)


def driver_ok(vp: VirtioPciDevice) -> None:
    vp.write(Common.DEVICE_STATUS, 1, vp.read(Common.DEVICE_STATUS, 1) | DeviceStatus.DRIVER_OK)


def test_identity_and_capabilities() -> None:
    vp, _, _, _ = make()
    assert vp.config_read(Cfg.VENDOR_ID, 2) == 0x1AF4
    assert vp.config_read(Cfg.DEVICE_ID, 2) == 0x1044
    assert vp.config_read(Cfg.REVISION_ID, 1) == 1
    assert vp.config_read(Cfg.SUBSYSTEM_VENDOR_ID, 2) == 0x1AF4
    assert vp.config_read(Cfg.INTERRUPT_PIN, 1) == 1
    bar = vp.bar(BAR_INDEX)
    assert bar is not None and bar.size_bytes == 0x4000
    vp.config_write(Cfg.BAR0 + 4 * BAR_INDEX, 4, 0xFFFFFFFF)
    assert vp.config_read(Cfg.BAR0 + 4 * BAR_INDEX, 4) == 0xFFFFC000  # 32-bit, non-prefetchable
    found = {}
    for offset, cap_id in vp.capabilities():
        assert cap_id == CAP_ID_VENDOR_SPECIFIC
        cap_len, cfg_type, bar_index = vp.config[offset + 2 : offset + 5]
        off, length = struct.unpack_from("<II", vp.config, offset + 8)
        found[cfg_type] = (cap_len, bar_index, off, length, offset)
    assert set(found) == {CfgType.COMMON, CfgType.NOTIFY, CfgType.ISR, CfgType.DEVICE, CfgType.PCI}
    assert found[CfgType.COMMON][:4] == (16, 4, 0, 0x1000)
    assert found[CfgType.NOTIFY][:4] == (20, 4, NOTIFY_OFFSET, 0x1000)
    assert struct.unpack_from("<I", vp.config, found[CfgType.NOTIFY][4] + 16)[0] == 4
    assert found[CfgType.PCI][0] == 20


def test_feature_negotiation() -> None:
    vp, dev, _, _ = make()
    assert vp.read(Common.NUM_QUEUES, 2) == 2
    assert vp.read(Common.MSIX_CONFIG, 2) == 0xFFFF
    vp.write(Common.DEVICE_FEATURE_SELECT, 4, 0)
    low = vp.read(Common.DEVICE_FEATURE, 4)
    vp.write(Common.DEVICE_FEATURE_SELECT, 4, 1)
    high = vp.read(Common.DEVICE_FEATURE, 4)
    offered = low | high << 32
    assert offered & VIRTIO_F_VERSION_1 and offered & FEATURE_X and offered & VIRTIO_F_EVENT_IDX
    assert negotiate(vp) & DeviceStatus.FEATURES_OK
    assert dev.acked == VIRTIO_F_VERSION_1 | FEATURE_X
    vp.write(Common.DRIVER_FEATURE_SELECT, 4, 0)
    vp.write(Common.DRIVER_FEATURE, 4, 0)  # ignored after FEATURES_OK
    assert vp.read(Common.DRIVER_FEATURE, 4) == FEATURE_X


def test_features_ok_refused() -> None:
    vp, dev, _, _ = make()
    assert not negotiate(vp, VIRTIO_F_VERSION_1 | 1 << 7) & DeviceStatus.FEATURES_OK  # unknown bit
    assert dev.acked is None
    vp.write(Common.DEVICE_STATUS, 1, 0)
    assert not negotiate(vp, FEATURE_X) & DeviceStatus.FEATURES_OK  # no VERSION_1
    vp.write(Common.DEVICE_STATUS, 1, 0)
    assert negotiate(vp) & DeviceStatus.FEATURES_OK


def build_chain(ram: bytearray, avail_idx: int) -> None:
    ram[0x5000:0x5004] = b"ping"
    struct.pack_into("<QIHH", ram, 0x1000, 0x5000, 4, 1, 1)
    struct.pack_into("<QIHH", ram, 0x1010, 0x6000, 4, VIRTQ_DESC_F_WRITE, 0)
    struct.pack_into("<H", ram, 0x2004 + 2 * ((avail_idx - 1) % 16), 0)
    struct.pack_into("<H", ram, 0x2002, avail_idx)


def test_queue_setup_notify_isr_and_irq() -> None:
    vp, dev, irq, ram = make()
    negotiate(vp)
    vp.write(Common.QUEUE_SELECT, 2, 1)
    assert vp.read(Common.QUEUE_SIZE, 2) == 16
    assert vp.read(Common.QUEUE_NOTIFY_OFF, 2) == 1
    setup_queue(vp, 1, 16, 0x1000, 0x2000, 0x3000)
    assert vp.read(Common.QUEUE_ENABLE, 2) == 1
    assert vp.read(Common.QUEUE_DESC, 4) == 0x1000 and vp.read(Common.QUEUE_DEVICE, 4) == 0x3000
    driver_ok(vp)
    build_chain(ram, 1)
    vp.write(NOTIFY_OFFSET + 4 * 1, 2, 1)
    assert dev.notified == [1]
    assert ram[0x6000:0x6004] == b"ping"
    assert struct.unpack_from("<HHII", ram, 0x3000) == (0, 1, 0, 4)
    assert irq.level and vp.irq_level
    assert vp.config_read(Cfg.STATUS, 2) & 0x8
    assert vp.read(ISR, 1) == 1
    assert not irq.level
    assert vp.read(ISR, 1) == 0
    # A queue that was never enabled is not notified.
    vp.write(NOTIFY_OFFSET, 2, 0)
    assert dev.notified == [1]


def test_device_config_and_generation() -> None:
    vp, _, irq, _ = make()
    assert vp.read(DEVCFG, 4) == 0x44332211
    vp.write(DEVCFG + 1, 1, 0xAB)
    assert vp.read(DEVCFG, 2) == 0xAB11
    negotiate(vp)
    driver_ok(vp)
    vp.config_changed()
    assert vp.read(Common.CONFIG_GENERATION, 1) == 1
    assert irq.level and vp.read(ISR, 1) == 2 and not irq.level


def test_device_failure_marks_needs_reset() -> None:
    vp, dev, irq, ram = make()
    negotiate(vp)
    setup_queue(vp, 0, 16, 0x1000, 0x2000, 0x3000)
    driver_ok(vp)
    dev.fail = RuntimeError("device bug")
    build_chain(ram, 1)
    vp.write(NOTIFY_OFFSET, 2, 0)
    assert vp.read(Common.DEVICE_STATUS, 1) & DeviceStatus.DEVICE_NEEDS_RESET
    assert irq.level and vp.read(ISR, 1) == 2
    dev.fail = None
    vp.write(NOTIFY_OFFSET, 2, 0)
    assert dev.notified == [0]  # ignored while broken
    vp.write(Common.DEVICE_STATUS, 1, 0)
    assert vp.read(Common.DEVICE_STATUS, 1) == 0 and dev.resets == 1 and not vp.broken
    assert vp.read(Common.QUEUE_ENABLE, 2) == 0


def test_bad_queue_marks_needs_reset() -> None:
    vp, dev, _, ram = make()
    negotiate(vp)
    setup_queue(vp, 0, 16, 0x1000, 0x2000, 0x3000)
    driver_ok(vp)
    struct.pack_into("<H", ram, 0x2004, 99)  # head out of range
    struct.pack_into("<H", ram, 0x2002, 1)
    vp.write(NOTIFY_OFFSET, 2, 0)
    assert vp.broken and vp.read(Common.DEVICE_STATUS, 1) & DeviceStatus.DEVICE_NEEDS_RESET


def test_bad_queue_configuration_marks_needs_reset() -> None:
    vp, _, _, _ = make()
    negotiate(vp)
    setup_queue(vp, 0, 12, 0x1000, 0x2000, 0x3000)  # not a power of two
    assert vp.broken and vp.read(Common.QUEUE_ENABLE, 2) == 0


def test_pci_cfg_window() -> None:
    vp, _, _, _ = make()
    cap = vp.pci_cfg_cap
    vp.config_write(cap + 4, 1, BAR_INDEX)
    vp.config_write(cap + 8, 4, Common.NUM_QUEUES)
    vp.config_write(cap + 12, 4, 2)
    assert vp.config_read(cap + 16, 4) & 0xFFFF == 2
    vp.config_write(cap + 8, 4, Common.QUEUE_SELECT)
    vp.config_write(cap + 16, 4, 1)
    assert vp.read(Common.QUEUE_SELECT, 2) == 1


# ---------------------------------------------------------------------- fuzzing

ACCESS = st.tuples(
    st.booleans(),
    st.sampled_from([0, 0x1000, 0x2000, 0x3000]).flatmap(lambda base: st.integers(base, base + 0x48)),
    st.sampled_from([1, 2, 4]),
    st.integers(0, 0xFFFFFFFF),
)


@settings(max_examples=200, deadline=None)
@given(accesses=st.lists(ACCESS, max_size=80), ram=st.binary(max_size=0x200))
def test_fuzz_register_interface(accesses: list[tuple[bool, int, int, int]], ram: bytes) -> None:
    """Random BAR accesses (with random guest memory behind the queues) never raise."""
    vp, dev, irq, mem = make(0x1000)
    mem[: len(ram)] = ram
    for is_write, offset, size, value in accesses:
        value &= (1 << (8 * size)) - 1
        if is_write:
            vp.write(offset, size, value)
        else:
            assert 0 <= vp.read(offset, size) < 1 << (8 * size)
    assert irq.level == vp.irq_level or vp.command & 0x400


@settings(max_examples=100, deadline=None)
@given(
    accesses=st.lists(
        st.tuples(st.booleans(), st.integers(0, 63), st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFFFFFF)),
        max_size=60,
    )
)
def test_fuzz_config_space(accesses: list[tuple[bool, int, int, int]]) -> None:
    """Random configuration cycles (the PCI_CFG window included) never change what the device is.

    Identity, class, header type, subsystem IDs and the capability chain are
    read-only; every read fits its size and agrees with the raw bytes.
    """
    vp, _, _, _ = make(0x1000)
    identity = [vp.get(reg, 4) for reg in (0x00, 0x08, 0x2C)] + [vp.config[0x0E], vp.config[0x3D]]
    caps = list(vp.capabilities())
    cap_bytes = {at: bytes(vp.config[at : at + 2]) for at, _ in caps}
    for is_write, dword, size, value in accesses:
        reg = dword * 4 + (0 if size == 4 else (dword % (4 // size)) * size)
        if is_write:
            vp.config_write(reg, size, value & ((1 << (8 * size)) - 1))
        else:
            got = vp.config_read(reg, size)
            assert 0 <= got < 1 << (8 * size)
            if reg >= 0x40:  # outside the header, reads have no side effects: the raw bytes
                assert got == vp.get(reg, size)
    assert [vp.get(reg, 4) for reg in (0x00, 0x08, 0x2C)] + [vp.config[0x0E], vp.config[0x3D]] == identity
    assert list(vp.capabilities()) == caps
    assert {at: bytes(vp.config[at : at + 2]) for at, _ in caps} == cap_bytes

