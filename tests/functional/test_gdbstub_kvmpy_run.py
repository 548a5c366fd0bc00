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
from pathlib import Path

import pytest

from tests.guests.build import build_guest, toolchain_available

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


@pytest.mark.parametrize("mode", ["vz", "te"])
def test_gdb_debugs_a_bare_metal_guest_under_kvmpy_run(mode: str, tmp_path: Path) -> None:
    if shutil.which(GDB) is None:
        _missing(f"{GDB} not found on PATH")
    if not toolchain_available():
        _missing("the MIPS cross toolchain is missing")
    elf = build_guest("tlb", BUILD_DIR)
    port = _free_port()
    vm = subprocess.Popen(
        [sys.executable, "-m", "kvmpy.vmm.cli", "run", "--kernel", str(elf), "-m", "64", "--mode", mode,
         "--no-reboot", "--gdb", f"tcp::{port}", "-S"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_listening(vm)
        commands = tmp_path / "script.gdb"
        commands.write_text(f"set pagination off\nset confirm off\nfile {elf}\n"
                            f"target remote 127.0.0.1:{port}\n" + SCRIPT)
        done = subprocess.run([GDB, "-nx", "-batch", "-x", str(commands)], capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        out = done.stdout + done.stderr
        vm_out, vm_err = vm.communicate(timeout=TIMEOUT_S)
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
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
    assert vm.returncode == 0, vm_err
    assert "refills: 4" in vm_out and "EXIT 0" in vm_out, vm_out
