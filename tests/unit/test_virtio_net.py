"""virtio-net: header handling on transmit and receive, config space, bounds, malformed chains."""

from __future__ import annotations

import struct
import threading

import pytest

from kvmpy.vmm.virtio.net import (
    HDR_LEN,
    MAX_PACKET_LEN,
    MAX_PENDING_FRAMES,
    VIRTIO_F_VERSION_1,
    VIRTIO_NET_F_MAC,
    VIRTIO_NET_F_STATUS,
    VIRTIO_NET_S_LINK_UP,
    VirtioNet,
)
from kvmpy.vmm.virtio.queue import VirtqueueError
from tests.unit.virtio_fakes import CountingInterrupt, FakeGuest, FakeQueue

MAC = bytes.fromhex("525400123456")
HDR = bytes(HDR_LEN)
ETH = bytes.fromhex("ffffffffffff") + MAC + b"\x08\x06" + bytes(range(46))  # a 60-byte frame


class RecordingBackend:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.receiver = None

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def start(self, receiver) -> None:  # type: ignore[no-untyped-def]
        self.receiver = receiver

    def close(self) -> None:
        pass


def make() -> tuple[VirtioNet, RecordingBackend, FakeGuest]:
    backend = RecordingBackend()
    dev = VirtioNet(backend, MAC)
    dev.ack_features(dev.features | (1 << VIRTIO_F_VERSION_1))
    dev.start()
    return dev, backend, FakeGuest()


def rx_header(hdr: bytes) -> tuple[int, int, int, int, int, int, int]:
    return struct.unpack("<BBHHHHH", hdr)


def test_identity_and_config() -> None:
    dev, _, _ = make()
    assert dev.device_id == 1 and dev.num_queues == 2
    assert dev.features == (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS)
    assert bytes(dev.config_read(i, 1) for i in range(6)) == MAC
    assert dev.config_read(0, 4) == int.from_bytes(MAC[:4], "little")
    assert dev.config_read(4, 2) == int.from_bytes(MAC[4:], "little")
    assert dev.config_read(6, 2) == VIRTIO_NET_S_LINK_UP
    assert dev.config_read(8, 2) == 0 and dev.config_read(100, 4) == 0
    dev.config_write(0, 4, 0xDEADBEEF)  # read-only
    assert bytes(dev.config_read(i, 1) for i in range(6)) == MAC


def test_bad_mac() -> None:
    with pytest.raises(ValueError):
        VirtioNet(RecordingBackend(), b"\x00" * 5)


def test_transmit_strips_header() -> None:
    dev, backend, guest = make()
    vq = FakeQueue(
        [
            guest.chain(readable=[HDR, ETH]),  # header in its own buffer, as Linux does
            guest.chain(readable=[HDR + ETH[:20], ETH[20:]]),  # header and data sharing a buffer
            guest.chain(readable=[HDR[:5], HDR[5:] + ETH]),  # header split across buffers
        ]
    )
    irq = CountingInterrupt()
    dev.queue_notify(1, vq, irq)  # type: ignore[arg-type]
    assert backend.sent == [ETH, ETH, ETH]
    assert [n for _, n in vq.used] == [0, 0, 0] and irq.count == 1
    assert dev.tx_frames == 3


def test_transmit_header_only_sends_nothing() -> None:
    dev, backend, guest = make()
    vq = FakeQueue([guest.chain(readable=[HDR])])
    dev.queue_notify(1, vq, CountingInterrupt())  # type: ignore[arg-type]
    assert backend.sent == [] and len(vq.used) == 1


@pytest.mark.parametrize(
    "readable, writable",
    [
        ([HDR[:11]], []),  # shorter than the header
        ([HDR, ETH], [4]),  # device-writable part
        ([HDR, bytes(MAX_PACKET_LEN - HDR_LEN + 1)], []),  # too long
    ],
)
def test_transmit_malformed(readable: list[bytes], writable: list[int]) -> None:
    dev, backend, guest = make()
    vq = FakeQueue([guest.chain(readable=readable, writable=writable)])
    with pytest.raises(VirtqueueError):
        dev.queue_notify(1, vq, CountingInterrupt())  # type: ignore[arg-type]
    assert backend.sent == []


