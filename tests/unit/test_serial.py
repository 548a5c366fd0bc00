"""Serial backends: spec parsing, buffers, files, sockets, the terminal (through a pty)."""

from __future__ import annotations

import contextlib
import os
import pty
import socket
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.serial import (
    BufferSerial,
    EscapeFilter,
    FileSerial,
    NullSerial,
    SerialKind,
    SerialOpenError,
    SerialSpec,
    SocketSerial,
    StdioSerial,
    open_serial,
    parse_serial_spec,
)

REPO = Path(__file__).resolve().parents[2]


def _never_quit() -> None:
    raise AssertionError("on_quit called")


class Collector:
    def __init__(self) -> None:
        self.data = bytearray()
        self.cond = threading.Condition()

    def __call__(self, data: bytes) -> None:
        with self.cond:
            self.data += data
            self.cond.notify_all()

    def wait_for(self, expected: bytes, timeout_s: float = 5.0) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: len(self.data) >= len(expected), timeout_s)
            return bytes(self.data)


def _recv_exactly(sock: socket.socket, n: int, timeout_s: float = 5.0) -> bytes:
    sock.settimeout(timeout_s)
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _wait_until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("stdio", SerialSpec(SerialKind.STDIO)),
        ("none", SerialSpec(SerialKind.NONE)),
        ("file:/tmp/out.log", SerialSpec(SerialKind.FILE, path=Path("/tmp/out.log"))),
        ("file:a:b", SerialSpec(SerialKind.FILE, path=Path("a:b"))),
        ("unix:/run/x.sock", SerialSpec(SerialKind.UNIX, path=Path("/run/x.sock"))),
        ("tcp:127.0.0.1:4444", SerialSpec(SerialKind.TCP, host="127.0.0.1", port=4444)),
        ("tcp::4444", SerialSpec(SerialKind.TCP, host="127.0.0.1", port=4444)),
        ("tcp:0.0.0.0:0", SerialSpec(SerialKind.TCP, host="0.0.0.0", port=0)),
        ("tcp:[::1]:23", SerialSpec(SerialKind.TCP, host="::1", port=23)),
    ],
)
def test_parse_valid_specs(spec: str, expected: SerialSpec) -> None:
    assert parse_serial_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "bogus",
        "stdio:x",
        "none:",
        "file:",
        "unix:",
        "tcp:",
        "tcp:4444",
        "tcp:h:x",
        "tcp:h:70000",
        "tcp:h:-1",
    ],
)
def test_parse_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_serial_spec(spec)
    assert "\n" not in str(e.value)


@given(st.text(max_size=30))
def test_parse_never_raises_anything_but_value_error(spec: str) -> None:
    try:
        parsed = parse_serial_spec(spec)
    except ValueError:
        return
    assert isinstance(parsed, SerialSpec)


# ---------------------------------------------------------------------- simple backends
def test_null_serial_discards() -> None:
    s = open_serial("none", _never_quit)
    assert isinstance(s, NullSerial)
    s.write(b"gone")
    s.start(lambda data: None)
    s.close()


def test_buffer_serial_collects_output_and_holds_early_input() -> None:
    b = BufferSerial()
    b.write(b"ab")
    b.write(b"c")
    assert b.output == b"abc"
    assert b.take() == b"abc" and b.output == b""
    got = Collector()
    b.feed(b"early")
    b.start(got)
    assert got.data == b"early"
    b.feed(b"!")
    assert got.data == b"early!"


def test_file_serial_appends(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"old\n")
    s = open_serial(f"file:{path}", _never_quit)
    assert isinstance(s, FileSerial)
    s.write(b"line one\n")
    assert path.read_bytes() == b"old\nline one\n"  # flushed at newline
    s.write(b"partial")
    s.close()
    s.write(b"after close")  # dropped, no error
    assert path.read_bytes() == b"old\nline one\npartial"


def test_file_serial_open_error_is_a_vmm_error(tmp_path: Path) -> None:
    with pytest.raises(SerialOpenError) as e:
        open_serial(f"file:{tmp_path}/missing-dir/out.log", _never_quit)
    assert isinstance(e.value, VmmError) and "\n" not in str(e.value)


# ---------------------------------------------------------------------- sockets
def test_tcp_serial_one_client_both_directions() -> None:
    s = open_serial("tcp:127.0.0.1:0", _never_quit)
    assert isinstance(s, SocketSerial)
    try:
        host, port = s.address
        assert host == "127.0.0.1" and port > 0
        s.write(b"nobody listens")  # dropped: no client yet
        got = Collector()
        s.start(got)
        client = socket.create_connection((host, port))
        assert _wait_until(lambda: s.connected)
        s.write(b"hello")
        assert _recv_exactly(client, 5) == b"hello"
        client.sendall(b"typed")
        assert got.wait_for(b"typed") == b"typed"
        # A second client is refused while the first is attached.
        second = socket.create_connection((host, port))
        second.settimeout(5)
        assert second.recv(10) == b""
        second.close()
        client.close()
        assert _wait_until(lambda: not s.connected)
        # The next client gets the line.
        third = socket.create_connection((host, port))
        assert _wait_until(lambda: s.connected)
        s.write(b"again")
        assert _recv_exactly(third, 5) == b"again"
        third.close()
    finally:
        s.close()


