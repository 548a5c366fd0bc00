"""Network backends: where a virtio-net device's Ethernet frames go and come from.

A backend is the host side of a network link (QEMU's -netdev). The device
calls `send(frame)` from the vCPU thread for every frame the guest
transmits; the backend delivers received frames by calling the receiver
given to `start()` from a thread it owns. Backends never block the guest for
long and never raise from `send`: frames that cannot be delivered (no peer,
a peer that stopped reading, a dropped connection) are dropped and counted,
as a cable with nothing on the other end drops them.

`SocketNetBackend` links two VMs over a local stream socket (a unix socket
or loopback TCP). `PasstNetBackend` connects the guest to the host's network
in user mode through passt(1); `TapNetBackend` to a host TAP interface.

On a stream socket each frame is sent as a 4-byte big-endian length followed
by the raw Ethernet frame (no virtio-net header), the format QEMU's
``-netdev socket`` uses on TCP, so a kvmpy guest can talk to a QEMU guest.

`parse_netdev(spec)` builds a backend from a command-line spec. docs/virtio-notes.md
says how passt and TAP behave.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import queue
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kvmpy.vmm.errors import VmmError

log = logging.getLogger(__name__)

FrameReceiver = Callable[[bytes], None]

# The largest Ethernet frame carried (64 KiB of payload plus a VLAN-tagged
# header's worth): a virtio-net frame with its 12-byte header stays within
# 65550 bytes.
MAX_FRAME_LEN = 65550 - 12
LENGTH_PREFIX = struct.Struct(">I")
# Frames the guest transmitted that wait for the writer thread.
MAX_QUEUED_TX_FRAMES = 256
_READ_CHUNK_BYTES = 64 * 1024

# An address: a unix socket path, or a loopback (host, port).
Address = Path | tuple[str, int]


class NetBackend(Protocol):
    """The host end of a network link.

    - `send(frame)`: an Ethernet frame from the guest (no virtio-net
      header); must not block for long and must not raise (undeliverable
      frames are dropped).
    - `start(receiver)`: begin delivering frames; `receiver(frame)` is
      called from a thread the backend owns with one whole Ethernet frame
      (at most `MAX_FRAME_LEN` bytes) per call. Called at most once.
    - `close()`: stop delivering frames and release host resources.
      Idempotent.
    """

    def send(self, frame: bytes) -> None: ...

    def start(self, receiver: FrameReceiver) -> None: ...

    def close(self) -> None: ...


class NetBackendError(VmmError):
    """A network backend could not be opened (address in use, no listener to connect to...)."""


class FrameParser:
    """Reassembles length-prefixed frames from a byte stream split anywhere.

    Each frame is a 4-byte big-endian length then that many bytes. Frames
    longer than `max_frame_len` are skipped without being buffered (counted
    in `oversized`); zero-length frames are skipped (counted in `empty`).
    Every byte stream is acceptable: `feed` never raises, and buffers at
    most `max_frame_len` bytes plus a partial length prefix.
    """

    def __init__(self, max_frame_len: int = MAX_FRAME_LEN) -> None:
        self.max_frame_len = max_frame_len
        self.oversized = 0
        self.empty = 0
        self._prefix = bytearray()
        self._want = -1  # bytes still expected for the current frame; -1 = reading a prefix
        self._skip = False
        self._frame = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Consume `data`; return the frames it completed, in order."""
        frames: list[bytes] = []
        view = memoryview(data)
        while view:
            if self._want < 0:
                take = LENGTH_PREFIX.size - len(self._prefix)
                self._prefix += view[:take]
                view = view[take:]
                if len(self._prefix) < LENGTH_PREFIX.size:
                    break
                (length,) = LENGTH_PREFIX.unpack(self._prefix)
                self._prefix.clear()
                if length == 0:
                    self.empty += 1
                    continue
                self._want = length
                self._skip = length > self.max_frame_len
                if self._skip:
                    self.oversized += 1
                continue
            chunk = view[: self._want]
            view = view[self._want :]
            self._want -= len(chunk)
            if not self._skip:
                self._frame += chunk
            if self._want == 0:
                self._want = -1
                if not self._skip:
                    frames.append(bytes(self._frame))
                self._frame.clear()
                self._skip = False
        return frames


def encode_frame(frame: bytes) -> bytes:
    """One frame in the stream format: its 4-byte big-endian length, then the frame."""
    return LENGTH_PREFIX.pack(len(frame)) + frame


