"""Guest images from Debian's own packages: the 4kc-malta kernel and a busybox initramfs.

    python -m kvmpy.vmm.images.debian [--cache DIR]   # prints the kernel and initrd paths

Packages come from the machine's Debian archive through apt (`dpkg
--add-architecture mipsel`, `apt-get update`, `apt-get download`). Each
.deb is checked against the SHA256 that the archive's signed package index
lists for it (`apt-cache show`), and cached; a second run downloads nothing.
The kernel package is chosen through the `linux-image-4kc-malta` meta
package, so the image follows Debian's current 6.1 kernel.

The initramfs is built here, in Python (cpio "newc" + gzip): busybox-static,
an /init that mounts proc/sys/dev, loads the modules it is given (virtio,
and ext4 for ext2/3/4 disks) and starts a shell on the console.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kvmpy.vmm.errors import VmmError

DEFAULT_CACHE = Path(os.environ.get("KVMPY_CACHE", Path.home() / ".cache" / "kvmpy")) / "debian"
KERNEL_META = "linux-image-4kc-malta"
BUSYBOX = "busybox-static"
ARCH = "mipsel"

# /init prepares the system, then hands PID 1 to busybox init so that
# poweroff/reboot work the way they do on a real Debian system.
INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp /root /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /etc/modules 2>/dev/null); do insmod "$m"; done
echo "kvmpy-init: up"
exec /bin/init
"""

INITTAB = """::respawn:/bin/cttyhack /bin/sh -l
::respawn:/bin/sh /etc/hvc0-shell
::shutdown:/bin/umount -a -r
"""

# A second shell on the virtio console (hvc0), when the VM has one. It
# cannot be the boot console: virtio_console is a module, loaded by /init
# after the kernel opened /dev/console.
HVC0_SHELL = """[ -c /dev/hvc0 ] || exec sleep 2147483647
exec setsid sh -c 'exec sh -l <>/dev/hvc0 >&0 2>&0'
"""

PROFILE = """export HOME=/root PATH=/bin:/sbin PS1='kvmpy# '
cd /root
"""

# busybox udhcpc runs this script with the lease in the environment (Debian's
# busybox looks for it here, not at upstream's /usr/share/udhcpc). busybox has
# no script of its own: without it `udhcpc -i eth0` gets a lease and leaves
# the link down and unconfigured.
UDHCPC_SCRIPT_PATH = "etc/udhcpc/default.script"
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
"""


class ImageError(VmmError):
    """Preparing the guest image failed (package missing, checksum mismatch, tool missing)."""


@dataclass(frozen=True)
class DebianImage:
    kernel: Path
    initrd: Path
    kernel_version: str


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    except FileNotFoundError as exc:
        raise ImageError(f"{cmd[0]} not found: this needs Debian's apt and dpkg") from exc
    except subprocess.CalledProcessError as exc:
        raise ImageError(f"{' '.join(cmd)} failed: {exc.stderr.strip()[-400:]}") from exc


def ensure_mipsel_arch() -> None:
    """Make apt know mipsel packages (needs root once; later calls are cheap)."""
    foreign = _run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if ARCH not in foreign:
        _run(["dpkg", "--add-architecture", ARCH])
        _run(["apt-get", "update", "-q"])
        return
    show = subprocess.run(["apt-cache", "show", f"{BUSYBOX}:{ARCH}"], capture_output=True, text=True)
    if show.returncode != 0 or "SHA256" not in show.stdout:
        _run(["apt-get", "update", "-q"])


def package_fields(name: str) -> dict[str, str]:
    """The archive's record for a mipsel package (first, i.e. candidate, stanza)."""
    text = _run(["apt-cache", "show", f"{name}:{ARCH}"]).stdout
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        if ":" in line and not line.startswith(" "):
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    if "Filename" not in fields or "SHA256" not in fields:
        raise ImageError(f"package {name}:{ARCH} has no Filename/SHA256 in the archive index")
    return fields


def kernel_package() -> str:
    depends = package_fields(KERNEL_META).get("Depends", "")
    for dep in depends.split(","):
        name = dep.strip().split(" ")[0]
        if name.startswith("linux-image-") and name.endswith("-4kc-malta"):
            return name
    raise ImageError(f"{KERNEL_META} does not name a kernel package (Depends: {depends!r})")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_deb(name: str, cache: Path) -> Path:
    """Download (or reuse) a package's .deb and verify it against the archive's SHA256."""
    fields = package_fields(name)
    deb = cache / Path(fields["Filename"]).name
    if deb.exists() and sha256_file(deb) == fields["SHA256"]:
        return deb
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "download"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _run(["apt-get", "download", "-q", f"{name}:{ARCH}={fields['Version']}"], cwd=tmp)
    got = list(tmp.glob("*.deb"))
    if len(got) != 1:
        raise ImageError(f"apt-get download {name} produced {len(got)} files")
    digest = sha256_file(got[0])
    if digest != fields["SHA256"]:
        raise ImageError(f"{name}: SHA256 {digest} does not match the archive's {fields['SHA256']}")
    got[0].replace(deb)
    shutil.rmtree(tmp, ignore_errors=True)
    return deb


def extract(deb: Path, dest: Path) -> None:
    if dest.exists():
        return
    part = dest.with_suffix(".part")
    shutil.rmtree(part, ignore_errors=True)
    _run(["dpkg-deb", "-x", str(deb), str(part)])
    part.rename(dest)


