"""Side-by-side benchmarks: kvmpy against qemu-system-mipsel on the same guests.

    python benchmarks/run.py                 # all benchmarks, 3 runs each
    python benchmarks/run.py --runs 5 --only bench_crc32
    python benchmarks/run.py --record        # also append the table to BENCHMARKS.md

Install what it runs first: `bash scripts/install-test-deps.sh --bench` (the
test packages, plus ipxe-qemu for the option ROM of QEMU's virtio-net card).

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
  /init prints, and on to power-off after typing `poweroff` at the shell;
- virtio-blk (`--only blk`): guest dd of a 64 MiB disk, read and write;
- both hypervisor modes (`--only modes`): the Debian boot under `--mode vz`,
  `--mode te` and `--mode te --no-dyntrans` against QEMU -cpu 24Kc, with
  the trap counts of the TE runs (benchmarks/modes.py);
- virtio-net (`--only net`): two guests linked by their socket netdevs
  (kvmpy's `--netdev socket`, QEMU's `-netdev socket` with virtio-net-pci),
  one TCP stream of 8 MiB with busybox nc from one to the other.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.modes import bench_modes, boot  # noqa: E402
from tests.functional.guest_session import (  # noqa: E402
    KvmpyCommandSession,
    ProcessSession,
    QemuSession,
)
from tests.guests.build import GUESTS, build_all  # noqa: E402
from tests.qemu_ref import NO_DEFAULT_DEVICES  # noqa: E402

BUILD_DIR = REPO / "build" / "guests"
QEMU = ["qemu-system-mipsel", "-M", "malta", "-cpu", "P5600", "-m", "64",
        *(word for option in NO_DEFAULT_DEVICES for word in option),
        "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio"]
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


def stat_from_stats(stderr: bytes, name: str) -> int:
    """A counter from kvmpy's --stats report ("instructions", "jit jit_insns", ...)."""
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split(":")[1])
    return 0


def bench_guest(name: str, elf: Path, runs: int) -> Row:
    """kvmpy as shipped (hot blocks translated), QEMU, and kvmpy --no-jit, interleaved."""
    kvm_times, qemu_times, interp_times = [], [], []
    insns = translated = 0
    for _ in range(runs):
        t, out_k, err = timed_run([*KVMPY, "--kernel", str(elf)], 600)
        kvm_times.append(t)
        insns = stat_from_stats(err, "instructions")
        translated = stat_from_stats(err, "jit jit_insns")
        t, out_q, _ = timed_run([*QEMU, "-kernel", str(elf)], 600)
        qemu_times.append(t)
        t, out_i, _ = timed_run([*KVMPY, "--no-jit", "--kernel", str(elf)], 600)
        interp_times.append(t)
        if not out_k == out_q == out_i:
            raise RuntimeError(f"{name}: kvmpy, kvmpy --no-jit and QEMU printed different output")
    k, q, i = (statistics.median(t) for t in (kvm_times, qemu_times, interp_times))
    detail = f"{insns / 1e6:.0f} M insns, {insns / k / 1e6:.0f} MIPS" if insns else ""
    if insns:
        detail += f", {100 * translated / insns:.0f}% translated"
    detail += f"; --no-jit: {i:.3f} s ({i / q:.1f}x)"
    return Row(name, k, q, detail)


def bench_startup(elf: Path, runs: int) -> Row:
    k = statistics.median(time_to_first_byte([*KVMPY, "--kernel", str(elf)]) for _ in range(runs))
    q = statistics.median(time_to_first_byte([*QEMU, "-kernel", str(elf)]) for _ in range(runs))
    return Row("startup: launch to first guest output", k, q)


def bench_boot(runs: int) -> list[Row]:
    from kvmpy.vmm.images.debian import prepare

    image = prepare()
    k = [boot(KvmpyCommandSession(image.kernel, image.initrd)) for _ in range(runs)]
    q = [boot(QemuSession(image.kernel, image.initrd)) for _ in range(runs)]
    return [
        Row("Debian boot: launch to /init", statistics.median(r.to_init_s for r in k),
            statistics.median(r.to_init_s for r in q), "vz; QEMU -cpu 24Kc"),
        Row("Debian boot: launch to power-off", statistics.median(r.to_poweroff_s for r in k),
            statistics.median(r.to_poweroff_s for r in q), "vz; QEMU -cpu 24Kc"),
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
                        f"kvmpy {kr:.1f} MB/s, QEMU {qr:.1f} MB/s ({kr / qr:.0%} of QEMU)"))
    return rows


