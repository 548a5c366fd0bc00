"""virtio-pci devices under the Debian guest: the kernel's own drivers against kvmpy's devices."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from kvmpy.vmm.images.debian import prepare
from kvmpy.vmm.machines.malta import DriveSpec, NetSpec
from kvmpy.vmm.runner import StopReason
from tests.functional.guest_session import KvmpySession

DISK_MIB = 32


@pytest.mark.slow
def test_virtio_blk_and_rng_with_debian(tmp_path: Path):
    image = prepare()
    disk = tmp_path / "disk.img"
    original = os.urandom(DISK_MIB << 20)
    disk.write_bytes(original)
    ro_disk = tmp_path / "ro.img"
    ro_bytes = (b"read-only!" * 52429)[: 512 * 1024]
    ro_disk.write_bytes(ro_bytes)
    host_sha = hashlib.sha256(original).hexdigest()
    drives = (
        DriveSpec(disk, serial="kvmpy-disk0"),
        DriveSpec(ro_disk, read_only=True),
    )
    session = KvmpySession(image.kernel, image.initrd, drives=drives, virtio_rng=True)
    try:
        session.wait_for_shell(900)
        assert session.run("cat /sys/block/vda/size /sys/block/vda/serial").split() == [
            str(DISK_MIB * 2048), "kvmpy-disk0"
        ]
        # the guest reads all 32 MiB through the virtqueue and hashes them
        assert session.run("sha256sum /dev/vda", 600).split()[0] == host_sha
        # a guest write reaches the host file, at the right place
        session.run("echo kvmpy-was-here | dd of=/dev/vda bs=512 seek=5 conv=notrunc,fsync")
        # the read-only disk refuses writes, and keeps its bytes
        assert session.run("cat /sys/block/vdb/ro").strip() == "1"
        session.run("echo x | dd of=/dev/vdb bs=512 conv=notrunc,fsync")
        assert session.run("head -c 10 /dev/vdb").strip() == "read-only!"
        assert session.run("cat /sys/class/misc/hw_random/rng_current").strip() == "virtio_rng.0"
        assert session.run("head -c 4096 /dev/hwrng | wc -c").strip() == "4096"
        session.send("poweroff")
        assert session.wait_exit(120).reason == StopReason.SHUTDOWN
    finally:
        session.close()
    # exactly the 15 bytes the guest wrote changed on the host image
    written = b"kvmpy-was-here\n"
    expected = original[: 5 * 512] + written + original[5 * 512 + len(written) :]
    assert disk.read_bytes() == expected
    assert ro_disk.read_bytes() == ro_bytes


@pytest.mark.slow
def test_virtio_console_is_a_usable_console():
    image = prepare()
    session = KvmpySession(image.kernel, image.initrd, console="hvc0")
    try:
        # the terminal is on hvc0: the shell there answers, the kernel's ttyS0 log does not reach it
        session.wait_for(re.escape(b"kvmpy# "), 900)
        start = len(session.transcript)
        session.send("stty -echo")
        session.wait_for(re.escape(b"kvmpy# "), 60, start)
        assert session.run("tty").strip() == "/dev/hvc0"
        assert "virtio_console" in session.run("cut -d' ' -f1 /proc/modules")
        # pasted input larger than a receive buffer (a 4 KiB page) arrives whole and in order
        lines = [f"{i:04d}" + "x" * 95 for i in range(50)]  # 50 lines of 100 bytes
        session.send("head -c 5000 > /tmp/pasted")
        start = len(session.transcript)
        session.send("\n".join(lines))
        session.wait_for(re.escape(b"kvmpy# "), 120, start)
        assert session.run("wc -c < /tmp/pasted").strip() == "5000"
        assert session.run("sed -n '1p;50p' /tmp/pasted").split() == [lines[0], lines[49]]
        session.send("poweroff")
        assert session.wait_exit(120).reason == StopReason.SHUTDOWN
        assert b"Linux version" not in session.transcript
    finally:
        session.close()


@pytest.mark.slow
def test_two_guests_exchange_data_over_the_socket_backend(tmp_path: Path):
    image = prepare()
    sock = tmp_path / "net.sock"
    a = KvmpySession(image.kernel, image.initrd, netdevs=(NetSpec.parse(f"socket,listen={sock}", 0),))
    b = KvmpySession(image.kernel, image.initrd, netdevs=(NetSpec.parse(f"socket,connect={sock}", 1),))
    try:
        for session, addr in ((a, "10.0.2.1"), (b, "10.0.2.2")):
            session.wait_for_shell(900)
            session.run(f"ip addr add {addr}/24 dev eth0 && ip link set eth0 up")
        assert " 0% packet loss" in b.run("ping -c 3 -W 5 10.0.2.1", 120)
        # a file goes from b to a over TCP and arrives intact
        b.run("head -c 200000 /dev/urandom > /tmp/data")
        sent = b.run("sha256sum /tmp/data").split()[0]
        a.send("nc -l -p 5000 > /tmp/got")
        b.run("sleep 1; nc 10.0.2.1 5000 < /tmp/data", 300)
        a.wait_for(re.escape(b"kvmpy# "), 300, len(a.transcript) - 20)
        assert a.run("wc -c < /tmp/got").strip() == "200000"
        assert a.run("sha256sum /tmp/got").split()[0] == sent
    finally:
        a.close()
        b.close()
