"""Split virtqueues over hand-built rings in a bytearray guest memory."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.virtio.queue import (
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    VRING_AVAIL_F_NO_INTERRUPT,
    DescriptorChain,
    GuestMemoryError,
    RamView,
    Virtqueue,
    VirtqueueError,
    vring_need_event,
)

MEM_BYTES = 0x10000
DESC, AVAIL, USED = 0x1000, 0x2000, 0x3000
SIZE = 8


class Ring:
    """A driver's view of one split virtqueue in a bytearray."""

    def __init__(self, size: int = SIZE, *, event_idx: bool = False) -> None:
        self.ram = bytearray(MEM_BYTES)
        self.mem = RamView(memoryview(self.ram))
        self.size = size
        self.avail_idx = 0
        self.vq = Virtqueue(size, DESC, AVAIL, USED, self.mem, event_idx)

    def desc(
        self, index: int, addr: int, length: int, flags: int = 0, nxt: int = 0, table: int = DESC
    ) -> None:
        struct.pack_into("<QIHH", self.ram, table + 16 * index, addr, length, flags, nxt)

    def offer(self, head: int) -> None:
        struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        struct.pack_into("<H", self.ram, AVAIL + 2, self.avail_idx)

    def used(self) -> tuple[int, list[tuple[int, int]]]:
        idx = struct.unpack_from("<H", self.ram, USED + 2)[0]
        elems = [struct.unpack_from("<II", self.ram, USED + 4 + 8 * i) for i in range(self.size)]
        return idx, elems

    def set_used_event(self, value: int) -> None:
        struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * self.size, value)

    def avail_event(self) -> int:
        return struct.unpack_from("<H", self.ram, USED + 4 + 8 * self.size)[0]


def test_ram_view_bounds() -> None:
    mem = RamView(bytearray(16), base_gpa=0x100)
    mem.write(0x10E, b"ab")
    assert mem.read(0x10E, 2) == b"ab"
    assert mem.contains(0x100, 16) and not mem.contains(0x100, 17) and not mem.contains(0xFF, 1)
    for gpa, size in ((0xFF, 1), (0x10F, 2), (0x100, -1)):
        with pytest.raises(GuestMemoryError):
            mem.read(gpa, size)
    with pytest.raises(GuestMemoryError):
        mem.write(0x10F, b"xy")


def test_simple_chain_read_write_and_used() -> None:
    r = Ring()
    r.ram[0x5000:0x5005] = b"hello"
    r.desc(2, 0x5000, 5, VIRTQ_DESC_F_NEXT, 5)
    r.desc(5, 0x6000, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1)
    r.desc(1, 0x7000, 8, VIRTQ_DESC_F_WRITE)
    r.offer(2)
    assert r.vq.pending() == 1
    chain = r.vq.pop()
    assert chain is not None
    assert chain.head == 2
    assert chain.readable == [(0x5000, 5)]
    assert chain.writable == [(0x6000, 4), (0x7000, 8)]
    assert chain.read_all() == b"hello"
    assert chain.write_into(b"0123456789abcdefXYZ") == 12
    assert r.ram[0x6000:0x6004] == b"0123" and r.ram[0x7000:0x7008] == b"456789ab"
    assert r.vq.pop() is None
    r.vq.push(chain, 100)  # clamped to the writable capacity
    idx, elems = r.used()
    assert idx == 1 and elems[0] == (2, 12)
    assert r.vq.needs_notification()
    assert not r.vq.needs_notification()  # nothing new since


def test_indirect_chain() -> None:
    r = Ring()
    table = 0x8000
    r.desc(0, 0x5000, 3, VIRTQ_DESC_F_NEXT, 2, table=table)
    r.desc(2, 0x5100, 4, VIRTQ_DESC_F_NEXT, 1, table=table)
    r.desc(1, 0x6000, 16, VIRTQ_DESC_F_WRITE, table=table)
    r.desc(3, table, 16 * 3, VIRTQ_DESC_F_INDIRECT)
    r.offer(3)
    chain = r.vq.pop()
    assert chain is not None and chain.head == 3
    assert chain.readable == [(0x5000, 3), (0x5100, 4)]
    assert chain.writable == [(0x6000, 16)]


