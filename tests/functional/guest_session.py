"""Drive a shell on a guest's serial console: kvmpy (in-process) or QEMU (a subprocess).

Both sides are driven the same way: wait for the prompt, send a command,
collect what it printed up to the next prompt. After the first prompt the
driver turns terminal echo off (`stty -echo`): busybox's line editor then
reads plain lines, so output is exactly what the command printed, however
long the command line; and it keeps kernel messages off the console
(`dmesg -n 1`), so they cannot interleave with that output. Until then,
like a terminal, it answers the shell's cursor-position query (ESC [ 6 n).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kvmpy.kvm import JitSettings
from kvmpy.vmm.machines.malta import DriveSpec, Malta, MaltaConfig, NetSpec
from kvmpy.vmm.runner import RunOutcome
from kvmpy.vmm.serial import BufferSerial
from tests.qemu_ref import bamboo_session_argv, malta_session_argv

PROMPT = b"kvmpy# "
CURSOR_QUERY = b"\x1b[6n"
CURSOR_REPLY = b"\x1b[24;1R"
APPEND = "console=ttyS0"


def cpuinfo_fields(text: str) -> dict[str, str]:
    """A guest's /proc/cpuinfo as key -> value (the last processor's, if it lists several)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


class SessionError(AssertionError):
    pass


class GuestSession:
    """A serial console conversation; subclasses provide the byte transport."""

    def __init__(self, read: Callable[[], bytes], write: Callable[[bytes], None], alive: Callable[[], bool]):
        self._read, self._write, self._alive = read, write, alive
        self.transcript = bytearray()
        self._answered = 0

    def _pump(self) -> None:
        self.transcript += self._read()
        while (i := self.transcript.find(CURSOR_QUERY, self._answered)) >= 0:
            self._answered = i + len(CURSOR_QUERY)
            self._write(CURSOR_REPLY)

    def wait_for(self, pattern: bytes, timeout_s: float, start: int = 0) -> int:
        """Wait until `pattern` (a regex) appears after offset `start`; return where it ends."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._pump()
            m = re.search(pattern, self.transcript[start:])
            if m:
                return start + m.end()
            if not self._alive() or b"Kernel panic" in self.transcript:
                break
            time.sleep(0.02)
        tail = bytes(self.transcript[-1500:]).decode(errors="replace")
        raise SessionError(f"no {pattern!r} within {timeout_s} s; console ends with:\n{tail}")

    def wait_for_shell(self, timeout_s: float, cursor_query: bool = True) -> None:
        """Wait for the first prompt, then quiet the console (see the module docstring).

        `cursor_query`: the shell asks for the cursor position after its prompt
        (busybox with FEATURE_EDITING_ASK_TERMINAL, as Debian builds it; the
        defconfig busybox of the ppc440 guest does not).
        """
        end = self.wait_for(re.escape(PROMPT), timeout_s)
        if cursor_query:
            # let the shell finish its prompt (and the cursor query) before typing
            self.wait_for(re.escape(CURSOR_QUERY), 5, end)
        self.run("stty -echo")
        # kernel messages on the console would interleave with command output
        self.run("dmesg -n 1")

    def run(self, command: str, timeout_s: float = 60) -> str:
        """Send a command line; return what it printed before the next prompt."""
        start = len(self.transcript)
        self._write(command.encode() + b"\n")
        end = self.wait_for(re.escape(PROMPT), timeout_s, start)
        out = bytes(self.transcript[start : end - len(PROMPT)])
        return out.decode(errors="replace").replace("\r\n", "\n")

    def send(self, command: str) -> None:
        self._write(command.encode() + b"\n")


class KvmpySession(GuestSession):
    def __init__(self, kernel: Path, initrd: Path, mode: str = "vz", mem_size_mib: int = 256,
                 max_seconds: float = 1800, drives: tuple[DriveSpec, ...] = (),
                 virtio_rng: bool = False, console: str = "ttyS0",
                 netdevs: tuple[NetSpec, ...] = (), jit: JitSettings | None = None) -> None:
        self.serial = BufferSerial()
        self.machine = Malta(
            MaltaConfig(kernel=kernel, initrd=initrd, append=APPEND, mem_size_mib=mem_size_mib,
                        mode=mode, no_reboot=True, drives=drives, virtio_rng=virtio_rng,
                        console=console, netdevs=netdevs, jit=jit or JitSettings()),
            self.serial,
        )
        self.outcome: RunOutcome | None = None
        self._thread = threading.Thread(target=self._run, args=(max_seconds,), daemon=True)
        super().__init__(self.serial.take, self.serial.feed, self._thread.is_alive)
        self._thread.start()

    def _run(self, max_seconds: float) -> None:
        self.outcome = self.machine.run(max_seconds=max_seconds)

    def wait_exit(self, timeout_s: float) -> RunOutcome:
        self._thread.join(timeout_s)
        if self._thread.is_alive() or self.outcome is None:
            self.machine.request_quit()
            self._thread.join(10)
            raise SessionError(f"kvmpy did not stop within {timeout_s} s")
        return self.outcome

    def close(self) -> None:
        if self._thread.is_alive():
            self.machine.request_quit()
            self._thread.join(10)


class ProcessSession(GuestSession):
    """A guest whose console is a subprocess's stdin/stdout (QEMU, or the kvmpy command)."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        super().__init__(self._read_available, self._write_stdin, lambda: self.proc.poll() is None)

    def _read_available(self) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], 0)
        if not ready:
            return b""
        try:
            return os.read(self._fd, 65536)
        except BlockingIOError:
            return b""

    def _write_stdin(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_exit(self, timeout_s: float) -> int:
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class QemuSession(ProcessSession):
    def __init__(self, kernel: Path, initrd: Path, cpu: str = "24Kc", mem_size_mib: int = 256,
                 drives: Sequence[Path] = (), extra_args: Sequence[str] = ()) -> None:
        super().__init__(malta_session_argv(
            kernel, initrd, APPEND, cpu, mem_size_mib, tuple(drives), tuple(extra_args)))


class QemuBambooSession(ProcessSession):
    """The PowerPC 440 reference: QEMU's AMCC bamboo board (440EP), console on its first UART.

    QEMU loads the ELF vmlinux itself and hands the kernel its own bamboo.dtb
    (from qemu-system-data), patched with the initrd and command line.
    """

    def __init__(self, kernel: Path, initrd: Path, mem_size_mib: int = 256,
                 extra_args: Sequence[str] = ()) -> None:
        super().__init__(bamboo_session_argv(kernel, initrd, APPEND, mem_size_mib, tuple(extra_args)))


class KvmpyCommandSession(ProcessSession):
    """The `kvmpy run` command as a user runs it, console on stdin/stdout."""

    def __init__(self, kernel: Path, initrd: Path, mode: str = "vz", mem_size_mib: int = 256,
                 drives: Sequence[Path] = (), extra_args: Sequence[str] = ()) -> None:
        disks = [arg for path in drives for arg in ("--drive", f"file={path}")]
        super().__init__([
            sys.executable, "-m", "kvmpy.vmm.cli", "run", "--machine", "malta", "--mode", mode,
            "-m", str(mem_size_mib), "--kernel", str(kernel), "--initrd", str(initrd),
            "--append", APPEND, "--no-reboot", "--serial", "stdio", "--stats", *disks, *extra_args,
        ])
