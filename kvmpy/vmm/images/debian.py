"""Guest images from Debian's own packages: the 4kc-malta kernel and a busybox initramfs.

    python -m kvmpy.vmm.images.debian [--cache DIR]   # prints the kernel and initrd paths

Packages come from the machine's Debian archive through apt (`dpkg
--add-architecture mipsel`, `apt-get update`, `apt-get download`). Each
.deb is checked against the SHA256 that the archive's signed package index
lists for it (`apt-cache show`), and cached; a second run downloads nothing.
The kernel package is chosen through the `linux-image-4kc-malta` meta
package, so the image follows Debian's current 6.1 kernel.

The initramfs (kvmpy.vmm.images.initramfs, gzip'd) holds busybox-static and
the modules /init loads: virtio, and ext4 for ext2/3/4 disks.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kvmpy.vmm.images.common import CACHE_ROOT, ImageError, image_main, run, sha256_file
from kvmpy.vmm.images.initramfs import RECIPE, build_initramfs

__all__ = ["DebianImage", "ImageError", "prepare"]

DEFAULT_CACHE = CACHE_ROOT / "debian"
KERNEL_META = "linux-image-4kc-malta"
BUSYBOX = "busybox-static"
ARCH = "mipsel"


@dataclass(frozen=True)
class DebianImage:
    kernel: Path
    initrd: Path
    kernel_version: str


def ensure_mipsel_arch() -> None:
    """Make apt know mipsel packages (needs root once; later calls are cheap)."""
    foreign = run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if ARCH not in foreign:
        run(["dpkg", "--add-architecture", ARCH])
        run(["apt-get", "update", "-q"])
        return
    show = subprocess.run(["apt-cache", "show", f"{BUSYBOX}:{ARCH}"], capture_output=True, text=True)
    if show.returncode != 0 or "SHA256" not in show.stdout:
        run(["apt-get", "update", "-q"])


def package_fields(name: str) -> dict[str, str]:
    """The archive's record for a mipsel package (first, i.e. candidate, stanza)."""
    text = run(["apt-cache", "show", f"{name}:{ARCH}"]).stdout
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
    run(["apt-get", "download", "-q", f"{name}:{ARCH}={fields['Version']}"], cwd=tmp)
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
    run(["dpkg-deb", "-x", str(deb), str(part)])
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
    stamp = f"{kdeb.name}\n{bdeb.name}\n{RECIPE}\n{','.join(BOOT_MODULES)}\n"
    stamp_file = initrd.with_suffix(".stamp")
    if not initrd.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
        modules_dir = kdir / "lib" / "modules" / version
        modules = [
            (f"lib/modules/{version}/{ko.relative_to(modules_dir)}", ko.read_bytes())
            for ko in resolve_modules(modules_dir, BOOT_MODULES)
        ]
        build_initramfs(busybox, initrd, modules)
        stamp_file.write_text(stamp)
    return DebianImage(kernel, initrd, version)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare the Debian Malta guest image.")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    return image_main(ap, argv, lambda args: prepare(args.cache))


if __name__ == "__main__":
    sys.exit(main())