@pytest.mark.parametrize(
    "setup",
    [
        "head_out_of_range",
        "next_out_of_range",
        "loop",
        "nested_indirect",
        "indirect_with_next",
        "indirect_bad_len",
        "indirect_loop",
        "zero_len",
        "outside_memory",
        "read_after_write",
        "too_many_bytes",
        "avail_idx_jump",
    ],
)
def test_malformed_chains_raise_virtqueue_error(setup: str) -> None:
    r = Ring()
    table = 0x8000
    head = 0
    match setup:
        case "head_out_of_range":
            head = SIZE
        case "next_out_of_range":
            r.desc(0, 0x5000, 1, VIRTQ_DESC_F_NEXT, SIZE)
        case "loop":
            r.desc(0, 0x5000, 1, VIRTQ_DESC_F_NEXT, 1)
            r.desc(1, 0x5000, 1, VIRTQ_DESC_F_NEXT, 0)
        case "nested_indirect":
            r.desc(0, table, 16, VIRTQ_DESC_F_INDIRECT)
            r.desc(0, table + 0x100, 16, VIRTQ_DESC_F_INDIRECT, table=table)
        case "indirect_with_next":
            r.desc(0, table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1)
            r.desc(0, 0x5000, 1, table=table)
        case "indirect_bad_len":
            r.desc(0, table, 17, VIRTQ_DESC_F_INDIRECT)
        case "indirect_loop":
            r.desc(0, table, 32, VIRTQ_DESC_F_INDIRECT)
            r.desc(0, 0x5000, 1, VIRTQ_DESC_F_NEXT, 1, table=table)
            r.desc(1, 0x5000, 1, VIRTQ_DESC_F_NEXT, 0, table=table)
        case "zero_len":
            r.desc(0, 0x5000, 0)
        case "outside_memory":
            r.desc(0, MEM_BYTES - 4, 8)
        case "read_after_write":
            r.desc(0, 0x5000, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1)
            r.desc(1, 0x5000, 1)
        case "too_many_bytes":
            r.desc(0, 0, 0xFFFFFFFF)
        case "avail_idx_jump":
            struct.pack_into("<H", r.ram, AVAIL + 2, SIZE + 1)
    if setup != "avail_idx_jump":
        r.offer(head)
    with pytest.raises(VirtqueueError):
        r.vq.pop()


@pytest.mark.parametrize(
    ("size", "desc", "avail", "used"),
    [
        (0, DESC, AVAIL, USED),
        (6, DESC, AVAIL, USED),
        (65536, DESC, AVAIL, USED),
        (8, DESC + 8, AVAIL, USED),
        (8, DESC, AVAIL + 1, USED),
        (8, DESC, AVAIL, USED + 2),
        (8, DESC, AVAIL, MEM_BYTES - 8),
    ],
)
def test_bad_configuration(size: int, desc: int, avail: int, used: int) -> None:
    with pytest.raises(VirtqueueError):
        Virtqueue(size, desc, avail, used, RamView(bytearray(MEM_BYTES)), False)


def test_no_interrupt_flag_without_event_idx() -> None:
    r = Ring()
    r.desc(0, 0x5000, 1)
    struct.pack_into("<H", r.ram, AVAIL, VRING_AVAIL_F_NO_INTERRUPT)
    r.offer(0)
    chain = r.vq.pop()
    assert chain is not None
    r.vq.push(chain, 0)
    assert not r.vq.needs_notification()


def test_event_idx_suppression_and_avail_event() -> None:
    r = Ring(event_idx=True)
    for i in range(4):
        r.desc(i, 0x5000 + i, 1)
        r.offer(i)
    r.set_used_event(2)  # driver wants an interrupt once used idx passes 2 (i.e. reaches 3)
    chains = []
    for expected_avail_event in (1, 2, 3, 4):
        chain = r.vq.pop()
        assert chain is not None
        chains.append(chain)
        assert r.avail_event() == expected_avail_event
    decisions = []
    for chain in chains:
        r.vq.push(chain, 0)
        decisions.append(r.vq.needs_notification())
    assert decisions == [False, False, True, False]
    assert r.vq.pop() is None and r.avail_event() == 4


def test_vring_need_event_wraps() -> None:
    assert vring_need_event(0xFFFF, 0x0001, 0xFFFE)
    assert not vring_need_event(0x0002, 0x0001, 0xFFFE)


def test_index_wraparound() -> None:
    r = Ring(size=4)
    r.desc(0, 0x5000, 1)
    start = 0xFFFE
    r.avail_idx = start
    r.vq.last_avail_idx = start
    r.vq.used_idx = start
    struct.pack_into("<H", r.ram, AVAIL + 2, start)
    for _ in range(4):
        r.offer(0)
    assert r.vq.pending() == 4
    for _ in range(4):
        chain = r.vq.pop()
        assert chain is not None
        r.vq.push(chain, 0)
    assert r.vq.last_avail_idx == 2 and r.vq.used_idx == 2
    assert r.used()[0] == 2
    assert r.vq.pop() is None


# ---------------------------------------------------------------------- fuzzing


