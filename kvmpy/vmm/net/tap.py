"""`TapNetBackend`: a host TAP interface."""


from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import threading

from kvmpy.vmm.net.backend import MAX_FRAME_LEN, READ_CHUNK_BYTES, FrameReceiver, NetBackendError

log = logging.getLogger(__name__)

TUN_DEVICE = "/dev/net/tun"
# linux/if_tun.h: _IOW('T', 202, int), and the flags for a TAP without packet information.
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16  # including the terminating NUL
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: ifr_name, ifr_flags, padding to 40 bytes
# How often the TAP reader looks whether it was closed (a read cannot be interrupted otherwise).
_TAP_POLL_MS = 200


def check_ifname(name: str) -> str:
    """`name` if it is a valid Linux interface name; ValueError (one line) otherwise."""
    if not name or len(name.encode()) >= IFNAMSIZ or name in (".", "..") or any(
        c in name for c in "/: \t\n\0"
    ):
        raise ValueError(
            f"netdev tap: ifname={name!r} is not an interface name (1-15 characters, no / : or space)"
        )
    return name


class TapNetBackend:
    """A host TAP interface: the guest's frames appear on `ifname` in the host's network stack.

    Opens (creating it if it does not exist) TAP interface `ifname` with
    IFF_TAP | IFF_NO_PI, so each read(2) is one whole Ethernet frame and
    each write(2) sends one. Creating an interface needs CAP_NET_ADMIN (an
    existing persistent one, made with `ip tuntap add mode tap user ME`, does
    not). The interface is not configured here: give it an address and bring
    it up on the host (`ip addr add 10.0.2.1/24 dev tap0; ip link set tap0 up`).
    A non-persistent interface disappears when the backend closes.

    One reader thread delivers frames; `send` writes directly (a TAP write
    never waits: the kernel queues the frame or drops it).
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = check_ifname(ifname)
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NetBackendError(f"netdev tap: {TUN_DEVICE} does not exist (no TUN/TAP support)") from None
        except OSError as exc:
            raise NetBackendError(f"netdev tap: cannot open {TUN_DEVICE}: {exc.strerror}") from exc
        try:
            fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(self.ifname.encode(), IFF_TAP | IFF_NO_PI))
        except OSError as exc:
            os.close(fd)
            why = exc.strerror
            if exc.errno == errno.EPERM:
                why = "not permitted (creating a TAP interface needs root or CAP_NET_ADMIN)"
            elif exc.errno == errno.EBUSY:
                why = "the interface is in use by another program"
            elif exc.errno == errno.EINVAL:
                why = "an interface of that name exists and is not a TAP interface"
            raise NetBackendError(f"netdev tap: cannot attach to {self.ifname}: {why}") from exc
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._receiver: FrameReceiver | None = None
        self._receiver_set = threading.Event()
        self._dropped_tx = 0
        self._reader = threading.Thread(target=self._read_loop, args=(fd,), name="net-tap-read", daemon=True)
        self._reader.start()

    @property
    def dropped_tx_frames(self) -> int:
        with self._lock:
            return self._dropped_tx

    def send(self, frame: bytes) -> None:
        """Write `frame` to the interface; dropped (and counted) if the kernel does not take it."""
        fd = self._fd
        if fd is None or self._closed.is_set() or not frame or len(frame) > MAX_FRAME_LEN:
            self._count_drop()
            return
        try:
            os.write(fd, frame)
        except OSError:  # interface down (EIO), queue full (EAGAIN), closed under us (EBADF)
            self._count_drop()

    def start(self, receiver: FrameReceiver) -> None:
        self._receiver = receiver
        self._receiver_set.set()

    def close(self) -> None:
        """Stop the reader and close the interface's file descriptor. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._receiver_set.set()
        if self._reader is not threading.current_thread():
            self._reader.join(2 * _TAP_POLL_MS / 1000)
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _count_drop(self) -> None:
        with self._lock:
            self._dropped_tx += 1

    def _read_loop(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        self._receiver_set.wait()
        while not self._closed.is_set():
            try:
                if not poller.poll(_TAP_POLL_MS):
                    continue
                frame = os.read(fd, READ_CHUNK_BYTES + 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                if not self._closed.is_set():
                    log.warning("netdev tap %s: read failed: %s", self.ifname, exc)
                return
            receiver = self._receiver
            if not frame or receiver is None:
                continue
            try:
                receiver(frame)
            except Exception:  # a receiver bug must not kill the link
                log.exception("netdev: frame receiver failed")
