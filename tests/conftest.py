"""Shared fixtures: hypervisor backend cases, the bare-metal test guests (built once per session), QEMU.

`backend_case` runs a test once per backend and VM type of the tree, each
with its tiny-guest builder (tests/contract_guests.py): the KVM API
contract in tests/unit/test_api.py uses it, so a new architecture runs the
contract by adding its case there.

A missing cross toolchain or QEMU skips the tests that need them on a
developer machine, but fails them under CI (``CI`` set to a true value),
where ``scripts/install-test-deps.sh`` must have installed both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from tests import qemu_ref
from tests.contract_guests import BackendCase, backend_cases
from tests.guests.build import DEFAULT_OUT_DIR, GUESTS_BY_NAME, ToolchainMissingError, build_all


@pytest.fixture(params=backend_cases(), ids=lambda case: case.name)
def backend_case(request: pytest.FixtureRequest) -> BackendCase:
    """Each hypervisor backend and VM type in turn, with its tiny-guest builder (the KVM API contract)."""
    return request.param


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _dependency_missing(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(
            f"{reason} (CI is set: scripts/install-test-deps.sh should have installed it)", pytrace=False
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def guest_elfs() -> dict[str, Path]:
    """Every guest in tests.guests.build.GUESTS, built (if stale) into build/guests/."""
    try:
        return build_all(DEFAULT_OUT_DIR)
    except ToolchainMissingError as exc:
        missing = str(exc)
    _dependency_missing(missing)


@pytest.fixture(scope="session")
def run_qemu() -> Callable[..., bytes]:
    """tests.qemu_ref.run_qemu, once QEMU is known to be installed."""
    if not qemu_ref.qemu_available():
        _dependency_missing(f"{qemu_ref.QEMU} not found on PATH")
    return qemu_ref.run_qemu


@pytest.fixture(scope="session")
def qemu_output(guest_elfs: dict[str, Path], run_qemu: Callable[..., bytes]) -> Callable[[str], str]:
    """name -> the guest's UART output under QEMU, as text (one QEMU run per guest per session)."""
    cache: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in cache:
            guest = GUESTS_BY_NAME[name]
            cache[name] = run_qemu(guest_elfs[name], timeout_s=guest.timeout_s).decode("ascii")
        return cache[name]

    return get


# Where Debian installs e2fsprogs and passt; a non-root PATH may lack the sbin directories.
_TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])


def host_tool(name: str) -> str:
    """The path of host program `name`; skipped (failed under CI) when it is not installed."""
    path = shutil.which(name, path=_TOOL_PATH)
    if path is None:
        _dependency_missing(f"{name} not found (install-test-deps.sh installs it)")
    return path


@pytest.fixture(scope="session")
def e2fsprogs() -> dict[str, str]:
    """mke2fs, debugfs and e2fsck: the host side of the ext2 disk tests."""
    return {name: host_tool(name) for name in ("mke2fs", "debugfs", "e2fsck")}
