"""The initramfs every kvmpy guest boots: busybox, an /init, a shell on the console.

Built here, in Python, as a cpio "newc" archive (what the kernel unpacks into
its rootfs), so building it needs no root, no mounts and no host cpio. /init
mounts proc, sys and devtmpfs, loads the modules listed in /etc/modules (a
kernel with everything built in has none) and hands PID 1 to busybox init,
which runs a login shell on the console (prompt `kvmpy# `) and makes
`poweroff` and `reboot` work the way they do on a Debian system.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

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

# A second shell on the virtio console (hvc0), when the VM has one. It is
# not the boot console: the kernel opens /dev/console (console=ttyS0) before
# virtio devices are probed, and on Malta virtio_console is a module /init loads.
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


class CpioWriter:
    """A cpio archive in the "newc" format the kernel unpacks for an initramfs."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1,
               rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, *rdev, len(name_b), 0]
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

    def device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A character device node (the kernel's unpacker creates it with mknod)."""
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def add_parents(cpio: CpioWriter, path: str, made: set[str]) -> None:
    """Add the parent directories of `path` that are not in `made` yet (cpio needs them first)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if d not in made:
            cpio.directory(d)
            made.add(d)



# The console device, so that /init has a stdout before it mounts devtmpfs
# (the kernel opens /dev/console in the initramfs to start /init).
CONSOLE_MAJOR, CONSOLE_MINOR = 5, 1

DIRECTORIES = ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "lib", "lib/modules")

# What the archive's layout depends on besides its inputs: a builder puts it
# in its cache stamp, so changing the rootfs here rebuilds cached images.
RECIPE = hashlib.sha256(
    "\0".join((INIT_SCRIPT, INITTAB, HVC0_SHELL, PROFILE, UDHCPC_SCRIPT_PATH, UDHCPC_SCRIPT,
               ",".join(DIRECTORIES), f"console {CONSOLE_MAJOR}:{CONSOLE_MINOR}", "links in /bin"))
    .encode()
).hexdigest()


def build_initramfs(busybox: Path, out: Path, modules: Sequence[tuple[str, bytes]] = (),
                    applets: Iterable[str] = (), compress: bool = True) -> None:
    """Write a newc initramfs: busybox, /init, /dev/console, udhcpc's script, the modules.

    `modules` are (path in the archive, bytes), loaded by /init in that order.
    `applets` are busybox applet names to link into /bin in the archive
    (/init also runs `busybox --install`, which keeps links that exist: a
    busybox that cannot run on the build host still gets its links at boot).
    `compress` gzips the archive (reproducibly: the gzip mtime is pinned).
    """
    cpio = CpioWriter()
    for d in DIRECTORIES:
        cpio.directory(d)
    cpio.device("dev/console", CONSOLE_MAJOR, CONSOLE_MINOR)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    for name in sorted(set(applets) - {"busybox", "sh"}):
        if not name or "/" in name:
            raise ValueError(f"bad busybox applet name {name!r}")
        cpio.symlink(f"bin/{name}", "busybox")
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    cpio.file("etc/inittab", INITTAB.encode())
    cpio.file("etc/hvc0-shell", HVC0_SHELL.encode(), 0o755)
    cpio.file("etc/profile", PROFILE.encode())
    made = set(DIRECTORIES)
    add_parents(cpio, UDHCPC_SCRIPT_PATH, made)
    cpio.file(UDHCPC_SCRIPT_PATH, UDHCPC_SCRIPT.encode(), 0o755)
    cpio.file("etc/modules", "".join(f"/{path.strip('/')}\n" for path, _ in modules).encode())
    for path, data in modules:
        add_parents(cpio, path, made)
        cpio.file(path.strip("/"), data)
    archive = cpio.finish()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    # mtime=0: the same inputs give the same bytes
    tmp.write_bytes(gzip.compress(archive, compresslevel=6, mtime=0) if compress else archive)
    tmp.replace(out)
