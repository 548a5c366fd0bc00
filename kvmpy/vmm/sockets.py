"""Listening sockets that serve one client at a time (serial lines, the gdb stub).

Both users want the same thing from a socket: listen on `tcp:[HOST]:PORT`
or `unix:PATH`, report a port in use before the VM runs, attach one client,
refuse (close at once) any other client while one is attached, and hand
received bytes to a callback on a thread the listener owns. They differ in
what happens to output: a serial line drops what the client cannot take now
(the guest must never stall), a debugger connection must deliver every byte.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kvmpy.vmm.errors import VmmError

_READ_CHUNK_BYTES = 4096

LISTEN_SPEC_HELP = "tcp:[HOST]:PORT (HOST defaults to 127.0.0.1) or unix:PATH"


class SocketListenError(VmmError):
    """A listening socket could not be opened (port in use, path not writable...)."""


@dataclass(frozen=True)
class ListenSpec:
    """Where to listen: a TCP (host, port) or a unix socket path (exactly one is set)."""

    host: str = ""
    port: int = 0
    unix_path: Path | None = None

    @property
    def is_unix(self) -> bool:
        return self.unix_path is not None

    def describe(self) -> str:
        if self.unix_path is not None:
            return f"unix socket {self.unix_path}"
        return f"tcp {self.host}:{self.port}"


def parse_listen_spec(spec: str) -> ListenSpec:
    """Parse `tcp:[HOST]:PORT` or `unix:PATH`; ValueError (one line) if malformed.

    HOST may be bracketed (`tcp:[::1]:1234`) and defaults to 127.0.0.1: a
    listener reachable from other machines must be asked for explicitly.
    """
    kind, sep, rest = spec.partition(":")
    if kind == "unix":
        if not rest:
            raise ValueError(f"socket spec {spec!r}: unix: needs a path")
        return ListenSpec(unix_path=Path(rest))
    if kind == "tcp" and sep:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise ValueError(f"socket spec {spec!r}: expected tcp:[HOST]:PORT")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"socket spec {spec!r}: port must be a number 0..65535")
        return ListenSpec(host=host or "127.0.0.1", port=int(port_text))
    raise ValueError(f"socket spec {spec!r}: use {LISTEN_SPEC_HELP}")


class SocketListener:
    """A listening socket with at most one attached client.

    Listening starts in the constructor (SocketListenError if it cannot).
    For each accepted client, `on_connect()` runs on the accept thread before
    any of its data is delivered; `on_data(bytes)` then runs on a reader
    thread owned by the listener, and `on_disconnect()` once the client is
    gone (it closed, an I/O error, `disconnect()` or `close()`). A client
    connecting while another is attached is closed at once and never seen by
    the callbacks.
    """

    def __init__(
        self,
        spec: ListenSpec,
        *,
        name: str,
        on_data: Callable[[bytes], None],
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self._name = name
        self._on_data = on_data
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._lock = threading.Lock()
        self._client: socket.socket | None = None
        self._closed = threading.Event()
        try:
            if spec.unix_path is not None:
                if spec.unix_path.is_socket():
                    spec.unix_path.unlink()  # a stale socket from an earlier run
                self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._listener.bind(str(spec.unix_path))
            else:
                family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
                self._listener = socket.socket(family, socket.SOCK_STREAM)
                self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._listener.bind((spec.host, spec.port))
            self._listener.listen(1)
        except OSError as exc:
            raise SocketListenError(f"cannot listen on {spec.describe()}: {exc.strerror or exc}") from exc
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self._accept_thread.start()

    @property
    def address(self) -> tuple[str, int] | str:
        """Where the socket listens: (host, port) for TCP (the real port if 0 was asked), or the path."""
        name = self._listener.getsockname()
        return name if isinstance(name, str) else (name[0], name[1])

    @property
    def connected(self) -> bool:
        return self._client is not None

    def send_nowait(self, data: bytes) -> None:
        """Send what the client's socket buffer takes right now; drop the rest (never blocks)."""
        with self._lock:
            client = self._client
            if client is None:
                return
            try:
                client.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError:
                self._drop_locked(client)

    def send_all(self, data: bytes, *, timeout_s: float = 10.0) -> bool:
        """Send every byte to the attached client; False if there is none or it failed.

        A client that takes nothing for `timeout_s` is disconnected, so a
        stuck peer cannot hold the sending thread forever.
        """
        with self._lock:
            client = self._client
        if client is None:
            return False
        try:
            client.settimeout(timeout_s)
            client.sendall(data)
            return True
        except OSError:
            with self._lock:
                self._drop_locked(client)
            return False

    def disconnect(self) -> None:
        """Drop the attached client (if any); the listener keeps accepting."""
        with self._lock:
            if self._client is not None:
                self._drop_locked(self._client)

    def close(self) -> None:
        """Stop listening and drop the client. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.disconnect()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self.spec.unix_path is not None:
            with contextlib.suppress(OSError):
                self.spec.unix_path.unlink()

    def _drop_locked(self, client: socket.socket) -> None:
        if self._client is client:
            self._client = None
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _peer = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                busy = self._client is not None or self._closed.is_set()
                if not busy:
                    self._client = client
            if busy:
                client.close()
                continue
            if self.spec.unix_path is None:
                # Request/reply traffic (a gdb packet after its '+', a typed key's echo) must
                # not wait for the peer's delayed ACK.
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._on_connect is not None:
                self._on_connect()
            reader = threading.Thread(
                target=self._read_loop, args=(client,), name=f"{self._name}-read", daemon=True
            )
            reader.start()

    def _read_loop(self, client: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = client.recv(_READ_CHUNK_BYTES)
            except TimeoutError:
                continue  # a send_all() timeout was set on the socket; reading just waits on
            except OSError:
                data = b""
            if not data:
                break
            self._on_data(data)
        with self._lock:
            self._drop_locked(client)
        if self._on_disconnect is not None:
            self._on_disconnect()
