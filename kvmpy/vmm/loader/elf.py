"""Loading a Malta Linux kernel (a 32-bit little-endian MIPS ELF) and an initrd into guest RAM.

This does what QEMU 7.2's Malta `load_kernel()` does for `-kernel`/`-initrd`:

- every PT_LOAD segment is copied to GPA = kseg0_to_phys(p_paddr), and the
  part of memsz beyond filesz (bss) is zeroed;
- the initrd goes near the top of low RAM: 64 KiB-aligned, with 128 KiB left
  above it ("the kernel allocates the bootmap memory in the low memory
  after the initrd"), and must not reach down into the kernel. Placing it
  high also keeps it clear of a self-decompressing kernel (vmlinuz), whose
  decompressed image extends far beyond the ELF's own segments.

The kernel learns where the initrd is from its command line
(`rd_start=0x8XXXXXXX rd_size=N`, a kseg0 address), see
`kvmpy.vmm.machines.malta.yamon`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from kvmpy.vmm.errors import VmmError

WriteGpa = Callable[[int, bytes], None]

KSEG0_GVA = 0x80000000
KSEG2_GVA = 0xC0000000
KSEG_PHYS_MASK = 0x1FFFFFFF
# QEMU aligns the initrd to 64 KiB: "kernels can be configured with 64KB pages".
INITRD_ALIGN_BYTES = 64 * 1024
INITRD_TOP_GAP_BYTES = 128 * 1024
_COPY_CHUNK_BYTES = 1 << 20

_ELF_MAGIC = b"\x7fELF"
_EI_CLASS, _EI_DATA = 4, 5
_ELFCLASS32, _ELFCLASS64 = 1, 2
_ELFDATA2LSB, _ELFDATA2MSB = 1, 2


class LoaderError(VmmError):
    """Loading a guest image failed."""


class KernelImageError(LoaderError):
    """The kernel image is missing, unreadable or not a kernel this Malta can run."""


class InitrdError(LoaderError):
    """The initrd is missing, unreadable or does not fit in RAM."""


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment, placed: `data` at `gpa`, then zeros up to `memsz`."""

    gpa: int
    data: bytes
    memsz: int

    @property
    def end_gpa(self) -> int:
        return self.gpa + self.memsz


@dataclass(frozen=True)
class KernelImage:
    """A validated kernel ELF, not yet loaded."""

    path: Path
    entry_gva: int
    segments: tuple[Segment, ...]

    @property
    def low_gpa(self) -> int:
        return min(s.gpa for s in self.segments)

    @property
    def high_gpa(self) -> int:
        return max(s.end_gpa for s in self.segments)


@dataclass(frozen=True)
class LoadedKernel:
    """Where a kernel landed: its entry (a kseg0/kseg1 address) and [low_gpa, high_gpa)."""

    entry_gva: int
    low_gpa: int
    high_gpa: int


@dataclass(frozen=True)
class LoadedInitrd:
    """Where an initrd landed in guest RAM."""

    gpa: int
    size_bytes: int

    @property
    def gva(self) -> int:
        """The kseg0 address the kernel is given (rd_start)."""
        return KSEG0_GVA | self.gpa

    @property
    def end_gpa(self) -> int:
        return self.gpa + self.size_bytes


def kseg_to_gpa(addr: int) -> int:
    """GPA of a load address: kseg0/kseg1 lose their segment bits; a kuseg value is taken as physical.

    Raises ValueError for kseg2/kseg3, which are mapped through the TLB and
    cannot be loaded before the kernel runs.
    """
    if addr >= KSEG2_GVA:
        raise ValueError(f"{addr:#010x} is in mapped kseg2/kseg3")
    if addr >= KSEG0_GVA:
        return addr & KSEG_PHYS_MASK
    return addr


