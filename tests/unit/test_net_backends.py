"""Network backends: the length-framed stream format, socket links between two backends, netdev specs."""

from __future__ import annotations

import os
import queue
import socket
import stat
import struct
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.net import (
    MAX_FRAME_LEN,
    FrameParser,
    NetBackendError,
    PasstNetBackend,
    SocketNetBackend,
    TapNetBackend,
    encode_frame,
    parse_netdev,
)

FRAME = bytes.fromhex("ffffffffffff525400123456") + b"\x08\x00" + bytes(range(50))


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.q: queue.Queue[bytes] = queue.Queue()

    def __call__(self, frame: bytes) -> None:
        self.q.put(frame)

    def get(self) -> bytes:
        return self.q.get(timeout=5)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SocketNetBackend, SocketNetBackend, Inbox, Inbox]]:
    path = tmp_path / "net.sock"
    a = SocketNetBackend(listen=path)
    b = SocketNetBackend(connect=path)
    ina, inb = Inbox(), Inbox()
    a.start(ina)
    b.start(inb)
    wait_for(lambda: a.connected and b.connected)
    yield a, b, ina, inb
    a.close()
    b.close()


# -- the stream parser ---------------------------------------------------------


def test_parser_basic() -> None:
    p = FrameParser()
    assert p.feed(encode_frame(b"abc") + encode_frame(b"de")[:3]) == [b"abc"]
    assert p.feed(encode_frame(b"de")[3:]) == [b"de"]
    assert p.feed(encode_frame(b"")) == [] and p.empty == 1


def test_parser_skips_oversized_without_buffering() -> None:
    p = FrameParser(max_frame_len=8)
    stream = encode_frame(b"x" * 9) + encode_frame(b"ok")
    assert p.feed(stream) == [b"ok"] and p.oversized == 1
    p.feed(b"\xff\xff\xff\xff" + b"y" * 1000)  # a 4 GiB "frame": skipped as it streams
    assert p.oversized == 2 and len(p._frame) == 0


frames_st = st.lists(st.binary(min_size=1, max_size=300), max_size=20)


