"""Side-by-side benchmarks: kvmpy against qemu-system-mipsel on the same guests.

    python benchmarks/run.py                 # all benchmarks, 3 runs each
    python benchmarks/run.py --runs 5 --only bench_crc32
    python benchmarks/run.py --record        # also append the table to BENCHMARKS.md

Every figure is the median of the runs; the ratio is kvmpy / QEMU (lower is
better, 1.0 = as fast as QEMU). Machines here are noisy: compare ratios from
one invocation, not absolute seconds across days.

Measured:
- compute-bound bare-metal guests (tests/guests/bench_*.c): wall time from
  process start to the guest's final SOFTRES write, for both sides, with
  the guest's output checked to be identical;
- start-up: wall time from launching the `kvmpy` command to the first byte
  the guest prints (the "first guest instruction" target), against QEMU's;
- Debian boot (`--only boot`): launching `kvmpy run` / `qemu-system-mipsel`
  on Debian's 4kc-malta kernel and the busybox initramfs, to the first line
  /init prints, and on to power-off after typing `poweroff` at the shell.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.functional.guest_session import (  # noqa: E402
    KvmpyCommandSession,
    ProcessSession,
    QemuSession,
)
from tests.guests.build import GUESTS, build_all  # noqa: E402

BUILD_DIR = REPO / "build" / "guests"
QEMU = ["qemu-system-mipsel", "-M", "malta", "-cpu", "P5600", "-m", "64", "-nographic",
        "-no-reboot", "-monitor", "none", "-serial", "stdio"]
KVMPY = [sys.executable, "-m", "kvmpy.vmm.cli", "run", "--machine", "malta", "-m", "64",
         "--mode", "vz", "--no-reboot", "--serial", "stdio", "--stats"]


@dataclass
class Row:
    name: str
    kvmpy_s: float
    qemu_s: float
    detail: str = ""

    @property
    def ratio(self) -> float:
        return self.kvmpy_s / self.qemu_s


def timed_run(cmd: list[str], timeout_s: float) -> tuple[float, bytes, bytes]:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-500:]
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {tail}")
    return elapsed, done.stdout, done.stderr


def time_to_first_byte(cmd: list[str], timeout_s: float = 60.0) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready or not os.read(proc.stdout.fileno(), 1):
            raise RuntimeError(f"{cmd[0]} printed nothing within {timeout_s} s")
        return time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()


def instructions_from_stats(stderr: bytes) -> int:
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("instructions:"):
            return int(line.split(":")[1])
    return 0


def bench_guest(name: str, elf: Path, runs: int) -> Row:
    kvm_times, qemu_times = [], []
    insns = 0
    for _ in range(runs):
        t, out_k, err = timed_run([*KVMPY, "--kernel", str(elf)], 600)
        kvm_times.append(t)
        insns = instructions_from_stats(err)
        t, out_q, _ = timed_run([*QEMU, "-kernel", str(elf)], 600)
        qemu_times.append(t)
        if out_k != out_q:
            raise RuntimeError(f"{name}: kvmpy and QEMU printed different output")
    k, q = statistics.median(kvm_times), statistics.median(qemu_times)
    detail = f"{insns / 1e6:.0f} M insns, {insns / k / 1e6:.0f} MIPS" if insns else ""
    return Row(name, k, q, detail)


def bench_startup(elf: Path, runs: int) -> Row:
    k = statistics.median(time_to_first_byte([*KVMPY, "--kernel", str(elf)]) for _ in range(runs))
    q = statistics.median(time_to_first_byte([*QEMU, "-kernel", str(elf)]) for _ in range(runs))
    return Row("startup: launch to first guest output", k, q)


def boot_once(session: ProcessSession) -> tuple[float, float]:
    """Seconds from launch to /init's first line, and to the end of power-off."""
    start = time.perf_counter()
    try:
        session.wait_for(rb"kvmpy-init: up", 1800)
        to_init = time.perf_counter() - start
        session.wait_for_shell(300)
        session.send("poweroff")
        if session.wait_exit(300) != 0:
            raise RuntimeError("power-off did not end the run with status 0")
        return to_init, time.perf_counter() - start
    finally:
        session.close()


