"""virtio-pci devices under the Debian guest: the kernel's own drivers against kvmpy's devices."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kvmpy.vmm.images.debian import prepare
from kvmpy.vmm.machines.malta import DriveSpec, NetSpec
from kvmpy.vmm.net import PasstNetBackend
from kvmpy.vmm.runner import StopReason
from kvmpy.vmm.virtio.blk import VirtioBlk
from tests.conftest import host_tool
from tests.functional.guest_session import KvmpySession

DISK_MIB = 32
EXT2_IMAGE_MIB = 8


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
def test_ext2_files_cross_between_host_and_guest(tmp_path: Path, e2fsprogs: dict[str, str]):
    image = prepare()
    # The host builds the filesystem without mounting it (mke2fs -d copies a tree in).
    tree = tmp_path / "tree"
    (tree / "docs").mkdir(parents=True)
    from_host = os.urandom(150_000)  # with 1 KiB blocks: direct blocks and an indirect block
    (tree / "docs" / "from-host.bin").write_bytes(from_host)
    disk = tmp_path / "ext2.img"
    subprocess.run(
        [e2fsprogs["mke2fs"], "-q", "-F", "-t", "ext2", "-b", "1024", "-d", str(tree), str(disk),
         f"{EXT2_IMAGE_MIB}M"],
        check=True, capture_output=True,
    )
    session = KvmpySession(image.kernel, image.initrd, drives=(DriveSpec(disk),))
    blk = session.machine.virtio_devices[0]
    assert isinstance(blk, VirtioBlk)
    try:
        session.wait_for_shell(900)
        assert session.run("mount -t ext2 /dev/vda /mnt && echo mounted").strip() == "mounted"
        assert "/mnt ext2 rw" in session.run("cat /proc/mounts")
        # the guest reads the host's file through the filesystem
        guest_sha = session.run("sha256sum /mnt/docs/from-host.bin").split()[0]
        assert guest_sha == hashlib.sha256(from_host).hexdigest()
        # the guest writes a file and a directory, and syncs
        session.run("head -c 200000 /dev/urandom > /mnt/from-guest.bin")
        session.run("mkdir /mnt/newdir && echo written-by-the-guest > /mnt/newdir/note.txt")
        written_sha = session.run("sha256sum /mnt/from-guest.bin").split()[0]
        flushes = blk.flushes
        session.run("sync", 120)
        # sync(1) reached the host's fsync(2) as a virtio FLUSH
        assert blk.flushes > flushes
        session.run("umount /mnt", 120)
        session.send("poweroff")
        assert session.wait_exit(120).reason == StopReason.SHUTDOWN
    finally:
        session.close()
    # On the host, after poweroff: the filesystem is clean and holds what the guest wrote.
    fsck = subprocess.run([e2fsprogs["e2fsck"], "-fn", str(disk)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    def debugfs_cat(path: str) -> bytes:
        return subprocess.run(
            [e2fsprogs["debugfs"], "-R", f"cat {path}", str(disk)], check=True, capture_output=True
        ).stdout

    assert hashlib.sha256(debugfs_cat("/from-guest.bin")).hexdigest() == written_sha
    assert debugfs_cat("/newdir/note.txt") == b"written-by-the-guest\n"
    assert debugfs_cat("/docs/from-host.bin") == from_host


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
        # the prompt a's shell prints when nc has exited; the one before the command does not count
        a_listening = len(a.transcript)
        b.run("sleep 1; nc 10.0.2.1 5000 < /tmp/data", 300)
        a.wait_for(re.escape(b"kvmpy# "), 300, a_listening)
        assert a.run("wc -c < /tmp/got").strip() == "200000"
        assert a.run("sha256sum /tmp/got").split()[0] == sent
    finally:
        a.close()
        b.close()


class _LoopbackHttpServer:
    """An HTTP server on the host's 127.0.0.1 serving fixed pages; records who asked for what."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.requests: list[tuple[str, str]] = []  # (client address, path)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                outer.requests.append((self.client_address[0], self.path))
                body = pages.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_guest_fetches_a_page_from_host_loopback_through_passt():
    host_tool("passt")
    image = prepare()
    page = b"<html><body>served on the host's loopback for kvmpy</body></html>\n"
    blob = os.urandom(48 * 1024)  # many TCP segments, arriving out of the guest's receive window
    server = _LoopbackHttpServer({"/index.html": page, "/blob.bin": blob})
    session = KvmpySession(image.kernel, image.initrd, netdevs=(NetSpec.parse("passt", 0),))
    backend = session.machine.nets[0].backend
    assert isinstance(backend, PasstNetBackend) and backend.proc is not None
    passt_pid = backend.proc.pid
    try:
        session.wait_for_shell(900)
        # passt's DHCP server gives the address; busybox's udhcpc runs the initramfs's script
        # (the link is down until the script's deconfig step brings it up)
        lease = session.run("timeout 60 udhcpc -i eth0 -n -q -t 5 -T 2 2>&1 | tail -n 3", 120)
        assert "obtained" in lease, lease
        gateway = session.run("ip route | awk '/^default/ {print $3}'").strip()
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", gateway), gateway
        # passt maps the gateway address to the host's loopback
        url = f"http://{gateway}:{server.port}"
        assert session.run(f"wget -q -O - {url}/index.html", 120) == page.decode()
        session.run(f"wget -q -O /tmp/blob {url}/blob.bin", 120)
        assert session.run("sha256sum /tmp/blob").split()[0] == hashlib.sha256(blob).hexdigest()
        missing = session.run(f"wget -q -O - {url}/missing 2>&1; echo status=$?", 60)
        assert missing.strip().endswith("status=1")
        assert ("127.0.0.1", "/index.html") in server.requests
        assert ("127.0.0.1", "/blob.bin") in server.requests
        session.send("poweroff")
        assert session.wait_exit(120).reason == StopReason.SHUTDOWN
    finally:
        session.close()
        server.close()
    # the VM's end took passt with it
    assert backend.proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(passt_pid, 0)