def check_loopback(host: str) -> str:
    """Return `host` as a literal loopback address ("localhost" is 127.0.0.1); ValueError otherwise."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"netdev socket: host {host!r} is not an IP address (only loopback is allowed)"
        ) from None
    if not addr.is_loopback:
        raise ValueError(
            f"netdev socket: host {host} is not a loopback address (only 127.0.0.0/8 and ::1 are allowed)"
        )
    return str(addr)


def _describe(address: Address) -> str:
    return f"unix socket {address}" if isinstance(address, Path) else f"tcp {address[0]}:{address[1]}"


def _new_socket(address: Address) -> socket.socket:
    if isinstance(address, Path):
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM)


class SocketNetBackend:
    """A point-to-point link over a stream socket, to another kvmpy or a QEMU guest.

    Exactly one of `listen` / `connect` / `connected` is given: a `Path`
    (unix socket) or a loopback `(host, port)` (TCP; other hosts raise
    ValueError), or an already connected stream socket (passt's end of a
    socketpair; `label` names it in log messages). Listening or connecting
    happens in the constructor, so an address in use or a peer that is not
    there is reported (`NetBackendError`) before the VM runs.

    A listening backend serves one peer at a time: a second connection is
    closed at once; after the peer disconnects, the next one is accepted. A
    connecting backend does not reconnect: once its peer is gone the link
    stays down. While no peer is connected, sent frames are dropped.

    Threads: one reader per connection (received frames go to the
    receiver), one writer (so `send` never blocks: it queues at most
    `MAX_QUEUED_TX_FRAMES` frames and drops beyond), and, when listening,
    one acceptor. No exception escapes any of them.
    """

    def __init__(
        self,
        *,
        listen: Address | None = None,
        connect: Address | None = None,
        connected: socket.socket | None = None,
        label: str = "",
    ) -> None:
        given = [a for a in (listen, connect, connected) if a is not None]
        if len(given) != 1:
            raise ValueError("SocketNetBackend needs exactly one of listen=, connect= or connected=")
        self._address: Address | None = None
        if connected is None:
            address = listen if listen is not None else connect
            assert address is not None
            if not isinstance(address, Path):
                address = (check_loopback(address[0]), address[1])
            self._address = address
            label = label or _describe(address)
        # What log messages call the link.
        self._label = label or "connected socket"
        self._listening = listen is not None
        self._lock = threading.Lock()
        self._peer: socket.socket | None = None
        self._receiver: FrameReceiver | None = None
        self._receiver_set = threading.Event()
        self._closed = threading.Event()
        self._tx: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUED_TX_FRAMES)
        self._dropped_tx = 0
        self._oversized_rx = 0
        self._listener: socket.socket | None = None
        if connected is not None:
            self._attach(connected)
        elif self._listening:
            assert self._address is not None
            self._listener = self._open_listener(self._address)
            threading.Thread(target=self._accept_loop, name="net-accept", daemon=True).start()
        else:
            assert self._address is not None
            self._attach(self._open_connection(self._address))
        threading.Thread(target=self._write_loop, name="net-write", daemon=True).start()

    @staticmethod
    def _open_listener(address: Address) -> socket.socket:
        sock = _new_socket(address)
        try:
            if isinstance(address, Path):
                if address.is_socket():
                    address.unlink()  # a stale socket from an earlier run
                sock.bind(str(address))
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
            sock.listen(1)
        except OSError as exc:
            sock.close()
            raise NetBackendError(f"cannot listen on {_describe(address)}: {exc.strerror or exc}") from exc
        return sock

    @staticmethod
    def _open_connection(address: Address) -> socket.socket:
        sock = _new_socket(address)
        try:
            sock.connect(str(address) if isinstance(address, Path) else address)
        except OSError as exc:
            sock.close()
            raise NetBackendError(f"cannot connect to {_describe(address)}: {exc.strerror or exc}") from exc
        return sock

    # -- public ----------------------------------------------------------------

    @property
    def address(self) -> Address | None:
        """Where the backend listens or connects (None for a `connected=` socket).

        For a TCP listener, the real port (if 0 was asked).
        """
        if self._listener is not None and not isinstance(self._address, Path):
            name = self._listener.getsockname()
            return (name[0], name[1])
        return self._address

    @property
    def connected(self) -> bool:
        """True while a peer is attached."""
        return self._peer is not None

    @property
    def dropped_tx_frames(self) -> int:
        """Frames from the guest dropped (no peer, writer queue full, or too large)."""
        with self._lock:
            return self._dropped_tx

    @property
    def oversized_rx_frames(self) -> int:
        """Frames from the peer skipped because they exceeded `MAX_FRAME_LEN`."""
        with self._lock:
            return self._oversized_rx

    def send(self, frame: bytes) -> None:
        """Queue `frame` for the peer; dropped if there is none, it is too large, or the queue is full."""
        if self._closed.is_set() or self._peer is None or not frame or len(frame) > MAX_FRAME_LEN:
            self._count_tx_drop()
            return
        try:
            self._tx.put_nowait(encode_frame(frame))
        except queue.Full:
            self._count_tx_drop()

    def start(self, receiver: FrameReceiver) -> None:
        """Begin delivering received frames to `receiver` (from the reader thread)."""
        self._receiver = receiver
        self._receiver_set.set()

    def close(self) -> None:
        """Disconnect, stop every thread and remove a unix listening socket. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._receiver_set.set()
        with contextlib.suppress(queue.Full):
            self._tx.put_nowait(None)
        with self._lock:
            if self._peer is not None:
                self._drop_peer_locked(self._peer)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            if isinstance(self._address, Path):
                with contextlib.suppress(OSError):
                    self._address.unlink()

    # -- internals -------------------------------------------------------------

    def _count_tx_drop(self) -> None:
        with self._lock:
            self._dropped_tx += 1

    def _attach(self, peer: socket.socket) -> bool:
        with self._lock:
            if self._peer is not None or self._closed.is_set():
                busy = True
            else:
                self._peer = peer
                busy = False
        if busy:
            peer.close()
            return False
        threading.Thread(target=self._read_loop, args=(peer,), name="net-read", daemon=True).start()
        return True

    def _drop_peer_locked(self, peer: socket.socket) -> None:
        if self._peer is peer:
            self._peer = None
        with contextlib.suppress(OSError):
            peer.shutdown(socket.SHUT_RDWR)
        peer.close()

    def _drop_peer(self, peer: socket.socket) -> None:
        with self._lock:
            self._drop_peer_locked(peer)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                peer, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            if self._attach(peer):
                log.info("netdev: peer connected on %s", self._label)

    def _read_loop(self, peer: socket.socket) -> None:
        parser = FrameParser()
        self._receiver_set.wait()
        while not self._closed.is_set():
            try:
                data = peer.recv(_READ_CHUNK_BYTES)
            except OSError:
                data = b""
            if not data:
                log.info("netdev: peer on %s disconnected", self._label)
                self._drop_peer(peer)
                return
            frames = parser.feed(data)
            with self._lock:
                self._oversized_rx = parser.oversized
            receiver = self._receiver
            if receiver is None:
                continue
            for frame in frames:
                try:
                    receiver(frame)
                except Exception:  # a receiver bug must not kill the link
                    log.exception("netdev: frame receiver failed")

    def _write_loop(self) -> None:
        while True:
            data = self._tx.get()
            if data is None or self._closed.is_set():
                return
            peer = self._peer
            if peer is None:
                self._count_tx_drop()
                continue
            try:
                peer.sendall(data)
            except OSError:
                self._count_tx_drop()
                self._drop_peer(peer)


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
                frame = os.read(fd, _READ_CHUNK_BYTES + 4096)
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