def bench_boot(runs: int) -> list[Row]:
    from kvmpy.vmm.images.debian import prepare

    image = prepare()
    k = [boot_once(KvmpyCommandSession(image.kernel, image.initrd)) for _ in range(runs)]
    q = [boot_once(QemuSession(image.kernel, image.initrd)) for _ in range(runs)]
    return [
        Row("Debian boot: launch to /init", statistics.median(t for t, _ in k),
            statistics.median(t for t, _ in q), "vz; QEMU -cpu 24Kc"),
        Row("Debian boot: launch to power-off", statistics.median(t for _, t in k),
            statistics.median(t for _, t in q), "vz; QEMU -cpu 24Kc"),
    ]


DISK_MIB = 64


def timed_command(session: ProcessSession, command: str) -> float:
    """Seconds a guest command takes, timed from the host (Debian's busybox dd prints no timing)."""
    start = time.perf_counter()
    out = session.run(command, 1800)
    if f"{DISK_MIB}+0 records out" not in out:
        raise RuntimeError(f"dd failed: {out!r}")
    return time.perf_counter() - start


def blk_once(session: ProcessSession) -> tuple[float, float]:
    """MB/s reading and writing the whole virtio disk with dd (bs=1M, O_DIRECT)."""
    try:
        session.wait_for_shell(1800)
        read_s = timed_command(
            session, f"dd if=/dev/vda of=/dev/null bs=1M count={DISK_MIB} iflag=direct 2>&1"
        )
        write_s = timed_command(
            session, f"dd if=/dev/zero of=/dev/vda bs=1M count={DISK_MIB} oflag=direct conv=fsync 2>&1"
        )
        session.send("poweroff")
        session.wait_exit(300)
        return DISK_MIB / read_s, DISK_MIB / write_s
    finally:
        session.close()


def bench_blk(runs: int) -> list[Row]:
    import tempfile

    from kvmpy.vmm.images.debian import prepare

    image = prepare()
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "disk.img"
        disk.write_bytes(bytes(DISK_MIB << 20))
        k = [blk_once(KvmpyCommandSession(image.kernel, image.initrd, drives=[disk])) for _ in range(runs)]
        q = [blk_once(QemuSession(image.kernel, image.initrd, drives=[disk])) for _ in range(runs)]
    # throughput: report seconds per 64 MiB so that the ratio reads like the others
    rows = []
    for name, i in (("read", 0), ("write", 1)):
        kr, qr = statistics.median(r[i] for r in k), statistics.median(r[i] for r in q)
        rows.append(Row(f"virtio-blk dd {name}, {DISK_MIB} MiB (s)", DISK_MIB / kr, DISK_MIB / qr,
                        f"kvmpy {kr:.1f} MB/s, QEMU {qr:.1f} MB/s"))
    return rows


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def render(rows: list[Row], runs: int) -> str:
    lines = [
        f"### {datetime.date.today().isoformat()} — {machine_line()}",
        "",
        f"Median of {runs} runs; ratio = kvmpy / QEMU (qemu-system-mipsel -M malta, TCG).",
        "",
        "| benchmark | kvmpy (s) | QEMU (s) | ratio | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r.name} | {r.kvmpy_s:.3f} | {r.qemu_s:.3f} | {r.ratio:.1f}x | {r.detail} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    ap.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = ap.parse_args(argv)
    elfs = build_all(BUILD_DIR)
    rows = []
    names = [g.name for g in GUESTS if g.bench]
    if args.only:
        names = [n for n in names if n in args.only]
    if not args.only or "startup" in args.only:
        rows.append(bench_startup(elfs["hello"], args.runs))
        print(render(rows[-1:], args.runs).splitlines()[-1], flush=True)
    for name in names:
        rows.append(bench_guest(name, elfs[name], args.runs))
        print(render(rows[-1:], args.runs).splitlines()[-1], flush=True)
    if args.only and "blk" in args.only:
        for row in bench_blk(args.runs):
            rows.append(row)
            print(render([row], args.runs).splitlines()[-1], flush=True)
    if not args.only or "boot" in args.only:
        for row in bench_boot(args.runs):
            rows.append(row)
            print(render([row], args.runs).splitlines()[-1], flush=True)
    table = render(rows, args.runs)
    print()
    print(table)
    if args.record:
        with (REPO / "BENCHMARKS.md").open("a") as f:
            f.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
