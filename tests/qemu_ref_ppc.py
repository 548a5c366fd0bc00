"""Run a PowerPC 440 test guest under QEMU's bamboo board (the reference peer).

``run_qemu_bamboo(elf)`` boots ``elf`` with ``-kernel`` and returns what the
guest wrote to the first UART. The guests end with a DBCR0 system reset,
which ``-no-reboot`` turns into QEMU exiting with status 0. Running QEMU
and its errors are the MIPS runner's (tests/qemu_ref.py).

QEMU 7.2 facts the guests and the harness rely on (measured):

* bamboo enters a -kernel ELF with MSR = 0, r1 = 16 MiB - 8,
  r3 = 0x01800000 (the device tree it loads from bamboo.dtb), PVR =
  0x422218d3 (440EPb), PIR = 0, PID = 0, MMUCR = 0, and TLB entries 0 and 1
  mapping 0-2 GiB and 2-4 GiB 1:1, supervisor read/write/execute (a size the
  440 does not have: tlbre of those entries reports SIZE = 1).
* The UART (16550, 0xef600300) is reachable through that mapping at once.
* The only file QEMU opens for this command is bamboo.dtb, from
  qemu-system-data (a Depends of qemu-system-ppc).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.qemu_ref import QemuMissingError, run_until_exit

QEMU_PPC = "qemu-system-ppc"


def qemu_ppc_available() -> bool:
    return shutil.which(QEMU_PPC) is not None


def qemu_bamboo_command(elf: Path) -> list[str]:
    return [
        # no default NIC or VGA: their ROMs would come from packages only Recommends bring in
        QEMU_PPC, "-M", "bamboo", "-nic", "none", "-vga", "none", "-nographic", "-no-reboot",
        "-serial", "stdio", "-monitor", "none", "-parallel", "none", "-kernel", str(elf),
    ]  # fmt: skip


def run_qemu_bamboo(elf: Path, timeout_s: float = 30) -> bytes:
    """Run ``elf`` on QEMU's bamboo; return the bytes the guest sent to the UART."""
    if not qemu_ppc_available():
        raise QemuMissingError(f"{QEMU_PPC} not found on PATH (Debian package qemu-system-ppc)")
    elf = Path(elf)
    return run_until_exit(qemu_bamboo_command(elf), elf, "QEMU bamboo", timeout_s)
