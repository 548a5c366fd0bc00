"""The PowerPC 440 bare-metal guests on the simulated 440 core, against QEMU's bamboo.

Each guest (tests/guests/ppc) runs from QEMU bamboo's -kernel entry state,
records what it computed and every interrupt it took in a log, prints the
log to the UART and requests a system reset through DBCR0. The core runs
under tests/ppc440_harness.py, which plays the host; its text must equal,
byte for byte, what `qemu-system-ppc -M bamboo` printed for the same ELF.
Where QEMU 7.2 departs from the 440 the guests avoid the difference and say
so in their comments (docs/ppc440-core.md lists the deviations).

The tests without the qemu mark check a few values against the architecture
directly, so the core is tested even where QEMU is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _dependency_missing
from tests.guests.ppc.build import GUESTS, ToolchainMissingError, build_all
from tests.ppc440_harness import run_guest
from tests.qemu_ref_ppc import qemu_ppc_available, run_qemu_bamboo


@pytest.fixture(scope="module")
def ppc_elfs() -> dict[str, Path]:
    try:
        return build_all()
    except ToolchainMissingError as exc:
        _dependency_missing(str(exc))


@pytest.mark.qemu
@pytest.mark.parametrize("name", [g.name for g in GUESTS])
def test_guest_matches_qemu_bamboo(name: str, ppc_elfs: dict[str, Path]) -> None:
    if not qemu_ppc_available():
        _dependency_missing("qemu-system-ppc not found on PATH")
    guest = next(g for g in GUESTS if g.name == name)
    reference = run_qemu_bamboo(ppc_elfs[name], timeout_s=guest.timeout_s)
    ours = run_guest(ppc_elfs[name]).output
    assert reference.endswith(b"EXIT 0\n"), reference[-300:]
    assert ours == reference


@pytest.mark.parametrize("name", [g.name for g in GUESTS])
def test_guest_exits_cleanly(name: str, ppc_elfs: dict[str, Path]) -> None:
    run = run_guest(ppc_elfs[name])
    assert run.output.endswith(b"EXIT 0\n")
    assert b"EXC 1 " not in run.output  # no machine check: every access hit RAM


def _lines(name: str, elfs: dict[str, Path]) -> list[str]:
    return run_guest(elfs[name]).output.decode("ascii").splitlines()


def test_alu_values_follow_the_architecture(ppc_elfs: dict[str, Path]) -> None:
    lines = _lines("alu", ppc_elfs)
    # addo. 0x7fffffff + 1: signed overflow -> OV and SO; CR0 = LT (negative) | SO
    i = lines.index("addo.=80000000")
    assert lines[i + 1 : i + 3] == ["cr=90000000", "xer=c0000000"]
    # addc 0xffffffff + 1 = 0 with a carry; no record form: CR untouched
    i = lines.index("addc=00000000")
    assert lines[i + 1 : i + 3] == ["cr=00000000", "xer=20000000"]


def test_program_interrupts_report_esr(ppc_elfs: dict[str, Path]) -> None:
    text = run_guest(ppc_elfs["program"]).output.decode("ascii")
    assert text.count("esr=08000000") >= 3  # PIL: the illegal encodings
    assert text.count("esr=04000000") >= 20  # PPR: privileged instructions in user mode
    assert "srr1=00004030 esr=04000000" in text  # SRR1 is the user-mode MSR (PR, IS, DS)
    assert "EXC 7 " in text and "EXC 8 " in text and "EXC 5 " in text


def test_tlb_faults(ppc_elfs: dict[str, Path]) -> None:
    text = run_guest(ppc_elfs["tlb"]).output.decode("ascii")
    assert "EXC 2 srr0=" in text and "dear=30000020 esr=00800000" in text  # DSI on a store
    assert "EXC 14 srr0=32000000" in text  # ITLB miss: SRR0 is the target
    assert "EXC 3 srr0=31000000" in text  # ISI: no execute permission
    assert "ran=00000077" in text


def test_fpu_values_follow_the_architecture(ppc_elfs: dict[str, Path]) -> None:
    lines = _lines("fpu", ppc_elfs)
    # 1.0 + 3.0 = 4.0 exactly: FPRF = positive normal, no exception bits
    i = lines.index("fadd=40100000")
    assert lines[i + 1 : i + 3] == ["lo=00000000", "fpscr=00004000"]
    # fdiv's sixth case is 0/0: the default QNaN, FX | VX | VXZDZ, FPRF = QNaN
    i = [k for k, line in enumerate(lines) if line.startswith("fdiv=")][5]
    assert lines[i : i + 3] == ["fdiv=7ff80000", "lo=00000000", "fpscr=a0211000"]
    # its fifth, inf/inf: VXIDI
    i = [k for k, line in enumerate(lines) if line.startswith("fdiv=")][4]
    assert lines[i : i + 3] == ["fdiv=7ff80000", "lo=00000000", "fpscr=a0411000"]
    # fctiw of 2.5 rounds to even (2), inexact: FX | XX | FI
    assert "fpscr=82020000" in lines


def test_external_and_critical_input_through_the_uic(ppc_elfs: dict[str, Path]) -> None:
    run = run_guest(ppc_elfs["extint"])
    text = run.output.decode("ascii")
    # external input: SRR1 holds the MSR with EE; critical input: CSRR1 holds it with CE
    assert "EXC 4 srr0=" in text and "srr1=00008000" in text
    assert "EXC 0 srr0=" in text and "srr1=00020000" in text
    assert "nothing taken\nmsr_pending=00000001\nEXC 4" in text  # masked by UIC_ER until enabled
    assert (0xC1, True, 1) in run.dcr_accesses  # the guest set the status through UIC_SRS
