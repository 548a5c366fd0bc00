"""The PowerPC 440 guest (built from Debian's sources, cached) under QEMU's bamboo board.

QEMU is the reference peer kvmpy's bamboo board will be compared with: this
test proves the guest itself (kernel, busybox, initramfs) is right, by
checks derived without any emulator (tests/functional/ppc440_session.py),
and that `reboot -f` ends the run. The first run on a machine builds the
guest (about 10 minutes on 2 cores, see docs/ppc440-guest.md); later runs
take it from ~/.cache/kvmpy/ppc440.
"""

from __future__ import annotations

import pytest

from kvmpy.vmm.images.ppc440 import NeedsRootError, prepare
from tests.conftest import _dependency_missing, host_tool
from tests.functional import ppc440_session
from tests.functional.guest_session import APPEND, QemuBambooSession

# QEMU boots it in 1-2 s; the margin is for a machine busy with other work
BOOT_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def image():
    host_tool("qemu-system-ppc")  # before a build that may take half an hour
    try:
        return prepare()
    except NeedsRootError as exc:
        _dependency_missing(str(exc))


@pytest.mark.slow
@pytest.mark.qemu
def test_ppc440_guest_session_under_qemu_bamboo(image):
    session = QemuBambooSession(image.kernel, image.initrd)
    try:
        ppc440_session.wait_for_shell(session, BOOT_TIMEOUT_S)
        transcript = bytes(session.transcript).decode(errors="replace")
        # the kernel found the board and its devices the way the docs say
        assert "Hardware name: amcc,bamboo 440EP" in transcript
        assert "UIC0 (32 IRQ sources) at DCR 0xc0" in transcript
        assert "ttyS0 at MMIO 0xef600300" in transcript
        assert "Trying to unpack rootfs image as initramfs" in transcript
        outputs = ppc440_session.run_session(session)
        ppc440_session.check_outputs(outputs, APPEND)
        session.send("reboot -f")
        assert session.wait_exit(60) == 0
    finally:
        session.close()
