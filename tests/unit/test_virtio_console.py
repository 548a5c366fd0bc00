"""virtio-console: transmit to the backend, buffered receive, emergency write."""

from __future__ import annotations

import threading

import pytest

from kvmpy.vmm.serial import BufferSerial
from kvmpy.vmm.virtio.console import CFG_EMERG_WR, MAX_PENDING_INPUT, VirtioConsole
from kvmpy.vmm.virtio.queue import VirtqueueError
from tests.unit.virtio_fakes import CountingInterrupt, FakeGuest, FakeQueue


def make() -> tuple[VirtioConsole, BufferSerial, FakeGuest]:
    backend = BufferSerial()
    dev = VirtioConsole(backend)
    dev.start()
    return dev, backend, FakeGuest()


def test_identity() -> None:
    dev, _, _ = make()
    assert dev.device_id == 3 and dev.num_queues == 2
    assert not dev.features & 0b11  # neither SIZE nor MULTIPORT
    assert dev.config_read(0, 2) == 0 and dev.config_read(2, 2) == 0 and dev.config_read(4, 4) == 0


def test_transmit() -> None:
    dev, backend, guest = make()
    vq = FakeQueue([guest.chain(readable=[b"hello, "]), guest.chain(readable=[b"wor", b"ld\n"])])
    irq = CountingInterrupt()
    dev.queue_notify(1, vq, irq)  # type: ignore[arg-type]
    assert backend.take() == b"hello, world\n"
    assert [n for _, n in vq.used] == [0, 0] and irq.count == 1


def test_transmit_writable_is_malformed() -> None:
    dev, _, guest = make()
    with pytest.raises(VirtqueueError):
        dev.queue_notify(1, FakeQueue([guest.chain(readable=[b"x"], writable=[4])]), CountingInterrupt())  # type: ignore[arg-type]


def test_receive_waits_for_buffers() -> None:
    dev, backend, guest = make()
    woken: list[bool] = []
    dev.on_input = lambda: woken.append(True)
    backend.feed(b"ls -l\n")
    assert dev.pending_input() and woken == [True]
    vq = FakeQueue()
    irq = CountingInterrupt()
    assert not dev.deliver(vq, irq)  # type: ignore[arg-type]
    assert dev.pending_input() and irq.count == 0
    chain = guest.chain(writable=[4])
    chain2 = guest.chain(writable=[16])
    chain3 = guest.chain(writable=[16])
    vq.add(chain)
    vq.add(chain2)
    vq.add(chain3)
    dev.queue_notify(0, vq, irq)  # type: ignore[arg-type]
    assert irq.count == 1
    assert [(c, n) for c, n in vq.used] == [(chain, 4), (chain2, 2)]
    assert guest.writable_bytes(chain) == b"ls -" and guest.writable_bytes(chain2)[:2] == b"l\n"
    assert vq.available == [chain3]  # not returned empty: waits for more input
    assert not dev.pending_input()
    backend.feed(b"q")
    assert dev.deliver(vq, irq)  # type: ignore[arg-type]
    assert vq.used[-1] == (chain3, 1) and irq.count == 2


def test_receive_from_another_thread() -> None:
    dev, backend, guest = make()
    t = threading.Thread(target=lambda: [backend.feed(bytes([65 + i % 26])) for i in range(500)])
    t.start()
    t.join()
    vq = FakeQueue([guest.chain(writable=[256]) for _ in range(4)])
    dev.deliver(vq, CountingInterrupt())  # type: ignore[arg-type]
    got = b"".join(guest.writable_bytes(c)[:n] for c, n in vq.used)
    assert got == bytes(65 + i % 26 for i in range(500))


def test_receive_overflow_dropped() -> None:
    dev, backend, guest = make()
    backend.feed(b"a" * (MAX_PENDING_INPUT + 10))
    assert dev.dropped_bytes == 10
    backend.feed(b"b")
    assert dev.dropped_bytes == 11


def test_receive_readable_is_malformed() -> None:
    dev, backend, guest = make()
    backend.feed(b"x")
    with pytest.raises(VirtqueueError):
        dev.deliver(FakeQueue([guest.chain(readable=[b"y"], writable=[4])]), CountingInterrupt())  # type: ignore[arg-type]


def test_emergency_write() -> None:
    dev, backend, _ = make()
    dev.config_write(CFG_EMERG_WR, 4, ord("!"))
    dev.config_write(0, 2, 80)  # cols: read-only, ignored
    assert backend.take() == b"!"


def test_reset_keeps_input() -> None:
    dev, backend, _ = make()
    backend.feed(b"x")
    dev.reset()
    assert dev.pending_input()
