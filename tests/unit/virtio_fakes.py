"""Test doubles for virtio: guest RAM, chains and a queue without a transport, an echo device model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kvmpy.vmm.virtio.queue import DescriptorChain, RamView, Virtqueue


class FakeGuest:
    """A flat guest RAM with a bump allocator for request buffers."""

    def __init__(self, size: int = 1 << 22) -> None:
        self.ram = bytearray(size)
        self.mem = RamView(self.ram)
        self._next = 0x1000
        self._head = 0

    def alloc(self, length: int, fill: bytes = b"") -> int:
        gpa = self._next
        if gpa + length > len(self.ram):
            raise MemoryError("fake guest RAM exhausted")
        self._next = (gpa + length + 15) & ~15
        self.ram[gpa : gpa + len(fill)] = fill
        return gpa

    def chain(
        self, readable: Sequence[bytes] = (), writable: Sequence[int] = (), poison: int = 0xAA
    ) -> DescriptorChain:
        """A chain with readable buffers holding `readable` and writable buffers of the given lengths.

        Writable buffers start filled with `poison` so tests can see what the device wrote.
        """
        self._head += 1
        r = [(self.alloc(len(b), b), len(b)) for b in readable]
        w = [(self.alloc(n, bytes([poison]) * n), n) for n in writable]
        return DescriptorChain(head=self._head, mem=self.mem, readable=r, writable=w)

    def writable_bytes(self, chain: DescriptorChain) -> bytes:
        return b"".join(bytes(self.ram[gpa : gpa + n]) for gpa, n in chain.writable)


class FakeQueue:
    """Hands out queued chains from `pop`, records `push`es."""

    def __init__(self, chains: list[DescriptorChain] | None = None) -> None:
        self.available: list[DescriptorChain] = list(chains or [])
        self.used: list[tuple[DescriptorChain, int]] = []

    def add(self, chain: DescriptorChain) -> None:
        self.available.append(chain)

    def pop(self) -> DescriptorChain | None:
        return self.available.pop(0) if self.available else None

    def push(self, chain: DescriptorChain, written_len: int) -> None:
        self.used.append((chain, written_len))

    def needs_notification(self) -> bool:
        return True


class CountingInterrupt:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


class EchoDevice:
    """A two-queue device model for transport tests: copies each chain's readable bytes into its writable.

    Records the queues notified, the features acknowledged and the resets;
    a notification raises `fail` when it is set. Subclasses give the device
    ID, the features and the configuration space.
    """

    device_id = 0
    features = 0
    num_queues = 2
    queue_max_size = 16

    def __init__(self) -> None:
        self.notified: list[int] = []
        self.acked: int | None = None
        self.resets = 0
        self.fail: Exception | None = None

    def config_read(self, offset: int, size: int) -> int:
        return 0

    def config_write(self, offset: int, size: int, value: int) -> None:
        pass

    def ack_features(self, features: int) -> None:
        self.acked = features

    def queue_notify(self, index: int, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        self.notified.append(index)
        if self.fail is not None:
            raise self.fail
        while (chain := vq.pop()) is not None:
            vq.push(chain, chain.write_into(chain.read_all()))
        interrupt()

    def reset(self) -> None:
        self.resets += 1
