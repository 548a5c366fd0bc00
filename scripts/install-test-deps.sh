#!/usr/bin/env bash
# Install the Debian packages the tests need: the mipsel cross toolchain
# (to build tests/guests), qemu-system-mipsel (the reference the guests
# are compared against), the powerpc binutils and qemu-system-ppc (the
# same for the PowerPC 440 guests on QEMU's bamboo), device-tree-compiler
# (dtc checks the bamboo's device tree), gdb-multiarch (the real client of
# the gdb stub's tests), e2fsprogs (ext2 images for the virtio-blk tests),
# passt (user-mode networking for the virtio-net test), iproute2 (the
# TAP test's network namespace), strace (scripts/check-clean-install.sh
# watches which files QEMU opens) and gdb-multiarch (the real gdb the gdb
# stub's functional tests drive). Also registers the mipsel dpkg
# architecture for later use (mipsel Debian packages, e.g. a Malta kernel).
#
# Every package anything in the suite runs or opens must be named here or be
# a Depends of one named here: a Recommends that happens to be installed is
# how a fresh machine once failed (scripts/check-clean-install.sh checks).
# No QEMU the tests start has a NIC, so ipxe-qemu (the NIC option ROMs) is
# not needed; `--bench` adds it, for benchmarks/run.py's virtio-net run.
#
# `--list` prints the package names and exits (with `--bench` first, those too).
#
# Idempotent and fast when everything is present: apt is not touched at
# all then. Needs root (or password-less sudo) only when something is
# missing. Non-interactive (CI runs it as root with no stdin).
set -euo pipefail

PACKAGES=(
    binutils-mipsel-linux-gnu
    binutils-powerpc-linux-gnu
    device-tree-compiler
    e2fsprogs
    gcc-mipsel-linux-gnu
    gdb-multiarch
    iproute2
    passt
    qemu-system-mips
    qemu-system-ppc
    strace
)
# What building the PowerPC 440 guest needs (kernel and busybox from Debian's
# sources): named once, in the image builder, read from there.
mapfile -t GUEST_BUILD_PACKAGES < <(cd "$(dirname "$0")/.." && python3 -c \
    'from kvmpy.vmm.images.ppc440 import BUILD_PACKAGES; print(*BUILD_PACKAGES, sep="\n")')
if [[ ${#GUEST_BUILD_PACKAGES[@]} -eq 0 ]]; then
    echo "install-test-deps: cannot read BUILD_PACKAGES from kvmpy/vmm/images/ppc440.py" >&2
    exit 1
fi
PACKAGES+=("${GUEST_BUILD_PACKAGES[@]}")
FOREIGN_ARCH=mipsel

if [[ ${1:-} == --bench ]]; then
    PACKAGES+=(ipxe-qemu)
    shift
fi
if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${PACKAGES[@]}"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive

is_installed() {
    dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

need_arch=0
if ! dpkg --print-foreign-architectures | grep -qx "$FOREIGN_ARCH"; then
    need_arch=1
fi

if [[ ${#missing[@]} -eq 0 && $need_arch -eq 0 ]]; then
    echo "install-test-deps: all present (${PACKAGES[*]}; dpkg arch $FOREIGN_ARCH)"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-test-deps: need root for: apt-get install ${missing[*]:-(nothing)};" \
            "dpkg --add-architecture $FOREIGN_ARCH: $([[ $need_arch -eq 1 ]] && echo needed || echo done)" >&2
        exit 1
    fi
fi

if [[ $need_arch -eq 1 ]]; then
    echo "install-test-deps: dpkg --add-architecture $FOREIGN_ARCH"
    "${SUDO[@]}" dpkg --add-architecture "$FOREIGN_ARCH"
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-test-deps: installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        echo "install-test-deps: $pkg is still not installed" >&2
        exit 1
    fi
done
# e2fsprogs installs into /usr/sbin, which a non-root PATH may lack.
for tool in mipsel-linux-gnu-gcc mipsel-linux-gnu-as qemu-system-mipsel mke2fs debugfs e2fsck passt ip strace gdb-multiarch powerpc-linux-gnu-as qemu-system-ppc dtc gdb-multiarch; do
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1; then
        echo "install-test-deps: $tool not on PATH after install" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
