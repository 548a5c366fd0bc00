"""The bare-metal 440 guests again, now as VMs under the trap-and-emulate backend (differential).

Each guest of tests/guests/ppc runs through the KVM API
(tests/ppc440_kvm_harness.py): deprivileged, with its TLB, SPRs, MSR,
interrupts and timers virtual. Its log must equal, byte for byte, the log
of the same guest on the bare core (tests/ppc440_harness.py) and QEMU's
bamboo UART output: the hypervisor is invisible to the guest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _dependency_missing
from tests.guests.ppc.build import GUESTS, ToolchainMissingError, build_all
from tests.ppc440_harness import run_guest
from tests.ppc440_kvm_harness import run_guest_kvm
from tests.qemu_ref_ppc import qemu_ppc_available, run_qemu_bamboo


@pytest.fixture(scope="module")
def ppc_elfs() -> dict[str, Path]:
    try:
        return build_all()
    except ToolchainMissingError as exc:
        _dependency_missing(str(exc))


@pytest.mark.parametrize("name", [g.name for g in GUESTS])
def test_guest_under_the_hypervisor_matches_the_bare_core(name: str, ppc_elfs: dict[str, Path]) -> None:
    ours, _vcpu = run_guest_kvm(ppc_elfs[name])
    assert ours.endswith(b"EXIT 0\n"), ours[-300:]
    assert ours == run_guest(ppc_elfs[name]).output


@pytest.mark.qemu
@pytest.mark.parametrize("name", [g.name for g in GUESTS])
def test_guest_under_the_hypervisor_matches_qemu_bamboo(name: str, ppc_elfs: dict[str, Path]) -> None:
    if not qemu_ppc_available():
        _dependency_missing("qemu-system-ppc not found on PATH")
    guest = next(g for g in GUESTS if g.name == name)
    assert run_guest_kvm(ppc_elfs[name])[0] == run_qemu_bamboo(ppc_elfs[name], timeout_s=guest.timeout_s)


def test_the_guests_ran_deprivileged(ppc_elfs: dict[str, Path]) -> None:
    _out, vcpu = run_guest_kvm(ppc_elfs["tlb"])
    traps = vcpu.stats.traps
    assert traps["emul_tlbwe"] > 0 and traps["emul_tlbre"] > 0 and traps["emul_tlbsx"] > 0
    assert traps["emul_mtspr"] > 0 and traps["emul_rfi"] > 0 and traps["shadow_fill"] > 0
    assert traps["guest_interrupt.DATA_STORAGE"] > 0 and traps["guest_interrupt.INSTRUCTION_TLB_ERROR"] > 0
    _out, vcpu = run_guest_kvm(ppc_elfs["extint"])
    assert vcpu.stats.exits["dcr"] > 0 and vcpu.stats.traps["guest_interrupt.EXTERNAL_INPUT"] > 0
    assert vcpu.stats.traps["guest_interrupt.CRITICAL_INPUT"] > 0
    _out, vcpu = run_guest_kvm(ppc_elfs["timer"])
    assert vcpu.stats.traps["guest_interrupt.DECREMENTER"] > 0
