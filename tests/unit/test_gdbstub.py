"""Every command of the gdb stub, over a real socket, against the fake machine of tests.gdbfake."""

from __future__ import annotations

import os
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmpy.arch.mips.uapi import KVM_REG_MIPS_PC, gp_reg
from kvmpy.vmm.gdbstub import DebugExit, GdbStub, StopKind, WatchKind, mips32
from kvmpy.vmm.gdbstub.packets import EventKind, frame
from kvmpy.vmm.sockets import ListenSpec, SocketListenError, parse_listen_spec
from tests.asm import ToolchainMissingError, assemble
from tests.gdbfake import (
    COUNTER_GVA,
    FUNC_GVA,
    JAL_GVA,
    LOOP_GVA,
    LW_GVA,
    PROGRAM_GVA,
    PROGRAM_SOURCE,
    RAM_BYTES,
    SPIN_GVA,
    STORE_GVA,
    FakeMachine,
    GdbClient,
)

PC = 37
R4, R2, R11 = 4, 2, 11
REGS = 72


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def program() -> bytes:
    try:
        return assemble(PROGRAM_SOURCE, PROGRAM_GVA)
    except ToolchainMissingError as exc:
        if _in_ci():
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


@dataclass
class Session:
    machine: FakeMachine
    stub: GdbStub
    gdb: GdbClient
    result: list[DebugExit]
    thread: threading.Thread

    def finished(self, timeout_s: float = 5.0) -> DebugExit:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "serve() did not return"
        return self.result[0]


def start(machine: FakeMachine, *, start_stopped: bool = True,
          listen: ListenSpec | None = None) -> tuple[GdbStub, list[DebugExit], threading.Thread]:
    listen = listen or ListenSpec(host="127.0.0.1", port=0)
    stub = GdbStub(machine, mips32(), listen, start_stopped=start_stopped)
    result: list[DebugExit] = []
    thread = threading.Thread(target=lambda: result.append(stub.serve()), name="test-vcpu", daemon=True)
    thread.start()
    return stub, result, thread


@pytest.fixture
def session(program: bytes) -> Iterator[Session]:
    machine = FakeMachine(program, PROGRAM_GVA)
    stub, result, thread = start(machine)
    gdb = GdbClient(stub.address)
    yield Session(machine, stub, gdb, result, thread)
    gdb.close()
    stub.close()
    thread.join(5)


def le32(value: int) -> str:
    return value.to_bytes(4, "little").hex()


# ---------------------------------------------------------------------- queries
def test_qsupported_advertises_what_the_stub_does(session: Session) -> None:
    features = session.gdb.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386").split(b";")
    assert b"PacketSize=4000" in features
    for feature in (b"qXfer:features:read+", b"vContSupported+", b"swbreak+", b"hwbreak+"):
        assert feature in features
    assert b"QStartNoAckMode+" in features


def test_target_xml_in_chunks_describes_gdbs_mips_register_numbering(session: Session) -> None:
    xml = b""
    while True:
        chunk = session.gdb.ask(f"qXfer:features:read:target.xml:{len(xml):x},40".encode())
        assert chunk[:1] in (b"m", b"l") and len(chunk) <= 1 + 0x40
        xml += chunk[1:]
        if chunk[:1] == b"l":
            break
    root = ET.fromstring(xml)
    assert root.findtext("architecture") == "mips:isa32r2"
    regs = {r.get("name"): (int(r.get("regnum")), f.get("name"))
            for f in root.iter("feature") for r in f.iter("reg")}
    assert len(regs) == REGS
    assert regs["r0"] == (0, "org.gnu.gdb.mips.cpu") and regs["r31"] == (31, "org.gnu.gdb.mips.cpu")
    assert regs["status"] == (32, "org.gnu.gdb.mips.cp0")
    assert regs["lo"] == (33, "org.gnu.gdb.mips.cpu") and regs["hi"] == (34, "org.gnu.gdb.mips.cpu")
    assert regs["badvaddr"] == (35, "org.gnu.gdb.mips.cp0") and regs["cause"] == (36, "org.gnu.gdb.mips.cp0")
    assert regs["pc"] == (37, "org.gnu.gdb.mips.cpu")
    assert regs["f0"] == (38, "org.gnu.gdb.mips.fpu") and regs["fir"] == (71, "org.gnu.gdb.mips.fpu")
    assert session.gdb.ask(b"qXfer:features:read:other.xml:0,100") == b"E00"
    assert session.gdb.ask(b"qXfer:features:read:target.xml:zz,10") == b"E22"


