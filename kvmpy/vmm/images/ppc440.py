"""The PowerPC 440 (bamboo) guest, cross-built from Debian's own sources and cached.

    python -m kvmpy.vmm.images.ppc440 [--cache DIR] [--jobs N]   # prints the kernel and initrd paths

Debian ships no 440 kernel and no powerpc busybox binary, so both are built
here, with Debian's cross compiler (`gcc-powerpc-linux-gnu`):

- Linux from `linux-source-6.1` (the kernel Debian 12 ships, with Debian's
  patches): `44x/bamboo_defconfig` plus the fragment `ppc440_kernel.config`
  next to this file; every line of the fragment is checked against the final
  .config, so an option that Kconfig drops is an error, not a surprise at
  boot. The output is the ELF `vmlinux`, which both QEMU's `-M bamboo
  -kernel` and kvmpy's bamboo board load.
- busybox from Debian's busybox *source* package (`apt-get source`, which
  checks it against the archive's signed Sources index; a deb-src entry for
  the machine's own Debian mirror is added when there is none), static
  against `libc6-dev-powerpc-cross`, from busybox's defconfig with the
  changes in BUSYBOX_CONFIG.
- an uncompressed initramfs (kvmpy.vmm.images.initramfs) with that busybox
  and its applet links.

Everything lands in `~/.cache/kvmpy/ppc440/` (or `$KVMPY_CACHE/ppc440`) under
names keyed by the inputs (the fragment's hash, the versions of the Debian
packages used, the build recipe): a second run builds nothing and touches
neither apt's indexes nor the network. Missing build packages are installed
(`apt-get install --no-install-recommends`, as root) on the first run.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kvmpy.vmm.images.common import CACHE_ROOT, ImageError, image_main, run
from kvmpy.vmm.images.initramfs import RECIPE, build_initramfs

__all__ = ["BUILD_PACKAGES", "ImageError", "NeedsRootError", "Ppc440Image", "prepare"]

DEFAULT_CACHE = CACHE_ROOT / "ppc440"

# Everything the build runs, each named for what it provides. Installed with
# --no-install-recommends: what a package merely recommends is not here, so
# e.g. the host libc headers gcc needs are named explicitly.
BUILD_PACKAGES = (
    "gcc-powerpc-linux-gnu",  # the cross compiler (kernel and busybox)
    "binutils-powerpc-linux-gnu",  # the cross assembler and linker
    "libc6-dev-powerpc-cross",  # glibc for a static powerpc busybox
    "linux-source-6.1",  # /usr/src/linux-source-6.1.tar.xz
    "gcc",  # the kernel's and busybox's host tools (fixdep, kconfig)
    "libc6-dev",  # ... and their headers (gcc only recommends them)
    "make",
    "bc",  # the kernel's timeconst.h
    "bison",  # the kernel's kconfig and dtc parsers
    "flex",
    "xz-utils",  # unpacking the kernel source
    "bzip2",  # unpacking busybox's orig tarball
    "dpkg-dev",  # dpkg-source, for `apt-get source`
)

KERNEL_SOURCE_PACKAGE = "linux-source-6.1"
KERNEL_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
KERNEL_DEFCONFIG = "44x/bamboo_defconfig"
KERNEL_FRAGMENT = Path(__file__).with_name("ppc440_kernel.config")
BUSYBOX_SOURCE = "busybox"
CROSS_COMPILE = "powerpc-linux-gnu-"
# The packages whose versions decide the bytes of each output.
TOOLCHAIN_PACKAGES = ("gcc-powerpc-linux-gnu", "binutils-powerpc-linux-gnu")
KERNEL_INPUT_PACKAGES = (KERNEL_SOURCE_PACKAGE, *TOOLCHAIN_PACKAGES)
BUSYBOX_INPUT_PACKAGES = (*TOOLCHAIN_PACKAGES, "libc6-dev-powerpc-cross")

# busybox's defconfig, changed only where the initramfs needs it: every
# applet of busybox 1.35's defconfig builds against Debian 12's powerpc glibc
# and its Linux 6.1 UAPI headers.
BUSYBOX_CONFIG = {
    "CONFIG_STATIC": "y",
    # where the shared initramfs keeps udhcpc's script (Debian's own busybox path)
    "CONFIG_UDHCPC_DEFAULT_SCRIPT": '"/etc/udhcpc/default.script"',
}

# Bumped when the build steps below change in a way that changes their output.
BUILD_RECIPE = "1"
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
DEB_SRC_FILE = APT_SOURCES_DIR / "kvmpy-deb-src.sources"
PROGRESS_PREFIX = "ppc440:"


class NeedsRootError(ImageError):
    """The machine lacks a build package or the deb-src entry, and only root can add them."""


@dataclass(frozen=True)
class Ppc440Image:
    kernel: Path  # the ELF vmlinux
    initrd: Path  # uncompressed newc cpio
    kernel_version: str
    busybox: Path


def progress(message: str) -> None:
    print(f"{PROGRESS_PREFIX} {message}", file=sys.stderr, flush=True)


# --- Debian packages ---------------------------------------------------------------------------


def query(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a Debian query tool whose non-zero exit is an answer ("not found"), not a failure."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ImageError(f"{cmd[0]} not found: the ppc440 guest is built on Debian 12") from exc


def installed_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """package -> installed version, or None when it is not installed (one dpkg-query call)."""
    result = query(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status} ${Version}\n", *packages])
    found: dict[str, str | None] = dict.fromkeys(packages)
    for line in result.stdout.splitlines():
        name, status, version = (line.split(" ", 2) + ["", ""])[:3]
        if status == "installed" and name.split(":")[0] in found:
            found[name.split(":")[0]] = version
    return found


def apt_get(*args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "-q", "-y", *args], env=env)


def ensure_packages(packages: tuple[str, ...] = BUILD_PACKAGES) -> dict[str, str]:
    """Install what is missing of `packages` (root only); return package -> version."""
    missing = [p for p, v in installed_versions(packages).items() if v is None]
    if missing:
        if os.geteuid() != 0:
            raise NeedsRootError(f"the ppc440 guest build needs Debian packages not installed: "
                             f"{' '.join(missing)} (install them as root, or run this as root)")
        progress(f"installing {' '.join(missing)}")
        try:
            apt_get("install", "--no-install-recommends", *missing)
        except ImageError:
            apt_get("update")
            apt_get("install", "--no-install-recommends", *missing)
    versions = installed_versions(packages)
    still = [p for p, v in versions.items() if v is None]
    if still:
        raise ImageError(f"apt-get install left {' '.join(still)} not installed")
    return {p: v for p, v in versions.items() if v is not None}


@dataclass(frozen=True)
class AptSource:
    """One deb822 stanza of the machine's apt sources."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


