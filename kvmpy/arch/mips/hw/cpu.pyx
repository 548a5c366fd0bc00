# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False, overflowcheck=False
"""The simulated host CPU: a MIPS32 release-5 core of the P5600 class.

This is *hardware*. It knows CP0, two TLBs (root and, with the VZ module, the
guest's), segmentation control, exceptions and the VZ guest context. It does
not know about memory slots, devices, guests' intentions or the hypervisor:
whenever silicon would enter the root (host kernel) exception vector, `run()`
returns `Stop.ROOT_EXCEPTION` with the root CP0 registers (Cause, EPC,
BadVAddr, BadInstr, BadInstrP, GuestCtl0.GExcCode) describing the event, and
the next `run()` is the root's `eret`.

Physical memory is a table of host pages (`kvmpy.sim.physmem.PhysicalMemory`,
shared by every simulated core): the host's RAM as the hardware sees it. An
access to a physical address with no RAM behind it is a bus error.

Speed comes from a software micro-TLB (as the P5600's own micro-TLBs): each
CPU mode (root/guest x kernel/supervisor/user) has a direct-mapped cache from
virtual page to host pointer, filled only after all architectural checks pass
and flushed exactly when the translation it cached can change. The loop keeps
its hot state in C locals, fetches from the current page's host address until
the PC leaves it, and runs the common instructions on fast paths; everything
else goes to `step()`, the complete interpreter (docs/architecture.md).
With `enable_jit()`, blocks whose start runs often are translated to host
code (jit.py, docs/jit.md) and called from the loop; they hand anything that
could fault back to the interpreter, which stays the reference.
"""

cimport cython
import functools
import queue
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int8_t, int16_t, int32_t, uint64_t, int64_t, uintptr_t
from libc.string cimport memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from kvmpy.arch.mips.hw.defs import Stop as _Stop
from kvmpy.arch.mips.hw.defs cimport Cp0, ExcCode, GExcCode, GuestCtl0, Status, Stop, Tlb
from kvmpy.sim.bits cimport clz32
from kvmpy.sim.physmem cimport PhysicalMemory

# Stop members by value, made once: constructing an enum per run() costs more
# than a short run itself.
_STOP_BY_VALUE = {int(s): s for s in _Stop}

# ---------------------------------------------------------------- constants
# Architectural constants come from defs.pxd (C constants here, IntEnums in
# Python); these are the model's own sizes and internal codes. All are C enum
# constants, so the loop compiles them in as literals.
cdef enum:
    NTLB = Tlb.ENTRIES
    UT_BITS = 10
    UT_SIZE = 1 << UT_BITS
    UT_MASK = UT_SIZE - 1
    NSETS = 6               # (root, guest) x (kernel, supervisor, user)
    CHECK_INTERVAL = 512    # instructions between timer/kick polls
    DBG_MAX_IBP = 256       # instruction-address comparators of the debug unit
    DBG_MAX_DWP = 4         # data-address comparators of the debug unit

cdef enum UtTag:
    UT_INVALID = 0xFFFFFFFF  # a micro-TLB tag no masked address equals

cdef enum:
    # run()'s internal stops, next to defs.Stop's values
    STOP_NONE = 0
    STOP_JIT = 6            # a block got hot or translations are ready

cdef enum:
    # block translation (jit.py): the table of block starts, direct-mapped by host address
    JT_BITS = 14
    JT_SIZE = 1 << JT_BITS
    JT_MASK = JT_SIZE - 1
    JIT_PROFILING = 0       # JitEntry.fn values below JIT_COMPILED are states, not code
    JIT_NEVER = 1
    JIT_PENDING = 2
    JIT_COMPILED = 3
    EXIT_CHAIN = 0          # jit.py's EXIT_* (checked by jit_ctx_layout())
    EXIT_DELAY_SLOT = 1
    EXIT_INTERPRET = 2
    EXIT_STALE = 3

cdef enum:
    ACC_LOAD = 0
    ACC_STORE = 1
    ACC_FETCH = 2

cdef enum:
    MODE_K = 0
    MODE_S = 1
    MODE_U = 2

cdef enum:
    # Writable Status bits: CU0, RP, BEV, TS, SR, NMI, IM7-0, KSU, ERL, EXL, IE.
    # CU1 stays 0 because this core has no FPU; RE and MX are not implemented.
    STATUS_WMASK = 0x1878FF1F


cdef extern from *:
    # branch hints: macros of Cython's own generated C (__builtin_expect)
    bint likely(bint) noexcept nogil
    bint unlikely(bint) noexcept nogil


cdef inline uint64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


cdef inline UtEntry* ut_entry(UtEntry* ut, uint32_t va) noexcept nogil:
    # &ut[(va >> 12) & UT_MASK] with the scaling folded into the shift (entries are 16 bytes)
    return <UtEntry*>(<char*>ut + ((va >> (12 - 4)) & (UT_MASK << 4)))


cdef inline uint32_t RS(uint32_t insn) noexcept nogil:
    return (insn >> 21) & 31


cdef inline uint32_t RT(uint32_t insn) noexcept nogil:
    return (insn >> 16) & 31


cdef inline uint32_t sext16(uint32_t v) noexcept nogil:
    return <uint32_t><int32_t><int16_t>(v & 0xFFFF)


cdef struct UtEntry:
    # A micro-TLB entry. A tag is the virtual page address (low 12 bits clear)
    # the entry translates, or UT_INVALID; an access hits when its address,
    # masked with its alignment bits kept (0xFFFFF003 for a word), equals the
    # tag, so a misaligned access never hits. Both tags share one offset:
    # whenever `off` changes, both tags are rewritten.
    uint32_t rtag      # loads and fetches may use `off`
    uint32_t wtag      # stores may use `off`
    uint64_t off       # host address - virtual page address


if sizeof(UtEntry) != 16:   # ut_entry() scales the index by 16
    raise ImportError("cpu: unexpected micro-TLB entry layout")


cdef struct JitCtx:
    # What a translated block reads and leaves behind (jit.py, CTX_* offsets).
    uint32_t* gpr
    UtEntry* ut        # the micro-TLB set of the current mode
    uint64_t code      # host address of the block's first instruction
    int64_t left       # instructions the block may execute in all
    uint32_t hi
    uint32_t lo
    uint32_t pc        # out: where to go on
    uint32_t npc       # out: the PC after it
    uint32_t insn      # out: the last instruction word executed
    int32_t exit       # out: EXIT_*


cdef struct JitEntry:
    # A block start seen by the loop: profiled until hot, then translated.
    uint64_t hkey      # host address of the first instruction (0: empty)
    uint32_t vpc       # its virtual address
    uint32_t count     # executions while JIT_PROFILING
    uint64_t fn        # JIT_PROFILING / JIT_NEVER / JIT_PENDING, or the host code's address
    int64_t maxn       # instructions one pass of the block executes


ctypedef int64_t (*block_fn)(JitCtx*, int64_t) noexcept nogil


def jit_ctx_layout():
    """(field, offset) pairs of JitCtx and the EXIT_* values, for jit.py's check of its mirror."""
    cdef JitCtx c
    cdef char* base = <char*>&c
    return {
        "gpr": <char*>&c.gpr - base, "ut": <char*>&c.ut - base, "code": <char*>&c.code - base,
        "left": <char*>&c.left - base, "hi": <char*>&c.hi - base, "lo": <char*>&c.lo - base,
        "pc": <char*>&c.pc - base, "npc": <char*>&c.npc - base, "insn": <char*>&c.insn - base,
        "exit": <char*>&c.exit - base, "size": sizeof(JitCtx),
        "EXIT_CHAIN": EXIT_CHAIN, "EXIT_DELAY_SLOT": EXIT_DELAY_SLOT,
        "EXIT_INTERPRET": EXIT_INTERPRET, "EXIT_STALE": EXIT_STALE,
    }


cdef struct TlbEntry:
    uint32_t hi        # VPN2 | ASID
    uint32_t mask      # PageMask
    uint32_t lo0
    uint32_t lo1
    uint32_t guestid   # root TLB only: which guest (0 = root)


