"""virtio-rng: buffers are filled with random bytes, bounded per request."""

from __future__ import annotations

import pytest

from kvmpy.vmm.virtio.queue import VirtqueueError
from kvmpy.vmm.virtio.rng import MAX_BYTES_PER_REQUEST, VirtioRng
from tests.unit.virtio_fakes import CountingInterrupt, FakeGuest, FakeQueue


def test_identity() -> None:
    dev = VirtioRng()
    assert dev.device_id == 4 and dev.num_queues == 1 and dev.features == 0
    assert dev.config_read(0, 4) == 0
    dev.config_write(0, 4, 1)
    dev.ack_features(0)
    dev.reset()


def test_fills_buffers() -> None:
    guest = FakeGuest()
    dev = VirtioRng()
    chains = [guest.chain(writable=[64]), guest.chain(writable=[16, 48])]
    vq = FakeQueue(chains)
    irq = CountingInterrupt()
    dev.queue_notify(0, vq, irq)  # type: ignore[arg-type]
    assert irq.count == 1
    assert [(c, n) for c, n in vq.used] == [(chains[0], 64), (chains[1], 64)]
    a, b = guest.writable_bytes(chains[0]), guest.writable_bytes(chains[1])
    assert a != b"\xaa" * 64 and b != b"\xaa" * 64 and a != b


def test_bounded_per_request() -> None:
    guest = FakeGuest()
    dev = VirtioRng()
    chain = guest.chain(writable=[MAX_BYTES_PER_REQUEST + 4096])
    vq = FakeQueue([chain])
    dev.queue_notify(0, vq, CountingInterrupt())  # type: ignore[arg-type]
    assert vq.used[0][1] == MAX_BYTES_PER_REQUEST
    assert guest.writable_bytes(chain)[MAX_BYTES_PER_REQUEST:] == b"\xaa" * 4096


def test_readable_buffer_is_malformed() -> None:
    guest = FakeGuest()
    vq = FakeQueue([guest.chain(readable=[b"x"], writable=[8])])
    with pytest.raises(VirtqueueError):
        VirtioRng().queue_notify(0, vq, CountingInterrupt())  # type: ignore[arg-type]


def test_no_work_no_interrupt() -> None:
    irq = CountingInterrupt()
    VirtioRng().queue_notify(0, FakeQueue(), irq)  # type: ignore[arg-type]
    assert irq.count == 0