def test_transmit_largest_frame() -> None:
    dev, backend, guest = make()
    big = bytes(range(256)) * ((MAX_PACKET_LEN - HDR_LEN) // 256) + b"x" * ((MAX_PACKET_LEN - HDR_LEN) % 256)
    vq = FakeQueue([guest.chain(readable=[HDR, big])])
    dev.queue_notify(1, vq, CountingInterrupt())  # type: ignore[arg-type]
    assert backend.sent == [big]


def test_receive_prepends_header() -> None:
    dev, backend, guest = make()
    woken: list[bool] = []
    dev.on_input = lambda: woken.append(True)
    assert backend.receiver is not None
    backend.receiver(ETH)
    assert dev.pending_input() and woken == [True]
    vq = FakeQueue()
    irq = CountingInterrupt()
    assert not dev.deliver(vq, irq)  # type: ignore[arg-type]
    assert dev.pending_input() and irq.count == 0
    chain = guest.chain(writable=[HDR_LEN + 1518])
    spare = guest.chain(writable=[HDR_LEN + 1518])
    vq.add(chain)
    vq.add(spare)
    dev.queue_notify(0, vq, irq)  # type: ignore[arg-type]
    assert irq.count == 1 and vq.used == [(chain, HDR_LEN + len(ETH))]
    data = guest.writable_bytes(chain)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers = rx_header(data[:HDR_LEN])
    assert (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) == (0, 0, 0, 0, 0, 0)
    assert num_buffers == 1
    assert data[HDR_LEN : HDR_LEN + len(ETH)] == ETH
    assert vq.available == [spare]  # not returned empty: waits for traffic
    assert not dev.pending_input() and dev.rx_frames == 1


def test_receive_scatters_over_buffers() -> None:
    dev, backend, guest = make()
    dev.receive(ETH)
    chain = guest.chain(writable=[HDR_LEN, 10, 100])  # header, then the frame split
    vq = FakeQueue([chain])
    assert dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    assert vq.used == [(chain, HDR_LEN + len(ETH))]
    assert guest.writable_bytes(chain)[HDR_LEN : HDR_LEN + len(ETH)] == ETH


def test_receive_legacy_header() -> None:
    dev, _, guest = make()
    dev.ack_features(dev.features)  # no VERSION_1: 10-byte header
    dev.receive(ETH)
    chain = guest.chain(writable=[200])
    vq = FakeQueue([chain])
    dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    assert vq.used == [(chain, 10 + len(ETH))]
    assert guest.writable_bytes(chain)[: 10 + len(ETH)] == bytes(10) + ETH


def test_receive_frame_too_big_for_buffer_is_dropped() -> None:
    dev, _, guest = make()
    dev.receive(b"B" * 2000)
    dev.receive(ETH)
    chain = guest.chain(writable=[HDR_LEN + 1518])
    vq = FakeQueue([chain])
    assert dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    assert vq.used == [(chain, HDR_LEN + len(ETH))] and dev.dropped_rx_frames == 1


def test_receive_buffer_kept_when_nothing_fits() -> None:
    dev, _, guest = make()
    dev.receive(b"B" * 2000)
    chain = guest.chain(writable=[HDR_LEN + 1518])
    vq = FakeQueue([chain])
    irq = CountingInterrupt()
    assert not dev.deliver(vq, irq)  # type: ignore[arg-type]
    assert vq.used == [] and vq.available == [] and irq.count == 0 and dev.dropped_rx_frames == 1
    dev.receive(ETH)
    assert dev.deliver(FakeQueue(), irq)  # type: ignore[arg-type]  # the held buffer is used
    assert irq.count == 1


def test_reset_forgets_held_buffer_and_frames() -> None:
    dev, _, guest = make()
    dev.receive(b"B" * 2000)
    dev.deliver(FakeQueue([guest.chain(writable=[100])]), CountingInterrupt())  # type: ignore[arg-type]
    dev.receive(ETH)
    dev.reset()
    assert not dev.pending_input()
    dev.receive(ETH)
    fresh = guest.chain(writable=[200])
    vq = FakeQueue([fresh])
    dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    assert vq.used == [(fresh, HDR_LEN + len(ETH))]


@pytest.mark.parametrize("writable", [[], [HDR_LEN - 1]])
def test_receive_malformed_buffer(writable: list[int]) -> None:
    dev, _, guest = make()
    dev.receive(ETH)
    with pytest.raises(VirtqueueError):
        dev.deliver(FakeQueue([guest.chain(writable=writable)]), CountingInterrupt())  # type: ignore[arg-type]


def test_receive_readable_part_is_malformed() -> None:
    dev, _, guest = make()
    dev.receive(ETH)
    with pytest.raises(VirtqueueError):
        dev.deliver(FakeQueue([guest.chain(readable=[b"x"], writable=[200])]), CountingInterrupt())  # type: ignore[arg-type]


def test_receive_queue_bounded() -> None:
    dev, _, guest = make()
    for i in range(MAX_PENDING_FRAMES + 10):
        dev.receive(ETH + struct.pack(">I", i))
    dev.receive(b"")
    dev.receive(bytes(MAX_PACKET_LEN))  # longer than any frame
    assert dev.dropped_rx_frames == 12
    vq = FakeQueue([guest.chain(writable=[200]) for _ in range(MAX_PENDING_FRAMES + 5)])
    dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    assert len(vq.used) == MAX_PENDING_FRAMES
    last, n = vq.used[-1]
    assert guest.writable_bytes(last)[HDR_LEN:n][-4:] == struct.pack(
        ">I", MAX_PENDING_FRAMES - 1
    )  # newest dropped


def test_receive_from_another_thread() -> None:
    dev, _, guest = make()
    frames = [ETH + struct.pack(">H", i) for i in range(200)]
    t = threading.Thread(target=lambda: [dev.receive(f) for f in frames])
    t.start()
    t.join()
    vq = FakeQueue([guest.chain(writable=[128]) for _ in range(200)])
    dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    assert [guest.writable_bytes(c)[HDR_LEN:n] for c, n in vq.used] == frames