cdef class Cpu:
    """One simulated P5600-class core with the VZ module.

    Python-visible state is exposed through small accessors; the hot loop is
    `run()`, which executes with the GIL released.
    """

    # general state
    cdef uint32_t gpr[32]
    cdef public uint32_t hi, lo
    cdef uint32_t pc_, npc
    cdef int bd                     # instruction at pc_ is in a delay slot
    cdef int bd_cur                 # the instruction being executed is in a delay slot
    cdef uint32_t fault_pc          # address of the instruction being executed
    cdef uint32_t cur_insn, prev_insn
    cdef public uint64_t icount
    cdef int llbit

    # CP0: [0] root, [1] guest
    cdef uint32_t cp0[2][256]
    cdef TlbEntry tlb[2][NTLB]
    cdef uint32_t random_state

    # timer
    cdef public double count_hz
    cdef uint64_t t0_ns
    cdef uint32_t count_base       # root Count at t0
    cdef uint32_t last_count[2]
    cdef uint32_t frozen_count[2]  # Count while Cause.DC stops it

    # execution control
    cdef int stop
    cdef uint64_t end_ic           # run(): icount at which the budget is spent
    cdef uint64_t poll_ic          # run(): icount of the next kick/budget/timer poll
    cdef uint64_t ev_ic            # run(): icount of the next look at events
    cdef int kick_flag
    cdef int irq_check

    # The debug unit (EJTAG-like): instruction-address comparators, data
    # comparators and single step, all looked at on the event-check path,
    # which runs before every instruction only while the unit is armed.
    cdef int dbg_on
    cdef int dbg_step
    cdef int dbg_nbp, dbg_nwp
    cdef uint32_t dbg_bp[DBG_MAX_IBP]
    cdef uint32_t dbg_wp_lo[DBG_MAX_DWP]
    cdef uint32_t dbg_wp_len[DBG_MAX_DWP]
    cdef int dbg_wp_kind[DBG_MAX_DWP]     # bit 0: loads, bit 1: stores
    cdef uint64_t dbg_rf_ic                # the "resume" latch: no stop before the first
    cdef uint32_t dbg_rf_pc                # instruction at this (icount, pc)
    cdef int dbg_jit_saved
    cdef public int dbg_cause              # why the last Stop.DEBUG: 0 SDBBP, 1 ibreak, 2 step, 3 data
    cdef public uint32_t dbg_addr          # the matched address (data: the watched range's start)
    cdef public int dbg_access             # data stops: 1 load, 2 store

    # current mode cache
    cdef int guest_mode
    cdef int ctx                   # 0 root, 1 guest
    cdef int mode                  # MODE_K/S/U of current context
    cdef int uset                  # micro-TLB set in use

    # segmentation: per context, per mode, per 512 MiB segment
    #   kind 0 = address error, 1 = mapped, 2 = unmapped; pa base for unmapped
    cdef uint8_t seg_kind[2][3][8]
    cdef uint32_t seg_pa[2][3][8]

    # micro-TLB
    cdef UtEntry ut[NSETS][UT_SIZE]
    cdef uint8_t ut_used[NSETS]     # a set has had entries filled since it was last flushed

    cdef PhysicalMemory phys
    cdef uint64_t* page_ptr
    cdef uint32_t npages

    # block translation: off unless enable_jit() gave a translator
    cdef int jit_on
    cdef uint32_t jit_threshold     # executions of a block start before it is translated
    cdef object jit                 # the translator (kvmpy.sim.translate.Translator)
    cdef JitCtx jctx
    cdef JitEntry* jt               # JT_SIZE entries, allocated by enable_jit()
    cdef object _jt_storage
    cdef JitEntry* jit_req          # the entry that got hot (STOP_JIT), or NULL
    cdef int jit_async              # translate on the translator's thread, go on interpreting meanwhile
    cdef int jit_ready              # translations are waiting in _jit_done (set by any thread)
    cdef object _jit_done
    cdef uint64_t jit_gen           # PhysicalMemory.generation the table was built under
    cdef public uint64_t jit_insns      # guest instructions executed by translated blocks
    cdef public uint64_t jit_entries    # calls of translated blocks
    cdef public uint64_t jit_stale      # calls that found their guest code changed
    cdef public uint64_t jit_requests   # blocks handed to the translator

    def __cinit__(self, PhysicalMemory phys, int cpu_num=0, double count_hz=100e6):
        self.phys = phys
        self.page_ptr = phys.page_ptr
        self.npages = phys.npages
        self.count_hz = count_hz
        self.t0_ns = now_ns()
        self.count_base = 0
        self.random_state = 0x12345
        self.reset(cpu_num)

    # ------------------------------------------------------------ reset
    def get_gpr(self, int i):
        return self.gpr[i & 31]

    def set_gpr(self, int i, uint32_t value):
        if i & 31:
            self.gpr[i & 31] = value

    def reset(self, int cpu_num=0):
        """Cold reset: registers cleared, CP0 at reset values, PC at the reset vector."""
        memset(self.gpr, 0, sizeof(self.gpr))
        memset(self.cp0, 0, sizeof(self.cp0))
        memset(self.tlb, 0, sizeof(self.tlb))
        self.hi = 0
        self.lo = 0
        self.llbit = 0
        self.icount = 0
        self.stop = STOP_NONE
        self.kick_flag = 0
        cdef int c, i
        for c in range(2):
            self.cp0[c][<int>Cp0.STATUS] = Status.BEV | Status.ERL
            self.cp0[c][<int>Cp0.PRID] = 0x0001A820
            self.cp0[c][<int>Cp0.EBASE] = 0x80000000U | (cpu_num & 0x3FF)
            # Config0: M, AR=1 (release 2+), MT=1 (standard TLB), K0=2 (uncached)
            self.cp0[c][<int>Cp0.CONFIG0] = 0x80000000U | (1 << 10) | (1 << 7) | 2
            # Config1: M, 64 TLB entries, 32 KiB 4-way I and D caches, 32-byte lines, no FPU
            self.cp0[c][<int>Cp0.CONFIG1] = (0x80000000U | ((NTLB - 1) << 25) | (2 << 22) | (4 << 19) | (3 << 16)
                                      | (2 << 13) | (4 << 10) | (3 << 7))
            self.cp0[c][<int>Cp0.CONFIG2] = 0x80000000U
            # Config3: M, BP, BI, SC, ULRI, VInt (+VZ for the root only)
            self.cp0[c][<int>Cp0.CONFIG3] = 0x80000000U | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 13) | (1 << 5)
            # Config4: M, KScrExist = KScratch1..2 (sel 2, 3)
            self.cp0[c][<int>Cp0.CONFIG4] = 0x80000000U | (0x0C << 16)
            self.cp0[c][<int>Cp0.CONFIG5] = 0
            self.cp0[c][<int>Cp0.WIRED] = 0
            self.cp0[c][<int>Cp0.INTCTL] = (7 << 29) | (6 << 26)   # IPTI=7, IPPCI=6
            self.cp0[c][<int>Cp0.SEGCTL0] = 0x00200010
            self.cp0[c][<int>Cp0.SEGCTL1] = 0x00030002
            self.cp0[c][<int>Cp0.SEGCTL2] = 0x003A043A  # useg: MUSK, EU (unmapped under ERL)
            self.cp0[c][<int>Cp0.PAGEGRAIN] = 0
            self.cp0[c][<int>Cp0.COMPARE] = 0
            for i in range(NTLB):
                # distinct, never-matching VPN2s in kseg0 keep the TLB free of duplicates
                self.tlb[c][i].hi = 0x80000000U + <uint32_t>i * 0x2000
        self.cp0[0][<int>Cp0.CONFIG3] |= (1 << 23)   # VZ module present (root only)
        self.cp0[0][<int>Cp0.CONFIG5] = 1 << 4       # LLB: LLbit software-visible, ERETNC (root only)
        self.last_count[0] = 0
        self.last_count[1] = 0
        for c in range(2):
            self.recompute_segments(c)
        self.update_mode()
        self.flush_utlb_all()
        self.pc_ = 0xBFC00000U
        self.npc = 0xBFC00004U
        self.bd = 0

    # ------------------------------------------------------------ accessors
    @property
    def pc(self):
        return self.pc_

    @pc.setter
    def pc(self, uint32_t value):
        self.pc_ = value
        self.npc = value + 4
        self.bd = 0

    def cp0_read(self, int ctx, int reg, int sel=0):
        """Read a CP0 register of the root (ctx 0) or guest (ctx 1) context, as mfc0/mfgc0 would."""
        return self.mfc0(ctx, reg * 8 + sel)

    def cp0_write(self, int ctx, int reg, int sel, uint32_t value):
        """Write a CP0 register with the side effects of mtc0/mtgc0 (root-privileged write)."""
        self.mtc0(ctx, reg * 8 + sel, value, 1)

    def cp0_set_raw(self, int ctx, int reg, int sel, uint32_t value):
        """Write a CP0 register's storage directly, bypassing write masks (reset-time configuration)."""
        self.cp0[ctx][reg * 8 + sel] = value
        # Segment decoding depends on SegCtl and on Status.ERL (the EU bit)
        self.recompute_segments(ctx)
        self.update_mode()
        self.flush_utlb_all()
        self.irq_check = 1

    def tlb_read(self, int ctx, int index):
        """Return (entryhi, pagemask, entrylo0, entrylo1, guestid) of one TLB entry."""
        if index < 0 or index >= NTLB:
            raise IndexError("TLB index out of range")
        cdef TlbEntry* e = &self.tlb[ctx][index]
        return (e.hi, e.mask, e.lo0, e.lo1, e.guestid)

    def tlb_write(self, int ctx, int index, uint32_t entryhi, uint32_t pagemask,
                  uint32_t entrylo0, uint32_t entrylo1, uint32_t guestid=0):
        """Write one TLB entry through the hardware's write port (tlbwi/tlbgwi semantics)."""
        if index < 0 or index >= NTLB:
            raise IndexError("TLB index out of range")
        self.write_tlb_entry(ctx, index, entryhi, pagemask, entrylo0, entrylo1, guestid)

    def tlb_write_random(self, int ctx, uint32_t entryhi, uint32_t pagemask,
                         uint32_t entrylo0, uint32_t entrylo1, uint32_t guestid=0):
        """tlbwr: write a non-wired entry chosen by the Random register; returns its index."""
        cdef int idx = self.random_index(ctx)
        self.write_tlb_entry(ctx, idx, entryhi, pagemask, entrylo0, entrylo1, guestid)
        return idx

    def tlb_probe(self, int ctx, uint32_t entryhi, uint32_t guestid=0):
        """tlbp: index of the entry matching entryhi (VPN2+ASID), or -1."""
        return self.probe(ctx, entryhi, guestid)

    def tlb_invalidate_guestid(self, uint32_t guestid):
        """tlbginvf: invalidate every root TLB entry tagged with `guestid`."""
        cdef int i
        for i in range(NTLB):
            if self.tlb[0][i].guestid == guestid:
                self.write_tlb_entry(0, i, 0x80000000U + <uint32_t>i * 0x2000, 0, 0, 0, 0)

    def set_debug(self, bint on, bint step, breakpoints, watchpoints):
        """Arm (or disarm) the debug unit.

        `breakpoints`: instruction addresses (any ASID, any mode);
        `watchpoints`: (address, length in bytes, kind bits 1=load 2=store).
        While armed, translated blocks are not run (every instruction is
        checked by the interpreter). Raises ValueError beyond the comparators.
        """
        cdef int i
        bps = list(breakpoints)
        wps = list(watchpoints)
        if len(bps) > DBG_MAX_IBP or len(wps) > DBG_MAX_DWP:
            raise ValueError(f"the debug unit has {DBG_MAX_IBP} instruction and {DBG_MAX_DWP} data comparators")
        for i in range(len(bps)):
            self.dbg_bp[i] = bps[i] & 0xFFFFFFFF
        self.dbg_nbp = len(bps)
        for i in range(len(wps)):
            self.dbg_wp_lo[i] = wps[i][0] & 0xFFFFFFFF
            self.dbg_wp_len[i] = wps[i][1]
            self.dbg_wp_kind[i] = wps[i][2]
        self.dbg_nwp = len(wps)
        self.dbg_step = step
        if on and not self.dbg_on:
            self.dbg_jit_saved = self.jit_on
            self.jit_on = 0
        elif self.dbg_on and not on:
            self.jit_on = self.dbg_jit_saved
        self.dbg_on = on

    def debug_resume_latch(self):
        """Set the latch that lets the next instruction run without a debug stop (KVM_RUN entry)."""
        self.dbg_rf_ic = self.icount
        if self.cp0[0][<int>Cp0.STATUS] & Status.EXL:
            self.dbg_rf_pc = self.cp0[0][<int>Cp0.EPC]
        else:
            self.dbg_rf_pc = self.pc_

    cdef int dbg_check(self, uint32_t pc, int bd, uint64_t ic) noexcept nogil:
        cdef int i
        cdef int first = ic == self.dbg_rf_ic and pc == self.dbg_rf_pc
        if first:
            return 0
        if self.dbg_step and not bd:
            # a branch and its delay slot are one step
            self.dbg_cause = 2
            self.dbg_addr = pc
            return 1
        for i in range(self.dbg_nbp):
            if self.dbg_bp[i] == pc:
                self.dbg_cause = 1
                self.dbg_addr = pc
                return 1
        if self.dbg_nwp:
            return self.dbg_data(pc)
        return 0

    cdef int dbg_data(self, uint32_t pc) noexcept nogil:
        # The data comparators see the access the next instruction is about to make.
        cdef uint32_t pa, insn, op, va, size, lo
        cdef int i, acc
        if self.xlat_nofault(pc, ACC_FETCH, &pa) or (pa >> 12) >= self.npages or self.page_ptr[pa >> 12] == 0:
            return 0
        insn = (<uint32_t*><uintptr_t>(self.page_ptr[pa >> 12] + (pa & 0xFFC)))[0]
        op = insn >> 26
        if op == 0x20 or op == 0x24 or op == 0x28:
            size = 1
        elif op == 0x21 or op == 0x25 or op == 0x29:
            size = 2
        elif op == 0x22 or op == 0x23 or op == 0x26 or op == 0x2A or op == 0x2B or op == 0x2E or op == 0x30 or op == 0x38:
            size = 4
        else:
            return 0
        acc = 2 if (op >= 0x28 and op != 0x30) else 1
        va = self.gpr[RS(insn)] + sext16(insn & 0xFFFF)
        if size == 4:
            va &= ~3U    # lwl/lwr/swl/swr touch the aligned word
        for i in range(self.dbg_nwp):
            lo = self.dbg_wp_lo[i]
            if (self.dbg_wp_kind[i] & acc) and va < lo + self.dbg_wp_len[i] and lo < va + size:
                self.dbg_cause = 3
                self.dbg_addr = lo
                self.dbg_access = acc
                return 1
        return 0

    def kick(self):
        """Ask a running `run()` to return Stop.KICK at the next instruction boundary (thread-safe)."""
        self.kick_flag = 1

    def ns_until_timer(self, int ctx):
        """Nanoseconds until the context's Count reaches its Compare (0 if already pending)."""
        cdef uint32_t cnt = self.read_count(ctx)
        if self.cp0[ctx][<int>Cp0.CAUSE] & 0x40000000:
            return 0
        cdef uint32_t delta = self.cp0[ctx][<int>Cp0.COMPARE] - cnt
        return int(delta / self.count_hz * 1e9)

    def interrupt_pending(self, int ctx):
        """True when the context has an unmasked, enabled interrupt pending."""
        self.update_timers()
        return bool(self.irq_pending(ctx))

    def set_guest_vip(self, uint32_t lines):
        """GuestCtl2.VIP: assert guest hardware interrupt lines IP2..IP7 (bit 0 = IP2)."""
        self.cp0[0][<int>Cp0.GUESTCTL2] = (self.cp0[0][<int>Cp0.GUESTCTL2] & ~0xFC00) | ((lines & 0x3F) << 10)
        self.refresh_guest_ip()
        self.irq_check = 1

    def guest_va_to_pa(self, uint32_t va):
        """Stage-1 translation in the guest context at the guest's current privilege.

        The hardware's guest address translation, without faults or side
        effects (what a root-mode TLB probe of the guest context gives).
        Returns the guest physical address or None.
        """
        cdef int save_ctx = self.ctx, save_mode = self.mode, save_uset = self.uset
        cdef uint32_t st = self.cp0[1][<int>Cp0.STATUS]
        cdef uint32_t pa = 0
        cdef int w = 0, r
        self.ctx = 1
        if st & (Status.EXL | Status.ERL):
            self.mode = MODE_K
        else:
            self.mode = (st >> 3) & 3
            if self.mode == 3:
                self.mode = MODE_U
        r = self.xlat_stage1(va, ACC_LOAD, &pa, &w, 0)
        self.ctx, self.mode, self.uset = save_ctx, save_mode, save_uset
        return None if r else pa

    def translate(self, uint32_t va, int access=0):
        """Translate a virtual address in the current mode without side effects.

        Returns the host physical address, or None if the access would fault.
        """
        cdef uint32_t pa
        cdef int r = self.xlat_nofault(va, access, &pa)
        if r:
            return None
        return pa

    # ------------------------------------------------------------ run loop
    def run(self, uint64_t budget, bint eretnc=False):
        """Execute until a root-level event or `budget` instructions; returns a Stop.

        If the root's Status.EXL is set (a root exception was taken), starting
        execution is the root's `eret`: execution resumes at root EPC with EXL
        cleared, in guest mode when GuestCtl0.GM is set. `eret` clears the
        LLbit, so an interrupted ll/sc sequence fails its sc; with `eretnc`
        the root returns with ERETNC instead (release 5, Config5.LLB), which
        leaves the LLbit alone: what a hypervisor uses after emulating an
        instruction the guest must not notice.
        """
        cdef int r
        if self.cp0[0][<int>Cp0.STATUS] & Status.EXL:
            self.cp0[0][<int>Cp0.STATUS] &= ~Status.EXL
            self.pc_ = self.cp0[0][<int>Cp0.EPC]
            self.npc = self.pc_ + 4
            self.bd = 0
            if not eretnc:
                self.llbit = 0
        self.update_mode()
        if self.jit_on and self.jit_gen != self.phys.generation:
            self.flush_jit()
        self.irq_check = 1
        with nogil:
            r = self.loop(budget, 0)
        while r == STOP_JIT:
            # translation work, then on where the loop stopped, with its
            # schedule of polls and budget unchanged (exactly as if it had not)
            self.jit_service()
            with nogil:
                r = self.loop(0, 1)
        return _STOP_BY_VALUE[r]

    # ------------------------------------------------------------ block translation
    def enable_jit(self, translator, uint32_t threshold=1000, bint background=False):
        """Translate block starts executed `threshold` times with `translator` (kvmpy.sim.translate.Translator).

        With `background`, a hot block is handed to `translator.request()`
        and the core goes on interpreting; the translation is installed at
        the next poll after it arrives. Without, `translator.translate()`
        runs at once (deterministic: for tests).
        """
        if threshold < 1:
            raise ValueError("enable_jit: threshold must be at least 1")
        if self.jt == NULL:
            self._jt_storage = bytearray(sizeof(JitEntry) * JT_SIZE)
            self.jt = <JitEntry*><uintptr_t>(<unsigned char*><char*>self._jt_storage)
        self.jit = translator
        self.jit_threshold = threshold
        self.jit_async = background
        self._jit_done = queue.SimpleQueue()
        self.flush_jit()
        self.jit_on = 1

    def disable_jit(self):
        """Interpret everything again (translations are forgotten)."""
        self.jit_on = 0
        self.jit = None
        if self.jt != NULL:
            self.flush_jit()

    @property
    def jit_enabled(self):
        return bool(self.jit_on)

    def flush_jit(self):
        """Forget every block start: after RAM went away (their host addresses are stale)."""
        if self.jt == NULL:
            return
        memset(self.jt, 0, sizeof(JitEntry) * JT_SIZE)
        self.jit_gen = self.phys.generation

    def jit_stats(self):
        """Counters of the block translator, for --stats and the benchmarks."""
        return {"jit_insns": self.jit_insns, "jit_entries": self.jit_entries,
                "jit_stale": self.jit_stale, "jit_requests": self.jit_requests,
                "interpreted_insns": self.icount - self.jit_insns}

    cdef jit_service(self):
        # the loop stopped with STOP_JIT: a block start got hot, or translations arrived
        cdef JitEntry* je = self.jit_req
        cdef uint64_t nbytes
        self.jit_req = NULL
        if je != NULL:
            self.jit_requests += 1
            nbytes = 4096 - (je.hkey & 0xFFF)
            code = (<char*><uintptr_t>je.hkey)[:nbytes]
            if self.jit_async:
                self.jit.request(je.vpc, code, functools.partial(self._jit_deliver, je.hkey, je.vpc))
            else:
                self._jit_deliver(je.hkey, je.vpc, self.jit.translate(je.vpc, code))
        self.jit_ready = 0
        while True:
            try:
                hk, vpc, block = self._jit_done.get_nowait()
            except queue.Empty:
                break
            je = &self.jt[(<uint64_t>hk >> 2) & JT_MASK]
            if je.hkey != hk or je.vpc != vpc or je.fn != JIT_PENDING:
                continue        # the table slot went to another block meanwhile
            if block is None:
                je.fn = JIT_NEVER
            else:
                je.fn = block.address
                je.maxn = block.insn_count

    def _jit_deliver(self, hk, vpc, block):
        # from the translator (any thread): a translation for the table entry (hk, vpc)
        self._jit_done.put((hk, vpc, block))
        self.jit_ready = 1

    @cython.final
    cdef inline void spill(self, uint32_t pc, uint32_t npc, int bd, uint32_t insn) noexcept nogil:
        # the loop's hot state back into self, before anything that reads it
        self.pc_ = pc
        self.npc = npc
        self.bd = bd
        self.cur_insn = insn

    cdef int loop(self, uint64_t budget, int resume) noexcept nogil:
        # The hot state lives in C locals (the compiler keeps them in host
        # registers); `self` is brought up to date ("spilled") before anything
        # that reads it: step(), xlat(), take_interrupt() and every return.
        #
        # Fast paths cover the common instructions when they cannot fault
        # (loads and stores that hit the micro-TLB, ALU ops without overflow,
        # branches...). Anything else, including a fast path that would
        # fault, goes to step() before a fast path changed any state, and
        # step() executes the instruction from scratch with the whole ISA.
        cdef uint32_t insn = self.cur_insn  # the last instruction fetched (prev_insn: the one before)
        cdef uint32_t pc = self.pc_        # address of the next instruction
        cdef uint32_t npc = self.npc       # the one after it
        cdef int bd = self.bd              # the instruction at pc is in a delay slot
        cdef uint32_t cpc                  # address of the instruction being executed
        cdef int inds                      # ... and whether it is in a delay slot
        cdef uint32_t op, rd, sa, a, t, v
        cdef int32_t simm, s
        cdef uint64_t u64
        cdef int64_t s64
        cdef uint8_t* p
        cdef uint64_t ic
        # Instructions left before the next look at events (kick, budget,
        # timers, interrupts); between iterations icount = self.ev_ic - left.
        cdef int64_t left = 0
        cdef UtEntry* ut = self.ut[self.uset]
        cdef UtEntry* e
        # The fetch page: while (pc & 0xFFFFF003) == ftag, the instruction is at
        # host address pc + fbase with no lookup. Forgotten after every call
        # that could change a translation or the mode.
        cdef uint32_t ftag = UT_INVALID
        cdef uint64_t fbase = 0
        # The instruction at pc starts a block (it follows a delay slot, an
        # exception or a translated block): look for a translation.
        cdef int blk = 1
        cdef JitEntry* je
        cdef uint64_t hk
        cdef int64_t nexec
        self.stop = STOP_NONE
        if not resume:
            self.end_ic = self.icount + budget
            self.poll_ic = self.icount
        self.ev_ic = self.icount
        while True:
            if unlikely(left <= 0):
                # Kicks, the budget and the timers are polled every CHECK_INTERVAL
                # loop iterations (an iteration that takes an interrupt or a fetch
                # fault executes nothing: it moves poll_ic one closer instead).
                ic = self.ev_ic - left
                if ic >= self.poll_ic:
                    self.poll_ic = ic + CHECK_INTERVAL
                    if self.kick_flag or ic >= self.end_ic:
                        self.spill(pc, npc, bd, insn)
                        self.icount = ic
                        if self.kick_flag:
                            self.kick_flag = 0
                            return Stop.KICK
                        return Stop.BUDGET
                    self.update_timers()
                    if self.jit_ready:     # translations arrived: install them, go on
                        self.spill(pc, npc, bd, insn)
                        self.icount = ic
                        return STOP_JIT
                self.ev_ic = self.poll_ic
                if self.irq_check:
                    if bd:
                        self.ev_ic = ic + 1    # not in a delay slot: look again after it
                    else:
                        self.irq_check = 0
                        self.spill(pc, npc, bd, insn)
                        if self.take_interrupt():
                            if self.stop:
                                self.icount = ic
                                return self.stop
                            pc = self.pc_
                            npc = self.npc
                            bd = self.bd
                            ut = self.ut[self.uset]
                            ftag = UT_INVALID
                            blk = 1
                            self.poll_ic -= 1
                            self.ev_ic = ic
                            left = 0
                            continue
                if self.dbg_on:
                    # the armed debug unit looks before every instruction
                    self.ev_ic = ic + 1
                    if self.dbg_check(pc, bd, ic):
                        self.spill(pc, npc, bd, insn)
                        self.icount = ic
                        return Stop.DEBUG
                left = <int64_t>(self.ev_ic - ic)
            # ---- fetch
            if unlikely((pc & 0xFFFFF003U) != ftag):
                e = &ut[(pc >> 12) & UT_MASK]
                if e.rtag == (pc & 0xFFFFF003U):
                    ftag = e.rtag
                    fbase = e.off
                else:
                    self.pc_ = pc
                    self.npc = npc
                    self.bd = bd
                    self.bd_cur = bd
                    self.fault_pc = pc
                    self.cur_insn = insn
                    p = self.xlat(pc, ACC_FETCH)
                    if p == NULL:
                        if self.stop:
                            self.icount = self.ev_ic - left
                            return self.stop
                        pc = self.pc_
                        npc = self.npc
                        bd = self.bd
                        ut = self.ut[self.uset]
                        ftag = UT_INVALID
                        blk = 1
                        self.poll_ic -= 1
                        self.ev_ic -= left
                        left = 0
                        continue
                    ftag = pc & 0xFFFFF000U
                    fbase = <uint64_t><uintptr_t>p - pc
            if unlikely(blk):
                blk = 0
                if self.jit_on and not bd:
                    hk = pc + fbase
                    je = &self.jt[(hk >> 2) & JT_MASK]
                    if je.hkey == hk and je.vpc == pc:
                        if je.fn >= JIT_COMPILED:
                            if left >= je.maxn:
                                self.jctx.gpr = self.gpr
                                self.jctx.ut = ut
                                self.jctx.code = hk
                                self.jctx.left = left
                                self.jctx.hi = self.hi
                                self.jctx.lo = self.lo
                                nexec = (<block_fn><uintptr_t>je.fn)(&self.jctx, 0)
                                self.hi = self.jctx.hi
                                self.lo = self.jctx.lo
                                pc = self.jctx.pc
                                npc = self.jctx.npc
                                insn = self.jctx.insn
                                bd = self.jctx.exit == EXIT_DELAY_SLOT
                                blk = self.jctx.exit == EXIT_CHAIN
                                left -= nexec
                                self.jit_insns += nexec
                                self.jit_entries += 1
                                if unlikely(self.jctx.exit == EXIT_STALE):
                                    # that block (this one or one chained to on its page)
                                    # was translated from code that has changed since
                                    self.jit_stale += 1
                                    hk = je.hkey + <uint64_t>(<int64_t><int32_t>(pc - je.vpc))
                                    je = &self.jt[(hk >> 2) & JT_MASK]
                                    if je.hkey == hk and je.vpc == pc:
                                        je.fn = JIT_PROFILING
                                        je.count = 0
                                continue
                        elif je.fn == JIT_PROFILING:
                            je.count += 1
                            if unlikely(je.count >= self.jit_threshold):
                                je.fn = JIT_PENDING
                                self.jit_req = je
                                self.spill(pc, npc, bd, insn)
                                self.icount = self.ev_ic - left
                                return STOP_JIT
                    else:
                        je.hkey = hk
                        je.vpc = pc
                        je.count = 1
                        je.fn = JIT_PROFILING
            self.prev_insn = insn
            insn = (<uint32_t*><uintptr_t>(pc + fbase))[0]
            cpc = pc
            inds = bd
            pc = npc
            npc = npc + 4
            bd = 0
            op = insn >> 26
            if op == 0:
                op = 64 | (insn & 63)      # SPECIAL: one dispatch on op and function
            # ---- execute (op 64-127: SPECIAL function op - 64)
            if op == 64 + 0:           # sll
                self.gpr[(insn >> 11) & 31] = self.gpr[RT(insn)] << ((insn >> 6) & 31)
            elif op == 64 + 33:        # addu
                self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)] + self.gpr[RT(insn)]
            elif op == 9:              # addiu
                self.gpr[RT(insn)] = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
            elif op == 35:             # lw
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF003U)):
                    self.gpr[RT(insn)] = (<uint32_t*><uintptr_t>(a + e.off))[0]
                else:
                    op = 0xFF
            elif op == 43:             # sw
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.wtag == (a & 0xFFFFF003U)):
                    (<uint32_t*><uintptr_t>(a + e.off))[0] = self.gpr[RT(insn)]
                else:
                    op = 0xFF
            elif op == 4:              # beq
                if self.gpr[RS(insn)] == self.gpr[RT(insn)]:
                    npc = cpc + 4 + (<uint32_t><int32_t><int16_t>insn << 2)
                bd = 1
            elif op == 5:              # bne
                if self.gpr[RS(insn)] != self.gpr[RT(insn)]:
                    npc = cpc + 4 + (<uint32_t><int32_t><int16_t>insn << 2)
                bd = 1
            elif op == 6:              # blez
                if <int32_t>self.gpr[RS(insn)] <= 0:
                    npc = cpc + 4 + (<uint32_t><int32_t><int16_t>insn << 2)
                bd = 1
            elif op == 7:              # bgtz
                if <int32_t>self.gpr[RS(insn)] > 0:
                    npc = cpc + 4 + (<uint32_t><int32_t><int16_t>insn << 2)
                bd = 1
            elif op == 1:              # REGIMM
                s = <int32_t>self.gpr[RS(insn)]
                if RT(insn) == 0 or RT(insn) == 2 or RT(insn) == 16 or RT(insn) == 18:      # bltz(al)(l)
                    t = s < 0
                elif RT(insn) == 1 or RT(insn) == 3 or RT(insn) == 17 or RT(insn) == 19:    # bgez(al)(l)
                    t = s >= 0
                elif RT(insn) == 31:         # synci: caches are coherent here
                    t = 2
                elif RT(insn) == 8 or RT(insn) == 9 or RT(insn) == 10 or RT(insn) == 11 or RT(insn) == 12 or RT(insn) == 14:
                    simm = <int32_t><int16_t>insn
                    if RT(insn) == 8:
                        t = s >= simm
                    elif RT(insn) == 9:
                        t = self.gpr[RS(insn)] >= <uint32_t>simm
                    elif RT(insn) == 10:
                        t = s < simm
                    elif RT(insn) == 11:
                        t = self.gpr[RS(insn)] < <uint32_t>simm
                    elif RT(insn) == 12:
                        t = s == simm
                    else:
                        t = s != simm
                    if t:
                        op = 0xFF      # trap taken
                    t = 2
                else:
                    t = 3
                    op = 0xFF
                if t < 2:
                    if RT(insn) >= 16:
                        self.gpr[31] = cpc + 8    # link even when not taken
                    if t:
                        npc = cpc + 4 + (<uint32_t><int32_t><int16_t>insn << 2)
                        bd = 1
                    elif RT(insn) & 2:           # likely, not taken: skip the delay slot
                        pc = npc
                        npc = pc + 4
                        inds = 1                 # a block starts after it
                    else:
                        bd = 1
            elif op == 2:              # j
                npc = ((cpc + 4) & 0xF0000000U) | ((insn & 0x3FFFFFF) << 2)
                bd = 1
            elif op == 3:              # jal
                self.gpr[31] = cpc + 8
                npc = ((cpc + 4) & 0xF0000000U) | ((insn & 0x3FFFFFF) << 2)
                bd = 1
            elif op == 64 + 8:         # jr
                npc = self.gpr[RS(insn)]
                bd = 1
            elif op == 64 + 9:         # jalr
                t = self.gpr[RS(insn)]
                self.gpr[(insn >> 11) & 31] = cpc + 8
                npc = t
                bd = 1
            elif op == 20 or op == 21 or op == 22 or op == 23:   # branch likely
                if op == 20:
                    t = self.gpr[RS(insn)] == self.gpr[RT(insn)]
                elif op == 21:
                    t = self.gpr[RS(insn)] != self.gpr[RT(insn)]
                elif op == 22:
                    t = <int32_t>self.gpr[RS(insn)] <= 0
                else:
                    t = <int32_t>self.gpr[RS(insn)] > 0
                if t:
                    npc = cpc + 4 + (<uint32_t><int32_t><int16_t>insn << 2)
                    bd = 1
                else:                  # not taken: skip the delay slot
                    pc = npc
                    npc = pc + 4
                    inds = 1           # a block starts after it
            elif op == 15:             # lui
                self.gpr[RT(insn)] = insn << 16
            elif op == 13:             # ori
                self.gpr[RT(insn)] = self.gpr[RS(insn)] | (insn & 0xFFFF)
            elif op == 12:             # andi
                self.gpr[RT(insn)] = self.gpr[RS(insn)] & (insn & 0xFFFF)
            elif op == 14:             # xori
                self.gpr[RT(insn)] = self.gpr[RS(insn)] ^ (insn & 0xFFFF)
            elif op == 10:             # slti
                self.gpr[RT(insn)] = <int32_t>self.gpr[RS(insn)] < <int32_t><int16_t>insn
            elif op == 11:             # sltiu
                self.gpr[RT(insn)] = self.gpr[RS(insn)] < <uint32_t><int32_t><int16_t>insn
            elif op == 8:              # addi
                a = <uint32_t><int32_t><int16_t>insn
                t = self.gpr[RS(insn)] + a
                if ((self.gpr[RS(insn)] ^ t) & (a ^ t)) >> 31:
                    op = 0xFF          # overflow
                else:
                    self.gpr[RT(insn)] = t
            elif op == 32:             # lb
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF000U)):
                    self.gpr[RT(insn)] = <uint32_t><int32_t>(<int8_t*><uintptr_t>(a + e.off))[0]
                else:
                    op = 0xFF
            elif op == 36:             # lbu
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF000U)):
                    self.gpr[RT(insn)] = (<uint8_t*><uintptr_t>(a + e.off))[0]
                else:
                    op = 0xFF
            elif op == 33:             # lh
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF001U)):
                    self.gpr[RT(insn)] = <uint32_t><int32_t>(<int16_t*><uintptr_t>(a + e.off))[0]
                else:
                    op = 0xFF
            elif op == 37:             # lhu
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF001U)):
                    self.gpr[RT(insn)] = (<uint16_t*><uintptr_t>(a + e.off))[0]
                else:
                    op = 0xFF
            elif op == 40:             # sb
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.wtag == (a & 0xFFFFF000U)):
                    (<uint8_t*><uintptr_t>(a + e.off))[0] = <uint8_t>self.gpr[RT(insn)]
                else:
                    op = 0xFF
            elif op == 41:             # sh
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.wtag == (a & 0xFFFFF001U)):
                    (<uint16_t*><uintptr_t>(a + e.off))[0] = <uint16_t>self.gpr[RT(insn)]
                else:
                    op = 0xFF
            elif op == 34 or op == 38:     # lwl, lwr
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF000U)):
                    v = (<uint32_t*><uintptr_t>((a & ~3U) + e.off))[0]
                    t = a & 3
                    if op == 34:
                        if t == 3:
                            self.gpr[RT(insn)] = v
                        else:
                            self.gpr[RT(insn)] = (v << (8 * (3 - t))) | (self.gpr[RT(insn)] & ((1U << (8 * (3 - t))) - 1))
                    else:
                        if t == 0:
                            self.gpr[RT(insn)] = v
                        else:
                            self.gpr[RT(insn)] = (v >> (8 * t)) | (self.gpr[RT(insn)] & ~(0xFFFFFFFFU >> (8 * t)))
                else:
                    op = 0xFF
            elif op == 42 or op == 46:     # swl, swr
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.wtag == (a & 0xFFFFF000U)):
                    p = <uint8_t*><uintptr_t>((a & ~3U) + e.off)
                    v = (<uint32_t*>p)[0]
                    t = a & 3
                    if op == 42:
                        if t == 3:
                            v = self.gpr[RT(insn)]
                        else:
                            v = (v & ~(0xFFFFFFFFU >> (8 * (3 - t)))) | (self.gpr[RT(insn)] >> (8 * (3 - t)))
                    else:
                        if t != 0:
                            v = (v & ((1U << (8 * t)) - 1)) | (self.gpr[RT(insn)] << (8 * t))
                        else:
                            v = self.gpr[RT(insn)]
                    (<uint32_t*>p)[0] = v
                else:
                    op = 0xFF
            elif op == 48:             # ll
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.rtag == (a & 0xFFFFF003U)):
                    self.gpr[RT(insn)] = (<uint32_t*><uintptr_t>(a + e.off))[0]
                    self.llbit = 1
                    self.cp0[self.ctx][<int>Cp0.LLADDR] = a >> 4
                else:
                    op = 0xFF
            elif op == 56:             # sc
                a = self.gpr[RS(insn)] + <uint32_t><int32_t><int16_t>insn
                e = ut_entry(ut, a)
                if likely(e.wtag == (a & 0xFFFFF003U)):
                    if self.llbit:
                        (<uint32_t*><uintptr_t>(a + e.off))[0] = self.gpr[RT(insn)]
                        self.gpr[RT(insn)] = 1
                    else:
                        self.gpr[RT(insn)] = 0
                    self.llbit = 0
                else:
                    op = 0xFF
            elif op == 51:             # pref
                pass
            elif op == 64 + 2:         # srl, rotr
                sa = (insn >> 6) & 31
                if RS(insn) == 0:
                    self.gpr[(insn >> 11) & 31] = self.gpr[RT(insn)] >> sa
                elif RS(insn) == 1:
                    self.gpr[(insn >> 11) & 31] = (self.gpr[RT(insn)] >> sa) | (self.gpr[RT(insn)] << ((32 - sa) & 31))
                else:
                    op = 0xFF
            elif op == 64 + 3:         # sra
                self.gpr[(insn >> 11) & 31] = <uint32_t>(<int32_t>self.gpr[RT(insn)] >> ((insn >> 6) & 31))
            elif op == 64 + 4:         # sllv
                self.gpr[(insn >> 11) & 31] = self.gpr[RT(insn)] << (self.gpr[RS(insn)] & 31)
            elif op == 64 + 6:         # srlv, rotrv
                sa = (insn >> 6) & 31
                t = self.gpr[RS(insn)] & 31
                if sa == 0:
                    self.gpr[(insn >> 11) & 31] = self.gpr[RT(insn)] >> t
                elif sa == 1:
                    self.gpr[(insn >> 11) & 31] = (self.gpr[RT(insn)] >> t) | (self.gpr[RT(insn)] << ((32 - t) & 31))
                else:
                    op = 0xFF
            elif op == 64 + 7:         # srav
                self.gpr[(insn >> 11) & 31] = <uint32_t>(<int32_t>self.gpr[RT(insn)] >> (self.gpr[RS(insn)] & 31))
            elif op == 64 + 10:        # movz
                if self.gpr[RT(insn)] == 0:
                    self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)]
            elif op == 64 + 11:        # movn
                if self.gpr[RT(insn)] != 0:
                    self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)]
            elif op == 64 + 15:        # sync
                pass
            elif op == 64 + 16:        # mfhi
                self.gpr[(insn >> 11) & 31] = self.hi
            elif op == 64 + 17:        # mthi
                self.hi = self.gpr[RS(insn)]
            elif op == 64 + 18:        # mflo
                self.gpr[(insn >> 11) & 31] = self.lo
            elif op == 64 + 19:        # mtlo
                self.lo = self.gpr[RS(insn)]
            elif op == 64 + 24:        # mult
                s64 = <int64_t><int32_t>self.gpr[RS(insn)] * <int64_t><int32_t>self.gpr[RT(insn)]
                self.lo = <uint32_t>s64
                self.hi = <uint32_t>(s64 >> 32)
            elif op == 64 + 25:        # multu
                u64 = <uint64_t>self.gpr[RS(insn)] * <uint64_t>self.gpr[RT(insn)]
                self.lo = <uint32_t>u64
                self.hi = <uint32_t>(u64 >> 32)
            elif op == 64 + 26:        # div
                self.div_signed(self.gpr[RS(insn)], self.gpr[RT(insn)])
            elif op == 64 + 27:        # divu
                if self.gpr[RT(insn)] != 0:
                    self.lo = self.gpr[RS(insn)] / self.gpr[RT(insn)]
                    self.hi = self.gpr[RS(insn)] % self.gpr[RT(insn)]
            elif op == 64 + 32:        # add
                t = self.gpr[RS(insn)] + self.gpr[RT(insn)]
                if ((self.gpr[RS(insn)] ^ t) & (self.gpr[RT(insn)] ^ t)) >> 31:
                    op = 0xFF          # overflow
                else:
                    self.gpr[(insn >> 11) & 31] = t
            elif op == 64 + 34:        # sub
                t = self.gpr[RS(insn)] - self.gpr[RT(insn)]
                if ((self.gpr[RS(insn)] ^ self.gpr[RT(insn)]) & (self.gpr[RS(insn)] ^ t)) >> 31:
                    op = 0xFF          # overflow
                else:
                    self.gpr[(insn >> 11) & 31] = t
            elif op == 64 + 35:        # subu
                self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)] - self.gpr[RT(insn)]
            elif op == 64 + 36:        # and
                self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)] & self.gpr[RT(insn)]
            elif op == 64 + 37:        # or
                self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)] | self.gpr[RT(insn)]
            elif op == 64 + 38:        # xor
                self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)] ^ self.gpr[RT(insn)]
            elif op == 64 + 39:        # nor
                self.gpr[(insn >> 11) & 31] = ~(self.gpr[RS(insn)] | self.gpr[RT(insn)])
            elif op == 64 + 42:        # slt
                self.gpr[(insn >> 11) & 31] = <int32_t>self.gpr[RS(insn)] < <int32_t>self.gpr[RT(insn)]
            elif op == 64 + 43:        # sltu
                self.gpr[(insn >> 11) & 31] = self.gpr[RS(insn)] < self.gpr[RT(insn)]
            elif op == 64 + 48 or op == 64 + 49 or op == 64 + 50 or op == 64 + 51 or op == 64 + 52 or op == 64 + 54:
                # tge tgeu tlt tltu teq tne: only a taken trap needs step()
                if op == 64 + 48:
                    t = <int32_t>self.gpr[RS(insn)] >= <int32_t>self.gpr[RT(insn)]
                elif op == 64 + 49:
                    t = self.gpr[RS(insn)] >= self.gpr[RT(insn)]
                elif op == 64 + 50:
                    t = <int32_t>self.gpr[RS(insn)] < <int32_t>self.gpr[RT(insn)]
                elif op == 64 + 51:
                    t = self.gpr[RS(insn)] < self.gpr[RT(insn)]
                elif op == 64 + 52:
                    t = self.gpr[RS(insn)] == self.gpr[RT(insn)]
                else:
                    t = self.gpr[RS(insn)] != self.gpr[RT(insn)]
                if t:
                    op = 0xFF
            elif op == 28:             # SPECIAL2
                t = insn & 63
                rd = (insn >> 11) & 31
                if likely(t == 2):     # mul (checked first: the common one)
                    self.gpr[rd] = <uint32_t>(<int32_t>self.gpr[RS(insn)] * <int32_t>self.gpr[RT(insn)])
                elif t == 0:           # madd
                    s64 = <int64_t>((<uint64_t>self.hi << 32) | self.lo)
                    s64 = s64 + <int64_t><int32_t>self.gpr[RS(insn)] * <int64_t><int32_t>self.gpr[RT(insn)]
                    self.lo = <uint32_t>s64
                    self.hi = <uint32_t>(<uint64_t>s64 >> 32)
                elif t == 4:           # msub
                    s64 = <int64_t>((<uint64_t>self.hi << 32) | self.lo)
                    s64 = s64 - <int64_t><int32_t>self.gpr[RS(insn)] * <int64_t><int32_t>self.gpr[RT(insn)]
                    self.lo = <uint32_t>s64
                    self.hi = <uint32_t>(<uint64_t>s64 >> 32)
                elif t == 1:           # maddu
                    u64 = (<uint64_t>self.hi << 32) | self.lo
                    u64 = u64 + <uint64_t>self.gpr[RS(insn)] * <uint64_t>self.gpr[RT(insn)]
                    self.lo = <uint32_t>u64
                    self.hi = <uint32_t>(u64 >> 32)
                elif t == 5:           # msubu
                    u64 = (<uint64_t>self.hi << 32) | self.lo
                    u64 = u64 - <uint64_t>self.gpr[RS(insn)] * <uint64_t>self.gpr[RT(insn)]
                    self.lo = <uint32_t>u64
                    self.hi = <uint32_t>(u64 >> 32)
                elif t == 32:          # clz
                    v = self.gpr[RS(insn)]
                    self.gpr[rd] = clz32(v)
                elif t == 33:          # clo
                    v = ~self.gpr[RS(insn)]
                    self.gpr[rd] = clz32(v)
                else:
                    op = 0xFF
            elif op == 31:             # SPECIAL3
                t = insn & 63
                rd = (insn >> 11) & 31
                sa = (insn >> 6) & 31
                if t == 0:             # ext: pos=sa, size=rd+1
                    self.gpr[RT(insn)] = (self.gpr[RS(insn)] >> sa) & (0xFFFFFFFFU >> (31 - rd))
                elif t == 4 and rd >= sa:      # ins: lsb=sa, msb=rd
                    v = (0xFFFFFFFFU >> (31 - (rd - sa))) << sa
                    self.gpr[RT(insn)] = (self.gpr[RT(insn)] & ~v) | ((self.gpr[RS(insn)] << sa) & v)
                elif t == 32 and sa == 2:      # wsbh
                    v = self.gpr[RT(insn)]
                    self.gpr[rd] = ((v & 0x00FF00FF) << 8) | ((v >> 8) & 0x00FF00FF)
                elif t == 32 and sa == 16:     # seb
                    self.gpr[rd] = <uint32_t><int32_t><int8_t>self.gpr[RT(insn)]
                elif t == 32 and sa == 24:     # seh
                    self.gpr[rd] = <uint32_t><int32_t><int16_t>self.gpr[RT(insn)]
                else:
                    op = 0xFF
            elif (op == 16 or op == 17 or op == 18 or op == 19 or op == 24 or op == 25 or op == 26 or
                  op == 27 or op == 29 or op == 30 or op == 39 or op == 44 or op == 45 or op == 47 or
                  op == 49 or op == 50 or op == 52 or op == 53 or op == 54 or op == 55 or op == 57 or
                  op == 58 or op == 59 or op == 60 or op == 61 or op == 62 or op == 63 or op == 65 or
                  op == 69 or op == 76 or op == 77 or op == 78 or op == 84 or op == 85 or op == 86 or
                  op == 87 or op == 92 or op == 93 or op == 94 or op == 95 or op == 104 or op == 105 or
                  op == 108 or op == 109 or op == 110 or op == 111 or op == 117 or op == 119 or
                  op == 120 or op == 121 or op == 122 or op == 123 or op == 124 or op == 125 or
                  op == 126 or op == 127):
                # everything else (COP0, syscall, cache, ...): with a case for every value 1-127
                # the compiler's jump table for the major opcodes needs no range check
                op = 0xFF
            if unlikely(op == 0xFF):
                # the full ISA, on the state in self
                self.spill(cpc, pc, inds, insn)
                self.step(insn)
                pc = self.pc_
                npc = self.npc
                bd = self.bd
                ut = self.ut[self.uset]
                ftag = UT_INVALID
                inds = 1               # look for a block at whatever comes next
                if self.stop:
                    self.gpr[0] = 0
                    self.icount = self.ev_ic - left + 1
                    return self.stop
                if self.irq_check:
                    self.ev_ic -= left - 1     # look at it before the next instruction
                    left = 1
            self.gpr[0] = 0
            blk = inds      # after a delay slot, a new block starts
            left -= 1       # the instruction is counted (here, so that gcc can fuse it with the loop test)

    @cython.final
    cdef void step(self, uint32_t insn) noexcept nogil:
        """Execute one fetched instruction on the state in `self`: the whole ISA.

        The loop's fast paths are a subset of this; it comes here for
        everything else (CP0, exceptions, micro-TLB misses...). On entry pc_
        is the instruction's address, npc the next, bd whether it sits in a
        delay slot, cur_insn = insn and prev_insn the instruction before.
        """
        cdef uint32_t op, rs, rt, rd, sa, fn, a, v, t, pc
        cdef int32_t simm
        cdef uint64_t u64
        cdef int64_t s64
        cdef uint8_t* p
        cdef uint32_t* g = self.gpr
        cdef int taken
        pc = self.pc_
        self.bd_cur = self.bd
        self.fault_pc = pc
        # default sequential flow
        self.pc_ = self.npc
        self.npc = self.npc + 4
        self.bd = 0
        rs = (insn >> 21) & 31
        op = insn >> 26
        rt = (insn >> 16) & 31
        simm = <int32_t><int16_t>(insn & 0xFFFF)
        if op == 0:
            rd = (insn >> 11) & 31
            sa = (insn >> 6) & 31
            fn = insn & 63
            if fn == 0:
                g[rd] = g[rt] << sa
            elif fn == 2:
                if rs == 1:
                    g[rd] = (g[rt] >> sa) | (g[rt] << ((32 - sa) & 31)) if sa else g[rt]
                elif rs == 0:
                    g[rd] = g[rt] >> sa
                else:
                    self.exc_ri(pc)
            elif fn == 3:
                g[rd] = <uint32_t>(<int32_t>g[rt] >> sa)
            elif fn == 4:
                g[rd] = g[rt] << (g[rs] & 31)
            elif fn == 6:
                t = g[rs] & 31
                if sa == 1:
                    g[rd] = (g[rt] >> t) | (g[rt] << ((32 - t) & 31)) if t else g[rt]
                elif sa == 0:
                    g[rd] = g[rt] >> t
                else:
                    self.exc_ri(pc)
            elif fn == 7:
                g[rd] = <uint32_t>(<int32_t>g[rt] >> (g[rs] & 31))
            elif fn == 8:      # jr
                self.branch(g[rs])
            elif fn == 9:      # jalr
                t = g[rs]
                g[rd] = pc + 8
                self.branch(t)
            elif fn == 10:
                if g[rt] == 0:
                    g[rd] = g[rs]
            elif fn == 11:
                if g[rt] != 0:
                    g[rd] = g[rs]
            elif fn == 12:
                self.exception(pc, ExcCode.SYS, 0, 0)
            elif fn == 13:
                self.exception(pc, ExcCode.BP, 0, 0)
            elif fn == 15:
                pass           # sync
            elif fn == 16:
                g[rd] = self.hi
            elif fn == 17:
                self.hi = g[rs]
            elif fn == 18:
                g[rd] = self.lo
            elif fn == 19:
                self.lo = g[rs]
            elif fn == 24:
                s64 = <int64_t><int32_t>g[rs] * <int64_t><int32_t>g[rt]
                self.lo = <uint32_t>s64
                self.hi = <uint32_t>(s64 >> 32)
            elif fn == 25:
                u64 = <uint64_t>g[rs] * <uint64_t>g[rt]
                self.lo = <uint32_t>u64
                self.hi = <uint32_t>(u64 >> 32)
            elif fn == 26:
                self.div_signed(g[rs], g[rt])
            elif fn == 27:
                if g[rt] != 0:
                    self.lo = g[rs] / g[rt]
                    self.hi = g[rs] % g[rt]
            elif fn == 32:
                t = g[rs] + g[rt]
                if ((g[rs] ^ t) & (g[rt] ^ t)) >> 31:
                    self.exception(pc, ExcCode.OV, 0, 0)
                else:
                    g[rd] = t
            elif fn == 33:
                g[rd] = g[rs] + g[rt]
            elif fn == 34:
                t = g[rs] - g[rt]
                if ((g[rs] ^ g[rt]) & (g[rs] ^ t)) >> 31:
                    self.exception(pc, ExcCode.OV, 0, 0)
                else:
                    g[rd] = t
            elif fn == 35:
                g[rd] = g[rs] - g[rt]
            elif fn == 36:
                g[rd] = g[rs] & g[rt]
            elif fn == 37:
                g[rd] = g[rs] | g[rt]
            elif fn == 38:
                g[rd] = g[rs] ^ g[rt]
            elif fn == 39:
                g[rd] = ~(g[rs] | g[rt])
            elif fn == 42:
                g[rd] = 1 if <int32_t>g[rs] < <int32_t>g[rt] else 0
            elif fn == 43:
                g[rd] = 1 if g[rs] < g[rt] else 0
            elif fn == 48:
                if <int32_t>g[rs] >= <int32_t>g[rt]:
                    self.exception(pc, ExcCode.TR, 0, 0)
            elif fn == 49:
                if g[rs] >= g[rt]:
                    self.exception(pc, ExcCode.TR, 0, 0)
            elif fn == 50:
                if <int32_t>g[rs] < <int32_t>g[rt]:
                    self.exception(pc, ExcCode.TR, 0, 0)
            elif fn == 51:
                if g[rs] < g[rt]:
                    self.exception(pc, ExcCode.TR, 0, 0)
            elif fn == 52:
                if g[rs] == g[rt]:
                    self.exception(pc, ExcCode.TR, 0, 0)
            elif fn == 54:
                if g[rs] != g[rt]:
                    self.exception(pc, ExcCode.TR, 0, 0)
            elif fn == 1:
                self.exc_cpu(pc, 1)    # movf/movt need the FPU
            else:
                self.exc_ri(pc)
        elif op == 9:
            g[rt] = g[rs] + <uint32_t>simm
        elif op == 15:
            g[rt] = (insn & 0xFFFF) << 16
        elif op == 13:
            g[rt] = g[rs] | (insn & 0xFFFF)
        elif op == 12:
            g[rt] = g[rs] & (insn & 0xFFFF)
        elif op == 14:
            g[rt] = g[rs] ^ (insn & 0xFFFF)
        elif op == 10:
            g[rt] = 1 if <int32_t>g[rs] < simm else 0
        elif op == 11:
            g[rt] = 1 if g[rs] < <uint32_t>simm else 0
        elif op == 8:
            t = g[rs] + <uint32_t>simm
            if ((g[rs] ^ t) & (<uint32_t>simm ^ t)) >> 31:
                self.exception(pc, ExcCode.OV, 0, 0)
            else:
                g[rt] = t
        elif op == 35:         # lw
            a = g[rs] + <uint32_t>simm
            if a & 3:
                self.addr_error(pc, a, ACC_LOAD)
            else:
                p = self.xlat(a, ACC_LOAD)
                if p != NULL:
                    g[rt] = (<uint32_t*>p)[0]
        elif op == 43:         # sw
            a = g[rs] + <uint32_t>simm
            if a & 3:
                self.addr_error(pc, a, ACC_STORE)
            else:
                p = self.xlat(a, ACC_STORE)
                if p != NULL:
                    (<uint32_t*>p)[0] = g[rt]
        elif op == 4:          # beq
            if g[rs] == g[rt]:
                self.branch(pc + 4 + (<uint32_t>simm << 2))
            else:
                self.bd = 1
        elif op == 5:          # bne
            if g[rs] != g[rt]:
                self.branch(pc + 4 + (<uint32_t>simm << 2))
            else:
                self.bd = 1
        elif op == 6:
            if <int32_t>g[rs] <= 0:
                self.branch(pc + 4 + (<uint32_t>simm << 2))
            else:
                self.bd = 1
        elif op == 7:
            if <int32_t>g[rs] > 0:
                self.branch(pc + 4 + (<uint32_t>simm << 2))
            else:
                self.bd = 1
        elif op == 20 or op == 21 or op == 22 or op == 23:   # branch likely
            if op == 20:
                taken = g[rs] == g[rt]
            elif op == 21:
                taken = g[rs] != g[rt]
            elif op == 22:
                taken = <int32_t>g[rs] <= 0
            else:
                taken = <int32_t>g[rs] > 0
            if taken:
                self.branch(pc + 4 + (<uint32_t>simm << 2))
            else:
                self.nullify()
        elif op == 2:
            self.branch(((pc + 4) & 0xF0000000U) | ((insn & 0x3FFFFFF) << 2))
        elif op == 3:
            g[31] = pc + 8
            self.branch(((pc + 4) & 0xF0000000U) | ((insn & 0x3FFFFFF) << 2))
        elif op == 1:
            self.regimm(pc, insn, rs, rt, simm)
        elif op == 32 or op == 36:     # lb, lbu
            a = g[rs] + <uint32_t>simm
            p = self.xlat(a, ACC_LOAD)
            if p != NULL:
                if op == 32:
                    g[rt] = <uint32_t><int32_t>(<int8_t*>p)[0]
                else:
                    g[rt] = p[0]
        elif op == 33 or op == 37:     # lh, lhu
            a = g[rs] + <uint32_t>simm
            if a & 1:
                self.addr_error(pc, a, ACC_LOAD)
            else:
                p = self.xlat(a, ACC_LOAD)
                if p != NULL:
                    if op == 33:
                        g[rt] = <uint32_t><int32_t>(<int16_t*>p)[0]
                    else:
                        g[rt] = (<uint16_t*>p)[0]
        elif op == 40:         # sb
            a = g[rs] + <uint32_t>simm
            p = self.xlat(a, ACC_STORE)
            if p != NULL:
                p[0] = <uint8_t>g[rt]
        elif op == 41:         # sh
            a = g[rs] + <uint32_t>simm
            if a & 1:
                self.addr_error(pc, a, ACC_STORE)
            else:
                p = self.xlat(a, ACC_STORE)
                if p != NULL:
                    (<uint16_t*>p)[0] = <uint16_t>g[rt]
        elif op == 34 or op == 38:     # lwl, lwr
            a = g[rs] + <uint32_t>simm
            # translate the effective address itself so a fault reports it in BadVAddr
            p = self.xlat(a, ACC_LOAD)
            if p != NULL:
                v = (<uint32_t*>(p - (a & 3)))[0]
                t = a & 3
                if op == 34:
                    if t == 3:
                        g[rt] = v
                    else:
                        g[rt] = (v << (8 * (3 - t))) | (g[rt] & ((1U << (8 * (3 - t))) - 1))
                else:
                    if t == 0:
                        g[rt] = v
                    else:
                        g[rt] = (v >> (8 * t)) | (g[rt] & ~(0xFFFFFFFFU >> (8 * t)))
        elif op == 42 or op == 46:     # swl, swr
            a = g[rs] + <uint32_t>simm
            p = self.xlat(a, ACC_STORE)
            if p != NULL:
                p = p - (a & 3)
                v = (<uint32_t*>p)[0]
                t = a & 3
                if op == 42:
                    if t == 3:
                        v = g[rt]
                    else:
                        v = (v & ~(0xFFFFFFFFU >> (8 * (3 - t)))) | (g[rt] >> (8 * (3 - t)))
                else:
                    if t != 0:
                        v = (v & ((1U << (8 * t)) - 1)) | (g[rt] << (8 * t))
                    else:
                        v = g[rt]
                (<uint32_t*>p)[0] = v
        elif op == 48:         # ll
            a = g[rs] + <uint32_t>simm
            if a & 3:
                self.addr_error(pc, a, ACC_LOAD)
            else:
                p = self.xlat(a, ACC_LOAD)
                if p != NULL:
                    g[rt] = (<uint32_t*>p)[0]
                    self.llbit = 1
                    self.cp0[self.ctx][<int>Cp0.LLADDR] = a >> 4
        elif op == 56:         # sc
            a = g[rs] + <uint32_t>simm
            if a & 3:
                self.addr_error(pc, a, ACC_STORE)
            else:
                p = self.xlat(a, ACC_STORE)
                if p != NULL:
                    if self.llbit:
                        (<uint32_t*>p)[0] = g[rt]
                        g[rt] = 1
                    else:
                        g[rt] = 0
                    self.llbit = 0
        elif op == 28:
            self.special2(pc, insn, rs, rt)
        elif op == 31:
            self.special3(pc, insn, rs, rt)
        elif op == 16:
            self.cop0(pc, insn, rs, rt)
        elif op == 47:         # cache
            if self.mode != MODE_K and not (self.cp0[self.ctx][<int>Cp0.STATUS] & Status.CU0):
                self.exc_cpu(pc, 0)
            elif self.guest_mode and not (self.cp0[0][<int>Cp0.GUESTCTL0] & GuestCtl0.CG):
                self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
        elif op == 51:
            pass               # pref
        elif op == 17 or op == 49 or op == 53 or op == 57 or op == 61 or op == 19:
            self.exc_cpu(pc, 1)
        elif op == 18 or op == 50 or op == 54 or op == 58 or op == 62:
            self.exc_cpu(pc, 2)
        else:
            self.exc_ri(pc)

    # ------------------------------------------------------------ control flow helpers
    cdef inline void branch(self, uint32_t target) noexcept nogil:
        # the instruction now at pc_ is the delay slot; after it, go to target
        self.npc = target
        self.bd = 1

    cdef inline void nullify(self) noexcept nogil:
        # branch-likely not taken: skip the delay slot
        self.pc_ = self.npc
        self.npc = self.pc_ + 4

    cdef void regimm(self, uint32_t pc, uint32_t insn, uint32_t rs, uint32_t rt, int32_t simm) noexcept nogil:
        cdef uint32_t* g = self.gpr
        cdef int32_t s = <int32_t>g[rs]
        cdef int cond
        cdef uint32_t target = pc + 4 + (<uint32_t>simm << 2)
        if rt == 0 or rt == 2 or rt == 16 or rt == 18:
            cond = s < 0
        elif rt == 1 or rt == 3 or rt == 17 or rt == 19:
            cond = s >= 0
        elif rt == 8:
            if s >= simm:
                self.exception(pc, ExcCode.TR, 0, 0)
            return
        elif rt == 9:
            if g[rs] >= <uint32_t>simm:
                self.exception(pc, ExcCode.TR, 0, 0)
            return
        elif rt == 10:
            if s < simm:
                self.exception(pc, ExcCode.TR, 0, 0)
            return
        elif rt == 11:
            if g[rs] < <uint32_t>simm:
                self.exception(pc, ExcCode.TR, 0, 0)
            return
        elif rt == 12:
            if s == simm:
                self.exception(pc, ExcCode.TR, 0, 0)
            return
        elif rt == 14:
            if s != simm:
                self.exception(pc, ExcCode.TR, 0, 0)
            return
        elif rt == 31:
            return                 # synci: caches are coherent here
        else:
            self.exc_ri(pc)
            return
        if rt >= 16:
            g[31] = pc + 8         # link even when not taken
        if cond:
            self.branch(target)
        elif rt == 2 or rt == 3 or rt == 18 or rt == 19:
            self.nullify()
        else:
            self.bd = 1

    cdef void div_signed(self, uint32_t a, uint32_t b) noexcept nogil:
        # division by zero is UNPREDICTABLE in the architecture; HI/LO are left unchanged
        if b == 0:
            return
        if a == 0x80000000U and b == 0xFFFFFFFFU:
            self.lo = 0x80000000U
            self.hi = 0
            return
        self.lo = <uint32_t>(<int32_t>a / <int32_t>b)
        self.hi = <uint32_t>(<int32_t>a % <int32_t>b)

    cdef void special2(self, uint32_t pc, uint32_t insn, uint32_t rs, uint32_t rt) noexcept nogil:
        cdef uint32_t* g = self.gpr
        cdef uint32_t fn = insn & 63
        cdef uint32_t rd = (insn >> 11) & 31
        cdef int64_t acc
        cdef uint64_t uacc
        cdef uint32_t v
        cdef int n
        if fn == 2:
            g[rd] = <uint32_t>(<int32_t>g[rs] * <int32_t>g[rt])
        elif fn == 0 or fn == 4:
            acc = <int64_t>((<uint64_t>self.hi << 32) | self.lo)
            if fn == 0:
                acc = acc + <int64_t><int32_t>g[rs] * <int64_t><int32_t>g[rt]
            else:
                acc = acc - <int64_t><int32_t>g[rs] * <int64_t><int32_t>g[rt]
            self.lo = <uint32_t>acc
            self.hi = <uint32_t>(<uint64_t>acc >> 32)
        elif fn == 1 or fn == 5:
            uacc = (<uint64_t>self.hi << 32) | self.lo
            if fn == 1:
                uacc = uacc + <uint64_t>g[rs] * <uint64_t>g[rt]
            else:
                uacc = uacc - <uint64_t>g[rs] * <uint64_t>g[rt]
            self.lo = <uint32_t>uacc
            self.hi = <uint32_t>(uacc >> 32)
        elif fn == 32 or fn == 33:          # clz, clo
            v = g[rs] if fn == 32 else ~g[rs]
            n = 0
            if v == 0:
                n = 32
            else:
                while not (v & 0x80000000U):
                    v <<= 1
                    n += 1
            g[rd] = n
        elif fn == 63:                      # sdbbp
            self.root_stop(pc, Stop.DEBUG)
        else:
            self.exc_ri(pc)

    cdef void special3(self, uint32_t pc, uint32_t insn, uint32_t rs, uint32_t rt) noexcept nogil:
        cdef uint32_t* g = self.gpr
        cdef uint32_t fn = insn & 63
        cdef uint32_t rd = (insn >> 11) & 31
        cdef uint32_t sa = (insn >> 6) & 31
        cdef uint32_t size, mask, v
        if fn == 0:                         # ext: pos=sa, size=rd+1
            size = rd + 1
            mask = 0xFFFFFFFFU if size >= 32 else ((1U << size) - 1)
            g[rt] = (g[rs] >> sa) & mask
        elif fn == 4:                       # ins: lsb=sa, msb=rd
            if rd < sa:
                return                      # UNPREDICTABLE: leave rt unchanged
            size = rd - sa + 1
            mask = (0xFFFFFFFFU if size >= 32 else ((1U << size) - 1)) << sa
            g[rt] = (g[rt] & ~mask) | ((g[rs] << sa) & mask)
        elif fn == 32:                      # bshfl
            v = g[rt]
            if sa == 2:
                g[rd] = ((v & 0x00FF00FF) << 8) | ((v >> 8) & 0x00FF00FF)
            elif sa == 16:
                g[rd] = <uint32_t><int32_t><int8_t>(v & 0xFF)
            elif sa == 24:
                g[rd] = <uint32_t><int32_t><int16_t>(v & 0xFFFF)
            else:
                self.exc_ri(pc)
        elif fn == 59:                      # rdhwr
            self.rdhwr(pc, rt, rd)
        else:
            self.exc_ri(pc)

    cdef void rdhwr(self, uint32_t pc, uint32_t rt, uint32_t rd) noexcept nogil:
        cdef int c = self.ctx
        if self.mode != MODE_K and not (self.cp0[c][<int>Cp0.STATUS] & Status.CU0):
            if not ((self.cp0[c][<int>Cp0.HWRENA] >> rd) & 1):
                self.exc_ri(pc)
                return
        if rd == 0:
            self.gpr[rt] = self.cp0[c][<int>Cp0.EBASE] & 0x3FF
        elif rd == 1:
            self.gpr[rt] = 32
        elif rd == 2:
            self.gpr[rt] = self.read_count(c)
        elif rd == 3:
            self.gpr[rt] = 2
        elif rd == 29 and (self.cp0[c][<int>Cp0.CONFIG3] & (1 << 13)):
            self.gpr[rt] = self.cp0[c][<int>Cp0.USERLOCAL]
        else:
            self.exc_ri(pc)

    # ------------------------------------------------------------ COP0
    cdef void cop0(self, uint32_t pc, uint32_t insn, uint32_t rs, uint32_t rt) noexcept nogil:
        cdef int c = self.ctx
        cdef uint32_t rd = (insn >> 11) & 31
        cdef uint32_t sel = insn & 7
        cdef uint32_t fn = insn & 63
        cdef uint32_t v
        if self.mode != MODE_K and not (self.cp0[c][<int>Cp0.STATUS] & Status.CU0):
            self.exc_cpu(pc, 0)
            return
        if self.guest_mode and not (self.cp0[0][<int>Cp0.GUESTCTL0] & GuestCtl0.CP0):
            self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
            return
        if rs == 0:                         # mfc0
            if self.guest_mode and self.guest_cp0_traps(rd * 8 + sel, 0):
                self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
                return
            v = self.mfc0(c, rd * 8 + sel)
            if rt:
                self.gpr[rt] = v
        elif rs == 4:                       # mtc0
            if self.guest_mode and self.guest_cp0_traps(rd * 8 + sel, 1):
                self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
                return
            self.mtc0(c, rd * 8 + sel, self.gpr[rt], 0)
        elif rs == 3:                       # mfgc0 / mtgc0 (root only)
            if self.guest_mode:
                self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
            elif insn & 0x200:
                self.mtc0(1, rd * 8 + sel, self.gpr[rt], 1)
            elif rt:
                self.gpr[rt] = self.mfc0(1, rd * 8 + sel)
        elif rs == 11:                      # di / ei
            v = self.cp0[c][<int>Cp0.STATUS]
            if rt:
                self.gpr[rt] = v
            if insn & 0x20:
                self.cp0[c][<int>Cp0.STATUS] = v | Status.IE
            else:
                self.cp0[c][<int>Cp0.STATUS] = v & ~Status.IE
            self.irq_check = 1
        elif rs == 10:                      # rdpgpr (one shadow set: plain move)
            self.gpr[rd] = self.gpr[rt]
        elif rs == 14:                      # wrpgpr
            self.gpr[rd] = self.gpr[rt]
        elif rs >= 16:
            if fn == 24:
                self.eret()
            elif fn == 1:
                self.tlbr(c)
            elif fn == 2:
                self.tlbw(c, <int>(self.cp0[c][<int>Cp0.INDEX] & (NTLB - 1)))
            elif fn == 6:
                self.tlbw(c, self.random_index(c))
            elif fn == 8:
                self.tlbp(c)
            elif fn == 32:                  # wait
                if self.guest_mode:
                    self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
                else:
                    self.root_stop(pc + 4, Stop.ROOT_WAIT)
            elif fn == 40:                  # hypcall
                if self.guest_mode:
                    self.root_exc(pc, ExcCode.GE, GExcCode.HC, 0, 0)
                else:
                    self.exc_ri(pc)
            elif fn == 9 or fn == 10 or fn == 14 or fn == 16 or fn == 11 or fn == 12:
                # guest TLB access instructions (tlbgr/tlbgwi/tlbgwr/tlbgp/tlbginv*) are root-only
                if self.guest_mode:
                    self.root_exc(pc, ExcCode.GE, GExcCode.GPSI, 0, 0)
                elif fn == 9:
                    self.tlbr(1)
                elif fn == 10:
                    self.tlbw(1, <int>(self.cp0[1][<int>Cp0.INDEX] & (NTLB - 1)))
                elif fn == 14:
                    self.tlbw(1, self.random_index(1))
                elif fn == 16:
                    self.tlbp(1)
            else:
                self.exc_ri(pc)
        else:
            self.exc_ri(pc)

    cdef int guest_cp0_traps(self, int reg, int write) noexcept nogil:
        # Registers that exist only in the root context, or whose guest write the
        # root must mediate, raise a GPSI in guest mode.
        if reg == Cp0.GUESTCTL0 or reg == Cp0.GTOFFSET or reg == Cp0.GUESTCTL1 or reg == Cp0.GUESTCTL2:
            return 1
        if reg == Cp0.SEGCTL0 or reg == Cp0.SEGCTL1 or reg == Cp0.SEGCTL2:
            return 1
        if write and reg == Cp0.COUNT:
            return 1
        return 0

    cdef uint32_t mfc0(self, int c, int reg) noexcept nogil:
        if reg == Cp0.RANDOM:
            return self.random_index(c)
        if reg == Cp0.COUNT:
            return self.read_count(c)
        if reg == Cp0.CAUSE:
            self.update_timers()
        return self.cp0[c][reg]

    cdef void mtc0(self, int c, int reg, uint32_t v, int privileged) noexcept nogil:
        cdef uint32_t old
        cdef uint32_t* r = self.cp0[c]
        if reg == Cp0.INDEX:
            r[reg] = (r[reg] & 0x80000000U) | (v & (NTLB - 1))
        elif reg == Cp0.ENTRYLO0 or reg == Cp0.ENTRYLO1:
            r[reg] = v & 0x03FFFFFF
        elif reg == Cp0.CONTEXT:
            r[reg] = (r[reg] & 0x007FFFF0) | (v & 0xFF800000U)
        elif reg == Cp0.USERLOCAL or reg == Cp0.ERROREPC or reg == Cp0.EPC or reg == Cp0.DESAVE:
            r[reg] = v
        elif reg == 250 or reg == 251 or reg == 252 or reg == 253 or reg == 254 or reg == 255:
            r[reg] = v             # KScratch
        elif reg == Cp0.PAGEMASK:
            r[reg] = v & 0x1FFFE000
        elif reg == Cp0.PAGEGRAIN:
            r[reg] = 0
        elif reg == Cp0.SEGCTL0 or reg == Cp0.SEGCTL1 or reg == Cp0.SEGCTL2:
            r[reg] = v
            self.recompute_segments(c)
            self.flush_utlb_ctx(c)
        elif reg == Cp0.WIRED:
            r[reg] = v & (NTLB - 1)
        elif reg == Cp0.HWRENA:
            r[reg] = v & 0x2000000F
        elif reg == Cp0.BADVADDR:
            if privileged:
                r[reg] = v
        elif reg == Cp0.COUNT:
            self.write_count(c, v)
        elif reg == Cp0.ENTRYHI:
            old = r[reg]
            r[reg] = v & 0xFFFFE0FFU
            if (old ^ v) & 0xFF:
                self.flush_utlb_ctx(c)
        elif reg == Cp0.COMPARE:
            r[reg] = v
            self.last_count[c] = self.read_count(c)
            r[<int>Cp0.CAUSE] &= ~0x40000000
            if c == 1:
                self.refresh_guest_ip()
            else:
                self.refresh_root_ip()
            self.irq_check = 1
        elif reg == Cp0.STATUS:
            old = r[reg]
            r[reg] = (old & ~STATUS_WMASK) | (v & STATUS_WMASK)
            if (old ^ r[reg]) & Status.ERL:
                self.recompute_segments(c)
                self.flush_utlb_ctx(c)
            self.update_mode()
            self.irq_check = 1
        elif reg == Cp0.INTCTL:
            r[reg] = (r[reg] & ~0x3E0) | (v & 0x3E0)
        elif reg == Cp0.CAUSE:
            old = r[reg]
            if (v & 0x08000000) and not (old & 0x08000000):
                self.frozen_count[c] = self.read_count(c)   # DC set: Count stops here
            r[reg] = (old & ~0x08800300) | (v & 0x08800300)
            if (old & 0x08000000) and not (v & 0x08000000):
                self.write_count(c, self.frozen_count[c])   # DC cleared: resume from there
            self.irq_check = 1
        elif reg == Cp0.EBASE:
            r[reg] = (r[reg] & 0xC00003FFU) | (v & 0x3FFFF000)
        elif reg == Cp0.CONFIG0:
            r[reg] = (r[reg] & ~7) | (v & 7)
        elif reg == Cp0.GUESTCTL0:
            if c == 0:
                old = r[reg]
                r[reg] = v
                if (old ^ v) & 0x80000000U:
                    self.update_mode()
        elif reg == Cp0.GUESTCTL1:
            if c == 0:
                old = r[reg]
                r[reg] = v & 0x00FF00FF
                if (old ^ v) & 0xFF:
                    self.flush_utlb_ctx(1)
        elif reg == Cp0.GUESTCTL2:
            if c == 0:
                r[reg] = v & 0xFC00
                self.refresh_guest_ip()
                self.irq_check = 1
        elif reg == Cp0.GTOFFSET:
            if c == 0:
                r[reg] = v
                self.last_count[1] = self.read_count(1)
        elif reg == Cp0.LLADDR:
            pass
        elif privileged and (reg == Cp0.CONFIG1 or reg == Cp0.CONFIG2 or reg == Cp0.CONFIG3
                             or reg == Cp0.CONFIG4 or reg == Cp0.CONFIG5 or reg == Cp0.PRID):
            r[reg] = v
        # other registers are read-only or not implemented: writes are ignored

    # ------------------------------------------------------------ timer & interrupts
    cdef uint32_t read_count(self, int c) noexcept nogil:
        if self.cp0[c][<int>Cp0.CAUSE] & 0x08000000:
            return self.frozen_count[c]
        if c == 1 and (self.cp0[0][<int>Cp0.CAUSE] & 0x08000000):
            return self.frozen_count[0] + self.cp0[0][<int>Cp0.GTOFFSET]
        cdef double elapsed = <double>(now_ns() - self.t0_ns) * 1e-9 * self.count_hz
        cdef uint32_t root = self.count_base + <uint32_t><uint64_t>elapsed
        if c == 1:
            return root + self.cp0[0][<int>Cp0.GTOFFSET]
        return root

    cdef void write_count(self, int c, uint32_t v) noexcept nogil:
        if self.cp0[c][<int>Cp0.CAUSE] & 0x08000000:
            self.frozen_count[c] = v
            self.last_count[c] = v
            return
        if c == 1:
            self.cp0[0][<int>Cp0.GTOFFSET] = v - self.read_count(0)
        else:
            self.count_base = self.count_base + (v - self.read_count(0))
        self.last_count[c] = v

    cdef void update_timers(self) noexcept nogil:
        cdef int c
        cdef uint32_t now, last, cmp
        for c in range(2):
            now = self.read_count(c)
            last = self.last_count[c]
            cmp = self.cp0[c][<int>Cp0.COMPARE]
            if now != last and <uint32_t>(cmp - last - 1) < <uint32_t>(now - last):
                self.cp0[c][<int>Cp0.CAUSE] |= 0x40000000
                if c == 1:
                    self.refresh_guest_ip()
                else:
                    self.refresh_root_ip()
                self.irq_check = 1
            self.last_count[c] = now

    cdef void refresh_guest_ip(self) noexcept nogil:
        cdef uint32_t ip = (self.cp0[0][<int>Cp0.GUESTCTL2] & 0xFC00)
        cdef uint32_t* r = self.cp0[1]
        if r[<int>Cp0.CAUSE] & 0x40000000:
            ip |= 1U << (8 + (r[<int>Cp0.INTCTL] >> 29))
        r[<int>Cp0.CAUSE] = (r[<int>Cp0.CAUSE] & ~0xFC00) | (ip & 0xFC00)

    cdef void refresh_root_ip(self) noexcept nogil:
        cdef uint32_t* r = self.cp0[0]
        cdef uint32_t ip = 0
        if r[<int>Cp0.CAUSE] & 0x40000000:
            ip |= 1U << (8 + (r[<int>Cp0.INTCTL] >> 29))
        r[<int>Cp0.CAUSE] = (r[<int>Cp0.CAUSE] & ~0xFC00) | (ip & 0xFC00)

    cdef int irq_pending(self, int c) noexcept nogil:
        cdef uint32_t st = self.cp0[c][<int>Cp0.STATUS]
        if not (st & Status.IE) or (st & (Status.EXL | Status.ERL)):
            return 0
        return (self.cp0[c][<int>Cp0.CAUSE] & st & 0xFF00) != 0

    cdef int take_interrupt(self) noexcept nogil:
        # Root interrupts pre-empt the guest; guest interrupts go to the guest's vector.
        self.bd_cur = self.bd
        self.fault_pc = self.pc_
        if self.irq_pending(0):
            self.root_exc(self.pc_, ExcCode.INT, 0, 0, 0)
            return 1
        if self.guest_mode and self.irq_pending(1):
            self.exception(self.pc_, ExcCode.INT, 0, 0)
            return 1
        return 0

    # ------------------------------------------------------------ exceptions
    cdef void exc_ri(self, uint32_t pc) noexcept nogil:
        self.exception(pc, ExcCode.RI, 0, 0)

    cdef void exc_cpu(self, uint32_t pc, int unit) noexcept nogil:
        cdef int c = self.ctx
        self.cp0[c][<int>Cp0.CAUSE] = (self.cp0[c][<int>Cp0.CAUSE] & ~0x30000000) | (<uint32_t>unit << 28)
        self.exception(pc, ExcCode.CPU, 0, 0)

    cdef void addr_error(self, uint32_t pc, uint32_t va, int acc) noexcept nogil:
        self.exception(pc, ExcCode.ADES if acc == ACC_STORE else ExcCode.ADEL, va, 1)

    cdef void exception(self, uint32_t pc, uint32_t code, uint32_t badva, int has_badva) noexcept nogil:
        """Deliver a synchronous exception (or interrupt) to the current context."""
        if not self.guest_mode:
            # the root takes it: that is the host kernel's business
            if has_badva:
                self.cp0[0][<int>Cp0.BADVADDR] = badva
            self.root_exc(pc, code, 0, 0, 0)
            return
        self.enter_vector(1, pc, code, badva, has_badva, 0)

    cdef void enter_vector(self, int c, uint32_t pc, uint32_t code, uint32_t badva,
                           int has_badva, int refill) noexcept nogil:
        cdef uint32_t* r = self.cp0[c]
        cdef uint32_t st = r[<int>Cp0.STATUS]
        cdef uint32_t base, off, vec, ip
        cdef int n
        cdef int in_ds = self.bd_cur
        if has_badva:
            r[<int>Cp0.BADVADDR] = badva
        if code != ExcCode.INT:
            r[<int>Cp0.BADINSTR] = self.cur_insn
            if in_ds:
                r[<int>Cp0.BADINSTRP] = self.prev_insn
        if not (st & Status.EXL):
            if in_ds:
                r[<int>Cp0.EPC] = pc - 4
                r[<int>Cp0.CAUSE] |= 0x80000000U
            else:
                r[<int>Cp0.EPC] = pc
                r[<int>Cp0.CAUSE] &= ~0x80000000U
            off = 0x000 if refill else 0x180
        else:
            off = 0x180
        r[<int>Cp0.CAUSE] = (r[<int>Cp0.CAUSE] & ~0x7C) | (code << 2)
        if code == ExcCode.INT and (r[<int>Cp0.CAUSE] & 0x00800000):
            off = 0x200
            if not (st & Status.BEV) and (r[<int>Cp0.INTCTL] & 0x3E0):
                ip = (r[<int>Cp0.CAUSE] & st & 0xFF00) >> 8
                n = 7
                while n > 0 and not ((ip >> n) & 1):
                    n -= 1
                off = 0x200 + <uint32_t>n * ((r[<int>Cp0.INTCTL] & 0x3E0))
        r[<int>Cp0.STATUS] = st | Status.EXL
        if st & Status.BEV:
            vec = 0xBFC00200U + off
        else:
            vec = (r[<int>Cp0.EBASE] & 0xFFFFF000U) + off
        self.llbit = 0
        self.pc_ = vec
        self.npc = vec + 4
        self.bd = 0
        self.update_mode()

    cdef void root_exc(self, uint32_t pc, uint32_t code, uint32_t gexc, uint32_t badva, int has_badva) noexcept nogil:
        """Enter the root: record the event in root CP0 and stop the loop."""
        cdef uint32_t* r = self.cp0[0]
        cdef int in_ds = self.bd_cur
        if has_badva:
            r[<int>Cp0.BADVADDR] = badva
        if code != ExcCode.INT:
            r[<int>Cp0.BADINSTR] = self.cur_insn
            if in_ds:
                r[<int>Cp0.BADINSTRP] = self.prev_insn
        if in_ds:
            r[<int>Cp0.EPC] = pc - 4
            r[<int>Cp0.CAUSE] |= 0x80000000U
        else:
            r[<int>Cp0.EPC] = pc
            r[<int>Cp0.CAUSE] &= ~0x80000000U
        r[<int>Cp0.CAUSE] = (r[<int>Cp0.CAUSE] & ~0x7C) | (code << 2)
        r[<int>Cp0.GUESTCTL0] = (r[<int>Cp0.GUESTCTL0] & ~0x7C) | (gexc << 2)
        r[<int>Cp0.STATUS] |= Status.EXL
        self.stop = Stop.ROOT_EXCEPTION
        self.update_mode()

    cdef void root_stop(self, uint32_t resume_pc, int why) noexcept nogil:
        self.pc_ = resume_pc
        self.npc = resume_pc + 4
        self.bd = 0
        self.stop = why

    cdef void eret(self) noexcept nogil:
        cdef int c = self.ctx
        cdef uint32_t* r = self.cp0[c]
        cdef uint32_t target
        if r[<int>Cp0.STATUS] & Status.ERL:
            target = r[<int>Cp0.ERROREPC]
            r[<int>Cp0.STATUS] &= ~Status.ERL
            self.recompute_segments(c)
            self.flush_utlb_ctx(c)
        else:
            target = r[<int>Cp0.EPC]
            r[<int>Cp0.STATUS] &= ~Status.EXL
        self.pc_ = target
        self.npc = target + 4
        self.bd = 0
        self.llbit = 0
        self.update_mode()
        self.irq_check = 1

    # ------------------------------------------------------------ modes and segments
    cdef void update_mode(self) noexcept nogil:
        cdef uint32_t st0 = self.cp0[0][<int>Cp0.STATUS]
        cdef uint32_t st
        self.guest_mode = ((self.cp0[0][<int>Cp0.GUESTCTL0] & 0x80000000U) != 0
                           and not (st0 & (Status.EXL | Status.ERL)))
        self.ctx = 1 if self.guest_mode else 0
        st = self.cp0[self.ctx][<int>Cp0.STATUS]
        if st & (Status.EXL | Status.ERL):
            self.mode = MODE_K
        else:
            self.mode = (st >> 3) & 3
            if self.mode == 3:
                self.mode = MODE_U   # reserved KSU value: treat as user
        self.uset = self.ctx * 3 + self.mode

    cdef void recompute_segments(self, int c) noexcept nogil:
        cdef uint32_t* r = self.cp0[c]
        cdef uint32_t cfg, am, eu, pa
        cdef int s, m, k
        cdef int erl = (r[<int>Cp0.STATUS] & Status.ERL) != 0
        for s in range(8):
            if s >= 6:
                cfg = (r[<int>Cp0.SEGCTL0] >> (16 if s == 6 else 0)) & 0xFFFF
            elif s >= 4:
                cfg = (r[<int>Cp0.SEGCTL1] >> (16 if s == 4 else 0)) & 0xFFFF
            else:
                cfg = (r[<int>Cp0.SEGCTL2] >> (16 if s < 2 else 0)) & 0xFFFF
            am = (cfg >> 4) & 7
            eu = (cfg >> 3) & 1
            if s < 4:
                pa = (((cfg >> 9) & 0x7E) << 29) | ((<uint32_t>s & 1) << 29)
            else:
                pa = ((cfg >> 9) & 0x7F) << 29
            for m in range(3):
                # k: 0 address error, 1 mapped, 2 unmapped
                if am == 0:
                    k = 2 if m == MODE_K else 0
                elif am == 1:
                    k = 1 if m == MODE_K else 0
                elif am == 2:
                    k = 1 if m != MODE_U else 0
                elif am == 3:
                    k = 1
                elif am == 4:
                    k = 2 if m == MODE_K else 1
                elif am == 5:
                    k = 2 if m != MODE_U else 0
                elif am == 7:
                    k = 2
                else:
                    k = 0
                if eu and erl and m == MODE_K:
                    k = 2
                self.seg_kind[c][m][s] = k
                self.seg_pa[c][m][s] = pa

    # ------------------------------------------------------------ TLB
    cdef inline int tlb_match(self, TlbEntry* e, uint32_t va, uint32_t asid, uint32_t gid) noexcept nogil:
        cdef uint32_t vmask = ~(e.mask | 0x1FFF)
        if (e.hi & vmask) != (va & vmask):
            return 0
        if e.guestid != gid:
            return 0
        if (e.lo0 & e.lo1 & 1) == 0 and (e.hi & 0xFF) != asid:
            return 0
        return 1

    cdef int tlb_lookup(self, int c, uint32_t va, uint32_t asid, uint32_t gid) noexcept nogil:
        cdef int i
        for i in range(NTLB):
            if self.tlb_match(&self.tlb[c][i], va, asid, gid):
                return i
        return -1

    cdef int random_index(self, int c) noexcept nogil:
        cdef uint32_t wired = self.cp0[c][<int>Cp0.WIRED]
        self.random_state = self.random_state * 1103515245 + 12345
        if wired >= NTLB:
            return NTLB - 1
        return <int>(wired + ((self.random_state >> 16) % (NTLB - wired)))

    cdef int probe(self, int c, uint32_t hi, uint32_t gid) noexcept nogil:
        return self.tlb_lookup(c, hi & 0xFFFFE000U, hi & 0xFF, gid)

    cdef void tlbp(self, int c) noexcept nogil:
        cdef uint32_t gid = (self.cp0[0][<int>Cp0.GUESTCTL1] >> 16) & 0xFF if c == 0 else 0
        cdef int i = self.probe(c, self.cp0[c][<int>Cp0.ENTRYHI], gid)
        if i < 0:
            self.cp0[c][<int>Cp0.INDEX] = 0x80000000U | (self.cp0[c][<int>Cp0.INDEX] & (NTLB - 1))
        else:
            self.cp0[c][<int>Cp0.INDEX] = <uint32_t>i

    cdef void tlbr(self, int c) noexcept nogil:
        cdef int i = <int>(self.cp0[c][<int>Cp0.INDEX] & (NTLB - 1))
        cdef TlbEntry* e = &self.tlb[c][i]
        cdef uint32_t g = e.lo0 & e.lo1 & 1
        cdef uint32_t old = self.cp0[c][<int>Cp0.ENTRYHI]
        self.cp0[c][<int>Cp0.ENTRYHI] = e.hi
        self.cp0[c][<int>Cp0.PAGEMASK] = e.mask
        self.cp0[c][<int>Cp0.ENTRYLO0] = (e.lo0 & ~1U) | g
        self.cp0[c][<int>Cp0.ENTRYLO1] = (e.lo1 & ~1U) | g
        if c == 0:
            self.cp0[0][<int>Cp0.GUESTCTL1] = (self.cp0[0][<int>Cp0.GUESTCTL1] & ~0x00FF0000) | (e.guestid << 16)
        if (old ^ e.hi) & 0xFF:
            self.flush_utlb_ctx(c)

    cdef void tlbw(self, int c, int i) noexcept nogil:
        cdef uint32_t gid = (self.cp0[0][<int>Cp0.GUESTCTL1] >> 16) & 0xFF if c == 0 else 0
        self.write_tlb_entry(c, i, self.cp0[c][<int>Cp0.ENTRYHI], self.cp0[c][<int>Cp0.PAGEMASK],
                             self.cp0[c][<int>Cp0.ENTRYLO0], self.cp0[c][<int>Cp0.ENTRYLO1], gid)

    cdef void write_tlb_entry(self, int c, int i, uint32_t hi, uint32_t mask, uint32_t lo0,
                              uint32_t lo1, uint32_t gid) noexcept nogil:
        cdef TlbEntry* e = &self.tlb[c][i]
        cdef uint32_t g = lo0 & lo1 & 1
        # forget what the old entry translated
        self.flush_utlb_range(c, e.hi & ~(e.mask | 0x1FFF), (e.mask | 0x1FFF) + 1)
        if c == 0:
            # root entries also back every guest translation (GPA -> HPA)
            self.flush_utlb_ctx(1)
        e.hi = hi & 0xFFFFE0FFU
        e.mask = mask & 0x1FFFE000
        e.lo0 = (lo0 & ~1U) | g
        e.lo1 = (lo1 & ~1U) | g
        e.guestid = gid

    # ------------------------------------------------------------ micro-TLB
    cdef void flush_utlb_all(self) noexcept nogil:
        memset(self.ut, 0xFF, sizeof(self.ut))      # every tag UT_INVALID
        memset(self.ut_used, 0, sizeof(self.ut_used))

    cdef void flush_utlb_ctx(self, int c) noexcept nogil:
        # A hypervisor switching a guest between kernel and user mode writes
        # SegCtl and EntryHi back to back, each a flush: only the first finds
        # anything to clear.
        cdef int s
        for s in range(c * 3, c * 3 + 3):
            if self.ut_used[s]:
                memset(&self.ut[s][0], 0xFF, sizeof(UtEntry) * UT_SIZE)
                self.ut_used[s] = 0

    cdef void flush_utlb_range(self, int c, uint32_t va, uint32_t size) noexcept nogil:
        cdef uint32_t npages = size >> 12
        cdef uint32_t k, vpn, idx
        cdef int s
        if npages >= UT_SIZE:
            self.flush_utlb_ctx(c)
            return
        for k in range(npages):
            vpn = (va >> 12) + k
            idx = vpn & UT_MASK
            for s in range(c * 3, c * 3 + 3):
                if self.ut[s][idx].rtag == (vpn << 12) or self.ut[s][idx].wtag == (vpn << 12):
                    self.ut[s][idx].rtag = UT_INVALID
                    self.ut[s][idx].wtag = UT_INVALID

    # ------------------------------------------------------------ address translation
    cdef int xlat_stage1(self, uint32_t va, int acc, uint32_t* pa_out, int* writable,
                         int fault) noexcept nogil:
        """Virtual -> physical in the current context. Returns 0 or raises (if fault) and returns 1."""
        cdef int c = self.ctx
        cdef int s = va >> 29
        cdef int kind = self.seg_kind[c][self.mode][s]
        cdef uint32_t* r = self.cp0[c]
        cdef uint32_t asid, gid, lo, odd, half
        cdef int i
        cdef TlbEntry* e
        if kind == 2:
            pa_out[0] = self.seg_pa[c][self.mode][s] | (va & 0x1FFFFFFF)
            writable[0] = 1
            return 0
        if kind == 0:
            if fault:
                self.addr_error(self.fault_pc, va, ACC_STORE if acc == ACC_STORE else ACC_LOAD)
            return 1
        asid = r[<int>Cp0.ENTRYHI] & 0xFF
        gid = 0
        i = self.tlb_lookup(c, va, asid, gid)
        if i < 0:
            if fault:
                self.tlb_exception(c, va, acc, ExcCode.TLBS if acc == ACC_STORE else ExcCode.TLBL, 1)
            return 1
        e = &self.tlb[c][i]
        half = ((e.mask | 0x1FFF) + 1) >> 1
        lo = e.lo1 if (va & half) else e.lo0
        if not (lo & 2):
            if fault:
                self.tlb_exception(c, va, acc, ExcCode.TLBS if acc == ACC_STORE else ExcCode.TLBL, 0)
            return 1
        if acc == ACC_STORE and not (lo & 4):
            if fault:
                self.tlb_exception(c, va, acc, ExcCode.MOD, 0)
            return 1
        writable[0] = (lo & 4) != 0
        pa_out[0] = (((lo >> 6) << 12) & ~(half - 1)) | (va & (half - 1))
        return 0

    cdef void tlb_exception(self, int c, uint32_t va, int acc, uint32_t code, int refill) noexcept nogil:
        cdef uint32_t* r = self.cp0[c]
        cdef uint32_t pc = self.fault_pc
        r[<int>Cp0.CONTEXT] = (r[<int>Cp0.CONTEXT] & 0xFF800000U) | ((va >> 9) & 0x007FFFF0)
        r[<int>Cp0.ENTRYHI] = (va & 0xFFFFE000U) | (r[<int>Cp0.ENTRYHI] & 0xFF)
        if c == 0:
            self.root_exc(pc, code, 0, va, 1)
        else:
            self.enter_vector(1, pc, code, va, 1, refill)

    cdef int xlat_stage2(self, uint32_t gpa, int acc, uint32_t* hpa_out, int* writable,
                         int fault) noexcept nogil:
        """Guest physical -> host physical through the root TLB (VZ second stage)."""
        cdef uint32_t gid = self.cp0[0][<int>Cp0.GUESTCTL1] & 0xFF
        cdef uint32_t asid = self.cp0[0][<int>Cp0.ENTRYHI] & 0xFF
        cdef int i = self.tlb_lookup(0, gpa, asid, gid)
        cdef TlbEntry* e
        cdef uint32_t half, lo, code
        cdef uint32_t pc = self.fault_pc
        if i < 0:
            if fault:
                self.root_exc(pc, ExcCode.TLBS if acc == ACC_STORE else ExcCode.TLBL, GExcCode.GPA, gpa, 1)
            return 1
        e = &self.tlb[0][i]
        half = ((e.mask | 0x1FFF) + 1) >> 1
        lo = e.lo1 if (gpa & half) else e.lo0
        if not (lo & 2):
            if fault:
                self.root_exc(pc, ExcCode.TLBS if acc == ACC_STORE else ExcCode.TLBL, GExcCode.GPA, gpa, 1)
            return 1
        if acc == ACC_STORE and not (lo & 4):
            if fault:
                self.root_exc(pc, ExcCode.MOD, GExcCode.GPA, gpa, 1)
            return 1
        writable[0] = (lo & 4) != 0
        hpa_out[0] = (((lo >> 6) << 12) & ~(half - 1)) | (gpa & (half - 1))
        return 0

    cdef int xlat_nofault(self, uint32_t va, int acc, uint32_t* out) noexcept nogil:
        cdef uint32_t pa, hpa
        cdef int w1 = 0, w2 = 0
        if self.xlat_stage1(va, acc, &pa, &w1, 0):
            return 1
        if self.guest_mode:
            if self.xlat_stage2(pa, acc, &hpa, &w2, 0):
                return 1
            pa = hpa
        out[0] = pa
        return 0

    cdef uint8_t* xlat(self, uint32_t va, int acc) noexcept nogil:
        """Full translation with architectural checks; fills the micro-TLB. NULL = exception taken."""
        cdef uint32_t pa, hpa
        cdef int w1 = 0, w2 = 1
        cdef uint64_t host
        cdef uint32_t idx
        cdef UtEntry* e
        if acc == ACC_FETCH and (va & 3):
            self.cp0[self.ctx][<int>Cp0.BADVADDR] = va
            self.exception(va, ExcCode.ADEL, va, 1)
            return NULL
        if self.xlat_stage1(va, acc, &pa, &w1, 1):
            return NULL
        if self.guest_mode:
            if self.xlat_stage2(pa, acc, &hpa, &w2, 1):
                return NULL
            pa = hpa
        if (pa >> 12) >= self.npages or self.page_ptr[pa >> 12] == 0:
            self.root_exc(self.fault_pc,
                          ExcCode.IBE if acc == ACC_FETCH else ExcCode.DBE, 0, va, 1)
            return NULL
        host = self.page_ptr[pa >> 12]
        idx = (va >> 12) & UT_MASK
        e = &self.ut[self.uset][idx]
        self.ut_used[self.uset] = 1
        e.rtag = va & 0xFFFFF000U
        e.off = host - (va & 0xFFFFF000U)
        e.wtag = (va & 0xFFFFF000U) if (w1 and w2) else UT_INVALID
        return <uint8_t*><uintptr_t>(host + (va & 0xFFF))
