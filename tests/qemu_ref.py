"""Run a test guest under QEMU (the reference implementation).

``run_qemu(elf)`` boots ``elf`` on QEMU's Malta board exactly as the guests
expect (``-kernel`` pseudo-bootloader, 256 MiB, first 16550 UART on stdout)
and returns everything the guest wrote to the UART. The guest ends by
writing the Malta SOFTRES register, which with ``-no-reboot`` makes QEMU
exit with status 0.

QEMU facts these guests rely on (measured on qemu-system-mipsel 7.2):

* ``-cpu P5600`` (MIPS32r5, 64 TLB entries, like kvmpy's core) works for
  every guest and is the default. 24Kf, 24Kc, 34Kf and 74Kf (16..64 TLB
  entries) print exactly the same for every guest, so nothing here depends
  on the QEMU CPU model; no fallback is needed.
* The ``-kernel`` pseudo-bootloader in the flash at 0xbfc00000 programs
  the GT-64120 like YAMON (PCI I/O at PA 0x18000000, hence the UART at
  0xb80003f8) and jumps to the ELF entry with Status = 0x00400000
  (BEV=1; QEMU clears ERL on reset when a kernel is given), Cause = 0,
  EBase = 0x80000000, Config.K0 = 2 (uncached), a0 = 2 (argc),
  a1 = 0x80002000 (argv), a2 = 0x80002008 (envp), a3 = RAM size capped
  at 256 MiB, sp = 0x80001fc0, ra inside the boot flash. argv[0] is the
  kernel path and envp holds a random "rngseed": guests must never print
  them.
* ELF segments are loaded at kseg0_to_phys(p_paddr); our ELFs have
  p_paddr = p_vaddr = 0x80100000, the same convention as a Malta vmlinux.
* Timer: without -icount, QEMU 7.2's Count/Compare timer is unreliable in
  TCG. A guest loop that only reads Cause never sees Cause.TI (QEMU notices
  Count == Compare only when the guest reads Count or its main loop gets to
  run timers), and even with Count reads about half of the runs of the
  interrupts guest lost a Compare match and stalled until Count wrapped
  (~26 s later). ``-icount shift=0,sleep=off`` (one instruction = 1 ns of
  virtual time, so Count advances once per 6.25 instructions; WAIT skips
  ahead to the next timer instead of sleeping) makes it deterministic and
  is the default here. It costs up to ~1.5x in speed, so benchmarks run
  QEMU without it.
* The board resets on the SOFTRES write, but QEMU acts on the request only
  when the vCPU leaves its execution loop; the guests' exit() therefore
  halts in WAIT instead of spinning in a branch-to-self loop.
* QEMU deviations the guests avoid (they are not what the architecture
  says): a branch that can never be taken (``bne $r, $r``) is translated
  as a nop, so an exception in its slot reports BD=0 and EPC = the slot;
  COP2 instructions raise RI instead of CpU (CE=2) on non-Loongson CPUs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

QEMU = "qemu-system-mipsel"
# Malta's default NIC (pcnet) and VGA (Cirrus) load option ROMs that only
# Recommends of qemu-system-mips install (ipxe-qemu, seabios); no test looks
# at either, and scripts/check-clean-install.py checks nothing else is opened.
NO_DEFAULT_DEVICES = (("-nic", "none"), ("-vga", "none"))
DEFAULT_CPU = "P5600"
MEMORY_MIB = 256


class QemuError(RuntimeError):
    """QEMU could not run a guest to completion."""

    def __init__(self, message: str, output: bytes = b"") -> None:
        super().__init__(message)
        self.output = output


class QemuMissingError(QemuError):
    """qemu-system-mipsel is not installed."""


class QemuTimeoutError(QemuError):
    """The guest did not reset the board within the timeout."""


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


ICOUNT_OPTIONS = ("-icount", "shift=0,sleep=off")


def qemu_command(
    elf: Path, cpu: str = DEFAULT_CPU, extra: tuple[str, ...] = (), *, icount: bool = True
) -> list[str]:
    """The QEMU command line used for every guest."""
    options = [
        ("-M", "malta"),
        ("-cpu", cpu),
        ("-m", str(MEMORY_MIB)),
        ("-kernel", str(elf)),
        # -nographic alone would multiplex the monitor onto stdio: give
        # stdout to the first UART only
        ("-serial", "stdio"),
        ("-monitor", "none"),
        ("-parallel", "none"),
        *NO_DEFAULT_DEVICES,
    ]
    if icount:
        options.append(ICOUNT_OPTIONS)
    return [QEMU, *(word for option in options for word in option), "-nographic", "-no-reboot", *extra]


def run_qemu(
    elf: Path,
    timeout_s: float = 30,
    cpu: str = DEFAULT_CPU,
    extra: tuple[str, ...] = (),
    *,
    icount: bool = True,
) -> bytes:
    """Run ``elf`` under QEMU Malta; return the bytes the guest sent to the UART.

    ``icount`` (default) runs QEMU with deterministic virtual time, which
    the timer guest needs under QEMU 7.2 (see the module docstring); turn
    it off only to measure speed.

    Raises QemuTimeoutError (with the partial output in ``.output``) if the
    guest has not reset the board after ``timeout_s`` seconds; QEMU is
    killed in that case. Raises QemuError if QEMU fails.
    """
    if not qemu_available():
        raise QemuMissingError(f"{QEMU} not found on PATH; run scripts/install-test-deps.sh as root")
    elf = Path(elf)
    if not elf.is_file():
        raise QemuError(f"no such guest ELF: {elf}")
    return run_until_exit(qemu_command(elf, cpu, extra, icount=icount), elf, f"QEMU ({cpu})", timeout_s)


def run_until_exit(cmd: list[str], elf: Path, what: str, timeout_s: float) -> bytes:
    """Run the QEMU command line `cmd` for guest `elf` to its exit; return its stdout (the UART).

    A guest still running after `timeout_s` is killed: QemuTimeoutError with
    the partial output in ``.output``. A non-zero exit is a QemuError.
    `what` names the QEMU in the messages. Shared by the Malta and bamboo runners.
    """
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        # subprocess.run has killed QEMU already.
        partial = exc.output if isinstance(exc.output, bytes) else b""
        raise QemuTimeoutError(
            f"{elf.name}: {what} still running after {timeout_s:g}s, killed; "
            f"output so far ends with {partial[-200:]!r}",
            partial,
        ) from exc
    if proc.returncode != 0:
        raise QemuError(
            f"{elf.name}: {cmd[0]} exited with {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()}",
            proc.stdout,
        )
    return proc.stdout


def reference_output(elf: Path, timeout_s: float = 30, cpu: str = DEFAULT_CPU) -> bytes:
    """run_qemu, cached next to the ELF as ``<name>.qemu-<cpu>.out``.

    The cache is reused while it is newer than the ELF. Only meaningful for
    deterministic guests.
    """
    elf = Path(elf)
    cache = elf.with_name(f"{elf.stem}.qemu-{cpu}.out")
    try:
        if cache.stat().st_mtime >= elf.stat().st_mtime:
            return cache.read_bytes()
    except FileNotFoundError:
        pass
    out = run_qemu(elf, timeout_s=timeout_s, cpu=cpu)
    fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", dir=cache.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(out)
    os.replace(tmp, cache)
    return out


_TRACE_LINE = re.compile(rb"^Trace ", re.MULTILINE)


def count_instructions(elf: Path, timeout_s: float = 300, cpu: str = DEFAULT_CPU) -> int:
    """Count the guest instructions QEMU executes, bootloader included.

    Runs one instruction per translation block with chaining off and logs
    every block execution, so it is slow: for small guests (< ~1e7
    instructions) and for sizing metadata only.
    """
    with tempfile.TemporaryDirectory() as tmpdir:
        log = Path(tmpdir) / "exec.log"
        run_qemu(
            elf,
            timeout_s=timeout_s,
            cpu=cpu,
            extra=("-singlestep", "-d", "exec,nochain", "-D", str(log)),
        )
        count = 0
        with log.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                count += len(_TRACE_LINE.findall(chunk))
        return count


def malta_session_argv(
    kernel: Path,
    initrd: Path,
    append: str,
    cpu: str = "24Kc",
    mem_size_mib: int = 256,
    drives: tuple[Path, ...] = (),
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The QEMU command line of a Linux session on Malta (tests/functional/guest_session.py).

    A run about networking brings its own `-netdev` and NIC; every other run
    gets no NIC at all.
    """
    disks: list[str] = []
    for i, path in enumerate(drives):
        disks += ["-drive", f"file={path},if=none,id=d{i},format=raw"]
        disks += ["-device", f"virtio-blk-pci,drive=d{i}"]
    defaults = [word for option in NO_DEFAULT_DEVICES for word in option]
    if "-netdev" in extra:
        defaults = ["-vga", "none"]
    return [
        QEMU, "-M", "malta", "-cpu", cpu, "-m", str(mem_size_mib), *defaults,
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
        "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio", *disks, *extra,
    ]


QEMU_PPC = "qemu-system-ppc"


def bamboo_session_argv(
    kernel: Path,
    initrd: Path,
    append: str,
    mem_size_mib: int = 256,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The QEMU command line of a Linux session on the PowerPC 440 bamboo board.

    QEMU 7.2's bamboo loads the ELF vmlinux at its physical addresses and
    gives the kernel /usr/share/qemu/bamboo.dtb (qemu-system-data, a Depends
    of qemu-system-ppc) patched with memory size, initrd and bootargs; that
    is the only data file it opens. Its default NIC is an e1000 on the PCI
    bus, which no session wants (`-nic none`); it has no VGA. See
    docs/ppc440-guest.md.
    """
    return [
        QEMU_PPC, "-M", "bamboo", "-m", str(mem_size_mib), "-nic", "none",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
        "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio", *extra,
    ]
