#!/usr/bin/env python3
"""Build the bare-metal test guests (MIPS32r2, little endian, Malta).

Each guest is one source file ``tests/guests/<name>.S`` or ``<name>.c``,
linked with the runtime (``crt0.S``, ``lib.c``) into
``<out_dir>/<name>.elf`` (default ``build/guests/``). A disassembly goes
next to it as ``<name>.dis``. Rebuilds happen only when a source, header,
the linker script or this file is newer than the ELF.

Usable as a module (``build_all``, ``build_guest``, ``GUESTS``) and as a
script: ``python tests/guests/build.py [--list] [--force] [-o DIR] [NAME...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GUESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = GUESTS_DIR.parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "build" / "guests"

CROSS_PREFIX = "mipsel-linux-gnu-"
CC = CROSS_PREFIX + "gcc"
OBJDUMP = CROSS_PREFIX + "objdump"

CFLAGS: tuple[str, ...] = (
    "-march=mips32r2",
    "-mabi=32",
    "-EL",
    "-mno-abicalls",
    "-fno-pic",
    "-fno-pie",
    "-G0",
    "-O2",
    "-ffreestanding",
    "-fno-builtin",
    "-nostdlib",
    "-msoft-float",
    # no "teq $divisor, $zero, 7" after every division: C guests must not trap
    "-mno-check-zero-division",
    # stop gcc from turning the runtime's own loops into memset/memcpy calls
    "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
)
LDFLAGS: tuple[str, ...] = ("-static", "-no-pie", "-Wl,--build-id=none", "-Wl,-n")

RUNTIME_SOURCES: tuple[str, ...] = ("crt0.S", "lib.c")
RUNTIME_DEPS: tuple[str, ...] = ("mips.h", "lib.h", "guest.h", "link.ld")


@dataclass(frozen=True)
class Guest:
    """One test guest and what a runner needs to know about it.

    ``deterministic``: the UART output is the same on every run and on every
    correct implementation (so it can be diffed against QEMU's).
    ``uses_timer``: depends on Count/Compare firing (output is still
    timing independent). ``uses_tlb`` / ``uses_user_mode``: needs a working
    guest-visible TLB / user mode. ``bench``: sized to run ~1-3 s under
    QEMU TCG, meant for benchmarks rather than CI.
    ``approx_insns``: guest instructions executed from reset to the reset
    write, measured under QEMU (order of magnitude; the interrupt guest's
    count varies with timing); use it to scale timeouts for slower
    implementations. ``timeout_s`` is the timeout under QEMU.
    ``extra_deps``: further source files (in this directory) it includes.
    """

    name: str
    source: str
    description: str
    deterministic: bool = True
    uses_timer: bool = False
    uses_tlb: bool = False
    uses_user_mode: bool = False
    bench: bool = False
    approx_insns: int = 0
    timeout_s: float = 30.0
    extra_deps: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return GUESTS_DIR / self.source


def _g(name: str, ext: str, description: str, **kw: Any) -> Guest:
    return Guest(name=name, source=f"{name}.{ext}", description=description, **kw)


# fmt: off
GUESTS: tuple[Guest, ...] = (
    _g("hello", "c", "console smoke test: puts/kprintf/exit", approx_insns=25_000),
    _g("regdump", "S", "asm conventions: PRINT, PRINT_REG, DUMP_REGS, DUMP_MEM", approx_insns=49_000),
    _g("alu_imm", "S", "addiu addi slti sltiu andi ori xori lui", approx_insns=33_000),
    _g("alu_reg", "S", "addu add subu sub and or xor nor slt sltu", approx_insns=33_000),
    _g("shifts", "S", "sll srl sra sllv srlv srav rotr rotrv", approx_insns=33_000),
    _g("muldiv", "S", "mult(u) div(u) madd(u) msub(u) mul; mfhi mflo mthi mtlo", approx_insns=49_000),
    _g("clz_clo", "S", "clz clo", approx_insns=27_000),
    _g("bitops", "S", "ext ins seb seh wsbh", approx_insns=31_000),
    _g("movcond", "S", "movn movz", approx_insns=25_000),
    _g("branches", "S", "all conditional branches, likely and linking; delay slots", approx_insns=45_000),
    _g("jumps", "S", "j jal jr jalr jr.hb jalr.hb; link values; delay slots", approx_insns=28_000),
    _g("loadstore", "S", "lb lbu lh lhu lw sb sh sw; kseg0/kseg1 aliasing", approx_insns=32_000),
    _g("lwlr", "S", "lwl lwr swl swr at all four alignments", approx_insns=33_000),
    _g("llsc", "S", "ll sc; LLbit cleared by eret", approx_insns=26_000),
    _g("traps", "S", "teq tne tge tgeu tlt tltu and immediate forms (Tr)", approx_insns=42_000),
    _g("syscall_break", "S", "syscall break (Sys/Bp exceptions, code field)", approx_insns=29_000),
    _g("nops", "S", "nop ssnop ehb sync pref cache synci leave state unchanged", approx_insns=46_000),
    _g("cp0_misc", "S", "di ei; eret from EXL and ERL; CP0 read/write fields; Cause.DC",
       approx_insns=42_000),
    _g("rdhwr", "S", "rdhwr CPUNum SYNCI_Step CC CCRes in kernel mode; HWREna", approx_insns=28_000),
    _g("mmio_bd", "S", "UART loads/stores in branch and jump delay slots", approx_insns=24_000),
    _g("exc_addr", "S", "address errors: unaligned loads/stores (AdEL/AdES), unaligned fetch",
       approx_insns=38_000),
    _g("exc_ri", "S", "reserved instruction (RI); coprocessor unusable (CpU, CE=1)", approx_insns=26_000),
    _g("exc_ov", "S", "overflow (Ov) of add addi sub; none for addu addiu subu", approx_insns=42_000),
    _g("exc_bd", "S", "exceptions in branch delay slots: Cause.BD, EPC = branch", approx_insns=38_000),
    _g("usermode", "S", "user mode: HWREna, CpU, AdEL/AdES, TLB refill, CU0", approx_insns=46_000,
       uses_tlb=True, uses_user_mode=True),
    _g("tlb", "c", "tlbwi tlbwr tlbp tlbr; 4K/16K; refill/invalid/modified; ASID/global; EXL miss",
       approx_insns=67_000, uses_tlb=True),
    _g("interrupts", "c", "software interrupts; Count/Compare timer polled, via wait, spinning",
       approx_insns=33_000, uses_timer=True),
    _g("c_crc32", "c", "CRC-32 of a 16 KiB pseudo-random buffer", approx_insns=320_000),
    _g("c_qsort", "c", "quicksort of 3000 pseudo-random words", approx_insns=470_000),
    _g("c_bignum", "c", "100! and 2^1000 in decimal", approx_insns=900_000),
    _g("bench_crc32", "c", "benchmark: CRC-32 of 128 x 1 MiB", approx_insns=1_350_000_000,
       bench=True, extra_deps=("c_crc32.c",), timeout_s=120.0),
    _g("bench_qsort", "c", "benchmark: 40 quicksorts of 200000 words", approx_insns=1_650_000_000,
       bench=True, extra_deps=("c_qsort.c",), timeout_s=120.0),
    _g("bench_bignum", "c", "benchmark: 12000! and 2^50000 in decimal", approx_insns=1_700_000_000,
       bench=True, extra_deps=("c_bignum.c",), timeout_s=120.0),
)
# fmt: on

GUESTS_BY_NAME: dict[str, Guest] = {g.name: g for g in GUESTS}


class GuestBuildError(RuntimeError):
    """Building a guest failed (compiler/linker error or unknown guest)."""


class ToolchainMissingError(GuestBuildError):
    """The mipsel cross toolchain is not installed."""


def find_toolchain() -> str:
    """Return the path of the cross gcc, or raise ToolchainMissingError."""
    for tool in (CC, OBJDUMP):
        if shutil.which(tool) is None:
            raise ToolchainMissingError(
                f"{tool} not found on PATH: the guests need the mipsel cross "
                "toolchain (Debian packages gcc-mipsel-linux-gnu and "
                "binutils-mipsel-linux-gnu); run scripts/install-test-deps.sh as root"
            )
    path = shutil.which(CC)
    assert path is not None
    return path


def toolchain_available() -> bool:
    try:
        find_toolchain()
    except ToolchainMissingError:
        return False
    return True


def _newest_mtime(paths: Iterable[Path]) -> float:
    return max(p.stat().st_mtime for p in paths)


def _is_stale(target: Path, deps: Iterable[Path]) -> bool:
    try:
        built = target.stat().st_mtime
    except FileNotFoundError:
        return True
    return _newest_mtime(deps) > built


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestBuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def _atomic_output(target: Path) -> Path:
    """A temporary path in target's directory, to be renamed onto target."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def _make(
    target: Path,
    deps: Iterable[Path],
    command: Callable[[Path], Sequence[str]],
    force: bool,
    *,
    disassemble: Callable[[Path], Sequence[str]] | None = None,
) -> Path:
    """Make `target` with `command(tmp)` unless it is newer than `deps` (or `force`); return it.

    The command writes a temporary file that is renamed onto `target` only
    once it succeeded, so an interrupted build never leaves a truncated
    output that looks up to date. With `disassemble`, that command's output
    for the new file is written next to it as `<target stem>.dis`.
    Shared by the MIPS and the PowerPC guest builders.
    """
    if not force and not _is_stale(target, deps):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_output(target)
    try:
        _run(command(tmp))
        if disassemble is not None:
            dis = subprocess.run(disassemble(tmp), capture_output=True, text=True, check=False)
            target.with_suffix(".dis").write_text(dis.stdout)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _compile(src: Path, obj: Path, deps: Sequence[Path], force: bool) -> Path:
    return _make(
        obj, [src, *deps], lambda tmp: [CC, *CFLAGS, f"-I{GUESTS_DIR}", "-c", str(src), "-o", str(tmp)], force
    )