def test_thread_queries_describe_one_attached_vcpu(session: Session) -> None:
    gdb = session.gdb
    assert gdb.ask(b"qAttached") == b"1"
    assert gdb.ask(b"qAttached:1") == b"1"
    assert gdb.ask(b"qC") == b"QC1"
    assert gdb.ask(b"qfThreadInfo") == b"m1"
    assert gdb.ask(b"qsThreadInfo") == b"l"
    assert gdb.ask(b"Hg0") == b"OK"
    assert gdb.ask(b"Hc-1") == b"OK"
    assert gdb.ask(b"Hg1") == b"OK"
    assert gdb.ask(b"Hg2") == b"E22"
    assert gdb.ask(b"T1") == b"OK"
    assert gdb.ask(b"T5") == b"E22"
    assert bytes.fromhex(gdb.ask(b"qThreadExtraInfo,1").decode()) == b"vCPU 0"


def test_unknown_packets_get_the_empty_reply(session: Session) -> None:
    for payload in (b"qTStatus", b"vMustReplyEmpty", b"!", b"Qfoo", b"bc", b"vFile:open:"):
        assert session.gdb.ask(payload) == b""


def test_stop_reason_before_anything_ran_is_sigtrap(session: Session) -> None:
    assert session.gdb.ask(b"?") == b"T05thread:1;"


# ---------------------------------------------------------------------- registers
def test_g_reports_every_register_in_gdb_order_with_fpu_unavailable(session: Session) -> None:
    machine = session.machine
    machine.set_one_reg(gp_reg(4), 0x1234_5678)
    regs = session.gdb.ask(b"g")
    assert len(regs) == REGS * 8
    words = [regs[i:i + 8] for i in range(0, len(regs), 8)]
    assert words[4] == le32(0x1234_5678).encode()
    assert words[32] == le32(0x0040_0004).encode()      # status after reset
    assert words[PC] == le32(PROGRAM_GVA).encode()
    assert words[38:] == [b"xxxxxxxx"] * 34              # f0-f31, fcsr, fir: no FPU


