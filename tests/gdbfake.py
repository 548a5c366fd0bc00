"""A tiny simulated machine behind the gdb stub's DebugTarget protocol.

It is deliberately small but real enough for gdb: 64 KiB of RAM at guest
physical 0, seen through MIPS kseg0/kseg1 (guest virtual 0x80000000 /
0xA0000000), a little-endian interpreter for the handful of MIPS32
instructions the test programs use (with branch delay slots), and the
debug semantics docs/gdbstub.md asks of the hypervisor: breakpoints and
watchpoints compared by the "hypervisor" (never written into memory),
single-step treating a branch and its delay slot as one step, watchpoints
stopping before the access, the first instruction of a run exempt from
breakpoints. `break` ends the machine (its code is the exit status).
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Mapping

from kvmpy.arch.mips.uapi import CP0_ID_BY_NAME, KVM_REG_MIPS_HI, KVM_REG_MIPS_LO, KVM_REG_MIPS_PC, gp_reg
from kvmpy.kvm.errors import RegisterAccessError
from kvmpy.vmm.gdbstub import (
    DebugExit,
    GuestDebug,
    GuestDebugError,
    GuestMemoryError,
    MonitorCommand,
    StopKind,
    WatchKind,
)
from kvmpy.vmm.gdbstub.packets import Event, EventKind, PacketReader, frame, rle_decode

RAM_BYTES = 64 * 1024
KSEG0 = 0x8000_0000
KSEG1 = 0xA000_0000
MAX_HW_BREAKPOINTS = 2
MAX_WATCHPOINTS = 2
STATUS_RESET = 0x0040_0004  # BEV | ERL, as after reset

_BRANCH_OPS = {0x02, 0x03, 0x04, 0x05}


def _sext16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class FakeMachine:
    """One vCPU and its RAM; implements kvmpy.vmm.gdbstub.DebugTarget."""

    def __init__(self, program: bytes = b"", load_gva: int = 0x8000_1000) -> None:
        self.ram = bytearray(RAM_BYTES)
        self.regs: dict[int, int] = {gp_reg(n): 0 for n in range(32)}
        self.regs |= {
            KVM_REG_MIPS_HI: 0, KVM_REG_MIPS_LO: 0, KVM_REG_MIPS_PC: load_gva,
            CP0_ID_BY_NAME["STATUS"]: STATUS_RESET, CP0_ID_BY_NAME["CAUSE"]: 0, CP0_ID_BY_NAME["BADVADDR"]: 0,
        }
        gpa = self.translate(load_gva)
        assert gpa is not None
        self.ram[gpa:gpa + len(program)] = program
        self.debug = GuestDebug()
        self.debug_calls: list[GuestDebug] = []
        self.can_single_step = True
        self.retired = 0
        self.runs = 0
        self._kicked = threading.Event()
        self.running = threading.Event()

    # ------------------------------------------------------------------ DebugTarget
    def get_one_reg(self, reg_id: int) -> int:
        if reg_id not in self.regs:
            raise RegisterAccessError(f"unknown register id {reg_id:#x}")
        return self.regs[reg_id]

    def set_one_reg(self, reg_id: int, value: int) -> None:
        if reg_id not in self.regs or not 0 <= value < (1 << 64):
            raise RegisterAccessError(f"cannot set {reg_id:#x} to {value:#x}")
        if reg_id != gp_reg(0):
            self.regs[reg_id] = value & 0xFFFF_FFFF

    def set_guest_debug(self, debug: GuestDebug) -> None:
        if len(debug.hw_breakpoints) > MAX_HW_BREAKPOINTS or len(debug.watchpoints) > MAX_WATCHPOINTS:
            raise GuestDebugError("no free breakpoint/watchpoint register")
        if debug.single_step and not self.can_single_step:
            raise GuestDebugError("this machine cannot single-step")
        self.debug = debug
        self.debug_calls.append(debug)

    def translate(self, gva: int) -> int | None:
        for base in (KSEG0, KSEG1):
            if base <= gva < base + RAM_BYTES:
                return gva - base
        return None

    def read_gpa(self, gpa: int, size_bytes: int) -> bytes:
        if gpa < 0 or gpa + size_bytes > RAM_BYTES:
            raise GuestMemoryError(f"gpa {gpa:#x}+{size_bytes} outside RAM")
        return bytes(self.ram[gpa:gpa + size_bytes])

    def write_gpa(self, gpa: int, data: bytes) -> None:
        if gpa < 0 or gpa + len(data) > RAM_BYTES:
            raise GuestMemoryError(f"gpa {gpa:#x}+{len(data)} outside RAM")
        self.ram[gpa:gpa + len(data)] = data

    def run(self) -> DebugExit:
        self.runs += 1
        self.running.set()
        try:
            first = True
            while True:
                if self._kicked.is_set():
                    self._kicked.clear()
                    return DebugExit(StopKind.INTERRUPTED, pc=self.pc)
                stop = self._unit(check_breakpoints=self.debug.enable and not first)
                first = False
                if stop is not None:
                    return stop
                if self.debug.enable and self.debug.single_step:
                    return DebugExit(StopKind.SINGLE_STEP, pc=self.pc)
        finally:
            self.running.clear()

    def kick(self) -> None:
        self._kicked.set()

    def monitor_commands(self) -> Mapping[str, MonitorCommand]:
        return {
            "stats": MonitorCommand("instruction and run counts", self._stats),
            "tlb": MonitorCommand("the (empty) TLB of this machine; 'tlb ARGS' echoes ARGS",
                                  lambda args: f"tlb {args}: 0 entries (kseg only)" if args
                                  else "tlb: 0 entries (kseg only)"),
            "boom": MonitorCommand("a hook that fails", self._boom),
        }

    # ------------------------------------------------------------------ the machine
    @property
    def pc(self) -> int:
        return self.regs[KVM_REG_MIPS_PC]

    def gpr(self, n: int) -> int:
        return self.regs[gp_reg(n)]

    def word(self, gva: int) -> int:
        gpa = self.translate(gva)
        assert gpa is not None
        return int.from_bytes(self.ram[gpa:gpa + 4], "little")

    def _stats(self, _args: str) -> str:
        return f"retired {self.retired} runs {self.runs}"

    def _boom(self, _args: str) -> str:
        raise RuntimeError("hook failed on purpose")

    def _fetch(self, gva: int) -> int | None:
        gpa = self.translate(gva)
        if gpa is None or gva & 3:
            return None
        return int.from_bytes(self.ram[gpa:gpa + 4], "little")

    def _set_gpr(self, n: int, value: int) -> None:
        if n:
            self.regs[gp_reg(n)] = value & 0xFFFF_FFFF

    def _access(self, insn: int) -> tuple[int, WatchKind] | None:
        """(gva, kind) of the data access `insn` makes, if it is a load or store."""
        op = insn >> 26
        if op not in (0x23, 0x2B):
            return None
        gva = (self.gpr((insn >> 21) & 31) + _sext16(insn & 0xFFFF)) & 0xFFFF_FFFF
        return gva, WatchKind.WRITE if op == 0x2B else WatchKind.READ

    def _watch_hit(self, insn: int, pc: int) -> DebugExit | None:
        access = self._access(insn)
        if access is None or not self.debug.enable:
            return None
        gva, kind = access
        for w in self.debug.watchpoints:
            kinds_match = w.kind is WatchKind.ACCESS or w.kind is kind
            if kinds_match and gva < w.gva + w.length_bytes and w.gva < gva + 4:
                return DebugExit(StopKind.WATCHPOINT, pc=pc, watch_gva=w.gva, watch_kind=w.kind)
        return None

    def _unit(self, *, check_breakpoints: bool) -> DebugExit | None:
        """Execute one instruction, or a branch and its delay slot; a stop if one happens first."""
        pc = self.pc
        if check_breakpoints:
            if pc in self.debug.sw_breakpoints:
                return DebugExit(StopKind.SW_BREAKPOINT, pc=pc)
            if pc in self.debug.hw_breakpoints:
                return DebugExit(StopKind.HW_BREAKPOINT, pc=pc)
        insn = self._fetch(pc)
        if insn is None:
            return DebugExit(StopKind.EXITED, pc=pc, exit_code=1, message=f"fetch fault at {pc:#x}")
        op = insn >> 26
        is_branch = op in _BRANCH_OPS or (op == 0 and insn & 0x3F == 0x08)
        if not is_branch:
            hit = self._watch_hit(insn, pc)
            if hit is not None:
                return hit
            exited = self._execute(insn, pc)
            if exited is not None:
                return exited
            self.regs[KVM_REG_MIPS_PC] = (pc + 4) & 0xFFFF_FFFF
            self.retired += 1
            return None
        rs, rt = self.gpr((insn >> 21) & 31), self.gpr((insn >> 16) & 31)
        next_pc = (pc + 8) & 0xFFFF_FFFF
        if op in (0x02, 0x03):
            target = ((pc + 4) & 0xF000_0000) | ((insn & 0x03FF_FFFF) << 2)
        elif op == 0:
            target = rs
        else:
            taken = (rs == rt) if op == 0x04 else (rs != rt)
            target = (pc + 4 + (_sext16(insn & 0xFFFF) << 2)) & 0xFFFF_FFFF if taken else next_pc
        slot = self._fetch(pc + 4)
        if slot is None:
            return DebugExit(StopKind.EXITED, pc=pc, exit_code=1, message=f"fetch fault at {pc + 4:#x}")
        hit = self._watch_hit(slot, pc)  # a delay-slot access stops at its branch, nothing done yet
        if hit is not None:
            return hit
        if op == 0x03:
            self._set_gpr(31, next_pc)
        exited = self._execute(slot, pc + 4)
        if exited is not None:
            return exited
        self.regs[KVM_REG_MIPS_PC] = target
        self.retired += 2
        return None

    def _execute(self, insn: int, pc: int) -> DebugExit | None:
        op = insn >> 26
        rs_n, rt_n, rd_n = (insn >> 21) & 31, (insn >> 16) & 31, (insn >> 11) & 31
        rs, rt, imm = self.gpr(rs_n), self.gpr(rt_n), insn & 0xFFFF
        if op == 0:
            funct = insn & 0x3F
            if funct == 0x00:
                self._set_gpr(rd_n, rt << ((insn >> 6) & 31))
            elif funct == 0x21:
                self._set_gpr(rd_n, rs + rt)
            elif funct == 0x25:
                self._set_gpr(rd_n, rs | rt)
            elif funct == 0x0D:
                return DebugExit(StopKind.EXITED, pc=pc, exit_code=(insn >> 16) & 0x3FF, message="break")
            else:
                return DebugExit(StopKind.EXITED, pc=pc, exit_code=1, message=f"reserved {insn:#010x}")
        elif op == 0x09:
            self._set_gpr(rt_n, rs + _sext16(imm))
        elif op == 0x0D:
            self._set_gpr(rt_n, rs | imm)
        elif op == 0x0F:
            self._set_gpr(rt_n, imm << 16)
        elif op in (0x23, 0x2B):
            gva = (rs + _sext16(imm)) & 0xFFFF_FFFF
            gpa = self.translate(gva)
            if gpa is None or gpa + 4 > RAM_BYTES or gva & 3:
                return DebugExit(StopKind.EXITED, pc=pc, exit_code=1, message=f"data fault at {gva:#x}")
            if op == 0x23:
                self._set_gpr(rt_n, int.from_bytes(self.ram[gpa:gpa + 4], "little"))
            else:
                self.ram[gpa:gpa + 4] = rt.to_bytes(4, "little")
        else:
            return DebugExit(StopKind.EXITED, pc=pc, exit_code=1, message=f"reserved {insn:#010x}")
        return None


# The program the stub tests debug (assembled by tests.asm at PROGRAM_GVA).
PROGRAM_GVA = 0x8000_1000
COUNTER_GVA = 0x8000_2000
PROGRAM_SOURCE = """
    lui   $8, 0x8000
    ori   $8, $8, 0x2000      # $8 = &counter
    addu  $9, $0, $0
