"""Serial backends: where a UART's output goes and where its input comes from.

A backend is the host side of a serial line (QEMU's chardev). The UART
model calls `write()` from the vCPU thread for every transmitted byte; the
backend delivers input by calling the receiver given to `start()` from a
thread the backend owns. Backends never block the guest for long: output
that cannot be delivered (no client connected, a full socket buffer, a
closed pipe) is dropped, as a real line with nothing attached drops it.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import select
import signal
import termios
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.sockets import ListenSpec, SocketListener, SocketListenError, parse_listen_spec

log = logging.getLogger(__name__)

Receiver = Callable[[bytes], None]

CTRL_A = 0x01
_READ_CHUNK_BYTES = 1024


class SerialBackend(Protocol):
    """The host end of a serial line.

    - `write(data)`: output from the guest; must not block for long and must
      not raise (undeliverable output is dropped).
    - `start(receiver)`: begin delivering input; `receiver(data)` is called
      from a thread the backend owns, never from the caller of `write`.
      Called at most once.
    - `close()`: stop delivering input, release host resources (restore the
      terminal, close sockets). Idempotent.
    """

    def write(self, data: bytes) -> None: ...

    def start(self, receiver: Receiver) -> None: ...

    def close(self) -> None: ...


class SerialOpenError(VmmError):
    """A serial backend could not be opened (file not writable, port in use...)."""


class NullSerial:
    """A line with nothing attached: output is discarded, no input ever arrives."""

    def write(self, data: bytes) -> None:
        pass

    def start(self, receiver: Receiver) -> None:
        pass

    def close(self) -> None:
        pass


class BufferSerial:
    """Collects output in `output`; `feed()` injects input. For tests and scripting.

    Input fed before `start()` is held and delivered when `start()` is
    called. After `start()`, `feed()` calls the receiver synchronously in the
    caller's thread (the caller plays the backend's input thread).
    """

    def __init__(self) -> None:
        self.output = bytearray()
        self._lock = threading.Lock()
        self._receiver: Receiver | None = None
        self._pending = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        with self._lock:
            self.output += data

    def start(self, receiver: Receiver) -> None:
        with self._lock:
            self._receiver = receiver
            pending, self._pending = bytes(self._pending), bytearray()
        if pending:
            receiver(pending)

    def feed(self, data: bytes) -> None:
        with self._lock:
            receiver = self._receiver
            if receiver is None:
                self._pending += data
                return
        receiver(data)

    def take(self) -> bytes:
        """Return and clear the output collected so far."""
        with self._lock:
            out, self.output = bytes(self.output), bytearray()
        return out

    def close(self) -> None:
        self.closed = True


class FileSerial:
    """Output appended to a file; no input. Flushed at each newline and at close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = open(path, "ab")  # noqa: SIM115 - lives until close()
        except OSError as exc:
            raise SerialOpenError(f"cannot open serial output file {path}: {exc.strerror}") from exc
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.write(data)
                if b"\n" in data:
                    self._file.flush()
            except OSError as exc:
                log.warning("serial output to %s failed: %s", self.path, exc)

    def start(self, receiver: Receiver) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                with contextlib.suppress(OSError):
                    self._file.close()


