"""Debian's own 4kc-malta kernel and a busybox initramfs, booted to a shell.

The same commands run under kvmpy and under qemu-system-mipsel -M malta on
the same files; their outputs must agree (timing lines aside). Then the
guest powers off and kvmpy's run ends as a clean shutdown. Both hypervisor
modes run the same unmodified kernel: `vz` (the guest sees the core's VZ
guest context, a P5600) and `te` (trap and emulate; the guest sees a 24Kc,
the model the QEMU reference runs).
"""

from __future__ import annotations

import re

import pytest

from kvmpy.vmm.images.debian import prepare
from kvmpy.vmm.runner import StopReason
from tests.functional.guest_session import KvmpySession, QemuSession, cpuinfo_fields

COMMANDS = {
    "uname": "uname -a",
    "cpuinfo": "cat /proc/cpuinfo",
    "awk": (
        "awk 'BEGIN { s = 0; for (i = 1; i <= 2000; i++) s += i * i % 97; "
        "printf \"%d %.0f\\n\", s, 65536 * 32768 + 7 }'"
    ),
    "proc": "ls /proc",
    "cmdline": "cat /proc/cmdline",
    "meminfo_total": "grep MemTotal /proc/meminfo",
    # the initramfs loads the virtio modules: relocation and linking of real modules
    "modules": "cut -d' ' -f1 /proc/modules | sort",
}
BOOT_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 400


# /proc/cpuinfo lines that describe the CPU model rather than the board or
# the kernel. The reference cannot run the same CPU: QEMU's P5600 model
# refuses Debian's busybox (its FPU mode does not fit the binary's FP ABI),
# and its 24Kc claims MIPS16 and watchpoints, which kvmpy's core does not
# implement. So these lines are checked against kvmpy's own CPU instead;
# in `te` mode, where kvmpy presents a 24Kc too, those lines that name the
# model and its ISA (TE_SAME_AS_QEMU) must equal QEMU's.
CPU_MODEL_FIELDS = ("cpu model", "BogoMIPS", "tlb_entries", "extra interrupt vector",
                    "hardware watchpoint", "isa", "ASEs implemented", "Options implemented",
                    "kscratch registers")
TE_SAME_AS_QEMU = ("cpu model", "isa", "extra interrupt vector", "kscratch registers")


def normalise(name: str, text: str) -> str:
    if name == "cpuinfo":
        fields = cpuinfo_fields(text)
        text = "\n".join(f"{k}: {v}" for k, v in fields.items() if k not in CPU_MODEL_FIELDS)
    if name == "proc":
        # process directories are PIDs, which differ from boot to boot; their
        # number changes the column layout, so compare the sorted names
        text = " ".join(sorted(w for w in text.split() if not w.isdigit()))
    if name == "cmdline":
        text = re.sub(r"rd_start=\S+", "rd_start=X", text)
    return text.strip()


@pytest.fixture(scope="module")
def image():
    return prepare()


@pytest.fixture(scope="module")
def qemu_outputs(image):
    session = QemuSession(image.kernel, image.initrd, cpu="24Kc")
    try:
        session.wait_for_shell(BOOT_TIMEOUT_S)
        outputs = {name: session.run(cmd) for name, cmd in COMMANDS.items()}
        session.send("poweroff")
        assert session.wait_exit(120) == 0
        return outputs
    finally:
        session.close()


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.parametrize("mode", ["vz", "te"])
def test_debian_shell_matches_qemu_and_powers_off(image, qemu_outputs, mode):
    session = KvmpySession(image.kernel, image.initrd, mode=mode)
    try:
        session.wait_for_shell(BOOT_TIMEOUT_S)
        # The awk computes in floating point, which this CPU (like a 24Kc)
        # leaves to the kernel's FPU emulator: under te every emulated FP
        # instruction costs several traps (BENCHMARKS.md), hence the time.
        outputs = {name: session.run(cmd, COMMAND_TIMEOUT_S) for name, cmd in COMMANDS.items()}
        assert "Linux (none) 6.1.0-" in outputs["uname"] and "mips GNU/Linux" in outputs["uname"]
        assert outputs["awk"].split() == [str(sum(i * i % 97 for i in range(1, 2001))), str(2**31 + 7)]
        cpu = cpuinfo_fields(outputs["cpuinfo"])
        if mode == "vz":
            assert cpu["cpu model"].startswith("MIPS P5600")  # the VZ guest context of the core
        else:
            assert cpu["cpu model"] == "MIPS 24Kc V0.0"  # the virtual CPU of the TE hypervisor
            assert "userlocal" in cpu["Options implemented"] and cpu["ASEs implemented"] == ""
            qemu_cpu = cpuinfo_fields(qemu_outputs["cpuinfo"])
            for field in TE_SAME_AS_QEMU:
                assert cpu[field] == qemu_cpu[field], field
        assert "mips32r2" in cpu["isa"] and cpu["tlb_entries"] == "64"
        assert cpu["system type"] == "MIPS Malta"
        assert {"virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng"} <= set(
            outputs["modules"].split()
        )
        for name in COMMANDS:
            if name == "meminfo_total":
                continue
            assert normalise(name, outputs[name]) == normalise(name, qemu_outputs[name]), name
        # What the kernel reserves at boot depends on the CPU model (cache
        # geometry, exception vectors), so RAM totals agree only closely.
        kvmpy_kib, qemu_kib = (int(o[name].split()[1]) for o in (outputs, qemu_outputs)
                               for name in ["meminfo_total"])
        assert abs(kvmpy_kib - qemu_kib) <= qemu_kib // 1000
        session.send("poweroff")
        outcome = session.wait_exit(120)
        assert outcome.reason == StopReason.SHUTDOWN, outcome
        assert outcome.exit_code == 0
        stats = session.machine.vcpu.stats
        # the core translated the kernel's and busybox's hot code, in both modes
        assert stats.jit["jit_insns"] > stats.instructions // 2, stats.jit
        traps = stats.traps
        if mode == "te":
            # The kernel really ran deprivileged: its CP0 work, TLB refills and
            # syscalls went through the hypervisor, and rewriting saved traps.
            for reason in ("emul_eret", "emul_tlbwr", "deliver_tlbl_refill", "deliver_sys",
                           "deliver_int", "shadow_fill", "rewrite_mfc0"):
                assert traps[reason] > 0, reason
        else:
            assert not any(k.startswith(("emul_", "deliver_")) for k in traps)
    finally:
        session.close()
