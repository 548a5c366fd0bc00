"""Network backends: the length-framed stream format, socket links between two backends, netdev specs."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.net_backends import (
    MAX_FRAME_LEN,
    FrameParser,
    NetBackendError,
    SocketNetBackend,
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
        ("tap,ifname=tap0", "unsupported type"),
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
