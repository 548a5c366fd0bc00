"""Kernel ELF and initrd loading, and the YAMON boot arguments (checked against QEMU 7.2's layout)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.loader.elf import (
    InitrdError,
    KernelImageError,
    LoadedInitrd,
    LoadedKernel,
    LoaderError,
    inspect_elf_kernel,
    kseg_to_gpa,
    load_elf_kernel,
    load_initrd,
)
from kvmpy.vmm.machines.malta.yamon import (
    ENTRY_CP0_STATUS,
    BootArgsError,
    write_yamon_boot_args,
)

AS = "mipsel-linux-gnu-as"
LD = "mipsel-linux-gnu-ld"
MIB = 1 << 20

SOURCE = """
.set noreorder
.text
.globl _start
_start:
    b _start
    nop
.data
marker: .word 0x11223344, 0x55667788
.bss
zeros: .space 0x3000
"""

LINKER_SCRIPT = """
ENTRY(_start)
PHDRS { text PT_LOAD; data PT_LOAD; }
SECTIONS {
  . = BASE;
  .text : { *(.text*) } :text
  . = ALIGN(0x1000);
  .data : { *(.data*) } :data
  .bss : { *(.bss*) *(COMMON) } :data
  /DISCARD/ : { *(.reginfo) *(.MIPS.*) *(.gnu.attributes) *(.pdr) *(.comment) }
}
"""


class Ram:
    def __init__(self, size: int, fill: int = 0xAA) -> None:
        self.mem = bytearray([fill]) * size
        self.writes: list[tuple[int, int]] = []

    def write(self, gpa: int, data: bytes) -> None:
        assert gpa >= 0 and gpa + len(data) <= len(self.mem), f"write outside RAM at {gpa:#x}"
        self.mem[gpa : gpa + len(data)] = data
        self.writes.append((gpa, len(data)))


def _build(tmp: Path, name: str, base: int, *, big_endian: bool = False, sixty_four: bool = False) -> Path:
    if shutil.which(AS) is None or shutil.which(LD) is None:
        pytest.skip(f"{AS} not installed: run scripts/install-test-deps.sh")
    src, obj, elf, lds = tmp / f"{name}.S", tmp / f"{name}.o", tmp / f"{name}.elf", tmp / f"{name}.ld"
    src.write_text(SOURCE)
    lds.write_text(LINKER_SCRIPT.replace("BASE", hex(base)))
    endian = "-EB" if big_endian else "-EL"
    as_flags = ["-64", "-march=mips64r2"] if sixty_four else ["-march=mips32r2", endian]
    ld_flags = ["-m", "elf64ltsmip"] if sixty_four else [endian]
    subprocess.run([AS, *as_flags, "-o", str(obj), str(src)], check=True, capture_output=True)
    subprocess.run([LD, *ld_flags, "-T", str(lds), "-o", str(elf), str(obj)], check=True, capture_output=True)
    return elf


@pytest.fixture(scope="module")
def elfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("elfs")
    return {
        "kseg0": _build(tmp, "kseg0", 0x80100000),
        "kseg1": _build(tmp, "kseg1", 0xA0200000),
        "kseg2": _build(tmp, "kseg2", 0xC0100000),
        "useg": _build(tmp, "useg", 0x40100000),
        "high": _build(tmp, "high", 0x80F00000),
        "be": _build(tmp, "be", 0x80100000, big_endian=True),
        "64": _build(tmp, "sixtyfour", 0xFFFFFFFF80100000, sixty_four=True),
    }


def _one_line_error(excinfo: pytest.ExceptionInfo[BaseException], *words: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message


# ---------------------------------------------------------------------- kernel
def test_load_kseg0_kernel_places_segments_and_zeroes_bss(elfs: dict[str, Path]) -> None:
    # Layout (the assembler pads .text and .data to 16 bytes): text 0x100000+0x10,
    # data 0x101000+0x10, bss 0x101010+0x3000.
    ram = Ram(4 * MIB)
    k = load_elf_kernel(elfs["kseg0"], ram.write, len(ram.mem))
    assert k == LoadedKernel(entry_gva=0x80100000, low_gpa=0x100000, high_gpa=0x101010 + 0x3000)
    assert ram.mem[0x100000:0x100004] == struct.pack("<I", 0x1000FFFF)  # b _start (offset -1)
    assert ram.mem[0x101000:0x101008] == struct.pack("<II", 0x11223344, 0x55667788)
    assert ram.mem[0x101010 : 0x101010 + 0x3000] == bytes(0x3000)  # bss zeroed over the 0xAA fill
    assert ram.mem[0x101010 + 0x3000] == 0xAA  # and not beyond
    assert ram.mem[0x100010:0x101000] == b"\xaa" * (0x1000 - 0x10)  # the gap between segments is untouched
    assert ram.mem[:0x100000] == b"\xaa" * 0x100000


def test_kseg1_kernel_loads_at_the_same_physical_address_space(elfs: dict[str, Path]) -> None:
    ram = Ram(4 * MIB)
    k = load_elf_kernel(elfs["kseg1"], ram.write, len(ram.mem))
    assert k.entry_gva == 0xA0200000 and k.low_gpa == 0x200000


def test_kseg_to_gpa() -> None:
    assert kseg_to_gpa(0x80100000) == 0x100000
    assert kseg_to_gpa(0xA0100000) == 0x100000
    assert kseg_to_gpa(0x00100000) == 0x100000
    with pytest.raises(ValueError):
        kseg_to_gpa(0xC0000000)


def test_missing_kernel(tmp_path: Path) -> None:
    with pytest.raises(KernelImageError) as e:
        load_elf_kernel(tmp_path / "nope", Ram(MIB).write, MIB)
    _one_line_error(e, "no such file", "nope")


def test_kernel_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(tmp_path)
    _one_line_error(e, "directory")


@pytest.mark.parametrize(
    "content", [b"", b"\x7fEL", b"#!/bin/sh\necho hi\n" * 4, b"\x27\x05\x19\x56" + bytes(60)]
)
def test_not_an_elf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vmlinux.bin"
    path.write_bytes(content)
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(path)
    _one_line_error(e, "not an ELF", "bad magic")


def test_64bit_kernel(elfs: dict[str, Path]) -> None:
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(elfs["64"])
    _one_line_error(e, "64-bit kernel: this Malta is 32-bit; use a 4kc/24kc malta kernel, not 5kc")


def test_big_endian_kernel(elfs: dict[str, Path]) -> None:
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(elfs["be"])
    _one_line_error(e, "big-endian")


def test_not_mips(elfs: dict[str, Path], tmp_path: Path) -> None:
    raw = bytearray(elfs["kseg0"].read_bytes())
    struct.pack_into("<H", raw, 18, 3)  # e_machine = EM_386
    path = tmp_path / "x86.elf"
    path.write_bytes(raw)
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(path)
    _one_line_error(e, "not a MIPS kernel", "EM_386")


def test_no_pt_load_segments(tmp_path: Path) -> None:
    if shutil.which(AS) is None:
        pytest.skip(f"{AS} not installed")
    src, obj = tmp_path / "a.S", tmp_path / "a.o"
    src.write_text(SOURCE)
    subprocess.run([AS, "-EL", "-o", str(obj), str(src)], check=True)
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(obj)  # a relocatable object has sections but no program headers
    _one_line_error(e, "no PT_LOAD")


def test_segment_beyond_ram(elfs: dict[str, Path]) -> None:
    ram = Ram(16 * MIB)
    with pytest.raises(KernelImageError) as e:
        load_elf_kernel(elfs["high"], ram.write, 15 * MIB)  # the kernel sits at 15 MiB
    _one_line_error(e, "does not fit", "15 MiB")
    assert ram.writes == []  # nothing written before the check
    load_elf_kernel(elfs["high"], ram.write, 16 * MIB)


def test_segment_in_kseg2(elfs: dict[str, Path]) -> None:
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(elfs["kseg2"])
    _one_line_error(e, "kseg2")


def test_entry_in_useg(elfs: dict[str, Path]) -> None:
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(elfs["useg"])
    _one_line_error(e, "entry point 0x40100000", "CONFIG_KVM_GUEST")


def test_entry_outside_segments(elfs: dict[str, Path], tmp_path: Path) -> None:
    raw = bytearray(elfs["kseg0"].read_bytes())
    struct.pack_into("<I", raw, 24, 0x80800000)  # e_entry
    path = tmp_path / "e.elf"
    path.write_bytes(raw)
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(path)
    _one_line_error(e, "outside every loaded segment")


@pytest.mark.parametrize("keep", [20, 52, 100, 0x1004])
def test_truncated_elf(elfs: dict[str, Path], tmp_path: Path, keep: int) -> None:
    path = tmp_path / "t.elf"
    path.write_bytes(elfs["kseg0"].read_bytes()[:keep])
    with pytest.raises(KernelImageError) as e:
        inspect_elf_kernel(path)
    assert "\n" not in str(e.value)


def test_errors_are_vmm_errors() -> None:
    assert issubclass(KernelImageError, LoaderError)
    assert issubclass(InitrdError, LoaderError)
    assert issubclass(BootArgsError, LoaderError)
    assert issubclass(LoaderError, VmmError)


# ---------------------------------------------------------------------- initrd
def test_initrd_goes_where_qemu_puts_it(tmp_path: Path) -> None:
    # Measured on qemu-system-mipsel 7.2, -m 256, a 100000-byte initrd: rd_start=0xffffffff8ffd0000.
    path = tmp_path / "initrd"
    payload = bytes(i * 7 & 0xFF for i in range(100000))
    path.write_bytes(payload)
    ram = Ram(256 * MIB)
    rd = load_initrd(path, ram.write, 256 * MIB, kernel_high_gpa=0x500000)
    assert rd == LoadedInitrd(gpa=0x0FFD0000, size_bytes=100000)
    assert rd.gva == 0x8FFD0000
    assert ram.mem[rd.gpa : rd.end_gpa] == payload
    assert rd.end_gpa <= 256 * MIB - 64 * 1024  # QEMU's 128 KiB gap, less the round-up to 64 KiB


def test_initrd_too_large(tmp_path: Path) -> None:
    path = tmp_path / "initrd"
    path.write_bytes(bytes(3 * MIB))
    ram = Ram(8 * MIB)
    with pytest.raises(InitrdError) as e:
        load_initrd(path, ram.write, 8 * MIB, kernel_high_gpa=5 * MIB)
    _one_line_error(e, "does not fit")
    assert ram.writes == []
    load_initrd(path, ram.write, 8 * MIB, kernel_high_gpa=4 * MIB)


def test_initrd_larger_than_ram(tmp_path: Path) -> None:
    path = tmp_path / "initrd"
    path.write_bytes(bytes(2 * MIB))
    with pytest.raises(InitrdError):
        load_initrd(path, Ram(MIB).write, MIB, kernel_high_gpa=0)


def test_initrd_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(InitrdError) as e:
        load_initrd(tmp_path / "nope", Ram(MIB).write, MIB, 0)
    _one_line_error(e, "no such file")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InitrdError) as e:
        load_initrd(tmp_path / "empty", Ram(MIB).write, MIB, 0)
    _one_line_error(e, "empty")


# ---------------------------------------------------------------------- YAMON arguments
SEED = bytes(range(32))
KERNEL = LoadedKernel(entry_gva=0x80100000, low_gpa=0x100000, high_gpa=0x400000)


def _strings(ram: Ram) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i in range(16):
        (ptr,) = struct.unpack_from("<I", ram.mem, 0x2000 + 4 * i)
        if ptr == 0:
            out.append(None)
            continue
        gpa = ptr & 0x1FFFFFFF
        out.append(bytes(ram.mem[gpa : ram.mem.index(0, gpa)]))
    return out


def test_boot_args_match_qemu_7_2_layout() -> None:
    ram = Ram(256 * MIB, fill=0)
    rd = LoadedInitrd(gpa=0x0FFD0000, size_bytes=100000)
    boot = write_yamon_boot_args(
        ram.write,
        kernel=KERNEL,
        cmdline="console=ttyS0 hello",
        ram_size_bytes=256 * MIB,
        initrd=rd,
        kernel_name="k.elf",
        rng_seed=SEED,
    )
    # The table QEMU writes at 0x2000: pointers to 256-byte slots after 16 entries, then NULL.
    table = struct.unpack_from("<16I", ram.mem, 0x2000)
    assert table == tuple(0x80002040 + 0x100 * i for i in range(10)) + (0,) * 6
    assert _strings(ram)[:11] == [
        b"k.elf",
        b"rd_start=0xffffffff8ffd0000 rd_size=100000 console=ttyS0 hello",
        b"memsize",
        b"268435456",
        b"ememsize",
        b"268435456",
        b"modetty0",
        b"38400n8r",
        b"rngseed",
        SEED.hex().encode(),
        None,
    ]
    assert boot.area_gpa == 0x2000 and boot.area_end_gpa == 0x2000 + 16 * (4 + 256)
    # Registers as QEMU's bootloader leaves them (measured: a0=2 a1=80002000 a2=80002008 a3=10000000,
    # sp=80001fc0, t9=entry).
    assert boot.gprs() == {4: 2, 5: 0x80002000, 6: 0x80002008, 7: 0x10000000, 29: 0x80001FC0, 25: 0x80100000}
    assert boot.entry_gva == 0x80100000
    assert ENTRY_CP0_STATUS == 0x00400000


def test_memsize_is_capped_at_the_low_window_and_precedes_ememsize() -> None:
    ram = Ram(64 * MIB, fill=0)
    boot = write_yamon_boot_args(ram.write, kernel=KERNEL, cmdline="", ram_size_bytes=64 * MIB, rng_seed=SEED)
    strings = _strings(ram)
    assert strings[1] == b"" and strings[2:6] == [b"memsize", b"67108864", b"ememsize", b"67108864"]
    assert boot.gprs()[7] == 64 * MIB
    big = write_yamon_boot_args(ram.write, kernel=KERNEL, cmdline="", ram_size_bytes=1024 * MIB)
    assert big.ram_low_size_bytes == 256 * MIB
    assert dict(big.env)["ememsize"] == str(1024 * MIB) and dict(big.env)["memsize"] == str(256 * MIB)


def test_rng_seed_is_random_by_default() -> None:
    a = write_yamon_boot_args(Ram(MIB).write, kernel=KERNEL, cmdline="", ram_size_bytes=MIB)
    b = write_yamon_boot_args(Ram(MIB).write, kernel=KERNEL, cmdline="", ram_size_bytes=MIB)
    seed_a, seed_b = dict(a.env)["rngseed"], dict(b.env)["rngseed"]
    assert len(seed_a) == 64 and seed_a != seed_b


def test_long_command_line_gets_a_longer_slot() -> None:
    ram = Ram(MIB, fill=0)
    cmdline = "x" * 1000
    boot = write_yamon_boot_args(ram.write, kernel=KERNEL, cmdline=cmdline, ram_size_bytes=MIB, rng_seed=SEED)
    strings = _strings(ram)
    assert strings[1] == cmdline.encode() and strings[2] == b"memsize" and strings[9] == SEED.hex().encode()
    assert boot.area_end_gpa > 0x2000 + 16 * 260


def test_command_line_limits() -> None:
    with pytest.raises(BootArgsError) as e:
        write_yamon_boot_args(Ram(MIB).write, kernel=KERNEL, cmdline="y" * 4096, ram_size_bytes=MIB)
    _one_line_error(e, "4096 bytes")
    with pytest.raises(BootArgsError):
        write_yamon_boot_args(Ram(MIB).write, kernel=KERNEL, cmdline="a\0b", ram_size_bytes=MIB)
    write_yamon_boot_args(Ram(MIB).write, kernel=KERNEL, cmdline="y" * 4095, ram_size_bytes=MIB)


def test_argv0_is_cut_like_qemu() -> None:
    ram = Ram(MIB, fill=0)
    write_yamon_boot_args(
        ram.write, kernel=KERNEL, cmdline="", ram_size_bytes=MIB, kernel_name="/" + "k" * 400
    )
    assert len(_strings(ram)[0]) == 255


def test_boot_args_refuse_to_overwrite_the_kernel() -> None:
    low_kernel = LoadedKernel(entry_gva=0x80001000, low_gpa=0x1000, high_gpa=0x2100)
    ram = Ram(MIB)
    with pytest.raises(BootArgsError) as e:
        write_yamon_boot_args(ram.write, kernel=low_kernel, cmdline="", ram_size_bytes=MIB)
    _one_line_error(e, "overlap the kernel")
    assert ram.writes == []