def inspect_elf_kernel(path: Path, board: str = "this board (mips, 32-bit little-endian)") -> KernelImage:
    """Read and validate a kernel ELF without loading it.

    `board` names the machine and its architecture in the message that
    refuses a kernel built for another one.

    Raises KernelImageError, with a one-line message naming the file, if the
    file is missing or unreadable, not an ELF, 64-bit, big-endian, not MIPS,
    corrupt or truncated, has no loadable segment, has a segment in mapped
    kseg2/kseg3, or has its entry point outside kseg0/kseg1 or outside every
    loaded segment.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KernelImageError(f"kernel {path}: no such file") from None
    except IsADirectoryError:
        raise KernelImageError(f"kernel {path}: is a directory") from None
    except OSError as exc:
        raise KernelImageError(f"kernel {path}: cannot read: {exc.strerror or exc}") from exc

    def fail(why: str) -> KernelImageError:
        return KernelImageError(f"kernel {path}: {why}")

    if len(raw) < 16 or raw[:4] != _ELF_MAGIC:
        raise fail("not an ELF file (bad magic); give the vmlinux/vmlinuz ELF, not a uImage or raw binary")
    if raw[_EI_CLASS] == _ELFCLASS64:
        raise fail("64-bit kernel: this Malta is 32-bit; use a 4kc/24kc malta kernel, not 5kc")
    if raw[_EI_CLASS] != _ELFCLASS32:
        raise fail(f"bad ELF class {raw[_EI_CLASS]}")
    if raw[_EI_DATA] == _ELFDATA2MSB:
        raise fail("big-endian kernel: this Malta is little-endian; use a mipsel kernel, not mips")
    if raw[_EI_DATA] != _ELFDATA2LSB:
        raise fail(f"bad ELF data encoding {raw[_EI_DATA]}")

    try:
        elf = ELFFile(io.BytesIO(raw))
        machine = elf["e_machine"]
        if machine != "EM_MIPS":
            raise fail(f"not a MIPS kernel (ELF machine {machine}); {board} runs MIPS kernels")
        segments = []
        for seg in elf.iter_segments("PT_LOAD"):
            filesz, memsz, paddr = seg["p_filesz"], seg["p_memsz"], seg["p_paddr"]
            if memsz == 0:
                continue
            if filesz > memsz:
                raise fail(f"corrupt ELF: segment at {paddr:#010x} has filesz > memsz")
            if seg["p_offset"] + filesz > len(raw):
                raise fail("truncated ELF: a segment extends past the end of the file")
            try:
                gpa = kseg_to_gpa(paddr)
            except ValueError as exc:
                raise fail(f"segment at {paddr:#010x} cannot be loaded: {exc}") from None
            segments.append(Segment(gpa, seg.data(), memsz))
        entry = elf["e_entry"]
    except ELFError as exc:
        raise fail(f"corrupt ELF: {exc}") from exc
    except KernelImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyelftools raises assorted errors on malformed input
        raise fail(f"corrupt ELF: {type(exc).__name__}: {exc}") from exc

    if not segments:
        raise fail("no PT_LOAD segments (an object file or a stripped-down image?)")
    if not KSEG0_GVA <= entry < KSEG2_GVA:
        hint = (
            " (a kernel linked in useg is built for KVM T&E: CONFIG_KVM_GUEST)" if entry < KSEG0_GVA else ""
        )
        raise fail(f"entry point {entry:#010x} is not in kseg0/kseg1{hint}")
    entry_gpa = entry & KSEG_PHYS_MASK
    if not any(s.gpa <= entry_gpa < s.end_gpa for s in segments):
        raise fail(f"entry point {entry:#010x} lies outside every loaded segment")
    return KernelImage(path, entry, tuple(segments))


def load_elf_kernel(path: Path, write_gpa: WriteGpa, mem_size_bytes: int) -> LoadedKernel:
    """Validate a kernel ELF and copy it into guest RAM `[0, mem_size_bytes)` through `write_gpa`.

    Raises KernelImageError as `inspect_elf_kernel` does, and when a
    segment does not lie inside RAM. Nothing is written unless every
    segment fits.
    """
    image = inspect_elf_kernel(path)
    for s in image.segments:
        if s.end_gpa > mem_size_bytes:
            raise KernelImageError(
                f"kernel {path}: segment at GPA {s.gpa:#010x}..{s.end_gpa:#010x} does not fit in "
                f"{mem_size_bytes >> 20} MiB of RAM"
            )
    for s in image.segments:
        write_gpa(s.gpa, s.data)
        _zero_fill(write_gpa, s.gpa + len(s.data), s.memsz - len(s.data))
    return LoadedKernel(image.entry_gva, image.low_gpa, image.high_gpa)


def load_initrd(
    path: Path, write_gpa: WriteGpa, ram_low_size_bytes: int, kernel_high_gpa: int
) -> LoadedInitrd:
    """Copy an initrd near the top of low RAM, as QEMU's Malta does.

    It is placed at round_up(ram_low_size - (size + 128 KiB), 64 KiB), which
    must lie above the kernel's end (`kernel_high_gpa`). Raises InitrdError
    if the file is missing, unreadable, empty, or does not fit.
    """
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise InitrdError(f"initrd {path}: is a directory")
    except FileNotFoundError:
        raise InitrdError(f"initrd {path}: no such file") from None
    except OSError as exc:
        raise InitrdError(f"initrd {path}: cannot read: {exc.strerror or exc}") from exc
    if size == 0:
        raise InitrdError(f"initrd {path}: file is empty")
    top = ram_low_size_bytes - (size + INITRD_TOP_GAP_BYTES)
    gpa = _round_up(top, INITRD_ALIGN_BYTES)
    if top < 0 or gpa <= kernel_high_gpa:
        room = max(
            0, ram_low_size_bytes - INITRD_TOP_GAP_BYTES - _round_up(kernel_high_gpa, INITRD_ALIGN_BYTES)
        )
        raise InitrdError(
            f"initrd {path}: {size >> 20} MiB does not fit in RAM above the kernel "
            f"({room >> 20} MiB free); give more memory (-m)"
        )
    try:
        with path.open("rb") as f:
            offset = 0
            while chunk := f.read(_COPY_CHUNK_BYTES):
                write_gpa(gpa + offset, chunk)
                offset += len(chunk)
    except OSError as exc:
        raise InitrdError(f"initrd {path}: cannot read: {exc.strerror or exc}") from exc
    if offset != size:
        raise InitrdError(f"initrd {path}: changed size while being read")
    return LoadedInitrd(gpa, size)


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def _zero_fill(write_gpa: WriteGpa, gpa: int, size: int) -> None:
    while size > 0:
        n = min(size, _COPY_CHUNK_BYTES)
        write_gpa(gpa, bytes(n))
        gpa += n
        size -= n
