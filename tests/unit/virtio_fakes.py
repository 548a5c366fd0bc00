"""Test doubles for virtio device models: guest RAM, chains and a queue without a transport."""

from __future__ import annotations

from collections.abc import Sequence

from kvmpy.vmm.virtio.queue import DescriptorChain, RamView


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