@pytest.mark.slow
def test_guest_fetches_a_page_over_tap_from_a_network_namespace(tmp_path: Path):
    """A TAP interface moved into a private network namespace, where the host serves HTTP."""
    ip = host_tool("ip")
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("TAP needs root and /dev/net/tun")
    netns = f"kvmpy-tap-{os.getpid()}"
    ifname = f"kvtap{os.getpid() % 10000}"
    made = subprocess.run([ip, "netns", "add", netns], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    image = prepare()
    page = b"served from a network namespace over TAP\n"
    (tmp_path / "page.txt").write_bytes(page)
    server: subprocess.Popen[bytes] | None = None
    session: KvmpySession | None = None
    try:
        tap = NetSpec.parse(f"tap,ifname={ifname}", 0)
        session = KvmpySession(image.kernel, image.initrd, netdevs=(tap,))
        # the interface kvmpy created moves into the namespace, still attached to kvmpy
        for cmd in (["link", "set", ifname, "netns", netns],
                    ["-n", netns, "addr", "add", "10.0.77.1/24", "dev", ifname],
                    ["-n", netns, "link", "set", ifname, "up"]):
            subprocess.run([ip, *cmd], check=True, capture_output=True)
        server = subprocess.Popen(
            [ip, "netns", "exec", netns, sys.executable, "-m", "http.server", "8080", "--bind", "10.0.77.1",
             "--directory", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        session.wait_for_shell(900)
        session.run("ip addr add 10.0.77.2/24 dev eth0 && ip link set eth0 up")
        got = session.run("wget -q -O - http://10.0.77.1:8080/page.txt 2>&1", 120)
        assert got == page.decode()
        session.send("poweroff")
        assert session.wait_exit(120).reason == StopReason.SHUTDOWN
        # a TAP interface that was not persistent goes away with kvmpy's file descriptor
        shown = subprocess.run([ip, "-n", netns, "link", "show", ifname], capture_output=True)
        assert shown.returncode != 0
    finally:
        if session is not None:
            session.close()
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run([ip, "netns", "del", netns], capture_output=True)
