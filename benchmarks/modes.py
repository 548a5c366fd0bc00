"""Debian boot under both hypervisor modes, side by side with QEMU (`run.py --only modes`).

For each of `--mode vz`, `--mode te` and `--mode te --no-dyntrans`, and for
qemu-system-mipsel -cpu 24Kc on the same kernel and initramfs: seconds
from launch to /init's first line and to the end of power-off, and for
kvmpy the traps the hypervisor handled (from `--stats`): emulated
instructions, exceptions delivered to the guest, shadow TLB fills, and the
instructions rewritten into commpage accesses.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from tests.functional.guest_session import KvmpyCommandSession, ProcessSession, QemuSession

MODES = (("vz", ()), ("te", ()), ("te", ("--no-dyntrans",)))


@dataclass
class BootRun:
    to_init_s: float
    to_poweroff_s: float
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, prefix: str) -> int:
        """Sum of `trap <prefix>...` counters (per-register detail lines excluded)."""
        return sum(v for k, v in self.stats.items() if k.startswith(prefix) and "." not in k)


def parse_stats(stderr: bytes) -> dict[str, int]:
    stats = {}
    for line in stderr.decode(errors="replace").splitlines():
        key, sep, value = line.rpartition(":")
        if sep and key.startswith("trap ") and value.strip().isdigit():
            stats[key[5:]] = int(value)
    return stats


def boot(session: ProcessSession) -> BootRun:
    start = time.perf_counter()
    try:
        session.wait_for(rb"kvmpy-init: up", 1800)
        to_init = time.perf_counter() - start
        session.wait_for_shell(300)
        session.send("poweroff")
        if session.wait_exit(300) != 0:
            raise RuntimeError("power-off did not end the run with status 0")
        run = BootRun(to_init, time.perf_counter() - start)
        if session.proc.stderr is not None:
            run.stats = parse_stats(session.proc.stderr.read())
        return run
    finally:
        session.close()


def bench_modes(runs: int) -> tuple[list[tuple[str, float, float, str]], str]:
    """Rows (name, kvmpy seconds, QEMU seconds, detail) and a trap table in Markdown."""
    from kvmpy.vmm.images.debian import prepare

    image = prepare()
    results: dict[str, list[BootRun]] = {}
    qemu: list[BootRun] = []
    for _ in range(runs):  # interleaved, so that machine noise hits every mode alike
        qemu.append(boot(QemuSession(image.kernel, image.initrd, cpu="24Kc")))
        for mode, extra in MODES:
            name = " ".join([mode, *extra])
            session = KvmpyCommandSession(image.kernel, image.initrd, mode=mode, extra_args=extra)
            results.setdefault(name, []).append(boot(session))
    q_init = statistics.median(r.to_init_s for r in qemu)
    q_off = statistics.median(r.to_poweroff_s for r in qemu)
    vz_init = statistics.median(r.to_init_s for r in results["vz"])
    rows = []
    traps = ["| mode | emulated | delivered to guest | shadow/kseg fills | rewritten | fast path |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, rs in results.items():
        k_init = statistics.median(r.to_init_s for r in rs)
        k_off = statistics.median(r.to_poweroff_s for r in rs)
        rows.append((f"Debian boot to /init, {name}", k_init, q_init, f"{k_init / vz_init:.2f}x vz"))
        rows.append((f"Debian boot to power-off, {name}", k_off, q_off, ""))
        last = rs[-1]
        traps.append(
            f"| {name} | {last.count('emul_')} | {last.count('deliver_')} "
            f"| {last.count('shadow_fill') + last.count('kseg_fill')} | {last.count('rewrite_')} "
            f"| {last.count('fast_path')} |"
        )
    return rows, "\n".join(traps) + "\n"