def _parse_tap_options(rest: str) -> str:
    """The ifname of a ``tap,ifname=NAME`` spec (the part after ``tap,``)."""
    ifname: str | None = None
    for item in rest.split(",") if rest else []:
        key, eq, value = item.partition("=")
        if not eq or key != "ifname":
            raise ValueError(f"netdev tap: unknown option {item!r} (expected ifname=NAME)")
        if ifname is not None:
            raise ValueError("netdev tap: option ifname= given twice")
        ifname = value
    if ifname is None:
        raise ValueError("netdev tap: needs ifname=NAME")
    return check_ifname(ifname)


def _parse_address(value: str, what: str) -> Address:
    """A ``listen=``/``connect=`` value: HOST:PORT (loopback TCP) if it looks like one, else a unix path."""
    if not value:
        raise ValueError(f"netdev socket: {what}= needs a unix socket path or HOST:PORT")
    host, sep, port = value.rpartition(":")
    if sep and "/" not in value and port.isdigit():
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not host:
            raise ValueError(f"netdev socket: {what}={value} has no host (use 127.0.0.1:PORT)")
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError(f"netdev socket: port {number} is out of range")
        return (check_loopback(host), number)
    if sep and "/" not in value:
        # "127.0.0.1:abc" or "host:" is a mistyped TCP address, not a file name.
        raise ValueError(f"netdev socket: {what}={value}: port {port!r} is not a number")
    return Path(value)


def parse_netdev(spec: str) -> NetBackend:
    """Build a backend from a netdev spec; ValueError (one line) if the spec is bad.

    Accepted: ``socket,listen=PATH``, ``socket,connect=PATH`` (unix socket),
    ``socket,listen=HOST:PORT``, ``socket,connect=HOST:PORT`` (TCP, HOST a
    loopback address or localhost), ``passt`` (user-mode networking through
    passt(1)) and ``tap,ifname=NAME`` (a host TAP interface; needs
    CAP_NET_ADMIN to create it). Opening may raise `NetBackendError`.
    """
    kind, _, rest = spec.partition(",")
    if kind == "passt":
        if rest:
            raise ValueError(f"netdev passt: unknown option {rest.split(',')[0]!r} (passt takes none)")
        return PasstNetBackend()
    if kind == "tap":
        return TapNetBackend(_parse_tap_options(rest))
    if kind != "socket":
        raise ValueError(f"netdev: unsupported type {kind!r} (supported: socket, passt, tap)")
    options: dict[str, str] = {}
    for item in rest.split(",") if rest else []:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"netdev socket: option {item!r} is not KEY=VALUE")
        if key not in ("listen", "connect"):
            raise ValueError(f"netdev socket: unknown option {key!r} (expected listen= or connect=)")
        if key in options:
            raise ValueError(f"netdev socket: option {key}= given twice")
        options[key] = value
    if len(options) != 1:
        raise ValueError("netdev socket: needs exactly one of listen= or connect=")
    ((key, value),) = options.items()
    address = _parse_address(value, key)
    if key == "listen":
        return SocketNetBackend(listen=address)
    return SocketNetBackend(connect=address)