class TracingMemory(RamView):
    """A RamView that fails the test if anything outside RAM is ever touched."""

    def read(self, gpa: int, size: int) -> bytes:
        assert self.contains(gpa, size), (gpa, size)
        return super().read(gpa, size)

    def write(self, gpa: int, data: bytes) -> None:
        assert self.contains(gpa, len(data)), (gpa, len(data))
        super().write(gpa, data)


FUZZ_MEM = 0x400


@settings(max_examples=300, deadline=None)
@given(
    ram=st.binary(min_size=FUZZ_MEM, max_size=FUZZ_MEM),
    size_log2=st.integers(0, 5),
    desc=st.integers(0, FUZZ_MEM),
    avail=st.integers(0, FUZZ_MEM),
    used=st.integers(0, FUZZ_MEM),
    event_idx=st.booleans(),
    pops=st.integers(1, 40),
)
def test_fuzz_queue_parser(
    ram: bytes, size_log2: int, desc: int, avail: int, used: int, event_idx: bool, pops: int
) -> None:
    mem = TracingMemory(bytearray(ram))
    try:
        vq = Virtqueue(1 << size_log2, desc, avail, used, mem, event_idx)
    except VirtqueueError:
        return
    try:
        for _ in range(pops):
            chain = vq.pop()
            if chain is None:
                break
            for gpa, length in chain.readable + chain.writable:
                assert mem.contains(gpa, length)
            chain.read_all()
            chain.write_into(b"\xaa" * 64)
            vq.push(chain, 64)
            vq.needs_notification()
    except VirtqueueError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    descs=st.lists(
        st.tuples(
            st.integers(0, 0x600),
            st.integers(0, 0x200),
            st.integers(0, 7),
            st.integers(0, 10),
        ),
        min_size=8,
        max_size=8,
    ),
    heads=st.lists(st.integers(0, 9), min_size=1, max_size=8),
    indirect=st.lists(
        st.tuples(st.integers(0, 0x600), st.integers(0, 0x200), st.integers(0, 7), st.integers(0, 6)),
        max_size=6,
    ),
)
def test_fuzz_structured_chains(
    descs: list[tuple[int, int, int, int]],
    heads: list[int],
    indirect: list[tuple[int, int, int, int]],
) -> None:
    """Plausible-looking tables (small addresses, mixed flags) reach deeper parser paths."""
    r = Ring()
    r.mem = TracingMemory(memoryview(r.ram))
    r.vq = Virtqueue(SIZE, DESC, AVAIL, USED, r.mem, True)
    for i, (addr, length, flags, nxt) in enumerate(descs):
        if flags & VIRTQ_DESC_F_INDIRECT:
            addr, length = 0x8000, length & ~0xF
        r.desc(i, 0x4000 + addr, length, flags, nxt)
    for i, (addr, length, flags, nxt) in enumerate(indirect):
        r.desc(i, 0x4000 + addr, length, flags, nxt, table=0x8000)
    for head in heads:
        r.offer(head)
    try:
        while (chain := r.vq.pop()) is not None:
            assert chain.readable or chain.writable
            r.vq.push(chain, chain.write_into(chain.read_all()))
    except VirtqueueError:
        pass


# -- views: zero-copy slices of a chain's buffers -------------------------------------------


@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    start=st.integers(0, 330),
    length=st.integers(0, 330),
)
def test_views_are_exactly_the_asked_slice_of_the_buffers(sizes: list[int], start: int, length: int) -> None:
    ram = bytearray(4096)
    mem = RamView(ram)
    buffers, gpa = [], 64
    for i, size in enumerate(sizes):
        ram[gpa : gpa + size] = bytes((i * 37 + j) & 0xFF for j in range(size))
        buffers.append((gpa, size))
        gpa += size + 8  # gaps between buffers, as in real chains
    concat = b"".join(bytes(ram[g : g + n]) for g, n in buffers)
    chain = DescriptorChain(0, mem, readable=buffers, writable=buffers)
    for views in (chain.readable_views(start, length), chain.writable_views(start, length)):
        assert b"".join(views) == concat[start : start + length]
        assert all(len(v) > 0 for v in views)
    # views alias guest memory: writing through them changes guest RAM
    views = chain.writable_views(start, length)
    for v in views:
        v[:] = b"\xee" * len(v)
    after = b"".join(bytes(ram[g : g + n]) for g, n in buffers)
    expected = bytearray(concat)
    expected[start : start + length] = b"\xee" * len(concat[start : start + length])
    assert after == bytes(expected)


def test_view_outside_ram_raises() -> None:
    mem = RamView(bytearray(4096))
    for gpa, size in ((4090, 7), (-1, 2), (0, -1), (4096, 1)):
        with pytest.raises(GuestMemoryError):
            mem.view(gpa, size)
    assert len(mem.view(4095, 1)) == 1