def parse_deb822_sources(text: str) -> list[AptSource]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace():
                continue  # a continuation (multi-line Signed-By key): we only need paths
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "types" not in fields:
            continue
        out.append(AptSource(tuple(fields["types"].split()), tuple(fields.get("uris", "").split()),
                             tuple(fields.get("suites", "").split()),
                             tuple(fields.get("components", "").split()),
                             fields.get("signed-by") or None))
    return out


def parse_one_line_sources(text: str) -> list[AptSource]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        options: dict[str, str] = {}
        if words[1].startswith("["):
            end = next(i for i, w in enumerate(words) if w.endswith("]"))
            for opt in " ".join(words[1 : end + 1]).strip("[]").split():
                key, _, value = opt.partition("=")
                options[key] = value
            words = [words[0], *words[end + 1 :]]
        if len(words) < 3:
            continue
        out.append(AptSource((words[0],), (words[1],), (words[2],), tuple(words[3:]),
                             options.get("signed-by")))
    return out


def machine_sources() -> list[AptSource]:
    """The enabled apt sources of this machine (sources.list and sources.list.d)."""
    sources: list[AptSource] = []
    files = [Path("/etc/apt/sources.list"), *sorted(APT_SOURCES_DIR.glob("*.list")),
             *sorted(APT_SOURCES_DIR.glob("*.sources"))]
    for path in files:
        if path == DEB_SRC_FILE or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        sources += parse_deb822_sources(text) if path.suffix == ".sources" else parse_one_line_sources(text)
    return sources


