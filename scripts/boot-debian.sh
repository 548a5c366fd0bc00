#!/usr/bin/env bash
# The main job (README command a): install kvmpy, fetch Debian's own
# 4kc-malta kernel and busybox-static (cached, checksum-verified), build the
# initramfs, and boot it to a shell on this terminal. Ctrl-A x quits.
# Extra arguments go to `kvmpy run` (e.g. --mode vz, -m 128, --stats).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --root-user-action=ignore --disable-pip-version-check -e .
eval "$(python3 -m kvmpy.vmm.images.debian | sed 's/^/export KVMPY_/')"
exec kvmpy run --machine malta --kernel "$KVMPY_kernel" --initrd "$KVMPY_initrd" \
    --append "console=ttyS0" -m 256 "$@"