def test_tcp_serial_port_in_use() -> None:
    first = SocketSerial(tcp=("127.0.0.1", 0))
    try:
        _host, port = first.address
        with pytest.raises(SerialOpenError) as e:
            open_serial(f"tcp:127.0.0.1:{port}", _never_quit)
        assert "cannot listen" in str(e.value)
    finally:
        first.close()


def test_unix_serial_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "console.sock"
    s = open_serial(f"unix:{path}", _never_quit)
    try:
        assert path.is_socket()
        got = Collector()
        s.start(got)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        assert _wait_until(lambda: s.connected)
        s.write(b"ok")
        assert _recv_exactly(client, 2) == b"ok"
        client.sendall(b"in")
        assert got.wait_for(b"in") == b"in"
        client.close()
    finally:
        s.close()
    assert not path.exists()
    s.close()  # idempotent


def test_unix_serial_replaces_a_stale_socket_but_not_a_file(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(stale))
    old.close()
    SocketSerial(unix_path=stale).close()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(SerialOpenError):
        SocketSerial(unix_path=regular)
    assert regular.read_text() == "keep me"


# ---------------------------------------------------------------------- escape
def test_escape_filter() -> None:
    f = EscapeFilter()
    assert f.feed(b"abc") == (b"abc", False, False)
    assert f.feed(b"a\x01\x01b") == (b"a\x01b", False, False)
    assert f.feed(b"1\x01") == (b"1", False, False)
    assert f.feed(b"x ignored") == (b"", True, False)  # Ctrl-A split across reads still quits
    assert f.feed(b"\x01h") == (b"", False, True)
    assert f.feed(b"\x01zq") == (b"q", False, False)  # unknown escape swallowed
    assert f.feed(b"\x01X") == (b"", True, False)


# ---------------------------------------------------------------------- stdio
@pytest.fixture
def tty_pair():
    master, slave = pty.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def _is_raw(fd: int) -> bool:
    attrs = termios.tcgetattr(fd)
    lflag = attrs[3]
    return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)


def test_stdio_on_a_terminal_raw_mode_escape_and_restore(tty_pair) -> None:
    master, slave = tty_pair
    before = termios.tcgetattr(slave)
    assert not _is_raw(slave)
    quit_called = threading.Event()
    s = StdioSerial(quit_called.set, stdin_fd=slave, stdout_fd=slave)
    try:
        assert s.is_tty and _is_raw(slave)
        assert termios.tcgetattr(slave)[1] & termios.OPOST  # host messages keep their newlines
        got = Collector()
        s.start(got)
        os.write(master, b"ls\x03\x01\x01")  # Ctrl-C and a literal Ctrl-A reach the guest
        assert got.wait_for(b"ls\x03\x01") == b"ls\x03\x01"
        s.write(b"guest says hi")
        assert os.read(master, 100).startswith(b"guest says hi")
        assert not quit_called.is_set()
        os.write(master, b"\x01x")
        assert quit_called.wait(5)
    finally:
        s.close()
    assert termios.tcgetattr(slave) == before
    s.close()  # idempotent


def test_stdio_restores_the_terminal_on_an_exception(tty_pair) -> None:
    _master, slave = tty_pair
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError):
        s = StdioSerial(_never_quit, stdin_fd=slave, stdout_fd=slave)
        try:
            raise RuntimeError("the VM blew up")
        finally:
            s.close()
    assert termios.tcgetattr(slave) == before


def test_stdio_not_a_terminal_passes_input_through() -> None:
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    s = StdioSerial(_never_quit, stdin_fd=r, stdout_fd=out_w)
    try:
        assert not s.is_tty
        got = Collector()
        s.start(got)
        os.write(w, b"\x01x plain")  # no escape handling without a terminal
        assert got.wait_for(b"\x01x plain") == b"\x01x plain"
        os.close(w)  # end of input does not break output
        s.write(b"out")
        assert os.read(out_r, 10) == b"out"
    finally:
        s.close()
        for fd in (r, out_r, out_w):
            os.close(fd)


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from kvmpy.vmm.serial import StdioSerial
    fd = int(sys.argv[1])
    mode = sys.argv[2]
    s = StdioSerial(lambda: None, stdin_fd=fd, stdout_fd=fd)
    print("raw", flush=True)
    if mode != "signal":
        sys.stdin.readline()  # the parent has looked at the terminal
    if mode == "exit":
        sys.exit(3)  # no close(): atexit must restore
    if mode == "exception":
        raise SystemExit("boom")
    time.sleep(30)  # wait for SIGTERM / SIGHUP
    """
)


@pytest.mark.parametrize(
    ("mode", "signum"), [("exit", None), ("exception", None), ("signal", 15), ("signal", 1)]
)
def test_stdio_restores_the_terminal_when_the_process_dies(tty_pair, mode: str, signum: int | None) -> None:
    _master, slave = tty_pair
    before = termios.tcgetattr(slave)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(slave), mode],
        pass_fds=(slave,),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"raw\n"
    assert _is_raw(slave)
    assert child.stdin is not None
    if signum is not None:
        child.send_signal(signum)
    else:
        child.stdin.write(b"go\n")
        child.stdin.flush()
    child.wait(timeout=10)
    child.stdin.close()
    child.stdout.close()
    if signum is not None:
        assert child.returncode == -signum  # the signal's default action still happened
    else:
        assert child.returncode in (1, 3)
    assert termios.tcgetattr(slave) == before
