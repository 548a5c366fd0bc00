"""`SocketNetBackend`: a point-to-point link over a unix or loopback TCP stream socket."""


from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import socket
import threading
from pathlib import Path

from kvmpy.vmm.net.backend import (
    MAX_FRAME_LEN,
    MAX_QUEUED_TX_FRAMES,
    READ_CHUNK_BYTES,
    FrameParser,
    FrameReceiver,
    NetBackendError,
    encode_frame,
)

log = logging.getLogger(__name__)

# An address: a unix socket path, or a loopback (host, port).
Address = Path | tuple[str, int]


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
                data = peer.recv(READ_CHUNK_BYTES)
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