# What the initramfs loads at boot: virtio over PCI for disk, network, console
# and entropy (Debian builds them as modules).
VIRTIO_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng")
# Filesystems for virtio-blk disks. Debian's 4kc-malta kernel has no ext2.ko:
# CONFIG_EXT4_USE_FOR_EXT2=y makes ext4.ko register "ext2" and "ext3" too.
# ext4's `softdep=pre: crypto-crc32c` names an alias, which .modinfo
# dependencies do not resolve; on this kernel crc32c_generic provides it, and
# ext4 needs it to mount a filesystem with metadata_csum (mke2fs's ext4 default).
FILESYSTEM_MODULES = ("crc32c_generic", "ext4")
BOOT_MODULES = VIRTIO_MODULES + FILESYSTEM_MODULES


def module_index(modules_dir: Path) -> dict[str, Path]:
    """Module name (dashes as underscores) -> .ko path, for a kernel's module tree."""
    return {ko.stem.replace("-", "_"): ko for ko in modules_dir.rglob("*.ko")}


def module_depends(ko: Path) -> list[str]:
    """The `depends=` list of a module, read from its .modinfo section."""
    from elftools.elf.elffile import ELFFile

    with ko.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".modinfo")
        data = section.data() if section is not None else b""
    for entry in data.split(b"\0"):
        if entry.startswith(b"depends="):
            return [d.replace("-", "_") for d in entry[8:].decode().split(",") if d]
    return []


def resolve_modules(modules_dir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The modules `wanted` needs, each after its dependencies (what modprobe would load)."""
    index = module_index(modules_dir)
    order: list[Path] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ImageError(f"module dependency cycle through {name}")
        if name not in index:
            raise ImageError(f"module {name} is not in {modules_dir}")
        state[name] = "visiting"
        for dep in module_depends(index[name]):
            visit(dep)
        state[name] = "done"
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order


class CpioWriter:
    """A cpio archive in the "newc" format the kernel unpacks for an initramfs."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        name_b = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
        header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        self._ino += 1
        self.buf.write(header + name_b)
        self.buf.write(b"\0" * (-(len(header) + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def _directories(cpio: CpioWriter, path: str, made: set[str]) -> None:
    """Add the parent directories of `path` that are not in `made` yet (cpio needs them first)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if d not in made:
            cpio.directory(d)
            made.add(d)


def build_initramfs(busybox: Path, modules: list[tuple[str, bytes]], out: Path) -> None:
    """Write a gzip'd newc initramfs: busybox, /init, udhcpc's script and the (path, bytes) modules."""
    cpio = CpioWriter()
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "lib", "lib/modules"):
        cpio.directory(d)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    cpio.file("etc/inittab", INITTAB.encode())
    cpio.file("etc/hvc0-shell", HVC0_SHELL.encode(), 0o755)
    cpio.file("etc/profile", PROFILE.encode())
    made = {"lib", "lib/modules"}
    _directories(cpio, UDHCPC_SCRIPT_PATH, made)
    cpio.file(UDHCPC_SCRIPT_PATH, UDHCPC_SCRIPT.encode(), 0o755)
    cpio.file("etc/modules", "".join(f"/{path.strip('/')}\n" for path, _ in modules).encode())
    for path, data in modules:
        _directories(cpio, path, made)
        cpio.file(path.strip("/"), data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    # mtime=0: the same inputs give the same bytes
    tmp.write_bytes(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    tmp.replace(out)


def prepare(cache: Path = DEFAULT_CACHE) -> DebianImage:
    """Fetch (cached, verified) the kernel and busybox packages and build the initramfs."""
    ensure_mipsel_arch()
    kpkg = kernel_package()
    version = kpkg.removeprefix("linux-image-")
    kdeb = fetch_deb(kpkg, cache)
    bdeb = fetch_deb(BUSYBOX, cache)
    kdir = cache / f"root-{kdeb.stem}"
    bdir = cache / f"root-{bdeb.stem}"
    extract(kdeb, kdir)
    extract(bdeb, bdir)
    kernel = kdir / "boot" / f"vmlinuz-{version}"
    if not kernel.exists():
        raise ImageError(f"{kdeb.name} holds no boot/vmlinuz-{version}")
    initrd = cache / f"initramfs-{version}.cpio.gz"
    busybox = bdir / "bin" / "busybox"
    recipe_text = INIT_SCRIPT + INITTAB + HVC0_SHELL + PROFILE + UDHCPC_SCRIPT_PATH + UDHCPC_SCRIPT
    recipe_text += ",".join(BOOT_MODULES)
    recipe = hashlib.sha256(recipe_text.encode()).hexdigest()
    stamp = f"{kdeb.name}\n{bdeb.name}\n{recipe}\n"
    stamp_file = initrd.with_suffix(".stamp")
    if not initrd.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
        modules_dir = kdir / "lib" / "modules" / version
        modules = [
            (f"lib/modules/{version}/{ko.relative_to(modules_dir)}", ko.read_bytes())
            for ko in resolve_modules(modules_dir, BOOT_MODULES)
        ]
        build_initramfs(busybox, modules, initrd)
        stamp_file.write_text(stamp)
    return DebianImage(kernel, initrd, version)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare the Debian Malta guest image.")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    try:
        image = prepare(args.cache)
    except VmmError as exc:
        print(f"kvmpy: error: {exc}", file=sys.stderr)
        return 1
    print(f"kernel={image.kernel}")
    print(f"initrd={image.initrd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
