# cython: language_level=3
# The PowerPC user instruction set as every kvmpy PowerPC core decodes and
# executes it: instruction fields, the primary and extended opcodes, and the
# integer results with their XER and CR side effects. Nothing here knows an
# implementation (440, POWER), a privilege level or an MMU: those live in
# each core. The functions are inline so a core's interpreter loop compiles
# them into its own switch. Bit numbers in comments are IBM's (0 = MSB).
# Only 32-bit quantities are handled; a 64-bit Book3S core shares the field
# extraction and opcode numbers and widens the arithmetic.

from libc.stdint cimport uint32_t, int32_t, int16_t, uint64_t, int64_t

# ------------------------------------------------------------ primary opcodes
cdef enum:
    OP_TWI = 3
    OP_MULLI = 7
    OP_SUBFIC = 8
    OP_CMPLI = 10
    OP_CMPI = 11
    OP_ADDIC = 12
    OP_ADDIC_RC = 13
    OP_ADDI = 14
    OP_ADDIS = 15
    OP_BC = 16
    OP_SC = 17
    OP_B = 18
    OP_XL = 19
    OP_RLWIMI = 20
    OP_RLWINM = 21
    OP_RLWNM = 23
    OP_ORI = 24
    OP_ORIS = 25
    OP_XORI = 26
    OP_XORIS = 27
    OP_ANDI_RC = 28
    OP_ANDIS_RC = 29
    OP_X = 31
    OP_LWZ = 32
    OP_LWZU = 33
    OP_LBZ = 34
    OP_LBZU = 35
    OP_STW = 36
    OP_STWU = 37
    OP_STB = 38
    OP_STBU = 39
    OP_LHZ = 40
    OP_LHZU = 41
    OP_LHA = 42
    OP_LHAU = 43
    OP_STH = 44
    OP_STHU = 45
    OP_LMW = 46
    OP_STMW = 47
    OP_LFS = 48
    OP_LFSU = 49
    OP_LFD = 50
    OP_LFDU = 51
    OP_STFS = 52
    OP_STFSU = 53
    OP_STFD = 54
    OP_STFDU = 55
    OP_FPS = 59
    OP_FPD = 63

# ------------------------------------------------------------ opcode 19 (XL form), bits 21-30
cdef enum:
    XL_MCRF = 0
    XL_BCLR = 16
    XL_CRNOR = 33
    XL_RFMCI = 38
    XL_RFI = 50
    XL_RFCI = 51
    XL_CRANDC = 129
    XL_ISYNC = 150
    XL_CRXOR = 193
    XL_CRNAND = 225
    XL_CRAND = 257
    XL_CREQV = 289
    XL_CRORC = 417
    XL_CROR = 449
    XL_BCCTR = 528

# ------------------------------------------------------------ opcode 31 (X/XO form), bits 21-30
cdef enum:
    X_CMP = 0
    X_TW = 4
    X_SUBFC = 8
    X_ADDC = 10
    X_MULHWU = 11
    X_MFCR = 19
    X_LWARX = 20
    X_LWZX = 23
    X_SLW = 24
    X_CNTLZW = 26
    X_AND = 28
    X_CMPL = 32
    X_SUBF = 40
    X_DCBST = 54
    X_LWZUX = 55
    X_ANDC = 60
    X_MULHW = 75
    X_MFMSR = 83
    X_DCBF = 86
    X_LBZX = 87
    X_NEG = 104
    X_LBZUX = 119
    X_NOR = 124
    X_WRTEE = 131
    X_SUBFE = 136
    X_ADDE = 138
    X_MTCRF = 144
    X_MTMSR = 146
    X_STWCX = 150
    X_STWX = 151
    X_WRTEEI = 163
    X_STWUX = 183
    X_SUBFZE = 200
    X_ADDZE = 202
    X_STBX = 215
    X_SUBFME = 232
    X_ADDME = 234
    X_MULLW = 235
    X_DCBTST = 246
    X_STBUX = 247
    X_ICBT = 22
    X_ADD = 266
    X_DCBT = 278
    X_LHZX = 279
    X_EQV = 284
    X_LHZUX = 311
    X_XOR = 316
    X_MFDCR = 323
    X_MFSPR = 339
    X_LHAX = 343
    X_MFTB = 371
    X_LHAUX = 375
    X_STHX = 407
    X_ORC = 412
    X_STHUX = 439
    X_OR = 444
    X_MTDCR = 451
    X_DCCCI = 454
    X_DIVWU = 459
    X_MTSPR = 467
    X_DCBI = 470
    X_NAND = 476
    X_DIVW = 491
    X_MCRXR = 512
    X_LSWX = 533
    X_LWBRX = 534
    X_LFSX = 535
    X_SRW = 536
    X_TLBSYNC = 566
    X_LFSUX = 567
    X_LSWI = 597
    X_SYNC = 598
    X_LFDX = 599
    X_LFDUX = 631
    X_STSWX = 661
    X_STWBRX = 662
    X_STFSX = 663
    X_STFSUX = 695
    X_STSWI = 725
    X_STFDX = 727
    X_DCBA = 758
    X_STFDUX = 759
    X_LHBRX = 790
    X_SRAW = 792
    X_SRAWI = 824
    X_MBAR = 854
    X_TLBSX = 914
    X_STHBRX = 918
    X_EXTSH = 922
    X_TLBRE = 946
    X_EXTSB = 954
    X_ICCCI = 966
    X_TLBWE = 978
    X_ICBI = 982
    X_STFIWX = 983
    X_DCBZ = 1014

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

cdef inline uint32_t cntlzw(uint32_t v) noexcept nogil:
    cdef uint32_t n = 0
    if v == 0:
        return 32
    while not (v & 0x80000000U):
        v <<= 1
        n += 1
    return n

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