@given(frames=frames_st, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_parser_reassembles_across_any_split(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[i:j] for i, j in zip([0, *points], [*points, len(stream)], strict=True)]
    p = FrameParser()
    got: list[bytes] = []
    for piece in pieces:
        got += p.feed(piece)
    assert got == frames


@given(st.lists(st.binary(max_size=200), max_size=30))
@settings(max_examples=300, deadline=None)
def test_parser_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    p = FrameParser(max_frame_len=64)
    for chunk in chunks:
        for frame in p.feed(chunk):
            assert 0 < len(frame) <= 64


# -- socket links ----------------------------------------------------------------


def test_unix_pair_exchanges_frames_both_ways(
    pair: tuple[SocketNetBackend, SocketNetBackend, Inbox, Inbox],
) -> None:
    a, b, ina, inb = pair
    big = bytes(range(256)) * 200
    a.send(FRAME)
    a.send(big)
    b.send(FRAME[::-1])
    assert inb.get() == FRAME and inb.get() == big
    assert ina.get() == FRAME[::-1]
    for i in range(100):
        b.send(FRAME + bytes([i]))
    assert [ina.get() for _ in range(100)] == [FRAME + bytes([i]) for i in range(100)]


def test_tcp_loopback_pair() -> None:
    a = SocketNetBackend(listen=("127.0.0.1", 0))
    addr = a.address
    assert isinstance(addr, tuple)
    b = SocketNetBackend(connect=addr)
    try:
        ina, inb = Inbox(), Inbox()
        a.start(ina)
        b.start(inb)
        wait_for(lambda: a.connected)
        b.send(FRAME)
        a.send(FRAME * 2)
        assert ina.get() == FRAME and inb.get() == FRAME * 2
    finally:
        a.close()
        b.close()


def test_wire_format_is_qemu_length_prefix(tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    a = SocketNetBackend(listen=path)
    inbox = Inbox()
    a.start(inbox)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        raw.connect(str(path))
        wait_for(lambda: a.connected)
        a.send(b"hello")
        got = b""
        while len(got) < 9:
            got += raw.recv(64)
        assert got == b"\x00\x00\x00\x05hello"
        raw.sendall(b"\x00\x00\x00\x03ab")
        raw.sendall(b"c\x00\x00")
        raw.sendall(b"\x00\x01z")
        assert inbox.get() == b"abc" and inbox.get() == b"z"
    finally:
        raw.close()
        a.close()


def test_peer_disconnect_and_reconnect(
    pair: tuple[SocketNetBackend, SocketNetBackend, Inbox, Inbox], tmp_path: Path
) -> None:
    a, b, ina, _ = pair
    b.close()
    wait_for(lambda: not a.connected)
    before = a.dropped_tx_frames
    a.send(FRAME)  # no peer: dropped, no exception
    assert a.dropped_tx_frames == before + 1
    c = SocketNetBackend(connect=tmp_path / "net.sock")  # the listener takes the next peer
    try:
        inc = Inbox()
        c.start(inc)
        wait_for(lambda: a.connected)
        c.send(FRAME)
        a.send(FRAME[:20])
        assert ina.get() == FRAME and inc.get() == FRAME[:20]
    finally:
        c.close()


def test_listener_going_away_leaves_connector_quiet(
    pair: tuple[SocketNetBackend, SocketNetBackend, Inbox, Inbox],
) -> None:
    a, b, _, _ = pair
    a.close()
    wait_for(lambda: not b.connected)
    for _ in range(10):
        b.send(FRAME)
    assert b.dropped_tx_frames >= 10
    b.close()
    b.close()  # idempotent


def test_peer_sending_garbage_then_vanishing(tmp_path: Path) -> None:
    path = tmp_path / "g.sock"
    a = SocketNetBackend(listen=path)
    inbox = Inbox()
    a.start(inbox)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(path))
    wait_for(lambda: a.connected)
    raw.sendall(b"\x7f\xff\xff\xff" + b"junk" * 100 + b"\x00\x00")  # huge length, then cut off
    raw.close()
    wait_for(lambda: not a.connected)
    assert inbox.q.empty()
    a.send(FRAME)
    a.close()


def test_second_peer_refused_while_one_attached(
    pair: tuple[SocketNetBackend, SocketNetBackend, Inbox, Inbox], tmp_path: Path
) -> None:
    a, b, _, inb = pair
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    extra.connect(str(tmp_path / "net.sock"))
    extra.settimeout(5)
    assert extra.recv(16) == b""  # closed at once
    extra.close()
    a.send(FRAME)
    assert inb.get() == FRAME


def test_oversized_and_empty_sends_dropped(
    pair: tuple[SocketNetBackend, SocketNetBackend, Inbox, Inbox],
) -> None:
    a, _, _, inb = pair
    a.send(bytes(MAX_FRAME_LEN + 1))
    a.send(b"")
    assert a.dropped_tx_frames == 2
    a.send(FRAME)
    assert inb.get() == FRAME


def test_connect_to_nothing_fails(tmp_path: Path) -> None:
    with pytest.raises(NetBackendError, match="cannot connect"):
        SocketNetBackend(connect=tmp_path / "absent.sock")


def test_listen_address_in_use() -> None:
    a = SocketNetBackend(listen=("127.0.0.1", 0))
    try:
        with pytest.raises(NetBackendError, match="cannot listen"):
            SocketNetBackend(listen=a.address)
    finally:
        a.close()


def test_non_loopback_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SocketNetBackend(listen=("0.0.0.0", 0))
    with pytest.raises(ValueError, match="loopback"):
        SocketNetBackend(connect=("192.168.1.1", 1234))


# -- netdev specs ------------------------------------------------------------------


def test_parse_netdev_unix_and_tcp(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    a = parse_netdev(f"socket,listen={path}")
    b = parse_netdev(f"socket,connect={path}")
    assert isinstance(a, SocketNetBackend) and a.address == path
    a.close()
    b.close()
    t = parse_netdev("socket,listen=127.0.0.1:0")
    assert isinstance(t, SocketNetBackend)
    port = t.address[1]  # type: ignore[index]
    u = parse_netdev(f"socket,connect=localhost:{port}")
    assert isinstance(u, SocketNetBackend) and u.address == ("127.0.0.1", port)
    t.close()
    u.close()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("vde,sock=/x", "unsupported type"),
        ("passt,foo=1", "passt takes none"),
        ("tap", "needs ifname"),
        ("tap,ifname=", "not an interface name"),
        ("tap,ifname=a/b", "not an interface name"),
        ("tap,ifname=averyveryverylongname", "not an interface name"),
        ("tap,ifname=t0,ifname=t1", "given twice"),
        ("tap,script=no", "unknown option"),
        ("socket", "exactly one"),
        ("socket,listen=/a,connect=/b", "exactly one"),
        ("socket,listen=/a,listen=/b", "given twice"),
        ("socket,mcast=230.0.0.1:1234", "unknown option"),
        ("socket,listen", "KEY=VALUE"),
        ("socket,listen=", "needs a unix socket path"),
        ("socket,listen=0.0.0.0:1234", "loopback"),
        ("socket,connect=example.com:80", "not an IP address"),
        ("socket,listen=127.0.0.1:99999", "out of range"),
        ("socket,listen=127.0.0.1:http", "not a number"),
        ("socket,listen=:1234", "no host"),
    ],
)
def test_parse_netdev_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_netdev(spec)
    assert "\n" not in str(info.value)


# -- passt (a stand-in program with passt's command-line and socket contract) -----------


