#!/usr/bin/env bash
# Build (first run: about 10 minutes on 2 cores) or take from the cache
# (~/.cache/kvmpy/ppc440, or $KVMPY_CACHE/ppc440) the PowerPC 440 bamboo
# guest: Linux 6.1 vmlinux from Debian's linux-source-6.1, a static busybox
# from Debian's busybox source package, an uncompressed initramfs. Prints
# kernel=PATH and initrd=PATH. As root on a fresh Debian 12 it installs the
# build packages itself (--no-install-recommends) and adds a deb-src entry
# for the machine's Debian mirror; non-interactive, needs no stdin.
#
#   scripts/build-ppc440-guest.sh [--jobs N]
#   scripts/build-ppc440-guest.sh --qemu   # then boot it under qemu-system-ppc -M bamboo
#                                          # (the reference peer; Ctrl-A x quits)
set -euo pipefail
cd "$(dirname "$0")/.."

qemu=0
args=()
for arg in "$@"; do
    if [[ $arg == --qemu ]]; then qemu=1; else args+=("$arg"); fi
done

out=$(PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python3 -m kvmpy.vmm.images.ppc440 "${args[@]}" </dev/null)
echo "$out"
if [[ $qemu -eq 1 ]]; then
    eval "$(echo "$out" | sed 's/^/export KVMPY_/')"
    exec qemu-system-ppc -M bamboo -m 256 -nic none -nographic -no-reboot \
        -kernel "$KVMPY_kernel" -initrd "$KVMPY_initrd" -append "console=ttyS0"
fi
