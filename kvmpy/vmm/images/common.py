"""What the guest image builders share: their error, running tools, hashing files, the command line.

Each builder (`debian` for Malta, `ppc440` for bamboo) prepares a kernel and
an initramfs from Debian's own packages and caches them under
`~/.cache/kvmpy/<name>` (or `$KVMPY_CACHE/<name>`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from kvmpy.vmm.errors import VmmError

CACHE_ROOT = Path(os.environ.get("KVMPY_CACHE", Path.home() / ".cache" / "kvmpy"))


class ImageError(VmmError):
    """Preparing the guest image failed (package missing, checksum mismatch, tool missing)."""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion with no stdin; a failure is an ImageError quoting its stderr."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    except FileNotFoundError as exc:
        raise ImageError(f"{cmd[0]} not found: this needs Debian's apt and dpkg") from exc
    except subprocess.CalledProcessError as exc:
        raise ImageError(f"{' '.join(cmd)} failed: {exc.stderr.strip()[-400:]}") from exc


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PreparedImage(Protocol):
    """What a builder's `prepare` returns: the kernel and initramfs to boot."""

    @property
    def kernel(self) -> Path: ...

    @property
    def initrd(self) -> Path: ...


def image_main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    prepare: Callable[[argparse.Namespace], PreparedImage],
) -> int:
    """A builder's command line: `prepare(parsed argv)`, then `kernel=PATH` and `initrd=PATH` lines.

    Those two lines are what scripts read; a failure is one `kvmpy: error:`
    line on stderr and exit status 1.
    """
    args = parser.parse_args(argv)
    try:
        image = prepare(args)
    except VmmError as exc:
        print(f"kvmpy: error: {exc}", file=sys.stderr)
        return 1
    print(f"kernel={image.kernel}")
    print(f"initrd={image.initrd}")
    return 0
