"""Hypothesis-generated input to the gdb stub over a real socket.

Garbage, bad checksums and random well-formed packets: the stub answers
every packet it accepts (exactly once, plus a resend per `-`), NAKs every
bad checksum, keeps serving afterwards, and the machine behind it changes
only as the writes it acknowledged say.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kvmpy.arch.mips.uapi import gp_reg
from kvmpy.kvm.debug import WatchKind
from kvmpy.vmm.gdbstub import GdbStub, GuestDebug, mips32
from kvmpy.vmm.gdbstub.packets import Event, EventKind, PacketReader, escape_binary, frame, unescape_binary
from kvmpy.vmm.sockets import ListenSpec
from tests.gdbfake import COUNTER_GVA, KSEG0, PROGRAM_GVA, RAM_BYTES, FakeMachine, GdbClient

FUZZ = settings(max_examples=150, deadline=None)

# Commands that change the machine or the session; everything else only reads.
_STATEFUL_PREFIXES = (b"G", b"P", b"M", b"X", b"Z", b"z", b"c", b"s", b"C", b"S", b"k", b"D",
                      b"vCont;", b"vKill", b"QStartNoAckMode")
_READ_PREFIXES = [b"g", b"p", b"m", b"?", b"q", b"qC", b"qAttached", b"qSupported:", b"qXfer:features:read:",
                  b"qXfer:features:read:target.xml:", b"qRcmd,", b"qfThreadInfo", b"qThreadExtraInfo,",
                  b"H", b"Hg", b"T", b"vCont?", b"vMustReplyEmpty", b"v", b"Q", b"!", b""]

WATCH_KINDS = {b"2": WatchKind.WRITE, b"3": WatchKind.READ, b"4": WatchKind.ACCESS}


def _is_hex(text: bytes) -> bool:
    return bool(text) and all(c in b"0123456789abcdef" for c in text)


def _read_only(payload: bytes) -> bool:
    return not payload.startswith(_STATEFUL_PREFIXES)


_body_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"$", b"").replace(b"#", b""))
_hexish = st.text(alphabet="0123456789abcdefABCDEF,:;=-xX", max_size=24).map(str.encode)
read_packets = st.builds(lambda p, a: frame(p + a), st.sampled_from(_READ_PREFIXES),
                         st.one_of(_hexish, _body_bytes))
bad_frames = st.builds(lambda p, c: b"$" + p + b"#" + c, _body_bytes, st.binary(min_size=0, max_size=2))
garbage = st.binary(max_size=120)
chunks = st.lists(st.one_of(read_packets, bad_frames, garbage), min_size=1, max_size=12)


@dataclass
class Rig:
    machine: FakeMachine
    stub: GdbStub
    gdb: GdbClient


@contextmanager
def rig_context() -> Iterator[Rig]:
    machine = FakeMachine(bytes(range(256)) * 4, PROGRAM_GVA)
    stub = GdbStub(machine, mips32(), ListenSpec(host="127.0.0.1", port=0), start_stopped=True)
    thread = threading.Thread(target=stub.serve, daemon=True)
    thread.start()
    gdb = GdbClient(stub.address, timeout_s=5)
    assert gdb.ask(b"qC") == b"QC1"
    yield Rig(machine, stub, gdb)
    gdb.close()
    stub.close()
    thread.join(5)
    assert not thread.is_alive()


def snapshot(machine: FakeMachine) -> tuple[bytes, dict[int, int], GuestDebug, int]:
    return bytes(machine.ram), dict(machine.regs), machine.debug, machine.runs


@FUZZ
@given(parts=chunks)
def test_malformed_and_random_input_is_answered_and_changes_nothing(parts: list[bytes]) -> None:
    data = b"".join(parts) + b"#00"   # "#00" always returns the stub's parser to idle
    predicted = list(PacketReader().feed(data))
    accepted = [e.payload for e in predicted if e.kind is EventKind.PACKET]
    assume(all(_read_only(p) for p in accepted))
    with rig_context() as rig:
        check_answers(rig, data, predicted)


def check_answers(rig: Rig, data: bytes, predicted: list[Event]) -> None:
    accepted = [e.payload for e in predicted if e.kind is EventKind.PACKET]
    bad = sum(e.kind is EventKind.BAD_CHECKSUM for e in predicted)
    naks = sum(e.kind is EventKind.NAK for e in predicted)
    before = snapshot(rig.machine)

    rig.gdb.send_raw(data)
    replies = nak_count = 0
    while replies < len(accepted) + naks or nak_count < bad:
        event = rig.gdb.next_event(timeout_s=5)
        if event.kind is EventKind.PACKET:
            rig.gdb.send_raw(b"+")
            console_output = event.payload[:1] == b"O" and _is_hex(event.payload[1:])
            replies += not console_output   # a monitor command prints with O packets before its reply
        elif event.kind is EventKind.NAK:
            nak_count += 1
    assert rig.gdb.ask(b"qC") == b"QC1"     # nothing more was pending: the next reply is ours
    assert snapshot(rig.machine) == before


def _addresses() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([COUNTER_GVA, KSEG0, KSEG0 + RAM_BYTES - 2, KSEG0 + RAM_BYTES, 0x1000, 0xA000_2000,
                         0xFFFF_FFFE]),
        st.integers(0, 1 << 33),
    )


@st.composite
def write_packets(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from("MXPZz"))
    if kind in "MX":
        gva = draw(_addresses())
        data = draw(st.binary(max_size=12))
        length = draw(st.one_of(st.just(len(data)), st.integers(0, 16)))
        body = data.hex().encode() if kind == "M" else escape_binary(data)
        return f"{kind}{gva:x},{length:x}:".encode() + body
    if kind == "P":
        regnum = draw(st.integers(0, 80))
        value = draw(st.binary(min_size=0, max_size=5))
        return f"P{regnum:x}=".encode() + value.hex().encode()
    ztype = draw(st.integers(0, 5))
    gva = draw(_addresses())
    size = draw(st.sampled_from([0, 1, 2, 4, 8, 0x2000]))
    return f"{kind}{ztype},{gva:x},{size:x}".encode()


def _expected_ram(before: bytes, packet: bytes) -> bytes:
    head, _sep, body = packet[1:].partition(b":")
    addr_text, _comma, _len = head.partition(b",")
    gva = int(addr_text, 16)
    data = bytes.fromhex(body.decode()) if packet[:1] == b"M" else unescape_binary(body)
    ram = bytearray(before)
    gpa = (gva - KSEG0) if gva < 0xA000_0000 else (gva - 0xA000_0000)
    ram[gpa:gpa + len(data)] = data
    return bytes(ram)


@FUZZ
@given(packets=st.lists(write_packets(), min_size=1, max_size=10))
def test_random_writes_change_exactly_what_they_acknowledge(packets: list[bytes]) -> None:
    with rig_context() as rig:
        check_writes(rig, packets)


def check_writes(rig: Rig, packets: list[bytes]) -> None:
    machine = rig.machine
    for packet in packets:
        ram, regs, debug, _runs = snapshot(machine)
        reply = rig.gdb.ask(packet)
        if reply != b"OK":
            assert reply[:1] in (b"E", b""), reply
            assert snapshot(machine)[:3] == (ram, regs, debug), packet
            continue
        kind = packet[:1]
        if kind in (b"M", b"X"):
            assert bytes(machine.ram) == _expected_ram(ram, packet)
            assert machine.regs == regs
        elif kind == b"P":
            regnum_text, _eq, value_text = packet[1:].partition(b"=")
            reg = mips32().registers[int(regnum_text, 16)]
            value = int.from_bytes(bytes.fromhex(value_text.decode()), "little")
            expected = dict(regs)
            if reg.one_reg_id != gp_reg(0):
                expected[reg.one_reg_id] = value
            assert machine.regs == expected
            assert bytes(machine.ram) == ram
        else:
            ztype, gva_text, size_text = packet[1:].split(b",")
            gva, insert = int(gva_text, 16), kind == b"Z"
            if ztype in (b"0", b"1"):
                table = machine.debug.sw_breakpoints if ztype == b"0" else machine.debug.hw_breakpoints
                assert (gva in table) == insert
            else:
                # a z2 removes the write watchpoint only: a read (Z3) or access (Z4) one
                # on the same range stays
                kind = WATCH_KINDS[ztype]
                present = any(w.gva == gva and w.length_bytes == int(size_text, 16) and w.kind is kind
                              for w in machine.debug.watchpoints)
                assert present == insert
            assert bytes(machine.ram) == ram and machine.regs == regs
        # Whatever was written, the stub reads back what the machine holds.
        assert rig.gdb.ask(b"p25") == machine.pc.to_bytes(4, "little").hex().encode()
    assert rig.gdb.ask(b"qC") == b"QC1"
