"""The framing layer of the GDB remote serial protocol.

On the wire a packet is `$payload#cc`, `cc` being the modulo-256 sum of the
payload bytes in two lowercase hex digits. Outside packets, `+` and `-`
acknowledge or reject the last packet and the single byte 0x03 asks a
running target to stop. Binary data (the `X` packet, qXfer replies) escapes
`#`, `$`, `}` and `*` as `}` followed by the byte XOR 0x20. Replies may be
run-length encoded: `X*n` stands for X repeated `ord(n) - 29` more times.

Nothing here knows a command; `PacketReader` turns a byte stream into
events and never raises on garbage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

INTERRUPT = 0x03
ESCAPE = 0x7D
_ESCAPED = frozenset(b"#$}*")
# A run-length count is sent as chr(n + 29); '#' and '$' (n = 6, 7) would end or
# start a packet, and counts above 97 would leave printable ASCII.
_RLE_MIN_RUN = 4
_RLE_MAX_REPEAT = 97
_RLE_FORBIDDEN_REPEATS = frozenset({ord("#") - 29, ord("$") - 29})
MAX_PACKET_BYTES = 0x4000
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def checksum(payload: bytes) -> int:
    """The modulo-256 sum of the payload's bytes."""
    return sum(payload) & 0xFF


def frame(payload: bytes) -> bytes:
    """`$payload#cc`; the payload must already be escaped / run-length encoded."""
    return b"$" + payload + b"#" + f"{checksum(payload):02x}".encode()


def escape_binary(data: bytes) -> bytes:
    """Escape binary data for a packet body (`}` then the byte XOR 0x20)."""
    out = bytearray()
    for byte in data:
        if byte in _ESCAPED:
            out += bytes((ESCAPE, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def unescape_binary(data: bytes) -> bytes:
    """Undo `escape_binary`. ValueError if the data ends in the middle of an escape."""
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            out.append(byte ^ 0x20)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(byte)
    if escaped:
        raise ValueError("binary data ends with a lone escape byte")
    return bytes(out)


def rle_encode(payload: bytes) -> bytes:
    """Run-length encode a reply body made of printable characters (hex data)."""
    out = bytearray()
    i = 0
    n = len(payload)
    while i < n:
        byte = payload[i]
        run = 1
        while i + run < n and payload[i + run] == byte and run - 1 < _RLE_MAX_REPEAT:
            run += 1
        repeat = run - 1
        while repeat in _RLE_FORBIDDEN_REPEATS:
            repeat -= 1  # the leftover characters are emitted on the next round
        if repeat + 1 >= _RLE_MIN_RUN:
            out += bytes((byte, ord("*"), repeat + 29))
            i += repeat + 1
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def rle_decode(payload: bytes) -> bytes:
    """Expand run-length encoding. ValueError on a `*` with nothing to repeat or no count."""
    out = bytearray()
    i = 0
    while i < len(payload):
        byte = payload[i]
        if byte == ord("*"):
            if not out or i + 1 >= len(payload):
                raise ValueError("run-length marker without a character or a count")
            repeat = payload[i + 1] - 29
            if repeat < 0:
                raise ValueError(f"run-length count {payload[i + 1]:#x} is out of range")
            out += bytes((out[-1],)) * repeat
            i += 2
            continue
        out.append(byte)
        i += 1
    return bytes(out)


class EventKind(Enum):
    PACKET = "packet"          # a well-formed packet: `payload` holds its body
    BAD_CHECKSUM = "bad"        # a framed packet whose checksum did not match (answer `-`)
    INTERRUPT = "interrupt"    # 0x03 outside a packet
    ACK = "ack"                # `+`
    NAK = "nak"                # `-`: resend the last packet


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    payload: bytes = b""


class PacketReader:
    """Incremental parser: `feed(bytes)` yields the events the bytes complete.

    Bytes outside a packet other than `+`, `-`, 0x03 and `$` are skipped
    (line noise). A packet longer than `max_packet_bytes` is discarded
    and reported as a bad checksum, so the client retransmits or gives up
    rather than the stub buffering without bound.
    """

    def __init__(self, max_packet_bytes: int = MAX_PACKET_BYTES) -> None:
        self._max = max_packet_bytes
        self._body = bytearray()
        self._sum_digits = bytearray()
        self._state = 0  # 0 outside, 1 in body, 2 in checksum
        self._overflow = False

    def feed(self, data: bytes) -> Iterator[Event]:
        for byte in data:
            if self._state == 0:
                if byte == ord("$"):
                    self._start()
                elif byte == ord("+"):
                    yield Event(EventKind.ACK)
                elif byte == ord("-"):
                    yield Event(EventKind.NAK)
                elif byte == INTERRUPT:
                    yield Event(EventKind.INTERRUPT)
            elif self._state == 1:
                if byte == ord("#"):
                    self._state = 2
                elif byte == ord("$"):
                    self._start()  # a new packet restarts: the partial one is lost, as in gdb's reader
                elif len(self._body) < self._max:
                    self._body.append(byte)
                else:
                    self._overflow = True
            else:
                self._sum_digits.append(byte)
                if len(self._sum_digits) == 2:
                    self._state = 0
                    yield self._finish()

    def _start(self) -> None:
        self._state = 1
        self._body = bytearray()
        self._sum_digits = bytearray()
        self._overflow = False

    def _finish(self) -> Event:
        digits = bytes(self._sum_digits)
        expected = int(digits, 16) if all(d in _HEX_DIGITS for d in digits) else -1
        if self._overflow or expected != checksum(bytes(self._body)):
            return Event(EventKind.BAD_CHECKSUM)
        return Event(EventKind.PACKET, bytes(self._body))