loop:                         # +0x0c
    addiu $9, $9, 1
store:                        # +0x10: counter = $9
    sw    $9, 0($8)
    addiu $10, $9, -3
    bne   $10, $0, loop       # +0x18
    nop
call:                         # +0x20
    jal   func
    addiu $4, $0, 7           # +0x24 (delay slot)
after:                        # +0x28
    lw    $11, 0($8)
    break 0                   # +0x2c
func:                         # +0x30
    jr    $31
    addiu $2, $4, 1           # +0x34 (delay slot)
spin:                         # +0x38
    b     spin
    nop
"""
LOOP_GVA = PROGRAM_GVA + 0x0C
STORE_GVA = PROGRAM_GVA + 0x10
JAL_GVA = PROGRAM_GVA + 0x20
LW_GVA = PROGRAM_GVA + 0x28
FUNC_GVA = PROGRAM_GVA + 0x30
SPIN_GVA = PROGRAM_GVA + 0x38


class GdbClient:
    """The client side of the protocol over a real socket, for tests (acks like gdb does)."""

    def __init__(self, address: tuple[str, int] | str, timeout_s: float = 5.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(address)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = PacketReader()
        self.events: deque[Event] = deque()
        self.no_ack = False

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes) -> None:
        self.send_raw(frame(payload))

    def next_event(self, timeout_s: float | None = None) -> Event:
        """The next event from the stub; TimeoutError if none within the socket timeout."""
        if timeout_s is not None:
            self.sock.settimeout(timeout_s)
        while not self.events:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("the stub closed the connection")
            self.events.extend(self.reader.feed(data))
        return self.events.popleft()

    def reply(self, timeout_s: float | None = None) -> bytes:
        """The next packet from the stub (acknowledged, run-length decoded); acks are skipped."""
        while True:
            event = self.next_event(timeout_s)
            if event.kind is EventKind.PACKET:
                if not self.no_ack:
                    self.send_raw(b"+")
                return rle_decode(event.payload)

    def ask(self, payload: bytes) -> bytes:
        """Send a packet and return the stub's reply packet."""
        self.send(payload)
        if not self.no_ack:
            ack = self.next_event()
            assert ack.kind is EventKind.ACK, ack
        return self.reply()

    def read_word(self, gva: int) -> int:
        return int.from_bytes(bytes.fromhex(self.ask(f"m{gva:x},4".encode()).decode()), "little")

    def register(self, regnum: int) -> int:
        return int.from_bytes(bytes.fromhex(self.ask(f"p{regnum:x}".encode()).decode()), "little")
