#!/usr/bin/env python3
"""Check that everything the test suite uses from outside the repository is installed on purpose.

A fresh Debian machine has only what `scripts/install-test-deps.sh` installs
and what those packages *depend* on. A package that came in as a Recommends,
or was installed by hand, is there on a developer's machine and missing on a
fresh one: that is how CI once failed (QEMU's NIC option ROMs, ipxe-qemu).

This script lists what the suite executes (cross tools, QEMU, e2fsprogs,
passt, ip, ...) and, by running each QEMU configuration the suite uses under
strace, the files QEMU opens (ROMs, firmware, device trees, keymaps). Each
must be owned (`dpkg -S`) by a package that the install script names, by one
of their hard dependencies (Depends/Pre-Depends, recursively), or by a
package every Debian system has (Essential or Priority: required). A QEMU
configuration that fails to start fails the check too.

Run from the repository root: `python3 scripts/check-clean-install.py`.
Exit status 0 when everything is accounted for, 1 otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.qemu_ref import bamboo_session_argv, malta_session_argv, qemu_command  # noqa: E402
from tests.qemu_ref_ppc import qemu_bamboo_command  # noqa: E402

INSTALL_SCRIPT = REPO / "scripts" / "install-test-deps.sh"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# What the suite executes, and where (so a reader can check the list is complete:
# `git grep` for subprocess calls in tests/, benchmarks/ and kvmpy/).
TOOLS = {
    "qemu-system-mipsel": "tests/qemu_ref.py, tests/functional/guest_session.py",
    "mipsel-linux-gnu-gcc": "tests/guests/build.py",
    "mipsel-linux-gnu-objdump": "tests/guests/build.py",
    "mipsel-linux-gnu-as": "tests/asm.py, tests/unit/test_loader.py, tests/unit/test_debian_image.py",
    "mipsel-linux-gnu-ld": "tests/asm.py, tests/unit/test_loader.py",
    "mipsel-linux-gnu-nm": "tests/functional/test_guests_qemu.py",
    "mke2fs": "tests/conftest.py (ext2 images)",
    "debugfs": "tests/conftest.py (ext2 images)",
    "e2fsck": "tests/functional/test_virtio.py",
    "passt": "kvmpy/vmm/net/passt.py (--netdev passt)",
    "ip": "tests/functional/test_virtio.py (TAP in a network namespace)",
    "apt-get": "kvmpy/vmm/images/debian.py (fetches the Malta kernel and busybox)",
    "apt-cache": "kvmpy/vmm/images/debian.py",
    "dpkg-deb": "kvmpy/vmm/images/debian.py",
    "strace": "this script",
    "gdb-multiarch": "tests/functional/test_gdbstub_gdb.py",
    "qemu-system-ppc": "tests/qemu_ref_ppc.py",
    "powerpc-linux-gnu-as": "tests/guests/ppc/build.py",
    "powerpc-linux-gnu-ld": "tests/guests/ppc/build.py",
    "powerpc-linux-gnu-objdump": "tests/guests/ppc/build.py",
    "dtc": "tests/unit/test_bamboo_fdt.py",
    "powerpc-linux-gnu-gcc": "kvmpy/vmm/images/ppc440.py (the 440 kernel and busybox)",
    "make": "kvmpy/vmm/images/ppc440.py",
    "bison": "kvmpy/vmm/images/ppc440.py",
    "flex": "kvmpy/vmm/images/ppc440.py",
    "bc": "kvmpy/vmm/images/ppc440.py",
    "dpkg-source": "kvmpy/vmm/images/ppc440.py (apt-get source busybox)",
}

QEMU_START_S = 3.0

# Tiny ELFs for QEMU's -kernel (Malta refuses to start without firmware or a kernel):
# (assembler, its flags, linker, its flags, source)
TINY_KERNELS = {
    "mips": ("mipsel-linux-gnu-as", ["-EL"], "mipsel-linux-gnu-ld", ["-EL", "-Ttext=0x80100000"],
             ".set noreorder\n.globl __start\n__start:\n1: b 1b\n nop\n"),
    "ppc": ("powerpc-linux-gnu-as", [], "powerpc-linux-gnu-ld", ["-Ttext=0x100000"],
            ".globl _start\n_start:\n1: b 1b\n"),
}


@dataclass
class Finding:
    what: str
    path: str
    package: str = ""
    how: str = ""
    ok: bool = False


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def named_packages() -> list[str]:
    out = run(["bash", str(INSTALL_SCRIPT), "--list"], check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def hard_dependency_closure(packages: list[str]) -> set[str]:
    """The packages installing `packages` pulls in without Recommends (as installed here)."""
    out = run([
        "apt-cache", "depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages,
    ]).stdout
    closure = set(packages)
    for line in out.splitlines():
        if line and not line[0].isspace():
            closure.add(line.strip().split(":")[0])
        else:
            m = re.match(r"\s+\|?(?:Pre)?Depends: ([^\s<>]+)", line)
            if m:
                closure.add(m.group(1).split(":")[0])
    return closure


def base_system_packages() -> set[str]:
    """Packages every Debian system has: Essential, or Priority required."""
    out = run(["dpkg-query", "-W", "-f", "${Package} ${Essential} ${Priority}\n"]).stdout
    base = set()
    for line in out.splitlines():
        name, essential, priority = (line.split() + ["", ""])[:3]
        if essential == "yes" or priority == "required":
            base.add(name)
    return base


def owners(paths: list[str]) -> dict[str, str]:
    """Map each path to the package that owns it ("" when none does)."""
    result = dict.fromkeys(paths, "")
    for path in paths:
        candidates = [path, os.path.realpath(path)]
        # merged /usr: dpkg may know a file under /bin that lives at /usr/bin, or the reverse
        for p in list(candidates):
            if p.startswith("/usr/"):
                candidates.append(p[4:])
            else:
                candidates.append("/usr" + p)
        for candidate in candidates:
            proc = run(["dpkg", "-S", candidate])
            for line in proc.stdout.splitlines():
                if line.startswith("diversion by"):
                    continue
                pkg, sep, _ = line.partition(": ")
                if sep:
                    result[path] = pkg.split(",")[0].split(":")[0].strip()
                    break
            if result[path]:
                break
    return result


def files_qemu_opens(argv: list[str], workdir: Path) -> tuple[set[str], str]:
    """Packaged files QEMU opened while starting (libraries, ROMs, data), and an error if it failed."""
    log = workdir / "strace.log"
    cmd = ["strace", "-f", "-qq", "-e", "trace=openat,open", "-o", str(log), *argv]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_START_S)
        error = f"exited with status {proc.returncode}: {proc.stderr.strip()}"
    except subprocess.TimeoutExpired:
        error = ""  # still running: it started
    opened: set[str] = set()
    for line in log.read_text(errors="replace").splitlines():
        m = re.search(r'open(?:at)?\((?:AT_FDCWD, )?"([^"]+)".*\) = \d+', line)
        if m and m.group(1).startswith(("/usr/", "/lib/", "/etc/qemu")) and os.path.isfile(m.group(1)):
            opened.add(m.group(1))
    return opened, error


def main() -> int:
    for tool in ("strace", "dpkg", "apt-cache"):
        if shutil.which(tool, path=SEARCH_PATH) is None:
            print(f"check-clean-install: {tool} is missing; run scripts/install-test-deps.sh first")
            return 1
    named = named_packages()
    closure = hard_dependency_closure(named)
    base = base_system_packages()
    findings: list[Finding] = []

    for tool, used_by in TOOLS.items():
        path = shutil.which(tool, path=SEARCH_PATH)
        findings.append(Finding(f"{tool} ({used_by})", path or "not found"))

    with tempfile.TemporaryDirectory(prefix="kvmpy-clean-") as tmp:
        workdir = Path(tmp)
        kernels: dict[str, Path] = {}
        for arch, (asm, as_flags, ld, ld_flags, source) in TINY_KERNELS.items():
            src, obj, kernels[arch] = (workdir / f"{arch}{ext}" for ext in (".S", ".o", ".elf"))
            src.write_text(source)
            run([asm, *as_flags, "-o", str(obj), str(src)], check=True)
            run([ld, *ld_flags, "-o", str(kernels[arch]), str(obj)], check=True)
        kernel = kernels["mips"]
        disk = workdir / "disk.img"
        disk.write_bytes(bytes(1 << 20))
        initrd = workdir / "initrd"
        initrd.write_bytes(bytes(4096))
        # The command lines the suite builds, with -S: the guest never runs,
        # and QEMU has opened its ROMs by the time it waits.
        qemu_runs = {
            "bare-metal guests (tests/qemu_ref.py)": qemu_command(kernel),
            "Linux sessions with a disk (tests/functional/guest_session.py)": malta_session_argv(
                kernel, initrd, "console=ttyS0", drives=(disk,)),
            "PowerPC 440 guests (tests/qemu_ref_ppc.py)": qemu_bamboo_command(kernels["ppc"]),
            "PowerPC 440 Linux sessions (tests/functional/guest_session.py)": bamboo_session_argv(
                kernels["ppc"], initrd, "console=ttyS0"),
        }
        for name, argv in qemu_runs.items():
            full = [*argv, "-S"]
            opened, error = files_qemu_opens(full, workdir)
            if error:
                findings.append(Finding(f"QEMU for {name}", " ".join(full), how=error))
            for path in sorted(opened):
                findings.append(Finding(f"opened by QEMU for {name}", path))

    who = owners([f.path for f in findings if f.path.startswith("/")])
    for f in findings:
        if not f.path.startswith("/"):
            f.how = f.how or "not found on this machine"
            continue
        f.package = who.get(f.path, "")
        if not f.package:
            f.how = "owned by no package"
        elif f.package in named:
            f.how, f.ok = "named by install-test-deps.sh", True
        elif f.package in closure:
            f.how, f.ok = "a hard dependency of a named package", True
        elif f.package in base:
            f.how, f.ok = "in every Debian system (essential/required)", True
        else:
            f.how = "NOT named and not a dependency: installed by hand or as a Recommends"

    failed = [f for f in findings if not f.ok]
    # shared libraries are many and always come with their program: list them only when wrong
    libraries = [f for f in findings if f.ok and ".so" in os.path.basename(f.path)]
    width = max(len(f.package) for f in findings)
    for f in findings:
        if f not in libraries:
            print(f"{'ok  ' if f.ok else 'FAIL'} {f.package:<{width}}  {f.path}  [{f.what}; {f.how}]")
    print(f"ok   {len(libraries)} shared libraries QEMU loaded, each from a dependency or the base system")
    print(f"check-clean-install: {len(findings) - len(failed)} accounted for, {len(failed)} not")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
