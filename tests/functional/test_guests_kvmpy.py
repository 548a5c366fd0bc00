"""Differential tests: every bare-metal test guest under kvmpy against QEMU.

Each guest prints what it computed (register dumps, memory, exception
records) over the UART and ends with `EXIT <code>`. kvmpy must print exactly
what `qemu-system-mipsel -M malta` prints for the same ELF, and the guest's
own self-checks must pass (`EXIT 0`), in both hypervisor modes: `vz` (the
guest in the core's guest mode) and `te` (the guest kernel in host user
mode, every privileged instruction trapped and emulated). The guests run in
kernel mode, use the TLB, take and return from exceptions, drop to user
mode and use the timer, so under `te` they exercise each emulated
instruction and each exception the hypervisor delivers.

Each runs twice per mode: interpreted only, and with the block translator
translating every block start that runs twice, at once (so even these short
guests run mostly translated code, and runs are repeatable).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmpy.kvm import JitSettings
from kvmpy.vmm.machines.malta import Malta, MaltaConfig
from kvmpy.vmm.runner import StopReason
from kvmpy.vmm.serial import BufferSerial
from tests.guests.build import GUESTS, build_all
from tests.qemu_ref import run_qemu

BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "guests"
TEST_GUESTS = [g for g in GUESTS if not g.bench]


@pytest.fixture(scope="module")
def elfs() -> dict[str, Path]:
    return build_all(BUILD_DIR)


@pytest.fixture(scope="module")
def qemu_reference() -> dict[str, bytes]:
    return {}  # guest name -> QEMU's output, filled on first use


ENGINES = {
    "interp": JitSettings(enabled=False),
    "jit": JitSettings(enabled=True, threshold=2, background=False),
}


def run_kvmpy(elf: Path, timeout_s: float, mode: str = "vz",
              jit: JitSettings = ENGINES["interp"]) -> tuple[bytes, StopReason, Malta]:
    serial = BufferSerial()
    machine = Malta(MaltaConfig(kernel=elf, mem_size_mib=64, no_reboot=True, mode=mode, jit=jit), serial)
    outcome = machine.run(max_seconds=timeout_s)
    return serial.take(), outcome.reason, machine


@pytest.mark.qemu
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("mode", ["vz", "te"])
@pytest.mark.parametrize("guest", TEST_GUESTS, ids=[g.name for g in TEST_GUESTS])
def test_guest_matches_qemu(guest, mode, engine, elfs, qemu_reference):
    elf = elfs[guest.name]
    out, reason, machine = run_kvmpy(elf, guest.timeout_s, mode, ENGINES[engine])
    if engine == "jit":
        # the guests print in loops, so most of their instructions run translated
        stats = machine.vcpu.stats.jit
        assert stats["jit_insns"] > stats["interpreted_insns"], stats
    assert reason == StopReason.RESET, f"guest did not finish by writing SOFTRES: {reason}"
    assert out.rstrip().endswith(b"EXIT 0"), out.decode(errors="replace")[-2000:]
    if guest.name not in qemu_reference:
        qemu_reference[guest.name] = run_qemu(elf, timeout_s=guest.timeout_s)
    assert out.decode(errors="replace") == qemu_reference[guest.name].decode(errors="replace")

