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

from pathlib import Path

from kvmpy.vmm.net.backend import MAX_FRAME_LEN, FrameParser, NetBackend, NetBackendError, encode_frame
from kvmpy.vmm.net.passt import PasstNetBackend
from kvmpy.vmm.net.stream import Address, SocketNetBackend, check_loopback
from kvmpy.vmm.net.tap import TapNetBackend, check_ifname

__all__ = [
    "MAX_FRAME_LEN", "FrameParser", "NetBackend", "NetBackendError", "PasstNetBackend", "SocketNetBackend",
    "TapNetBackend", "encode_frame", "parse_netdev",
]


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
