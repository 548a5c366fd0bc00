"""The image builders' pieces: module dependency order, the cpio writer, the initramfs."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from kvmpy.vmm.images.common import ImageError
from kvmpy.vmm.images.debian import resolve_modules
from kvmpy.vmm.images.initramfs import CpioWriter, build_initramfs


def make_module(path: Path, depends: str) -> None:
    """A minimal ELF object with a .modinfo section, as the kernel's modules have."""
    src = path.with_suffix(".S")
    src.write_text(f'.section .modinfo,"a"\n.asciz "license=GPL"\n.asciz "depends={depends}"\n')
    subprocess.run(["mipsel-linux-gnu-as", "-EL", "-o", str(path), str(src)], check=True)


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    root = tmp_path / "lib" / "modules" / "6.1.0-test"
    (root / "kernel" / "a").mkdir(parents=True)
    (root / "kernel" / "b").mkdir(parents=True)
    make_module(root / "kernel" / "a" / "top.ko", "mid,leaf-dash")
    make_module(root / "kernel" / "b" / "mid.ko", "leaf_dash")
    make_module(root / "kernel" / "b" / "leaf-dash.ko", "")
    make_module(root / "kernel" / "a" / "loop1.ko", "loop2")
    make_module(root / "kernel" / "a" / "loop2.ko", "loop1")
    return root


def test_dependencies_load_first_and_once(modules: Path):
    order = [p.name for p in resolve_modules(modules, ("top", "mid"))]
    assert order == ["leaf-dash.ko", "mid.ko", "top.ko"]


def test_missing_module_and_cycles_are_errors(modules: Path):
    with pytest.raises(ImageError, match="not in"):
        resolve_modules(modules, ("nosuch",))
    with pytest.raises(ImageError, match="cycle"):
        resolve_modules(modules, ("loop1",))


def parse_newc(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data), read the way the kernel's initramfs unpacker reads newc."""
    out, pos = {}, 0
    while True:
        assert archive[pos : pos + 6] == b"070701"
        fields = [int(archive[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        data = archive[data_start : data_start + filesize]
        pos = data_start + filesize + (-filesize % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data)
        if mode & 0o170000 == 0o020000:
            out[name] = (mode, (fields[9], fields[10]))  # a device: its rdev major, minor


def test_cpio_newc_round_trip():
    w = CpioWriter()
    w.directory("bin")
    w.file("bin/tool", b"\x7fELF" + bytes(13), 0o755)
    w.symlink("bin/sh", "tool")
    w.device("dev/console", 5, 1)
    entries = parse_newc(w.finish())
    assert entries["bin"][0] == 0o040755
    assert entries["bin/tool"] == (0o100755, b"\x7fELF" + bytes(13))
    assert entries["bin/sh"] == (0o120777, b"tool")
    assert entries["dev/console"] == (0o020600, (5, 1))


def test_initramfs_holds_init_busybox_and_modules(tmp_path: Path):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"BUSYBOX")
    out = tmp_path / "initrd.gz"
    build_initramfs(busybox, out, [("lib/modules/v/kernel/x.ko", b"KO")])
    entries = parse_newc(gzip.decompress(out.read_bytes()))
    assert entries["bin/busybox"] == (0o100755, b"BUSYBOX")
    assert entries["init"][0] == 0o100755 and entries["init"][1].startswith(b"#!/bin/busybox sh")
    assert entries["lib/modules/v/kernel/x.ko"][1] == b"KO"
    assert entries["etc/modules"][1] == b"/lib/modules/v/kernel/x.ko\n"
    assert entries["dev/console"] == (0o020600, (5, 1))
    # busybox udhcpc's default script (Debian's path), executable, so `udhcpc -i eth0` configures eth0
    mode, script = entries["etc/udhcpc/default.script"]
    assert mode == 0o100755 and b"ip addr add" in script
    # the same inputs give the same bytes (gzip mtime pinned)
    again = tmp_path / "again.gz"
    build_initramfs(busybox, again, [("lib/modules/v/kernel/x.ko", b"KO")])
    assert again.read_bytes() == out.read_bytes()



def test_uncompressed_initramfs_links_applets_into_bin(tmp_path: Path):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"BUSYBOX")
    out = tmp_path / "initrd.cpio"
    build_initramfs(busybox, out, applets=["awk", "sha256sum", "sh", "busybox"], compress=False)
    entries = parse_newc(out.read_bytes())
    assert entries["bin/awk"] == (0o120777, b"busybox")
    assert entries["bin/sha256sum"] == (0o120777, b"busybox")
    assert entries["bin/sh"] == (0o120777, b"busybox")
    assert entries["bin/busybox"] == (0o100755, b"BUSYBOX")
    assert entries["etc/modules"][1] == b""
    with pytest.raises(ValueError, match="applet"):
        build_initramfs(busybox, out, applets=["../etc/passwd"], compress=False)