class SocketSerial:
    """A listening TCP or unix socket; one client at a time is the serial line.

    Listening starts in the constructor, so a port in use is reported before
    the VM runs. A client connecting while another is attached is refused
    (closed at once). Output while no client is attached, or that the
    client's socket buffer cannot take right now, is dropped: the guest is
    never stalled by a slow or absent client.
    """

    def __init__(self, *, tcp: tuple[str, int] | None = None, unix_path: Path | None = None) -> None:
        if (tcp is None) == (unix_path is None):
            raise ValueError("SocketSerial needs exactly one of tcp=(host, port) or unix_path=")
        self.unix_path = unix_path
        self._receiver: Receiver | None = None
        self._receiver_set = threading.Event()
        spec = ListenSpec(unix_path=unix_path) if tcp is None else ListenSpec(host=tcp[0], port=tcp[1])
        try:
            self._socket = SocketListener(spec, name="serial", on_data=self._deliver)
        except SocketListenError as exc:
            raise SerialOpenError(str(exc)) from exc

    @property
    def address(self) -> tuple[str, int] | str:
        """Where the socket listens: (host, port) for TCP (the real port if 0 was asked), or the path."""
        return self._socket.address

    @property
    def connected(self) -> bool:
        return self._socket.connected

    def write(self, data: bytes) -> None:
        self._socket.send_nowait(data)  # a client not reading loses output rather than stall the guest

    def start(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._receiver_set.set()

    def close(self) -> None:
        self._receiver_set.set()
        self._socket.close()

    def _deliver(self, data: bytes) -> None:
        self._receiver_set.wait()  # input that arrives before start() waits for the receiver
        receiver = self._receiver
        if receiver is not None:
            receiver(data)


class _EscapeState(Enum):
    NORMAL = 0
    AFTER_CTRL_A = 1


class EscapeFilter:
    """The console escape: Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A.

    Ctrl-A h prints a help line; Ctrl-A followed by anything else is
    swallowed (as QEMU's mux does). The state survives across chunks, so a
    Ctrl-A at the end of one read and the `x` at the start of the next still
    quit.
    """

    HELP = b"\r\nC-a x    exit\r\nC-a C-a  send C-a\r\nC-a h    this help\r\n"

    def __init__(self) -> None:
        self._state = _EscapeState.NORMAL

    def feed(self, data: bytes) -> tuple[bytes, bool, bool]:
        """Filter a chunk of input: (bytes for the guest, quit requested, help requested)."""
        out = bytearray()
        quit_requested = help_requested = False
        for byte in data:
            if self._state is _EscapeState.AFTER_CTRL_A:
                self._state = _EscapeState.NORMAL
                if byte in (ord("x"), ord("X")):
                    quit_requested = True
                    break
                if byte == CTRL_A:
                    out.append(CTRL_A)
                elif byte in (ord("h"), ord("H"), ord("?")):
                    help_requested = True
            elif byte == CTRL_A:
                self._state = _EscapeState.AFTER_CTRL_A
            else:
                out.append(byte)
        return bytes(out), quit_requested, help_requested


class StdioSerial:
    """The process's stdin/stdout as the serial line.

    When stdin is a terminal it is put in raw mode (keys reach the guest
    unprocessed, Ctrl-C included; output post-processing stays on as QEMU
    keeps it) and `EscapeFilter` is applied: Ctrl-A x calls `on_quit`. The
    terminal is restored by `close()`, at interpreter exit (atexit), and on
    SIGTERM/SIGHUP (the handler restores, then re-delivers the signal with
    its default action). When stdin is not a terminal, input is read as is
    and no escape applies. End of input just stops input.

    `stdin_fd` / `stdout_fd` default to 0 and 1; tests pass a pty.
    """

    def __init__(
        self,
        on_quit: Callable[[], None],
        *,
        stdin_fd: int | None = None,
        stdout_fd: int | None = None,
    ) -> None:
        self._on_quit = on_quit
        self._in_fd = 0 if stdin_fd is None else stdin_fd
        self._out_fd = 1 if stdout_fd is None else stdout_fd
        self._saved_attrs: list | None = None
        self._saved_handlers: dict[int, object] = {}
        self._escape: EscapeFilter | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._out_lock = threading.Lock()
        self.is_tty = _isatty(self._in_fd)
        if self.is_tty:
            self._enter_raw_mode()

    # ------------------------------------------------------------------ terminal
    def _enter_raw_mode(self) -> None:
        try:
            self._saved_attrs = termios.tcgetattr(self._in_fd)
            tty.setraw(self._in_fd, termios.TCSANOW)
            attrs = termios.tcgetattr(self._in_fd)
            attrs[1] |= termios.OPOST | termios.ONLCR  # oflag: "\n" from the host's own messages still works
            termios.tcsetattr(self._in_fd, termios.TCSANOW, attrs)
        except termios.error as exc:
            self._saved_attrs = None
            raise SerialOpenError(f"cannot put the terminal in raw mode: {exc}") from exc
        self._escape = EscapeFilter()
        atexit.register(self.restore_terminal)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGHUP):
                self._saved_handlers[signum] = signal.signal(signum, self._on_fatal_signal)

    def restore_terminal(self) -> None:
        """Put the terminal back as it was (safe to call more than once, from atexit too)."""
        attrs, self._saved_attrs = self._saved_attrs, None
        if attrs is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self._in_fd, termios.TCSAFLUSH, attrs)

    def _on_fatal_signal(self, signum: int, _frame: object) -> None:
        self.restore_terminal()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    # ------------------------------------------------------------------ backend
    def write(self, data: bytes) -> None:
        with self._out_lock:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._out_fd, view)
                except InterruptedError:
                    continue
                except OSError:
                    return  # stdout closed (EPIPE, EIO): drop
                view = view[n:]

    def start(self, receiver: Receiver) -> None:
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(
            target=self._read_loop, args=(receiver,), name="serial-stdin", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self.restore_terminal()
        with contextlib.suppress(ValueError):
            atexit.unregister(self.restore_terminal)
        for signum, handler in self._saved_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)  # type: ignore[arg-type]
        self._saved_handlers.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read_loop(self, receiver: Receiver) -> None:
        while not self._closed:
            try:
                ready, _, _ = select.select([self._in_fd, self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._closed:
                return
            try:
                data = os.read(self._in_fd, _READ_CHUNK_BYTES)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    return
                continue
            if not data:
                return  # end of input: the line stays open for output
            if self._escape is None:
                receiver(data)
                continue
            to_guest, quit_requested, help_requested = self._escape.feed(data)
            if to_guest:
                receiver(to_guest)
            if help_requested:
                self.write(EscapeFilter.HELP)
            if quit_requested:
                self._on_quit()
                return


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


# ---------------------------------------------------------------------- specs
class SerialKind(Enum):
    STDIO = "stdio"
    NONE = "none"
    FILE = "file"
    TCP = "tcp"
    UNIX = "unix"


@dataclass(frozen=True)
class SerialSpec:
    """A parsed `--serial` value."""

    kind: SerialKind
    path: Path | None = None
    host: str = ""
    port: int = 0


SPEC_HELP = "stdio, none, file:PATH, tcp:[HOST]:PORT (HOST defaults to 127.0.0.1) or unix:PATH"


def parse_serial_spec(spec: str) -> SerialSpec:
    """Parse a serial spec without opening anything; ValueError (one line) if malformed."""
    kind, sep, rest = spec.partition(":")
    if kind in ("stdio", "none"):
        if sep:
            raise ValueError(f"serial spec {spec!r}: {kind!r} takes no argument")
        return SerialSpec(SerialKind(kind))
    if kind == "file":
        if not rest:
            raise ValueError(f"serial spec {spec!r}: file: needs a path")
        return SerialSpec(SerialKind.FILE, path=Path(rest))
    if kind in ("tcp", "unix"):
        try:
            where = parse_listen_spec(spec)
        except ValueError as exc:
            raise ValueError(f"serial {exc}") from None
        if where.unix_path is not None:
            return SerialSpec(SerialKind.UNIX, path=where.unix_path)
        return SerialSpec(SerialKind.TCP, host=where.host, port=where.port)
    raise ValueError(f"unknown serial spec {spec!r}: use {SPEC_HELP}")


def open_serial(spec: str, on_quit: Callable[[], None]) -> SerialBackend:
    """Open the backend a `--serial` spec names.

    Raises ValueError for a malformed spec and SerialOpenError (a VmmError)
    when the host resource cannot be opened.
    """
    parsed = parse_serial_spec(spec)
    match parsed.kind:
        case SerialKind.STDIO:
            return StdioSerial(on_quit)
        case SerialKind.NONE:
            return NullSerial()
        case SerialKind.FILE:
            assert parsed.path is not None
            return FileSerial(parsed.path)
        case SerialKind.TCP:
            return SocketSerial(tcp=(parsed.host, parsed.port))
        case SerialKind.UNIX:
            return SocketSerial(unix_path=parsed.path)
    raise AssertionError(parsed.kind)  # pragma: no cover - the match is exhaustive