NET_MIB = 8
NET_PORT = 5000  # the guests' nc port
MAC_A, MAC_B = "52:54:00:12:34:56", "52:54:00:12:34:57"


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def net_once(start_a: Callable[[], ProcessSession], start_b: Callable[[], ProcessSession]) -> float:
    """MB/s of one TCP stream (busybox nc) from guest B to guest A over their linked virtio-net cards.

    Timed from the host: from starting B's sender until A's receiver has
    counted every byte and its shell prompt is back.
    """
    a = start_a()
    b: ProcessSession | None = None
    try:
        # A listens on the host port before it prints anything (kvmpy opens it while
        # building the board, QEMU before it starts the CPU); B connects at start-up.
        a.wait_for(rb".", 120)
        b = start_b()
        for session, addr in ((a, "10.0.2.1"), (b, "10.0.2.2")):
            session.wait_for_shell(1800)
            session.run(f"ip addr add {addr}/24 dev eth0 && ip link set eth0 up")
        if " 0% packet loss" not in b.run("ping -c 2 -W 10 10.0.2.1", 120):
            raise RuntimeError("the guests cannot reach each other")
        mark = len(a.transcript)
        a.send(f"nc -l -p {NET_PORT} | wc -c")
        time.sleep(1.0)  # let A's nc listen before B connects
        start = time.perf_counter()
        b.send(f"dd if=/dev/zero bs=64k count={NET_MIB * 16} 2>/dev/null | nc 10.0.2.1 {NET_PORT}")
        end = a.wait_for(rb"kvmpy# ", 1800, mark)
        elapsed = time.perf_counter() - start
        received = bytes(a.transcript[mark:end]).decode(errors="replace").split()
        if str(NET_MIB << 20) not in received:
            raise RuntimeError(f"receiver counted {received!r}, not {NET_MIB << 20} bytes")
        return NET_MIB / elapsed
    finally:
        a.close()
        if b is not None:
            b.close()


def bench_net(runs: int) -> list[Row]:
    from kvmpy.vmm.images.debian import prepare

    image = prepare()

    def kvmpy_pair() -> float:
        port = free_tcp_port()
        return net_once(
            lambda: KvmpyCommandSession(image.kernel, image.initrd, extra_args=[
                "--netdev", f"socket,listen=127.0.0.1:{port},mac={MAC_A}"]),
            lambda: KvmpyCommandSession(image.kernel, image.initrd, extra_args=[
                "--netdev", f"socket,connect=127.0.0.1:{port},mac={MAC_B}"]),
        )

    def qemu_pair() -> float:
        port = free_tcp_port()

        def nic(side: str, mac: str) -> list[str]:
            return ["-netdev", f"socket,id=n0,{side}=127.0.0.1:{port}",
                    "-device", f"virtio-net-pci,netdev=n0,mac={mac}"]

        return net_once(
            lambda: QemuSession(image.kernel, image.initrd, extra_args=nic("listen", MAC_A)),
            lambda: QemuSession(image.kernel, image.initrd, extra_args=nic("connect", MAC_B)),
        )

    k = [kvmpy_pair() for _ in range(runs)]
    q = [qemu_pair() for _ in range(runs)]
    kr, qr = statistics.median(k), statistics.median(q)
    return [Row(f"virtio-net TCP guest to guest, {NET_MIB} MiB (s)", NET_MIB / kr, NET_MIB / qr,
                f"kvmpy {kr:.2f} MB/s, QEMU {qr:.2f} MB/s; socket backend, busybox nc")]


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
    if args.only and "net" in args.only:
        for row in bench_net(args.runs):
            rows.append(row)
            print(render([row], args.runs).splitlines()[-1], flush=True)
    if not args.only or "boot" in args.only:
        for row in bench_boot(args.runs):
            rows.append(row)
            print(render([row], args.runs).splitlines()[-1], flush=True)
    trap_table = ""
    if args.only and "modes" in args.only:
        mode_rows, trap_table = bench_modes(args.runs)
        for name, kvmpy_s, qemu_s, detail in mode_rows:
            rows.append(Row(name, kvmpy_s, qemu_s, detail))
            print(render(rows[-1:], args.runs).splitlines()[-1], flush=True)
    table = render(rows, args.runs) + (f"\n{trap_table}" if trap_table else "")
    print()
    print(table)
    if args.record:
        with (REPO / "BENCHMARKS.md").open("a") as f:
            f.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