def fake_passt(tmp_path: Path, body: str) -> str:
    """An executable that parses passt's --fd/--pid like passt and then runs `body`."""
    script = tmp_path / "fake-passt"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            """
            import os, socket, struct, sys
            args = sys.argv[1:]
            fd = int(args[args.index("--fd") + 1])
            pid_file = args[args.index("--pid") + 1]
            link = socket.socket(fileno=fd)
            """
        )
        + textwrap.dedent(body)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


ECHO_BODY = """
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    buf = b""
    while True:  # echo every frame back with its first byte flipped, until the link closes
        data = link.recv(65536)
        if not data:
            sys.exit(0)
        buf += data
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            frame, buf = buf[4 : 4 + n], buf[4 + n :]
            link.sendall(struct.pack(">I", n) + bytes([frame[0] ^ 0xFF]) + frame[1:])
"""


def test_passt_frames_cross_the_socketpair_and_close_ends_passt(tmp_path: Path) -> None:
    backend = PasstNetBackend(fake_passt(tmp_path, ECHO_BODY))
    inbox = Inbox()
    backend.start(inbox)
    assert backend.proc is not None and backend.connected
    assert not backend._rundir.exists()  # the PID file is gone once passt is up
    proc = backend.proc
    backend.send(FRAME)
    assert inbox.get() == bytes([FRAME[0] ^ 0xFF]) + FRAME[1:]
    backend.close()
    assert proc.returncode == 0  # it saw the link close and exited by itself
    backend.close()  # idempotent
    backend.send(FRAME)  # after close: dropped, no exception


def test_passt_that_fails_to_start_is_a_one_line_error(tmp_path: Path) -> None:
    body = """
        print("Failed to send 47 bytes to syslog", file=sys.stderr)
        print("External interface not usable", file=sys.stderr)
        sys.exit(1)
    """
    with pytest.raises(NetBackendError, match="exited with status 1: External interface not usable$") as info:
        PasstNetBackend(fake_passt(tmp_path, body))
    assert "\n" not in str(info.value) and "syslog" not in str(info.value)


def test_passt_that_hangs_before_ready_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kvmpy.vmm.net.passt as nb

    monkeypatch.setattr(nb, "PASST_START_TIMEOUT_S", 0.5)
    monkeypatch.setattr(nb, "PASST_EXIT_TIMEOUT_S", 0.5)
    pid_record = tmp_path / "hung.pid"
    body = f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
        with open({str(pid_record)!r}, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
    """
    with pytest.raises(NetBackendError, match="did not start within"):
        PasstNetBackend(fake_passt(tmp_path, body))
    # the stuck process was killed and reaped: its PID is gone
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_record.read_text()), 0)


def test_passt_missing_is_a_one_line_error() -> None:
    with pytest.raises(NetBackendError, match="no-such-passt not found"):
        PasstNetBackend("no-such-passt")


# -- TAP (needs root or CAP_NET_ADMIN and /dev/net/tun) ------------------------------------

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _bring_up(ifname: str) -> None:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH22x", ifname.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", ifname.encode(), flags | IFF_UP))


def test_tap_frames_reach_the_host_interface_and_back() -> None:
    ifname = f"kvt{os.getpid() % 100000}"
    try:
        backend = TapNetBackend(ifname)
    except NetBackendError as exc:
        pytest.skip(f"no TAP here: {exc}")
    # Frames the guest sends arrive on the host interface; a packet socket on it sees them, and
    # what the host sends on the interface reaches the guest.
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))  # local experimental
    try:
        assert Path(f"/sys/class/net/{ifname}").exists()
        _bring_up(ifname)
        sniffer.bind((ifname, 0))
        sniffer.settimeout(5)
        inbox = Inbox()
        backend.start(inbox)
        guest_frame = bytes.fromhex("ffffffffffff525400123456") + b"\x88\xb5" + b"from the guest" + bytes(32)
        backend.send(guest_frame)
        assert sniffer.recv(2048) == guest_frame
        host_frame = bytes.fromhex("525400123456") + bytes(6) + b"\x88\xb5" + b"from the host" + bytes(33)
        sniffer.send(host_frame)
        while (got := inbox.get())[12:14] != b"\x88\xb5":  # skip the kernel's own IPv6 chatter
            pass
        assert got == host_frame
    finally:
        sniffer.close()
        backend.close()
    # a TAP interface that was not persistent goes away with its file descriptor
    wait_for(lambda: not Path(f"/sys/class/net/{ifname}").exists())
    backend.send(guest_frame)  # after close: dropped, no exception


def test_tap_on_an_interface_that_is_not_tap_is_a_one_line_error() -> None:
    if not Path("/dev/net/tun").exists() or os.geteuid() != 0:
        pytest.skip("needs /dev/net/tun and root")
    with pytest.raises(NetBackendError, match="cannot attach to lo: ") as info:
        TapNetBackend("lo")
    assert "\n" not in str(info.value)
