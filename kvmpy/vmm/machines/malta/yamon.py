"""YAMON-style boot arguments for a Malta Linux kernel, as QEMU 7.2's Malta writes them for -kernel.

The Malta firmware (YAMON) starts Linux with

    a0 = argc, a1 = argv (kseg0 pointer to 32-bit pointers),
    a2 = envp (kseg0 pointer to 32-bit pointers, "name", "value" pairs,
         NULL-terminated), a3 = RAM size in bytes (low memory, <= 256 MiB)

and Linux (arch/mips/fw/lib/cmdline.c) joins argv[1..argc-1] into its
command line and looks variables up with `fw_getenv`, which matches a name
as a prefix, so "memsize" must come before "ememsize".

QEMU's layout, reproduced byte for byte whenever every string is shorter
than 256 bytes: at GPA 0x2000 a table of 16 pointers, then one 256-byte
slot per string. argv is the table itself (argv[0] = the kernel path,
argv[1] = the command line) and envp starts at its third entry:

    memsize  <min(RAM, 256 MiB)>      ememsize <RAM>
    modetty0 38400n8r                 rngseed  <64 hex digits>

An initrd is announced by prefixing the command line with
"rd_start=0xffffffff8XXXXXXX rd_size=<bytes> " (Linux's rd_start/rd_size
early parameters, arch/mips/kernel/setup.c; the kseg0 address, which QEMU
prints sign-extended to 64 bits). Unlike QEMU, which silently
cuts strings at 255 bytes, a longer command line gets a longer slot, up to
Linux's COMMAND_LINE_SIZE.

QEMU's pseudo-bootloader (in the boot flash at 0xbfc00000) then does what
the board must reproduce when it starts the vCPU at the kernel entry:

- GT-64120: internal registers moved from 0x14000000 to 0x1be00000
  (GT_ISD), PCI0 I/O window at 0x18000000..0x181fffff (so ISA port N is
  at GPA 0x18000000 + N, the console UART at 0xb80003f8), PCI0 MEM0 at
  0x10000000..0x17dfffff, PCI0 MEM1 at 0x18200000..0x1bdfffff. The raw
  words the bootloader stores (the GT is byte-swapped relative to the
  little-endian CPU): ISD=0xdf, PCI0IOLD=0xc0, PCI0IOHD=0x40,
  PCI0M0LD=0x80, PCI0M0HD=0x3f, PCI0M1LD=0xc1, PCI0M1HD=0x5e.
- CPU: the registers of `YamonBoot.gprs()`; CP0 as after reset except
  Status.ERL cleared (`ENTRY_CP0_STATUS`: BEV=1, kernel mode, interrupts
  off). The jump is `jalr t9`, so t9 holds the entry.
- The revision word 0x00000420 at 0x1fc00010 (see `malta_fpga.MaltaRevision`).

On reset QEMU rewrites the rngseed with fresh random bytes; the board
should call `write_yamon_boot_args` again when it reloads the kernel.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from kvmpy.vmm.loader.elf import KSEG0_GVA, LoadedInitrd, LoadedKernel, LoaderError

WriteGpa = Callable[[int, bytes], None]

ENVP_GPA = 0x2000
ENVP_GVA = KSEG0_GVA | ENVP_GPA
ENVP_NB_ENTRIES = 16
ENVP_ENTRY_SIZE = 256
STACK_BELOW_ENVP_BYTES = 64
RAM_LOW_MAX_BYTES = 256 << 20
# Linux's MIPS COMMAND_LINE_SIZE, terminating NUL included.
COMMAND_LINE_SIZE = 4096
RNG_SEED_BYTES = 32
YAMON_ARGC = 2
RD_START_SIGN_EXTENSION = 0xFFFFFFFF00000000

# CP0 Status at the kernel entry: QEMU's reset value (BEV | ERL) with ERL cleared.
ENTRY_CP0_STATUS = 0x00400000

# GPR numbers (o32 names).
REG_A0, REG_A1, REG_A2, REG_A3 = 4, 5, 6, 7
REG_T9, REG_SP = 25, 29


class BootArgsError(LoaderError):
    """The boot arguments cannot be built (command line too long, area overlapping the kernel)."""


@dataclass(frozen=True)
class YamonBoot:
    """The boot arguments written to guest RAM and the CPU state to enter the kernel with."""

    entry_gva: int
    argc: int
    argv_gva: int
    envp_gva: int
    ram_low_size_bytes: int
    sp_gva: int
    cmdline: str
    env: tuple[tuple[str, str], ...]
    area_gpa: int
    area_end_gpa: int

    def gprs(self) -> dict[int, int]:
        """General registers to set before entering at `entry_gva` (GPR number -> value)."""
        return {
            REG_A0: self.argc,
            REG_A1: self.argv_gva,
            REG_A2: self.envp_gva,
            REG_A3: self.ram_low_size_bytes,
            REG_SP: self.sp_gva,
            REG_T9: self.entry_gva,
        }


def kernel_command_line(cmdline: str, initrd: LoadedInitrd | None) -> str:
    """The command line QEMU gives the kernel: the user's, prefixed with the initrd location."""
    if initrd is None:
        return cmdline
    # QEMU prints the address sign-extended to 64 bits (0xffffffff8...); a 32-bit
    # kernel's memparse() keeps the low 32 bits. Kept for identical /proc/cmdline.
    return f"rd_start={initrd.gva | RD_START_SIGN_EXTENSION:#x} rd_size={initrd.size_bytes} {cmdline}"


