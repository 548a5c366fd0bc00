# cython: language_level=3, boundscheck=False, wraparound=False
"""The simulated host's physical address space, shared by every simulated core.

A core (MIPS, PowerPC, ...) reads `page_ptr` directly at C level to turn a
host physical address into a host pointer; the hypervisor attaches the VMM's
buffers (memory slots) at host physical addresses it chose. An address with
no RAM attached has no page: the core reports a bus error, as silicon does.
"""

from libc.stdint cimport uint32_t, uint64_t, uintptr_t


cdef class PhysicalMemory:
    """The host physical address space as the simulated hardware sees it.

    Host RAM is attached in 4 KiB pages: `attach(hpa, buffer)` makes the bytes
    of a writable buffer (an mmap) appear at host physical address `hpa`.
    Nothing is copied: the CPU loads and stores straight into the buffer.
    """

    def __cinit__(self, uint64_t size_bytes=1 << 32):
        self.npages = <uint32_t>(size_bytes >> 12)
        self._table = bytearray(self.npages * 8)
        cdef unsigned char[::1] t = self._table
        self.page_ptr = <uint64_t*>&t[0]
        self._keep = {}

    def attach(self, uint64_t hpa, buffer):
        """Attach a writable buffer as RAM at host physical address `hpa`."""
        cdef unsigned char[::1] mv = buffer
        cdef uint64_t size = mv.shape[0]
        if hpa & 0xFFF or size & 0xFFF or size == 0:
            raise ValueError("attach: hpa and size must be non-zero multiples of 4 KiB")
        if (hpa + size) >> 12 > self.npages:
            raise ValueError("attach: range beyond the physical address space")
        cdef uint64_t i
        for i in range(size >> 12):
            if self.page_ptr[(hpa >> 12) + i]:
                raise ValueError("attach: physical range already holds RAM")
        cdef uint64_t base = <uint64_t><uintptr_t>&mv[0]
        for i in range(size >> 12):
            self.page_ptr[(hpa >> 12) + i] = base + (i << 12)
        self._keep[hpa] = (mv, size)

    def detach(self, uint64_t hpa):
        mv, size = self._keep.pop(hpa)
        self.generation += 1
        cdef uint64_t i
        for i in range(<uint64_t>size >> 12):
            self.page_ptr[(hpa >> 12) + i] = 0

    def has_ram(self, uint64_t hpa):
        return (hpa >> 12) < self.npages and self.page_ptr[hpa >> 12] != 0