def debian_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise ImageError("/etc/os-release names no VERSION_CODENAME: is this Debian?")


def deb_src_stanzas(sources: list[AptSource], codename: str) -> str:
    """deb-src twins of the binary Debian sources, as a deb822 file's text.

    Only the entries for this release's suites (`bookworm`, `bookworm-updates`,
    `bookworm-security`...) are mirrored: a third-party repository with its own
    suite names may have no source packages at all, and a deb-src entry that
    fails would break every later `apt-get update`.
    """
    stanzas = []
    for src in sources:
        if "deb" not in src.types:
            continue
        suites = [s for s in src.suites if s == codename or s.startswith(codename + "-")]
        if not suites or not src.uris or not src.components:
            continue
        lines = ["Types: deb-src", f"URIs: {' '.join(src.uris)}", f"Suites: {' '.join(suites)}",
                 f"Components: {' '.join(src.components)}"]
        if src.signed_by:
            lines.append(f"Signed-By: {src.signed_by}")
        stanzas.append("\n".join(lines) + "\n")
    if not stanzas:
        raise ImageError(f"no apt source for Debian {codename} found to derive a deb-src entry from")
    return "# Written by kvmpy (kvmpy/vmm/images/ppc440.py): source packages from the\n" \
           "# machine's own Debian mirrors, for `apt-get source busybox`.\n\n" + "\n".join(stanzas)


def busybox_source_version() -> str | None:
    """The newest busybox source version in apt's local index, without its epoch (as in the .dsc name).

    `apt-cache showsrc` reads only the source index: a cached run stays fast.
    """
    result = query(["apt-cache", "showsrc", "--only-source", BUSYBOX_SOURCE])
    versions = re.findall(r"^Version: (\S+)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not versions:
        return None
    newest = versions[0]
    for v in versions[1:]:
        if query(["dpkg", "--compare-versions", v, "gt", newest]).returncode == 0:
            newest = v
    return newest.split(":", 1)[-1]


def ensure_busybox_source_index() -> str:
    """Make apt know busybox's source package (adding a deb-src entry once); return its version."""
    version = busybox_source_version()
    if version is not None:
        return version
    text = deb_src_stanzas(machine_sources(), debian_codename())
    if not DEB_SRC_FILE.exists() or DEB_SRC_FILE.read_text() != text:
        if os.geteuid() != 0:
            raise NeedsRootError(f"apt knows no busybox source package and adding {DEB_SRC_FILE} needs root")
        progress(f"adding {DEB_SRC_FILE} (deb-src for this machine's Debian mirrors)")
        DEB_SRC_FILE.write_text(text)
    apt_get("update")
    version = busybox_source_version()
    if version is None:
        raise ImageError(f"apt-get source cannot find {BUSYBOX_SOURCE} even after adding {DEB_SRC_FILE}")
    return version


# --- Building ----------------------------------------------------------------------------------


def key_of(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """One builder per cache at a time (two test processes must not build into the same dir)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def logged(cmd: list[str], log: Path, what: str, **kw) -> None:
    """Run a long build step with its output in `log`; a failure quotes the log's end."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kw)
        except FileNotFoundError as exc:
            raise ImageError(f"{what}: {cmd[0]} not found") from exc
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ImageError(f"{what} failed (exit {result.returncode}); full log: {log}\n{tail}")


def kernel_env() -> dict[str, str]:
    # A fixed build identity: `uname -a` shows it, and the reference and
    # kvmpy runs must not differ by when or where the kernel was built.
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(KERNEL_TARBALL.stat().st_mtime))
    return dict(os.environ, ARCH="powerpc", CROSS_COMPILE=CROSS_COMPILE, KBUILD_BUILD_USER="kvmpy",
                KBUILD_BUILD_HOST="kvmpy", KBUILD_BUILD_VERSION="1", KBUILD_BUILD_TIMESTAMP=stamp,
                LC_ALL="C")


def fragment_lines(text: str) -> dict[str, str | None]:
    """CONFIG_X -> value, or None for `# CONFIG_X is not set`."""
    wanted: dict[str, str | None] = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip()):
            wanted[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip()):
            wanted[m.group(1)] = None
    return wanted


