# cython: language_level=3
# The PowerPC user instruction set as every kvmpy PowerPC core decodes and
# executes it: instruction fields and the integer results with their XER
# and CR side effects (the opcode numbers are in isa_opcodes.pxi). Nothing
# here knows an implementation (440, POWER), a privilege level or an MMU:
# those live in each core. The functions are inline so a core's interpreter
# compiles them into its own switch. Bit numbers in comments are IBM's
# (0 = MSB). Only 32-bit quantities are handled; a 64-bit Book3S core
# shares the field extraction and opcode numbers and widens the arithmetic.

from libc.stdint cimport uint32_t, int32_t, int16_t, uint64_t, int64_t

# ------------------------------------------------------------ register bits
cdef enum:
    XER_SO = 0x80000000U
    XER_OV = 0x40000000
    XER_CA = 0x20000000
    CR_LT = 8
    CR_GT = 4
    CR_EQ = 2
    CR_SO = 1

# ------------------------------------------------------------ fields
cdef inline uint32_t f_op(uint32_t i) noexcept nogil:
    return i >> 26

cdef inline uint32_t f_rt(uint32_t i) noexcept nogil:      # RT/RS/BO/TO/FRT, bits 6-10
    return (i >> 21) & 31

cdef inline uint32_t f_ra(uint32_t i) noexcept nogil:      # RA/BI, bits 11-15
    return (i >> 16) & 31

cdef inline uint32_t f_rb(uint32_t i) noexcept nogil:      # RB/SH, bits 16-20
    return (i >> 11) & 31

cdef inline uint32_t f_rc(uint32_t i) noexcept nogil:      # Rc/LK, bit 31
    return i & 1

cdef inline uint32_t f_xo(uint32_t i) noexcept nogil:      # X/XL-form extended opcode, bits 21-30
    return (i >> 1) & 0x3FF

cdef inline uint32_t f_mb(uint32_t i) noexcept nogil:
    return (i >> 6) & 31

cdef inline uint32_t f_me(uint32_t i) noexcept nogil:
    return (i >> 1) & 31

cdef inline uint32_t f_crfd(uint32_t i) noexcept nogil:    # BF, bits 6-8
    return (i >> 23) & 7

cdef inline uint32_t f_crfs(uint32_t i) noexcept nogil:    # BFA, bits 11-13
    return (i >> 18) & 7

cdef inline uint32_t f_spr(uint32_t i) noexcept nogil:     # SPR/DCR/TBR numbers: the halves are swapped
    return ((i >> 16) & 0x1F) | ((i >> 6) & 0x3E0)

cdef inline uint32_t f_simm(uint32_t i) noexcept nogil:
    return <uint32_t><int32_t><int16_t>(i & 0xFFFF)

cdef inline uint32_t f_uimm(uint32_t i) noexcept nogil:
    return i & 0xFFFF

cdef inline uint32_t f_bd(uint32_t i) noexcept nogil:      # sign-extended branch displacement of bc
    return <uint32_t><int32_t><int16_t>(i & 0xFFFC)

cdef inline uint32_t f_li(uint32_t i) noexcept nogil:      # sign-extended displacement of b
    cdef uint32_t v = i & 0x03FFFFFC
    if v & 0x02000000:
        v |= 0xFC000000U
    return v

# ------------------------------------------------------------ integer results
cdef inline uint32_t rotl32(uint32_t v, uint32_t n) noexcept nogil:
    n &= 31
    if n == 0:
        return v
    return (v << n) | (v >> (32 - n))

cdef inline uint32_t mask32(uint32_t mb, uint32_t me) noexcept nogil:
    # ones from bit mb to bit me (IBM numbering), wrapping when mb > me
    cdef uint32_t a = 0xFFFFFFFFU >> mb
    cdef uint32_t b = 0xFFFFFFFFU << (31 - me)
    if mb <= me:
        return a & b
    return a | b

cdef inline uint32_t cmp_signed(int32_t a, int32_t b, uint32_t xer) noexcept nogil:
    # a CR field (4 bits) for a signed comparison
    cdef uint32_t c = CR_LT if a < b else (CR_GT if a > b else CR_EQ)
    return c | (1 if xer & XER_SO else 0)

cdef inline uint32_t cmp_unsigned(uint32_t a, uint32_t b, uint32_t xer) noexcept nogil:
    cdef uint32_t c = CR_LT if a < b else (CR_GT if a > b else CR_EQ)
    return c | (1 if xer & XER_SO else 0)

cdef inline uint32_t set_crf(uint32_t cr, uint32_t field, uint32_t value) noexcept nogil:
    cdef uint32_t sh = (7 - field) * 4
    return (cr & ~(<uint32_t>0xF << sh)) | ((value & 0xF) << sh)

cdef inline uint32_t add_xer(uint32_t a, uint32_t b, uint32_t cin, uint32_t xer,
                             int set_ca, int set_ov, uint32_t* res) noexcept nogil:
    # a + b + cin; returns the new XER with CA and/or OV (and sticky SO) updated
    cdef uint64_t wide = <uint64_t>a + <uint64_t>b + <uint64_t>cin
    cdef uint32_t r = <uint32_t>wide
    res[0] = r
    if set_ca:
        xer = (xer | XER_CA) if (wide >> 32) else (xer & ~XER_CA)
    if set_ov:
        if (~(a ^ b) & (a ^ r)) & 0x80000000U:
            xer |= XER_OV | XER_SO
        else:
            xer &= ~XER_OV
    return xer

cdef inline int trap_cond(uint32_t to, uint32_t a, uint32_t b) noexcept nogil:
    # TO bits: 16 lt, 8 gt, 4 eq, 2 logically lt, 1 logically gt
    cdef int32_t sa = <int32_t>a
    cdef int32_t sb = <int32_t>b
    return ((to & 16 and sa < sb) or (to & 8 and sa > sb) or (to & 4 and a == b)
            or (to & 2 and a < b) or (to & 1 and a > b))

cdef inline uint32_t bswap32(uint32_t v) noexcept nogil:
    return ((v >> 24) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24))

cdef inline uint32_t bswap16(uint32_t v) noexcept nogil:
    return ((v >> 8) & 0xFF) | ((v & 0xFF) << 8)
