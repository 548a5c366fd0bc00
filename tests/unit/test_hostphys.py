"""The simulated host's physical address allocation (kvmpy/sim/hostphys.py)."""

from __future__ import annotations

import pytest

from kvmpy.sim.hostphys import HostPhysAllocator, HostPhysExhaustedError

MIB = 1 << 20


def test_ranges_are_congruent_to_the_gpa_and_never_overlap():
    alloc = HostPhysAllocator(space_bytes=4096 * MIB, align=512 * MIB)
    a = alloc.allocate(0x1000_0000, 64 * MIB)
    b = alloc.allocate(0x1000_0000, 64 * MIB)  # the same gpa in a second VM
    c = alloc.allocate(0x0030_0000, 1 * MIB)
    for hpa, gpa in ((a, 0x1000_0000), (b, 0x1000_0000), (c, 0x0030_0000)):
        assert hpa % (512 * MIB) == gpa % (512 * MIB)
    spans = sorted([(a, 64 * MIB), (b, 64 * MIB), (c, 1 * MIB)])
    assert all(s + n <= t for (s, n), (t, _) in zip(spans, spans[1:], strict=False))


def test_exhaustion_is_an_error_and_freeing_makes_room():
    alloc = HostPhysAllocator(space_bytes=1024 * MIB, align=512 * MIB)
    first = alloc.allocate(0, 512 * MIB)
    alloc.allocate(0, 512 * MIB)
    with pytest.raises(HostPhysExhaustedError, match="1 GiB"):
        alloc.allocate(0, 4096)
    alloc.free(first)
    assert alloc.allocate(0, 4096) == first
