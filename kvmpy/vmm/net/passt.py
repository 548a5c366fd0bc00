"""`PasstNetBackend`: user-mode networking through passt(1)."""


from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from kvmpy.vmm.net.backend import FrameReceiver, NetBackendError
from kvmpy.vmm.net.stream import SocketNetBackend

log = logging.getLogger(__name__)



# How long passt may take to set itself up (read the host's routes and
# addresses, drop privileges, write its PID file) before we give up on it.
PASST_START_TIMEOUT_S = 10.0
# How long a passt that lost its link (we closed our end) may take to exit
# before it is terminated.
PASST_EXIT_TIMEOUT_S = 2.0
PASST_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin", "/usr/local/bin"])


class PasstNetBackend:
    """User-mode networking through passt(1): the guest reaches the host's network without privileges.

    passt is started as a child process with one end of a socketpair
    (``--fd``); it speaks the same 4-byte-length framing as QEMU's stream
    netdev, so the other end is a `SocketNetBackend`. passt answers the
    guest's DHCP, ARP and NDP itself (by default the guest gets the host's
    own address and gateway), and maps TCP/UDP to the gateway address onto
    the host's loopback: a server on the host's 127.0.0.1:PORT is the
    guest's GATEWAY:PORT.

    Startup waits until passt wrote its PID file (it does so once
    initialised), so a passt that refuses to run (no usable host interface,
    no permission to sandbox itself) is a `NetBackendError` carrying its
    message. As root, passt switches to user nobody before writing the PID
    file, so the PID file's directory is writable by others (but not
    listable); it is removed as soon as passt is up. ``--fd`` implies
    ``--one-off``: passt exits when the link closes, so `close()` (or this
    process dying) ends it; `close()` also waits for it and terminates it
    if it lingers.
    """

    def __init__(self, passt: str = "passt") -> None:
        exe = shutil.which(passt, path=PASST_SEARCH_PATH)
        if exe is None:
            raise NetBackendError(f"netdev passt: {passt} not found (install Debian's passt package)")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._rundir = Path(tempfile.mkdtemp(prefix="kvmpy-passt-"))
        # passt's messages; a file, not a pipe, so a chatty passt can never block on it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop()
        self.proc: subprocess.Popen[bytes] | None = None
        self._link: SocketNetBackend | None = None
        try:
            os.chmod(self._rundir, 0o1733)
            pid_file = self._rundir / "passt.pid"
            cmd = [exe, "--foreground", "--quiet", "--fd", str(theirs.fileno()), "--pid", str(pid_file)]
            try:
                self.proc = subprocess.Popen(
                    cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=self._log,
                    stderr=self._log, start_new_session=True,  # the terminal's Ctrl-C is not passt's
                )
            except OSError as exc:
                raise NetBackendError(f"netdev passt: cannot run {exe}: {exc.strerror or exc}") from exc
            theirs.close()
            self._wait_ready(pid_file)
            # The PID file only said "ready": remove it now, so nothing is left behind
            # even if this process is killed without running close().
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._link = SocketNetBackend(connected=ours, label=f"passt (pid {self.proc.pid})")
        except BaseException:
            ours.close()
            theirs.close()
            self._stop()
            raise

    def _passt_messages(self) -> str:
        """What passt printed, without its complaints about a missing syslog, on one line."""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        useful = [ln.strip() for ln in lines if ln.strip() and "syslog" not in ln]
        return "; ".join(useful)[-300:] or "no message"

    def _wait_ready(self, pid_file: Path) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + PASST_START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise NetBackendError(
                    f"netdev passt: passt exited with status {code}: {self._passt_messages()}"
                )
            with contextlib.suppress(OSError):
                if pid_file.stat().st_size > 0:
                    return
            time.sleep(0.01)
        raise NetBackendError(
            f"netdev passt: passt did not start within {PASST_START_TIMEOUT_S:.0f} s: "
            f"{self._passt_messages()}"
        )

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(PASST_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(PASST_EXIT_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._log.close()
        shutil.rmtree(self._rundir, ignore_errors=True)

    @property
    def connected(self) -> bool:
        """True while passt holds the other end of the link."""
        return self._link is not None and self._link.connected

    @property
    def dropped_tx_frames(self) -> int:
        return self._link.dropped_tx_frames if self._link is not None else 0

    def send(self, frame: bytes) -> None:
        if self._link is not None:
            self._link.send(frame)

    def start(self, receiver: FrameReceiver) -> None:
        if self._link is not None:
            self._link.start(receiver)

    def close(self) -> None:
        """Close the link (passt then exits by itself), wait for passt, remove its files. Idempotent."""
        if self._link is not None:
            self._link.close()
        self._stop()
