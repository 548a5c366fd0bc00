"""virtio-pci devices under the Debian guest: the kernel's own drivers against kvmpy's devices."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kvmpy.vmm.images.debian import prepare
from kvmpy.vmm.machines.malta import DriveSpec
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
