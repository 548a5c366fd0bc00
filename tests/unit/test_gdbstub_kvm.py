"""The gdb stub in front of a real kvmpy vCPU (vz and te), through today's KVM API only.

Every register of the MIPS description must be readable through the
hypervisor's ONE_REG ids, memory through the VMM's RAM, and Ctrl-C must
stop a guest running in the real hypervisor (a kick).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kvmpy.arch.mips.uapi import VmType
from kvmpy.vmm.gdbstub import DebugExit, GdbStub, mips32
from kvmpy.vmm.gdbstub.packets import EventKind
from kvmpy.vmm.sockets import ListenSpec
from tests.asm import ToolchainMissingError
from tests.gdbfake import GdbClient
from tests.gdbkvm import COUNTER_GPA, ENTRY, KvmVcpuTarget, counting_vm


@pytest.fixture(params=[VmType.VZ, VmType.TE], ids=["vz", "te"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[KvmVcpuTarget, GdbStub, bytes, list[DebugExit]]]:
    try:
        target, code = counting_vm(request.param)
    except ToolchainMissingError as exc:
        pytest.skip(str(exc))
    stub = GdbStub(target, mips32(), ListenSpec(host="127.0.0.1", port=0), start_stopped=True)
    result: list[DebugExit] = []
    thread = threading.Thread(target=lambda: result.append(stub.serve()), daemon=True)
    thread.start()
    yield target, stub, code, result
    stub.close()
    thread.join(10)
    assert not thread.is_alive()


def test_registers_memory_and_ctrl_c_against_the_real_hypervisor(served) -> None:
    target, stub, code, _result = served
    gdb = GdbClient(stub.address, timeout_s=30)
    regs = gdb.ask(b"g")
    words = [regs[i:i + 8] for i in range(0, len(regs), 8)]
    assert len(words) == 72
    assert all(b"x" not in w for w in words[:38]), words[:38]     # every ONE_REG id is the hypervisor's
    assert words[37] == ENTRY.to_bytes(4, "little").hex().encode()
    status = int.from_bytes(bytes.fromhex(words[32].decode()), "little")
    assert status & 0x0040_0004 == 0x0040_0004                      # BEV and ERL, as after reset
    assert gdb.ask(f"m{ENTRY:x},{len(code):x}".encode()) == code.hex().encode()
    # KVM_TRANSLATE: under the reset state's Status.ERL kuseg maps 1:1, kseg2 needs a TLB entry
    assert gdb.ask(b"m1000,4") == code[:4].hex().encode()
    assert gdb.ask(b"mc0000000,4") == b"E14"
    assert gdb.ask(b"m80400000,4") == b"E14"                        # past the end of RAM
    # a breakpoint on the loop's addiu: the hypervisor stops there, guest memory untouched
    assert gdb.ask(f"Z0,{ENTRY + 0x14:x},4".encode()) == b"OK"
    assert gdb.ask(b"c") == b"T05swbreak:;thread:1;"
    assert int.from_bytes(bytes.fromhex(gdb.ask(b"p25").decode()), "little") == ENTRY + 0x14
    assert gdb.ask(f"m{ENTRY:x},{len(code):x}".encode()) == code.hex().encode()
    assert gdb.ask(f"z0,{ENTRY + 0x14:x},4".encode()) == b"OK"

    gdb.send(b"vCont;c")
    assert gdb.next_event().kind is EventKind.ACK
    deadline = time.monotonic() + 30
    while int.from_bytes(target.ram[COUNTER_GPA:COUNTER_GPA + 4], "little") < 1000:
        assert time.monotonic() < deadline, "the guest does not count"
        time.sleep(0.01)
    gdb.send_raw(b"\x03")
    assert gdb.reply() == b"T02thread:1;"
    counter = int.from_bytes(bytes.fromhex(gdb.ask(b"m80002000,4").decode()), "little")
    r9 = int.from_bytes(bytes.fromhex(gdb.ask(b"p9").decode()), "little")
    assert counter >= 1000 and r9 in (counter, counter + 1)        # stopped: memory and register agree
    pc = int.from_bytes(bytes.fromhex(gdb.ask(b"p25").decode()), "little")
    assert ENTRY + 0x14 <= pc <= ENTRY + 0x1C

    # Change the guest's state, run on, and see the guest use it.
    assert gdb.ask(b"P9=" + (0x7000_0000).to_bytes(4, "little").hex().encode()) == b"OK"
    gdb.send(b"c")
    assert gdb.next_event().kind is EventKind.ACK
    time.sleep(0.2)
    gdb.send_raw(b"\x03")
    assert gdb.reply() == b"T02thread:1;"
    assert int.from_bytes(bytes.fromhex(gdb.ask(b"m80002000,4").decode()), "little") > 0x7000_0000
    gdb.send(b"qRcmd," + b"stats".hex().encode())
    assert gdb.next_event().kind is EventKind.ACK
    text = bytes.fromhex(gdb.reply()[1:].decode()).decode()
    assert text.startswith("instructions ") and int(text.split()[1]) > 1000
    assert gdb.reply() == b"OK"
    gdb.close()
