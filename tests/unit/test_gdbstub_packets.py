"""The gdb stub's framing layer: checksums, binary escaping, run-length encoding, the reader."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvmpy.vmm.gdbstub.packets import (
    Event,
    EventKind,
    PacketReader,
    checksum,
    escape_binary,
    frame,
    rle_decode,
    rle_encode,
    unescape_binary,
)


def feed_all(reader: PacketReader, *chunks: bytes) -> list[Event]:
    return [event for chunk in chunks for event in reader.feed(chunk)]


def test_checksum_and_frame_match_known_packets() -> None:
    # Sums worked by hand: 'O' + 'K' = 0x4f + 0x4b = 0x9a; 'g' = 0x67; "qC" = 0x71 + 0x43 = 0xb4.
    assert checksum(b"OK") == 0x9A
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"g") == b"$g#67"
    assert frame(b"qC") == b"$qC#b4"
    assert frame(b"") == b"$#00"
    assert checksum(b"\xff\xff") == 0xFE  # modulo 256


def test_escape_binary_escapes_exactly_the_four_special_bytes() -> None:
    assert escape_binary(b"#$}*") == b"}\x03}\x04}]}\x0a"
    assert escape_binary(b"abc\x00\xff") == b"abc\x00\xff"
    assert unescape_binary(b"}\x03}\x04}]}\x0a") == b"#$}*"


@given(st.binary(max_size=300))
def test_escape_roundtrips_and_leaves_no_framing_byte(data: bytes) -> None:
    escaped = escape_binary(data)
    assert unescape_binary(escaped) == data
    assert b"#" not in escaped and b"$" not in escaped and b"*" not in escaped


def test_unescape_rejects_a_lone_trailing_escape() -> None:
    try:
        unescape_binary(b"ab}")
    except ValueError:
        return
    raise AssertionError("a dangling escape was accepted")


def test_rle_known_vectors() -> None:
    assert rle_encode(b"0000") == b"0* "           # 3 more: chr(3 + 29) = ' '
    assert rle_decode(b"0* ") == b"0000"
    assert rle_encode(b"000") == b"000"            # too short to be worth it
    # 7 and 8 repeats would need '#' / '$' as the count: the run is split instead.
    assert rle_encode(b"0" * 7) == b'0*"0'
    assert rle_encode(b"0" * 8) == b'0*"00'
    assert rle_decode(b"x*}") == b"x" * 97          # the longest single run (96 more)


@given(st.text(alphabet="0123456789abcdefx", max_size=600).map(str.encode))
def test_rle_roundtrips_without_framing_characters(data: bytes) -> None:
    encoded = rle_encode(data)
    assert rle_decode(encoded) == data
    assert b"#" not in encoded and b"$" not in encoded
    assert all(32 <= c <= 126 for c in encoded)
    assert len(encoded) <= len(data)


def test_rle_decode_rejects_marker_without_character_or_count() -> None:
    for bad in (b"*a", b"a*"):
        try:
            rle_decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_reader_yields_packets_acks_and_interrupts_across_chunk_boundaries() -> None:
    reader = PacketReader()
    events = feed_all(reader, b"+$q", b"C#b", b"4-\x03", b"$g#67")
    assert events == [
        Event(EventKind.ACK), Event(EventKind.PACKET, b"qC"), Event(EventKind.NAK),
        Event(EventKind.INTERRUPT), Event(EventKind.PACKET, b"g"),
    ]


def test_reader_reports_bad_checksums_and_skips_noise() -> None:
    reader = PacketReader()
    events = feed_all(reader, b"noise$g#00", b"$g#zz", b"$g#6", b"7")
    assert [e.kind for e in events] == [EventKind.BAD_CHECKSUM, EventKind.BAD_CHECKSUM, EventKind.PACKET]


def test_reader_restarts_on_a_new_dollar_inside_a_packet() -> None:
    assert feed_all(PacketReader(), b"$garbage$g#67") == [Event(EventKind.PACKET, b"g")]


def test_reader_discards_oversized_packets() -> None:
    reader = PacketReader(max_packet_bytes=8)
    body = b"m" * 20
    events = feed_all(reader, frame(body), frame(b"g"))
    assert [e.kind for e in events] == [EventKind.BAD_CHECKSUM, EventKind.PACKET]


@given(st.binary(max_size=400))
def test_reader_never_raises_and_packets_it_accepts_have_valid_checksums(data: bytes) -> None:
    for event in PacketReader().feed(data):
        if event.kind is EventKind.PACKET:
            assert frame(event.payload) in data
