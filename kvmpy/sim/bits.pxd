# cython: language_level=3
# Bit operations every simulated core needs, whatever its instruction set
# (MIPS clz/clo, PowerPC cntlzw). Inline, so each core's interpreter compiles
# them into its own code; nothing here has state or knows an architecture.

from libc.stdint cimport uint32_t


cdef inline uint32_t clz32(uint32_t v) noexcept nogil:
    """The number of leading zero bits of `v` (32 for 0)."""
    cdef uint32_t n = 0
    if v == 0:
        return 32
    while not (v & 0x80000000U):
        v <<= 1
        n += 1
    return n