def config_mismatches(wanted: dict[str, str | None], config_text: str) -> list[str]:
    """The fragment lines a final .config does not honour."""
    have = fragment_lines(config_text)
    return [f"{k}={v if v is not None else 'n'} (got {have.get(k) or 'n'})"
            for k, v in wanted.items() if have.get(k) != v]


def build_kernel(out: Path, work: Path, fragment: str, jobs: int) -> str:
    """Unpack linux-source, configure for bamboo + fragment, build vmlinux into `out`; return the release."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    progress(f"unpacking {KERNEL_TARBALL}")
    logged(["tar", "-xf", str(KERNEL_TARBALL), "-C", str(work)], log, "unpacking the kernel source")
    (src,) = [p for p in work.iterdir() if p.is_dir()]
    build = work / "build"
    env = kernel_env()
    make = ["make", "-C", str(src), f"O={build}"]
    logged([*make, KERNEL_DEFCONFIG], log, "make " + KERNEL_DEFCONFIG, env=env)
    frag_file = work / "fragment.config"
    frag_file.write_text(fragment)
    logged([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build),
            str(build / ".config"), str(frag_file)], log, "merging the config fragment", env=env, cwd=src)
    logged([*make, "olddefconfig"], log, "make olddefconfig", env=env)
    config = (build / ".config").read_text()
    if bad := config_mismatches(fragment_lines(fragment), config):
        raise ImageError(f"{KERNEL_FRAGMENT.name}: Kconfig did not keep {', '.join(bad)}")
    progress(f"building Linux vmlinux (make -j{jobs}; about 10 minutes on 2 cores; log {log})")
    logged([*make, f"-j{jobs}", "vmlinux"], log, "building vmlinux", env=env)
    release = run([*make, "-s", "kernelrelease"], env=env).stdout.strip()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "vmlinux", out / "vmlinux.tmp")
    (out / "vmlinux.tmp").replace(out / "vmlinux")
    (out / "config").write_text(config)
    shutil.copy2(build / "System.map", out / "System.map")
    (out / "release").write_text(release + "\n")
    shutil.copy2(log, out / "build.log")
    shutil.rmtree(work, ignore_errors=True)
    return release


def set_config(config_text: str, settings: dict[str, str | None]) -> str:
    """A kconfig .config with `settings` applied (None: not set)."""
    lines = config_text.splitlines()
    for key, value in settings.items():
        new = f"{key}={value}" if value is not None else f"# {key} is not set"
        pattern = re.compile(rf"^(# )?{key}(=.*| is not set)$")
        hits = [i for i, line in enumerate(lines) if pattern.match(line)]
        if not hits:
            raise ImageError(f"busybox's defconfig has no {key}")
        for i in hits:
            lines[i] = new
    return "\n".join(lines) + "\n"


def build_busybox(out: Path, work: Path, version: str, jobs: int) -> None:
    """Fetch busybox's Debian source, build it static for powerpc, put busybox + applet list in `out`."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    progress(f"fetching the {BUSYBOX_SOURCE} {version} source package")
    # apt fetches the source of busybox's candidate, normally the newest: checked, not pinned
    logged(["apt-get", "source", "-q", "--only-source", BUSYBOX_SOURCE], log,
           f"apt-get source {BUSYBOX_SOURCE}", cwd=work)
    if not (work / f"{BUSYBOX_SOURCE}_{version}.dsc").exists():
        raise ImageError(f"apt-get source {BUSYBOX_SOURCE} did not fetch version {version}")
    srcs = [p for p in work.iterdir() if p.is_dir() and p.name.startswith(f"{BUSYBOX_SOURCE}-")]
    if len(srcs) != 1:
        raise ImageError(f"apt-get source {BUSYBOX_SOURCE} unpacked {len(srcs)} source trees in {work}")
    build = work / "build"
    build.mkdir()
    env = dict(os.environ, CROSS_COMPILE=CROSS_COMPILE, LC_ALL="C", KCONFIG_NOTIMESTAMP="1")
    make = ["make", "-C", str(srcs[0]), f"O={build}"]
    logged([*make, "defconfig"], log, "busybox defconfig", env=env)
    config = build / ".config"
    config.write_text(set_config(config.read_text(), BUSYBOX_CONFIG))
    progress(f"building busybox (static, make -j{jobs}; log {log})")
    logged(["make", "-C", str(build), f"-j{jobs}", "busybox", "busybox.links"], log,
           "building busybox", env=env)
    if bad := config_mismatches(BUSYBOX_CONFIG, config.read_text()):
        raise ImageError(f"busybox's build did not keep {', '.join(bad)}")
    check_static_powerpc(build / "busybox")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "busybox", out / "busybox.tmp")
    applets = sorted({Path(line.strip()).name for line in (build / "busybox.links").read_text().split()})
    (out / "applets").write_text("\n".join(applets) + "\n")
    shutil.copy2(log, out / "build.log")
    (out / "busybox.tmp").replace(out / "busybox")
    shutil.rmtree(work, ignore_errors=True)


