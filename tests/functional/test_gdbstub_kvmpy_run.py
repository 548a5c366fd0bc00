"""`kvmpy run --gdb ... -S` driven by Debian's gdb-multiarch in batch mode, in vz and te.

The bare-metal `tlb` test guest (tests/guests) is debugged as a user
would: break at a symbol, read registers and memory, stepi, a watchpoint
on one of its variables (the refill handler's counter) firing with old
and new values, `monitor tlb`, and continue to the guest's own power-off.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.guests.build import build_guest, toolchain_available
from tests.qemu_ref import qemu_available, qemu_command

GDB = "gdb-multiarch"
BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "guests"
TIMEOUT_S = 120

SCRIPT = """
printf "START pc=%#x\\n", $pc
break main
continue
printf "MAIN pc=%#x sp=%#x\\n", $pc, $sp
x/2wx $pc
stepi
printf "STEP pc=%#x\\n", $pc
delete
watch refills
continue
printf "WATCH refills=%d\\n", refills
delete
monitor tlb
continue
"""


# The differential script: the same stops under kvmpy and under QEMU, and
# the values gdb reads there. (QEMU starts in the Malta boot ROM, kvmpy at
# the ELF entry, so nothing is compared before main.)
DIFF_SCRIPT = """
break main
continue
printf "MAIN pc=%#x sp=%#x ra=%#x gp=%#x s0=%#x t9=%#x\\n", $pc, $sp, $ra, $gp, $s0, $t9
stepi
stepi
printf "STEP pc=%#x sp=%#x a0=%#x\\n", $pc, $sp, $a0
delete
watch refills
continue
printf "WATCH refills=%d pc=%#x\\n", refills, $pc
delete
break exl_resume
continue
printf "EXL pc=%#x v0=%#x\\n", $pc, $v0
delete
kill
"""
DIFF_TAGS = ("MAIN", "STEP", "WATCH", "EXL")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set: scripts/install-test-deps.sh installs it)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _symbol(elf: Path, name: str) -> int:
    out = subprocess.run([GDB, "-nx", "-batch", "-ex", f"info address {name}", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"0x[0-9a-f]+", out)
    assert match, out
    return int(match.group(0), 16)


def _wait_listening(vm: subprocess.Popen[str]) -> None:
    assert vm.stderr is not None
    line = vm.stderr.readline()  # kvmpy says where it waits before anything runs
    assert "waiting for gdb on tcp:" in line, line + vm.stderr.read()


def _gdb(elf: Path, port: int, script: str, tmp_path: Path) -> str:
    commands = tmp_path / "script.gdb"
    commands.write_text(f"set pagination off\nset confirm off\nfile {elf}\n"
                        f"target remote 127.0.0.1:{port}\n" + script)
    done = subprocess.run([GDB, "-nx", "-batch", "-x", str(commands)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    return done.stdout + done.stderr


def _kvmpy_under_gdb(
    elf: Path, mode: str, script: str, tmp_path: Path
) -> tuple[str, subprocess.Popen[str], str]:
    """`kvmpy run --gdb tcp::PORT -S` with gdb running `script`: (gdb's output, the VM, its output)."""
    port = _free_port()
    vm = subprocess.Popen(
        [sys.executable, "-m", "kvmpy.vmm.cli", "run", "--kernel", str(elf), "-m", "64", "--mode", mode,
         "--no-reboot", "--gdb", f"tcp::{port}", "-S"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_listening(vm)
        out = _gdb(elf, port, script, tmp_path)
        vm_out, vm_err = vm.communicate(timeout=TIMEOUT_S)
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
    return out, vm, vm_out + vm_err


def _tagged(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in DIFF_TAGS:
            found[words[0]] = line
    assert set(found) == set(DIFF_TAGS), out
    return found


def _needs_tools() -> Path:
    if shutil.which(GDB) is None:
        _missing(f"{GDB} not found on PATH")
    if not toolchain_available():
        _missing("the MIPS cross toolchain is missing")
    return build_guest("tlb", BUILD_DIR)


@pytest.mark.qemu
@pytest.mark.parametrize("mode", ["vz", "te"])
def test_same_gdb_script_same_values_as_qemu(mode: str, tmp_path: Path) -> None:
    elf = _needs_tools()
    if not qemu_available():
        _missing("qemu-system-mipsel not found on PATH")
    port = _free_port()
    qemu = subprocess.Popen(qemu_command(elf, extra=("-gdb", f"tcp:127.0.0.1:{port}", "-S")),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # QEMU listens once it has parsed its options (and takes a probe)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert qemu.poll() is None, "QEMU ended before gdb connected"
            time.sleep(0.1)
        qemu_out = _gdb(elf, port, DIFF_SCRIPT, tmp_path)
    finally:
        qemu.kill()
        qemu.wait()
    kvmpy_out, _vm, _ = _kvmpy_under_gdb(elf, mode, DIFF_SCRIPT, tmp_path)
    assert _tagged(kvmpy_out) == _tagged(qemu_out), (kvmpy_out, qemu_out)


@pytest.mark.parametrize("mode", ["vz", "te"])
def test_gdb_debugs_a_bare_metal_guest_under_kvmpy_run(mode: str, tmp_path: Path) -> None:
    elf = _needs_tools()
    out, vm, vm_out = _kvmpy_under_gdb(elf, mode, SCRIPT, tmp_path)
    main = _symbol(elf, "main")
    assert f"START pc={_symbol(elf, '_start'):#x}" in out, out
    assert f"MAIN pc={main:#x}" in out, out
    assert re.search(rf"{main:#x} <main>:\s+0x[0-9a-f]{{8}}\s+0x[0-9a-f]{{8}}", out), out
    assert f"STEP pc={main + 4:#x}" in out, out
    # the watchpoint stopped before the refill handler's store; gdb stepped it to show the change
    assert "Old value = 0" in out and "New value = 1" in out, out
    assert "WATCH refills=1" in out, out
    assert re.search(r"guest TLB \(\d+ valid entries\)", out), out
    assert re.search(r"(root|shadow) TLB \(\d+ valid entries\)", out), out
    assert "exited normally" in out, out
    # the guest ran to its end under gdb, with its output unchanged
    assert vm.returncode == 0, vm_out
    assert "refills: 4" in vm_out and "EXIT 0" in vm_out, vm_out
