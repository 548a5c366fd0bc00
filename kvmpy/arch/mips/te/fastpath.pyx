# cython: language_level=3, boundscheck=False, wraparound=False
"""The trap-and-emulate hypervisor's compiled fast path.

A profile of Debian under `--mode te` (docs/trap-and-emulate.md) shows most
traps are three instructions Linux runs constantly and that cannot be
rewritten away: `di`/`ei` (interrupt save/restore), `mtc0 Status` that only
changes IE/IM (interrupt restore), and `mfc0 Count` (the clock). Their
emulation is a few loads and stores on the commpage, but in Python each
costs several microseconds of interpreter overhead around them. This loop
runs the core and emulates exactly those, when they are not in a branch
delay slot and leave the guest's privilege (kernel or user, ERL) as it was,
without returning to Python. Every
other stop — and any of these that would change the guest's mode or make
an interrupt deliverable — goes back to `TeVcpu.handle` untouched, so the
Python code remains the one place that defines the semantics; this is
only a shortcut for its commonest cases.
"""

from libc.stdint cimport uint32_t, uint64_t

from kvmpy.arch.mips.hw.defs cimport Cause, Cp0, ExcCode, Status

from kvmpy.arch.mips.hw.defs import Stop

cdef object STOP_ROOT_EXC = Stop.ROOT_EXCEPTION
cdef object STOP_BUDGET = Stop.BUDGET

cdef enum:
    ST_EXL_ERL = Status.EXL | Status.ERL
    # Status bits whose change may change the guest's privilege: KSU, ERL, EXL
    STATUS_MODE_BITS = Status.KSU_MASK | Status.ERL | Status.EXL


cdef inline bint guest_kernel_mode(uint32_t status) noexcept:
    # kernel mode: EXL or ERL set, or KSU = kernel (as te.cp0.guest_kernel_mode decides)
    return (status & ST_EXL_ERL) != 0 or (status & Status.KSU_MASK) == 0


cdef class FastTraps:
    """Emulates di/ei, IE-only mtc0 Status and mfc0 Count between runs of the core."""

    cdef object cpu
    cdef uint32_t[::1] regs
    cdef public bint guest_kernel     # the guest is in kernel mode (kept by TeVcpu)
    cdef public uint32_t count_offset  # guest Count = host Count + count_offset
    cdef public bint count_frozen      # Cause.DC: Count is not running, let Python answer
    cdef uint32_t status_writable      # the guest's mtc0 Status write mask (te.cp0)
    cdef public uint64_t n_di, n_ei, n_mtc0_status, n_mfc0_count

    def __init__(self, cpu, commpage, uint32_t status_writable):
        self.cpu = cpu
        self.regs = memoryview(commpage).cast("I")
        self.status_writable = status_writable
        self.guest_kernel = True

    def run(self, uint64_t budget, bint eretnc):
        """Run the core for up to `budget` instructions; return the Stop Python must handle."""
        cpu = self.cpu
        cdef uint32_t[::1] regs = self.regs
        cdef uint64_t start = cpu.icount
        cdef uint64_t used
        cdef uint32_t cause, insn, rs, rt, index, status, new, value
        used = 0
        while True:
            stop = cpu.run(budget - used, eretnc)
            if stop is not STOP_ROOT_EXC:
                return stop
            cause = cpu.cp0_read(0, 13, 0)
            if (cause >> 2) & 0x1F != ExcCode.CPU or cause & (Cause.BD | Cause.CE_MASK):
                return stop
            status = regs[<int>Cp0.STATUS]
            if not self.guest_kernel and not status & Status.CU0:
                return stop
            insn = cpu.cp0_read(0, 8, 1)          # BadInstr
            if insn >> 26 != 0x10:
                return stop
            rs = (insn >> 21) & 31
            rt = (insn >> 16) & 31
            if rs == 11 and (insn & 0xFFDF) == 0x6000:         # di / ei
                if rt:
                    cpu.set_gpr(rt, status)
                if insn & 0x20:
                    new = status | Status.IE
                    self.n_ei += 1
                else:
                    new = status & ~Status.IE
                    self.n_di += 1
            elif insn & 0x7F8:
                return stop
            else:
                index = ((insn >> 11) & 31) * 8 + (insn & 7)
                if rs == 4 and index == Cp0.STATUS:               # mtc0 Status
                    value = cpu.get_gpr(rt)
                    new = (status & ~self.status_writable) | (value & self.status_writable)
                    if (status ^ new) & STATUS_MODE_BITS and (
                            guest_kernel_mode(status) != guest_kernel_mode(new)
                            or (status ^ new) & Status.ERL):
                        # the guest's privilege changes: the host must follow (Python)
                        return stop
                    self.n_mtc0_status += 1
                elif rs == 0 and index == Cp0.COUNT and not self.count_frozen:   # mfc0 Count
                    new = status
                    if rt:
                        cpu.set_gpr(rt, <uint32_t>(<uint32_t>cpu.cp0_read(0, 9, 0) + self.count_offset))
                    self.n_mfc0_count += 1
                else:
                    return stop
            regs[<int>Cp0.STATUS] = new
            cpu.cp0_write(0, 14, 0, <uint32_t>(<uint32_t>cpu.cp0_read(0, 14, 0) + 4))
            eretnc = True
            used = <uint64_t>cpu.icount - start
            if used >= budget:
                return STOP_BUDGET
            if new & Status.IE and not new & ST_EXL_ERL and regs[<int>Cp0.CAUSE] & new & Cause.IP_MASK:
                # an interrupt is now deliverable: Python's enter() delivers it
                return STOP_BUDGET