def check_static_powerpc(path: Path) -> None:
    """The binary must run in a bare initramfs on a 440: 32-bit big-endian PowerPC, no interpreter."""
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as f:
        elf = ELFFile(f)
        kind = (elf.elfclass, elf.little_endian, elf["e_machine"])
        dynamic = any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())
    if kind != (32, False, "EM_PPC") or dynamic:
        raise ImageError(f"{path} is not a static 32-bit big-endian PowerPC executable "
                         f"({kind}, dynamic={dynamic})")


def prepare(cache: Path = DEFAULT_CACHE, jobs: int = 2) -> Ppc440Image:
    """Build (or reuse from `cache`) the bamboo vmlinux, a static busybox and the initramfs."""
    if jobs < 1:
        raise ImageError(f"jobs must be at least 1, not {jobs}")
    versions = ensure_packages()
    fragment = KERNEL_FRAGMENT.read_text()
    # before the long kernel build, so that a machine without source packages fails at once
    bb_version = ensure_busybox_source_index()
    with cache_lock(cache):
        kkey = key_of(BUILD_RECIPE, KERNEL_DEFCONFIG, fragment,
                      *(f"{p}={versions[p]}" for p in KERNEL_INPUT_PACKAGES))
        kdir = cache / f"linux-{versions[KERNEL_SOURCE_PACKAGE]}-{kkey}"
        if not (kdir / "vmlinux").exists() or not (kdir / "release").exists():
            build_kernel(kdir, cache / "work-linux", fragment, jobs)
        release = (kdir / "release").read_text().strip()

        bkey = key_of(BUILD_RECIPE, bb_version, repr(sorted(BUSYBOX_CONFIG.items())),
                      *(f"{p}={versions[p]}" for p in BUSYBOX_INPUT_PACKAGES))
        bdir = cache / f"busybox-{bb_version.replace(':', '_')}-{bkey}"
        if not (bdir / "busybox").exists():
            build_busybox(bdir, cache / "work-busybox", bb_version, jobs)

        initrd = cache / f"initramfs-{key_of(bkey, RECIPE)}.cpio"
        if not initrd.exists():
            applets = (bdir / "applets").read_text().split()
            build_initramfs(bdir / "busybox", initrd, applets=applets, compress=False)
    return Ppc440Image(kdir / "vmlinux", initrd, release, bdir / "busybox")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build (or reuse) the PowerPC 440 bamboo guest.")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--jobs", type=int, default=2, help="make -j (default 2)")
    return image_main(ap, argv, lambda args: prepare(args.cache, args.jobs))


if __name__ == "__main__":
    sys.exit(main())