def _common_deps() -> list[Path]:
    return [GUESTS_DIR / d for d in RUNTIME_DEPS] + [Path(__file__).resolve()]


_runtime_lock = threading.Lock()


def _build_runtime(out_dir: Path, force: bool) -> list[Path]:
    deps = _common_deps()
    with _runtime_lock:
        return [
            _compile(GUESTS_DIR / src, out_dir / "obj" / f"_rt_{Path(src).stem}.o", deps, force)
            for src in RUNTIME_SOURCES
        ]


def _build_one(guest: Guest, out_dir: Path, runtime: list[Path], force: bool) -> Path:
    if not guest.path.is_file():
        raise GuestBuildError(f"guest {guest.name}: source {guest.path} is missing")
    elf = out_dir / f"{guest.name}.elf"
    deps = [*_common_deps(), *(GUESTS_DIR / d for d in guest.extra_deps)]
    obj = _compile(guest.path, out_dir / "obj" / f"{guest.name}.o", deps, force)
    link_script = GUESTS_DIR / "link.ld"
    return _make(
        elf,
        [obj, *runtime, link_script],
        lambda tmp: [
            CC,
            *CFLAGS,
            *LDFLAGS,
            "-T",
            str(link_script),
            *map(str, runtime),
            str(obj),
            "-o",
            str(tmp),
        ],
        force,
        disassemble=lambda tmp: [OBJDUMP, "-d", "-M", "reg-names=numeric", "--no-show-raw-insn", str(tmp)],
    )