def test_G_writes_registers_and_skips_unavailable_ones(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    words = [le32(0)] * 38 + ["xxxxxxxx"] * 34
    words[0] = le32(0xDEAD)     # r0 cannot change
    words[5] = le32(0xCAFE_F00D)
    words[PC] = le32(LOOP_GVA)
    assert gdb.ask(("G" + "".join(words)).encode()) == b"OK"
    assert machine.gpr(5) == 0xCAFE_F00D
    assert machine.gpr(0) == 0
    assert machine.pc == LOOP_GVA
    assert gdb.ask(b"G" + b"00" * 3) == b"E22"          # ends inside a register
    assert gdb.ask(b"G" + b"0" * (8 * REGS + 8)) == b"E22"  # more than the register file
    assert gdb.ask(b"Gzz" + b"0" * 6) == b"E22"
    assert machine.gpr(5) == 0xCAFE_F00D


def test_p_and_P_single_registers(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    assert gdb.ask(b"p25") == le32(PROGRAM_GVA).encode()
    assert gdb.ask(b"P9=" + le32(0xA5A5_0001).encode()) == b"OK"
    assert machine.gpr(9) == 0xA5A5_0001
    assert gdb.ask(b"p9") == le32(0xA5A5_0001).encode()
    assert gdb.ask(b"p26") == b"xxxxxxxx"               # f0
    assert gdb.ask(b"P26=00000000") == b"E22"
    assert gdb.ask(b"p48") == b"E22"                    # regnum 72 does not exist
    assert gdb.ask(b"P9=0011") == b"E22"                # wrong size
    assert gdb.ask(b"P9") == b"E22"
    assert gdb.ask(b"p") == b"E22"
    assert machine.gpr(9) == 0xA5A5_0001


# ---------------------------------------------------------------------- memory
def test_m_reads_guest_memory_through_translation(session: Session, program: bytes) -> None:
    gdb = session.gdb
    assert gdb.ask(f"m{PROGRAM_GVA:x},10".encode()) == program[:16].hex().encode()
    assert gdb.ask(f"m{PROGRAM_GVA + 0x2000_0000:x},8".encode()) == program[:8].hex().encode()  # kseg1 alias
    assert gdb.ask(b"m1000,4") == b"E14"                      # unmapped
    assert gdb.ask(b"m100000000,4") == b"E22"                 # beyond 32 bits
    assert gdb.ask(b"mzz,4") == b"E22"
    assert gdb.ask(b"m80001000") == b"E22"
    end = 0x8000_0000 + RAM_BYTES
    assert gdb.ask(f"m{end - 4:x},10".encode()) == b"00" * 4  # a short read stops at the end of RAM
    assert gdb.ask(f"m{PROGRAM_GVA:x},0".encode()) == b""


def test_m_spanning_pages_and_long_reads_are_bounded(session: Session) -> None:
    machine, gdb = session.machine, session.gdb
    machine.ram[0x0FFE:0x1002] = b"\x11\x22\x33\x44"
    assert gdb.ask(b"m80000ffe,4") == b"11223344"
    reply = gdb.ask(b"m80000000,100000")
    assert 0 < len(reply) < 0x4000 and len(reply) % 2 == 0


def test_M_and_X_write_memory_with_binary_escaping(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    assert gdb.ask(f"M{COUNTER_GVA:x},4:deadbeef".encode()) == b"OK"
    assert machine.word(COUNTER_GVA) == 0xEFBE_ADDE
    special = bytes([0x23, 0x24, 0x7D, 0x2A, 0x00, 0xFF])
    payload = f"X{COUNTER_GVA:x},{len(special):x}:".encode() + bytes((0x7D, 0x23 ^ 0x20, 0x7D, 0x24 ^ 0x20,
                                                                        0x7D, 0x7D ^ 0x20, 0x7D, 0x2A ^ 0x20,
                                                                        0x00, 0xFF))
    assert gdb.ask(payload) == b"OK"
    assert bytes(machine.ram[0x2000:0x2006]) == special
    assert gdb.ask(f"X{COUNTER_GVA:x},0:".encode()) == b"OK"   # gdb's probe for X support


def test_bad_writes_leave_memory_untouched(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    before = bytes(machine.ram)
    assert gdb.ask(b"M1000,4:00000000") == b"E14"               # unmapped
    end = 0x8000_0000 + RAM_BYTES
    assert gdb.ask(f"M{end - 2:x},4:01020304".encode()) == b"E14"  # would run off RAM: nothing written
    assert gdb.ask(f"M{COUNTER_GVA:x},4:0102".encode()) == b"E22"  # length mismatch
    assert gdb.ask(f"M{COUNTER_GVA:x},2:zzzz".encode()) == b"E22"
    assert gdb.ask(f"M{COUNTER_GVA:x},2".encode()) == b"E22"
    assert gdb.ask(b"X1000,1:a") == b"E14"
    assert gdb.ask(f"X{COUNTER_GVA:x},2:a}}".encode()) == b"E22"   # ends in a lone escape
    assert bytes(machine.ram) == before


# ---------------------------------------------------------------------- execution
def test_software_breakpoint_stops_without_touching_guest_memory(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    before = bytes(machine.ram)
    assert gdb.ask(f"Z0,{JAL_GVA:x},4".encode()) == b"OK"
    assert bytes(machine.ram) == before
    assert machine.debug.sw_breakpoints == {JAL_GVA}
    assert gdb.ask(b"c") == b"T05swbreak:;thread:1;"
    assert machine.pc == JAL_GVA
    assert machine.word(COUNTER_GVA) == 3            # the loop ran to the end first
    assert gdb.ask(f"z0,{JAL_GVA:x},4".encode()) == b"OK"
    assert machine.debug.sw_breakpoints == frozenset()
    assert gdb.ask(b"?") == b"T05swbreak:;thread:1;"


def test_continuing_from_a_breakpoint_makes_progress(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    gdb.ask(f"Z0,{STORE_GVA:x},4".encode())
    counts = []
    for _ in range(3):
        assert gdb.ask(b"c") == b"T05swbreak:;thread:1;"
        assert machine.pc == STORE_GVA
        counts.append(machine.gpr(9))
    assert counts == [1, 2, 3]


def test_hardware_breakpoints_are_limited_by_the_target(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    assert gdb.ask(f"Z1,{JAL_GVA:x},4".encode()) == b"OK"
    assert gdb.ask(f"Z1,{LW_GVA:x},4".encode()) == b"OK"
    assert gdb.ask(f"Z1,{FUNC_GVA:x},4".encode()) == b"E28"   # the fake has two
    assert machine.debug.hw_breakpoints == {JAL_GVA, LW_GVA}
    assert gdb.ask(b"c") == b"T05hwbreak:;thread:1;"
    assert machine.pc == JAL_GVA
    assert gdb.ask(b"Z1,100000000,4") == b"E22"
    assert gdb.ask(b"Z9,80001000,4") == b""
    assert gdb.ask(b"Z0,80001000") == b"E22"


@pytest.mark.parametrize(("z", "kind", "reason", "stop_pc", "value"), [
    (2, WatchKind.WRITE, "watch", STORE_GVA, 0),      # stops before the first store
    (3, WatchKind.READ, "rwatch", LW_GVA, 3),         # the only load of the counter
    (4, WatchKind.ACCESS, "awatch", STORE_GVA, 0),
])
def test_watchpoints_stop_before_the_access(session: Session, z: int, kind: WatchKind, reason: str,
                                             stop_pc: int, value: int) -> None:
    gdb, machine = session.gdb, session.machine
    assert gdb.ask(f"Z{z},{COUNTER_GVA:x},4".encode()) == b"OK"
    assert machine.debug.watchpoints[0].kind is kind
    assert gdb.ask(b"c") == f"T05{reason}:{COUNTER_GVA:x};thread:1;".encode()
    assert machine.pc == stop_pc
    assert machine.word(COUNTER_GVA) == value
    assert gdb.ask(f"z{z},{COUNTER_GVA:x},4".encode()) == b"OK"
    assert machine.debug.watchpoints == ()
    assert gdb.ask(f"Z2,{COUNTER_GVA:x},0".encode()) == b"E22"


def test_single_step_takes_a_branch_with_its_delay_slot(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    gdb.ask(f"Z0,{JAL_GVA:x},4".encode())
    gdb.ask(b"c")
    gdb.ask(f"z0,{JAL_GVA:x},4".encode())
    assert gdb.ask(b"s") == b"T05thread:1;"
    assert machine.pc == FUNC_GVA
    assert machine.gpr(R4) == 7                      # the delay slot ran
    assert machine.gpr(31) == LW_GVA
    assert gdb.ask(b"vCont;s:1") == b"T05thread:1;"  # jr $31 + its slot
    assert machine.pc == LW_GVA
    assert machine.gpr(R2) == 8
    assert gdb.register(PC) == LW_GVA
    assert gdb.ask(b"vCont;s:2;c") == b"W00"          # thread 2 does not exist: continue to the end
    assert session.finished().message == "break"


def test_a_step_the_hypervisor_cannot_do_is_an_error_not_a_continue(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    machine.can_single_step = False
    assert gdb.ask(b"s") == b"E28"
    assert gdb.ask(b"vCont;s:1") == b"E28"
    assert machine.pc == PROGRAM_GVA and machine.runs == 0
    machine.can_single_step = True
    assert gdb.ask(b"s") == b"T05thread:1;"
    assert machine.pc == PROGRAM_GVA + 4


def test_s_and_c_with_an_address_resume_there(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    assert gdb.ask(f"s{FUNC_GVA:x}".encode()) == b"T05thread:1;"
    assert machine.pc == machine.gpr(31)             # jr $31 with $31 = 0
    assert gdb.ask(b"S05;" + f"{FUNC_GVA:x}".encode()) == b"T05thread:1;"
    assert gdb.ask(b"c100000000") == b"E22"
    assert gdb.ask(b"vCont?") == b"vCont;c;C;s;S"
    assert gdb.ask(b"vCont;t") == b"E22"
    assert gdb.ask(b"vCont;") == b"E22"


def test_ctrl_c_interrupts_a_running_guest(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    assert gdb.ask(b"P25=" + le32(SPIN_GVA).encode()) == b"OK"
    gdb.send(b"vCont;c")
    assert gdb.next_event().kind is EventKind.ACK
    assert machine.running.wait(5)
    time.sleep(0.05)
    gdb.send(b"qC")                                   # not answered while the guest runs
    gdb.send_raw(b"\x03")
    assert gdb.reply() == b"T02thread:1;"
    assert gdb.reply() == b"QC1"                     # the queued packet, once stopped
    assert machine.pc in (SPIN_GVA, SPIN_GVA + 4)
    assert gdb.ask(b"?") == b"T02thread:1;"


def test_a_stale_kick_is_not_reported_as_a_stop(session: Session) -> None:
    gdb, machine = session.gdb, session.machine
    gdb.ask(f"Z0,{JAL_GVA:x},4".encode())
    machine.kick()                                    # as a departed client's disconnect would
    assert gdb.ask(b"c") == b"T05swbreak:;thread:1;"
    assert machine.runs == 2                          # the interrupted run, then the real one


def test_guest_exit_is_reported_and_ends_serve(session: Session) -> None:
    assert session.gdb.ask(b"c") == b"W00"
    result = session.finished()
    assert result.kind is StopKind.EXITED and result.exit_code == 0


def test_kill_ends_the_vm(session: Session) -> None:
    session.gdb.send(b"k")
    result = session.finished()
    assert result.kind is StopKind.EXITED and result.message == "killed by gdb"


def test_detach_removes_breakpoints_and_lets_the_guest_run(session: Session) -> None:
    gdb = session.gdb
    gdb.ask(f"Z0,{JAL_GVA:x},4".encode())
    assert gdb.ask(b"D") == b"OK"
    result = session.finished()
    assert result.message == "break"                 # ran to the end: the breakpoint was gone
    assert session.machine.debug.enable is False


def test_disconnect_without_detach_resumes_the_guest(session: Session) -> None:
    session.gdb.ask(f"Z0,{JAL_GVA:x},4".encode())
    session.gdb.close()
    assert session.finished().message == "break"


# ---------------------------------------------------------------------- monitor
def monitor(gdb: GdbClient, command: str) -> str:
    gdb.send(b"qRcmd," + command.encode().hex().encode())
    assert gdb.next_event().kind is EventKind.ACK
    text = ""
    while True:
        reply = gdb.reply()
        if reply == b"OK":
            return text
        assert reply[:1] == b"O"
        text += bytes.fromhex(reply[1:].decode()).decode()


def test_monitor_commands_call_the_targets_hooks(session: Session) -> None:
    gdb = session.gdb
    help_text = monitor(gdb, "help")
    assert "stats" in help_text and "tlb" in help_text and "help" in help_text
    assert monitor(gdb, "stats") == "retired 0 runs 0\n"
    gdb.ask(f"Z0,{JAL_GVA:x},4".encode())
    gdb.ask(b"c")
    assert monitor(gdb, "stats") == f"retired {session.machine.retired} runs 1\n"
    assert session.machine.retired > 0
    assert monitor(gdb, "tlb") == "tlb: 0 entries (kseg only)\n"
    assert monitor(gdb, "  tlb   shadow 3 ") == "tlb shadow 3: 0 entries (kseg only)\n"
    assert monitor(gdb, "") == help_text
    assert "unknown monitor command 'frob'" in monitor(gdb, "frob")
    assert "failed: hook failed on purpose" in monitor(gdb, "boom")
    assert gdb.ask(b"qRcmd,zz") == b"E22"
    assert gdb.ask(b"?") == b"T05swbreak:;thread:1;"


# ---------------------------------------------------------------------- the link
def test_a_failing_target_call_is_an_error_reply_not_a_dead_stub(session: Session,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_gva: int) -> int | None:
        raise RuntimeError("the hypervisor fell over")

    monkeypatch.setattr(session.machine, "translate", broken)
    assert session.gdb.ask(f"m{PROGRAM_GVA:x},4".encode()) == b"E01"
    assert session.gdb.ask(b"p25") == le32(PROGRAM_GVA).encode()
    monkeypatch.undo()
    assert session.gdb.ask(f"m{PROGRAM_GVA:x},4".encode()) != b"E01"


def test_bad_checksum_is_nakked_and_the_retransmission_answered(session: Session) -> None:
    gdb = session.gdb
    gdb.send_raw(b"$qC#00")
    assert gdb.next_event().kind is EventKind.NAK
    assert gdb.ask(b"qC") == b"QC1"


def test_nak_makes_the_stub_resend_its_last_packet(session: Session) -> None:
    gdb = session.gdb
    assert gdb.ask(b"qC") == b"QC1"
    gdb.send_raw(b"-")
    assert gdb.reply() == b"QC1"


def test_no_ack_mode(session: Session) -> None:
    gdb = session.gdb
    assert gdb.ask(b"QStartNoAckMode") == b"OK"
    gdb.no_ack = True
    gdb.send(b"qC")
    event = gdb.next_event()
    assert event.kind is EventKind.PACKET and event.payload == b"QC1"   # no '+' before it
    gdb.send_raw(b"$qC#00")                          # a bad checksum is dropped silently
    assert gdb.ask(b"qAttached") == b"1"


def test_a_second_client_is_refused_while_one_is_attached(session: Session) -> None:
    assert session.gdb.ask(b"qC") == b"QC1"
    second = socket.create_connection(session.stub.address, timeout=5)
    try:
        second.sendall(frame(b"qC"))
        answer = second.recv(100)                     # closed at once: end of file ...
    except ConnectionResetError:
        answer = b""                                  # ... or a reset, if our packet was still unread
    finally:
        second.close()
    assert answer == b"", answer
    assert session.gdb.ask(b"qC") == b"QC1"


def test_a_new_client_after_the_first_left_is_served(session: Session) -> None:
    session.gdb.ask(b"P25=" + le32(SPIN_GVA).encode())
    session.gdb.close()                               # the guest runs on, spinning
    assert session.machine.running.wait(5)
    session.gdb = GdbClient(session.stub.address)
    assert session.gdb.ask(b"?") == b"T05thread:1;"
    assert session.machine.pc in (SPIN_GVA, SPIN_GVA + 4)


def test_clients_coming_and_going_quickly_always_find_the_guest_stopped(session: Session) -> None:
    session.gdb.ask(b"P25=" + le32(SPIN_GVA).encode())
    for _ in range(20):
        session.gdb.close()
        deadline = time.monotonic() + 5
        while session.stub.attached and time.monotonic() < deadline:
            time.sleep(0.0005)                        # until then a new client would be refused
        session.gdb = GdbClient(session.stub.address)
        assert session.gdb.ask(b"?") == b"T05thread:1;"
        assert not session.machine.running.is_set()


def test_connecting_stops_a_freely_running_guest(program: bytes) -> None:
    machine = FakeMachine(program, PROGRAM_GVA)
    machine.set_one_reg(KVM_REG_MIPS_PC, SPIN_GVA)
    stub, result, thread = start(machine, start_stopped=False)
    try:
        assert machine.running.wait(5)
        gdb = GdbClient(stub.address)
        assert gdb.ask(b"?") == b"T05thread:1;"
        assert machine.pc in (SPIN_GVA, SPIN_GVA + 4)
        assert not machine.running.is_set()
        gdb.ask(b"D")
        assert machine.running.wait(5)
        gdb.close()
    finally:
        stub.close()
        thread.join(5)
    assert result[0].message == "gdb stub closed"


def test_unix_socket_transport(program: bytes, tmp_path: Path) -> None:
    path = tmp_path / "gdb.sock"
    machine = FakeMachine(program, PROGRAM_GVA)
    stub, _result, thread = start(machine, listen=parse_listen_spec(f"unix:{path}"))
    try:
        assert stub.address == str(path)
        gdb = GdbClient(str(path))
        assert gdb.ask(b"p25") == le32(PROGRAM_GVA).encode()
        gdb.close()
    finally:
        stub.close()
        thread.join(5)
    assert not path.exists()


def test_listen_specs_and_a_port_in_use() -> None:
    assert parse_listen_spec("tcp::1234") == ListenSpec(host="127.0.0.1", port=1234)
    assert parse_listen_spec("tcp:[::1]:1") == ListenSpec(host="::1", port=1)
    assert parse_listen_spec("unix:/tmp/x") == ListenSpec(unix_path=Path("/tmp/x"))
    for bad in ("tcp:1234", "tcp::99999", "unix:", "udp::1", "1234"):
        with pytest.raises(ValueError):
            parse_listen_spec(bad)
    machine = FakeMachine()
    stub, _result, thread = start(machine)
    try:
        host, port = stub.address
        with pytest.raises(SocketListenError, match="cannot listen on tcp"):
            GdbStub(machine, mips32(), ListenSpec(host=host, port=port))
    finally:
        stub.close()
        thread.join(5)


def test_register_ids_are_the_hypervisors_one_reg_ids() -> None:
    arch = mips32()
    assert arch.registers[PC].one_reg_id == KVM_REG_MIPS_PC
    assert [r.one_reg_id for r in arch.registers[:32]] == [gp_reg(n) for n in range(32)]
    with_fpu = mips32(has_fpu=True)
    assert all(r.one_reg_id is not None for r in with_fpu.registers)
    assert with_fpu.registers[70].name == "fcsr" and with_fpu.registers[71].name == "fir"
