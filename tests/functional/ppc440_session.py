"""The shell session the PowerPC 440 guest runs, on any bamboo: QEMU's now, kvmpy's later.

One list of commands and one set of checks, so that a kvmpy bamboo test runs
exactly what the QEMU reference ran and can compare output for output. The
checks below are derived independently of any emulator: the awk results are
computed here in Python with the same IEEE double operations (+, *, /, sqrt
are correctly rounded, and so are glibc's and Python's decimal conversions),
and the file the guest hashes is rebuilt here byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import re

from tests.functional.guest_session import GuestSession, cpuinfo_fields

# A file the guest writes with busybox printf, then hashes and gzips.
FILE_LINES = 400
FILE_CMD = f"printf 'kvmpy ppc440 line %s\\n' $(seq 1 {FILE_LINES}) > /tmp/f"
FILE_BYTES = b"".join(b"kvmpy ppc440 line %d\n" % i for i in range(1, FILE_LINES + 1))

# Floating point the kernel must let user space do: the 440EP has an FPU,
# so these run as real FP instructions (with FPSCR rounding) in the guest.
AWK_PROGRAM = (
    "awk 'BEGIN { s = 0; for (i = 1; i <= 300; i++) s += 1 / (i * i); "
    "h = 0; for (i = 1; i <= 300; i++) h += 1 / i; "
    'printf "%.15f %.15f %.10e %d\\n", s, h, sqrt(2) * 1e-7 / 3, int(sqrt(10) * 1000000) }\''
)

COMMANDS: dict[str, str] = {
    "uname": "uname -a",
    "cpuinfo": "cat /proc/cpuinfo",
    "awk": AWK_PROGRAM,
    "file": f"{FILE_CMD} && wc -c < /tmp/f",
    "sha256": "sha256sum /tmp/f",
    # `echo /tmp/*`, not ls: busybox ls colours its output on a terminal
    "gzip": "gzip -9 -c /tmp/f > /tmp/f.gz && rm /tmp/f && gunzip /tmp/f.gz && sha256sum /tmp/f "
            "&& echo /tmp/*",
    "cmdline": "cat /proc/cmdline",
}


def expected_awk() -> str:
    s = 0.0
    for i in range(1, 301):
        s += 1 / (i * i)
    h = 0.0
    for i in range(1, 301):
        h += 1 / i
    return f"{s:.15f} {h:.15f} {math.sqrt(2) * 1e-7 / 3:.10e} {int(math.sqrt(10) * 1000000)}"


def wait_for_shell(session: GuestSession, timeout_s: float) -> None:
    """The first prompt; this busybox (defconfig) does not ask the terminal for the cursor."""
    session.wait_for_shell(timeout_s, cursor_query=False)


def run_session(session: GuestSession, timeout_s: float = 120) -> dict[str, str]:
    """Run COMMANDS at the guest's shell prompt; name -> what each printed."""
    return {name: session.run(cmd, timeout_s) for name, cmd in COMMANDS.items()}


def check_outputs(outputs: dict[str, str], append: str) -> None:
    """What must hold on any correct 440 bamboo, emulated or simulated."""
    uname = outputs["uname"].split()
    assert uname[:2] == ["Linux", "(none)"] and uname[2].startswith("6.1."), outputs["uname"]
    assert uname[-2:] == ["ppc", "GNU/Linux"], outputs["uname"]
    cpu = cpuinfo_fields(outputs["cpuinfo"])
    assert cpu["cpu"].startswith("440EP"), cpu
    assert cpu["model"] == "amcc,bamboo", cpu
    assert outputs["awk"].strip() == expected_awk()
    digest = hashlib.sha256(FILE_BYTES).hexdigest()
    assert outputs["file"].strip() == str(len(FILE_BYTES))
    assert outputs["sha256"].split() == [digest, "/tmp/f"]
    # the round trip restored the file (and gunzip removed the .gz)
    assert outputs["gzip"].split() == [digest, "/tmp/f", "/tmp/f"]
    assert outputs["cmdline"].strip() == append


# cpuinfo lines that measure the host rather than describe the guest
TIMING_FIELDS = ("bogomips", "BogoMIPS")


def normalise(name: str, text: str) -> str:
    """An output with what legitimately differs between two correct runs taken out."""
    if name == "cpuinfo":
        fields = cpuinfo_fields(text)
        text = "\n".join(f"{k}: {v}" for k, v in fields.items() if k not in TIMING_FIELDS)
    return re.sub(r"[ \t]+\n", "\n", text).strip()