def _resolve_out_dir(out_dir: Path | str | None, default: Path = DEFAULT_OUT_DIR) -> Path:
    """`out_dir` (or `default`), created, as an absolute path."""
    path = Path(out_dir) if out_dir is not None else default
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def build_guest(name: str, out_dir: Path | str | None = None, *, force: bool = False) -> Path:
    """Build one guest (if stale) and return the path of its ELF."""
    guest = GUESTS_BY_NAME.get(name)
    if guest is None:
        raise GuestBuildError(f"unknown guest {name!r}; known: {', '.join(GUESTS_BY_NAME)}")
    find_toolchain()
    out = _resolve_out_dir(out_dir)
    return _build_one(guest, out, _build_runtime(out, force), force)


def build_all(
    out_dir: Path | str | None = None,
    *,
    names: Iterable[str] | None = None,
    force: bool = False,
    jobs: int | None = None,
) -> dict[str, Path]:
    """Build every guest (or the named ones) if stale; return name -> ELF path."""
    find_toolchain()
    selected = list(GUESTS) if names is None else [GUESTS_BY_NAME[n] for n in names]
    out = _resolve_out_dir(out_dir)
    runtime = _build_runtime(out, force)
    workers = jobs or min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {g.name: pool.submit(_build_one, g, out, runtime, force) for g in selected}
        return {name: fut.result() for name, fut in futures.items()}


def run_cli(
    argv: Sequence[str] | None,
    *,
    description: str,
    guests: Sequence[Any],
    build: Callable[..., dict[str, Path]],
    default_out_dir: Path,
) -> int:
    """The command line of a guest builder: build the named `guests` (default all) with `build`.

    `guests` are dataclasses with a `name`; `build` is the builder's
    `build_all`. Shared by the MIPS and the PowerPC guest builders.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("names", nargs="*", help="guests to build (default: all)")
    parser.add_argument("-o", "--out-dir", type=Path, default=default_out_dir)
    parser.add_argument("-f", "--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--list", action="store_true", help="print the guest table as JSON and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(json.dumps([asdict(g) for g in guests], indent=2))
        return 0
    known = {g.name for g in guests}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown guest(s): {', '.join(unknown)}")
    try:
        built = build(args.out_dir, names=args.names or None, force=args.force)
    except GuestBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in built.items():
        print(f"{name}: {path}")
    return 0


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
