#!/usr/bin/env python3
"""Build the PowerPC 440 bare-metal test guests (bamboo board, big endian).

Each guest is one assembly file ``tests/guests/ppc/<name>.S`` linked with the
runtime (``crt0.S``) into ``<out_dir>/<name>.elf`` (default
``build/guests/ppc/``), with a disassembly next to it. Only binutils are
needed (Debian's ``binutils-powerpc-linux-gnu``): the guests are plain
assembly, no C compiler. The staleness checks, atomic writes and command
running are the MIPS guest builder's (`_make`) (tests/guests/build.py).

Usable as a module (``build_all``, ``build_guest``, ``GUESTS``) and as a
script: ``python tests/guests/ppc/build.py [--force] [NAME...]``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.guests.build import (  # noqa: E402
    REPO_ROOT,
    GuestBuildError,
    ToolchainMissingError,
    _make,
    _resolve_out_dir,
    run_cli,
)

PPC_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = REPO_ROOT / "build" / "guests" / "ppc"

CROSS_PREFIX = "powerpc-linux-gnu-"
AS = CROSS_PREFIX + "as"
LD = CROSS_PREFIX + "ld"
OBJDUMP = CROSS_PREFIX + "objdump"
# -m440 accepts the 440's own instructions; -many adds the classic FPU's (the 440EP has one)
ASFLAGS: tuple[str, ...] = ("-m440", "-many", "-mregnames", "-mbig")
LDFLAGS: tuple[str, ...] = ("--build-id=none", "--no-warn-rwx-segments", "-n")
RUNTIME = "crt0.S"
RUNTIME_DEPS: tuple[str, ...] = ("ppc440.inc", "link.ld")


@dataclass(frozen=True)
class PpcGuest:
    """One 440 test guest. ``description`` says what it covers."""

    name: str
    description: str
    timeout_s: float = 30.0

    @property
    def path(self) -> Path:
        return PPC_DIR / f"{self.name}.S"


# fmt: off
GUESTS: tuple[PpcGuest, ...] = (
    PpcGuest("hello", "runtime: log, print helpers, exit; entry state (MSR, PVR, PIR, PID, MMUCR)"),
    PpcGuest("alu", "add/subf families incl. carrying, extended, o and . forms; addi addis addic subfic"),
    PpcGuest("logic", "and or xor nand nor eqv andc orc, immediate logicals, extsb extsh cntlzw"),
    PpcGuest("rotate", "rlwinm rlwimi rlwnm; slw srw sraw srawi with XER[CA]"),
    PpcGuest("muldiv", "mullw mulhw mulhwu divw divwu with o and . forms"),
    PpcGuest("compare", "cmp cmpi cmpl cmpli, CR logical ops, mcrf mfcr mtcrf mcrxr, XER mask"),
    PpcGuest("branches", "b bl, bc/bclr/bcctr with every BO class, LR and CTR"),
    PpcGuest("loadstore", "loads/stores: widths, algebraic, update, indexed, byte-reversed, unaligned, "
             "page-crossing, lmw stmw, lswi stswi lswx stswx"),
    PpcGuest("atomic", "lwarx stwcx., barriers, dcbz and the other cache operations"),
    PpcGuest("spr", "privileged SPRs read back, SPRG4-7 aliases, TB write/read, mfmsr mtmsr wrtee wrteei"),
    PpcGuest("program", "program interrupts (illegal, privileged in user mode, traps), sc, FP unavailable, "
             "alignment, user-mode SPRs"),
    PpcGuest("tlb", "tlbwe tlbre tlbsx(.) fields; TS 1 translation: sizes, TID/PID, permissions; "
             "DTLB/ITLB misses, DSI, ISI"),
    PpcGuest("fpu", "classic FPU: loads/stores, arithmetic, fused multiply-add, fsel, compares, "
             "conversions, FPSCR exception bits and FPRF, FPSCR instructions, rounding modes"),
    PpcGuest("extint", "external and critical input through UIC0 (software-set status), mfdcr/mtdcr, "
             "EE/CE gating, SRR vs CSRR"),
    PpcGuest("timer", "DEC one-shot and auto-reload, TSR write-one-to-clear, the decrementer interrupt"),
)
# fmt: on

GUESTS_BY_NAME: dict[str, PpcGuest] = {g.name: g for g in GUESTS}


def find_toolchain() -> None:
    """Raise ToolchainMissingError unless the powerpc binutils are on PATH."""
    for tool in (AS, LD, OBJDUMP):
        if shutil.which(tool) is None:
            raise ToolchainMissingError(
                f"{tool} not found on PATH: the 440 guests need Debian's binutils-powerpc-linux-gnu"
            )


def toolchain_available() -> bool:
    try:
        find_toolchain()
    except ToolchainMissingError:
        return False
    return True


def _deps() -> list[Path]:
    return [PPC_DIR / d for d in RUNTIME_DEPS] + [Path(__file__).resolve()]


def _assemble(src: Path, obj: Path, force: bool) -> Path:
    return _make(
        obj, [src, *_deps()], lambda tmp: [AS, *ASFLAGS, f"-I{PPC_DIR}", str(src), "-o", str(tmp)], force
    )


def _build_one(guest: PpcGuest, out: Path, force: bool) -> Path:
    if not guest.path.is_file():
        raise GuestBuildError(f"guest {guest.name}: source {guest.path} is missing")
    runtime = _assemble(PPC_DIR / RUNTIME, out / "obj" / "_rt_crt0.o", force)
    obj = _assemble(guest.path, out / "obj" / f"{guest.name}.o", force)
    link_script = PPC_DIR / "link.ld"
    return _make(
        out / f"{guest.name}.elf",
        [obj, runtime, link_script],
        lambda tmp: [LD, *LDFLAGS, "-T", str(link_script), str(runtime), str(obj), "-o", str(tmp)],
        force,
        disassemble=lambda tmp: [OBJDUMP, "-d", "-M", "440", str(tmp)],
    )


def build_guest(name: str, out_dir: Path | str | None = None, *, force: bool = False) -> Path:
    """Build one guest (if stale) and return its ELF."""
    guest = GUESTS_BY_NAME.get(name)
    if guest is None:
        raise GuestBuildError(f"unknown 440 guest {name!r}; known: {', '.join(GUESTS_BY_NAME)}")
    find_toolchain()
    return _build_one(guest, _resolve_out_dir(out_dir, DEFAULT_OUT_DIR), force)


def build_all(
    out_dir: Path | str | None = None, *, names: Iterable[str] | None = None, force: bool = False
) -> dict[str, Path]:
    """Build every guest (or the named ones) if stale; return name -> ELF."""
    find_toolchain()
    out = _resolve_out_dir(out_dir, DEFAULT_OUT_DIR)
    selected = list(GUESTS) if names is None else [GUESTS_BY_NAME[n] for n in names]
    return {g.name: _build_one(g, out, force) for g in selected}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        argv,
        description=__doc__.split("\n\n")[0],
        guests=GUESTS,
        build=build_all,
        default_out_dir=DEFAULT_OUT_DIR,
    )


if __name__ == "__main__":
    sys.exit(main())