def write_yamon_boot_args(
    write_gpa: WriteGpa,
    *,
    kernel: LoadedKernel,
    cmdline: str,
    ram_size_bytes: int,
    initrd: LoadedInitrd | None = None,
    kernel_name: str = "",
    rng_seed: bytes | None = None,
) -> YamonBoot:
    """Write argv/envp into guest RAM at GPA 0x2000 and return the entry state.

    `kernel_name` becomes argv[0] (QEMU passes the -kernel path; Linux
    ignores it; cut at 255 bytes as QEMU does). `rng_seed` (32 bytes)
    defaults to fresh random bytes. Raises BootArgsError if the command
    line (with the initrd prefix) does not fit Linux's COMMAND_LINE_SIZE or
    contains a NUL, or if the argument area overlaps the kernel or the
    initrd.
    """
    if rng_seed is None:
        rng_seed = os.urandom(RNG_SEED_BYTES)
    if len(rng_seed) != RNG_SEED_BYTES:
        raise ValueError(f"rng_seed must be {RNG_SEED_BYTES} bytes")
    ram_low = min(ram_size_bytes, RAM_LOW_MAX_BYTES)
    full_cmdline = kernel_command_line(cmdline, initrd)
    cmdline_bytes = full_cmdline.encode()
    if b"\0" in cmdline_bytes:
        raise BootArgsError("kernel command line contains a NUL character")
    if len(cmdline_bytes) >= COMMAND_LINE_SIZE:
        raise BootArgsError(
            f"kernel command line is {len(cmdline_bytes)} bytes; Linux takes at most {COMMAND_LINE_SIZE - 1}"
        )
    env = (
        ("memsize", str(ram_low)),
        ("ememsize", str(ram_size_bytes)),
        ("modetty0", "38400n8r"),
        ("rngseed", rng_seed.hex()),
    )
    strings = [kernel_name.encode()[: ENVP_ENTRY_SIZE - 1], cmdline_bytes]
    for name, value in env:
        strings += [name.encode(), value.encode()]
    if len(strings) >= ENVP_NB_ENTRIES:
        raise AssertionError("the YAMON table holds 15 strings and a NULL")  # pragma: no cover

    table = [0] * ENVP_NB_ENTRIES
    blob = bytearray(4 * ENVP_NB_ENTRIES)
    for index, s in enumerate(strings):
        table[index] = ENVP_GVA + len(blob)
        slot = _round_up(len(s) + 1, ENVP_ENTRY_SIZE)
        blob += s + bytes(slot - len(s))
    # Slots of unused entries stay reserved (zeroed) as in QEMU's fixed-size area.
    blob += bytes(ENVP_ENTRY_SIZE * (ENVP_NB_ENTRIES - len(strings)))
    blob[: 4 * ENVP_NB_ENTRIES] = struct.pack(f"<{ENVP_NB_ENTRIES}I", *table)

    area_end = ENVP_GPA + len(blob)
    _check_clear(ENVP_GPA, area_end, kernel.low_gpa, kernel.high_gpa, "the kernel")
    if initrd is not None:
        _check_clear(ENVP_GPA, area_end, initrd.gpa, initrd.end_gpa, "the initrd")
    write_gpa(ENVP_GPA, bytes(blob))
    return YamonBoot(
        entry_gva=kernel.entry_gva,
        argc=YAMON_ARGC,
        argv_gva=ENVP_GVA,
        envp_gva=ENVP_GVA + 4 * YAMON_ARGC,
        ram_low_size_bytes=ram_low,
        sp_gva=ENVP_GVA - STACK_BELOW_ENVP_BYTES,
        cmdline=full_cmdline,
        env=env,
        area_gpa=ENVP_GPA,
        area_end_gpa=area_end,
    )


def _check_clear(start: int, end: int, other_start: int, other_end: int, what: str) -> None:
    if start < other_end and other_start < end:
        raise BootArgsError(
            f"boot arguments at GPA {start:#x}..{end:#x} overlap {what} at {other_start:#x}..{other_end:#x}"
        )


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align
