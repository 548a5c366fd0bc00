"""Assemble small MIPS test programs with Debian's cross binutils (cached by content)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from elftools.elf.elffile import ELFFile

CACHE = Path(__file__).resolve().parent.parent / "build" / "asm-cache"
AS = "mipsel-linux-gnu-as"
LD = "mipsel-linux-gnu-ld"


class ToolchainMissingError(RuntimeError):
    pass


def _assemble(text: str, cache_key: str, commands: list[list[str]], obj: Path, elf: Path) -> bytes:
    """Run `commands` (assemble `t.S` into `obj`, link into `elf`) once per `cache_key`; the .text bytes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{hashlib.sha256(cache_key.encode()).hexdigest()[:24]}.bin"
    if out.exists():
        return out.read_bytes()
    obj.parent.joinpath("t.S").write_text(text)
    for cmd in commands:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{cmd[0]} failed:\n{done.stderr}")
    with elf.open("rb") as f:
        image = ELFFile(f).get_section_by_name(".text").data()
    out.write_bytes(image)
    return image


def assemble(source: str, base: int = 0x80001000) -> bytes:
    """Assemble `source` (noreorder, MIPS32r5 with VZ) linked at `base`; return the flat image."""
    if shutil.which(AS) is None:
        raise ToolchainMissingError(f"{AS} not found: run scripts/install-test-deps.sh")
    text = ".set noreorder\n.set noat\n.text\n.globl _start\n_start:\n" + source + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, elf = Path(tmp, "t.S"), Path(tmp, "t.o"), Path(tmp, "t.elf")
        return _assemble(text, f"{base:#x}\n{text}", [
            [AS, "-march=mips32r5", "-mvirt", "-EL", "-o", str(obj), str(src)],
            [LD, "-EL", f"-Ttext={base:#x}", "-e", "_start", "-o", str(elf), str(obj)],
        ], obj, elf)


PPC_AS = "powerpc-linux-gnu-as"
PPC_LD = "powerpc-linux-gnu-ld"


def assemble_ppc(source: str, base: int) -> bytes:
    """Assemble PowerPC 440 `source` (big-endian, Book E) linked at `base`; return the flat image."""
    if shutil.which(PPC_AS) is None:
        raise ToolchainMissingError(f"{PPC_AS} not found: run scripts/install-test-deps.sh")
    text = ".text\n.globl _start\n_start:\n" + source + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, elf = Path(tmp, "t.S"), Path(tmp, "t.o"), Path(tmp, "t.elf")
        return _assemble(text, f"ppc440 {base:#x}\n{text}", [
            [PPC_AS, "-m440", "-mbig", "-mregnames", "-o", str(obj), str(src)],
            [PPC_LD, "-EB", f"-Ttext={base:#x}", "-e", "_start", "-o", str(elf), str(obj)],
        ], obj, elf)
