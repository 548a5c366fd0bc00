"""virtio-net: an Ethernet device over a `NetBackend` (virtio 1.x, section 5.1).

One queue pair and no control queue (neither VIRTIO_NET_F_CTRL_VQ nor
VIRTIO_NET_F_MQ): queue 0 is receiveq1 (the driver posts device-writable
buffers the device fills with received frames), queue 1 is transmitq1
(device-readable buffers holding frames to send). No offloads are offered
(no CSUM, GSO or MRG_RXBUF), so every packet is a whole Ethernet frame
preceded by a `struct virtio_net_hdr`: 12 bytes once VIRTIO_F_VERSION_1 is
negotiated (num_buffers included), 10 bytes for a legacy driver. On
receive the header is all zero except num_buffers = 1 (as the spec requires
without MRG_RXBUF); on transmit it is stripped and ignored.

Offered device features: VIRTIO_NET_F_MAC (the config space holds `mac`)
and VIRTIO_NET_F_STATUS (the config space's status has LINK_UP set).
VIRTIO_F_VERSION_1 is offered by the transport.

Frames arrive on the backend's thread (`receive`) but filling a buffer and
raising the interrupt must happen where the transport runs (the vCPU
thread), as for virtio-console: received frames wait in a bounded queue
(`MAX_PENDING_FRAMES`; newer frames are dropped when it is full), the board
checks `pending_input()` and calls `deliver(vq, interrupt)` with the
receiveq, and `queue_notify(0, ...)` (new buffers posted) delivers too.
`on_input`, when set, is called from the backend thread after a frame is
queued, for a board that wants to be woken (kick the vCPU) instead of
polling.

A receive buffer too small for a frame (Linux without MRG_RXBUF posts
header + 1518 bytes) cannot take it: the frame is dropped and counted, and
the buffer waits for the next frame.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import deque
from collections.abc import Callable

from kvmpy.vmm.net.backend import MAX_FRAME_LEN, NetBackend
from kvmpy.vmm.virtio.queue import DescriptorChain, Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

VIRTIO_ID_NET = 1

VIRTIO_NET_F_MAC = 5
VIRTIO_NET_F_STATUS = 16
VIRTIO_F_VERSION_1 = 32

VIRTIO_NET_S_LINK_UP = 1

RECEIVEQ = 0
TRANSMITQ = 1

# struct virtio_net_config: u8 mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu, ...
CFG_MAC = 0
CFG_STATUS = 6

HDR_LEN = 12  # struct virtio_net_hdr with num_buffers (VERSION_1, or MRG_RXBUF)
LEGACY_HDR_LEN = 10
# A header plus the largest frame; longer transmit chains are malformed.
MAX_PACKET_LEN = HDR_LEN + MAX_FRAME_LEN
MAX_PENDING_FRAMES = 256


class VirtioNet:
    """virtio network device with MAC address `mac` (6 bytes), attached to `backend`.

    The board calls `start()` once to begin receiving frames from the
    backend (it calls `backend.start(self.receive)`), or wires `receive`
    itself.
    """

    device_id = VIRTIO_ID_NET
    features = (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS)
    num_queues = 2
    queue_max_size = 256

    def __init__(self, backend: NetBackend, mac: bytes) -> None:
        if len(mac) != 6:
            raise ValueError(f"virtio-net: a MAC address is 6 bytes, not {len(mac)}")
        self.backend = backend
        self.mac = bytes(mac)
        self.on_input: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._hdr_len = HDR_LEN
        # A receive buffer popped while no queued frame fitted it; used first next time.
        self._spare: DescriptorChain | None = None
        self._dropped_rx = 0
        self.rx_frames = 0
        self.tx_frames = 0

    def start(self) -> None:
        """Start the backend delivering frames to this device."""
        self.backend.start(self.receive)

    # -- host side (any thread) -----------------------------------------------

    def receive(self, frame: bytes) -> None:
        """Queue a received Ethernet frame for the guest (thread-safe).

        Empty frames, frames over `MAX_FRAME_LEN` and frames arriving while
        `MAX_PENDING_FRAMES` are already queued are dropped (counted in
        `dropped_rx_frames`).
        """
        with self._lock:
            if not frame or len(frame) > MAX_FRAME_LEN or len(self._pending) >= MAX_PENDING_FRAMES:
                self._dropped_rx += 1
                return
            self._pending.append(bytes(frame))
        waker = self.on_input
        if waker is not None:
            waker()

    def pending_input(self) -> bool:
        """True if received frames are waiting to be delivered to the guest."""
        with self._lock:
            return bool(self._pending)

    @property
    def dropped_rx_frames(self) -> int:
        """Received frames dropped so far: queue full, malformed, or too big for the guest's buffers."""
        with self._lock:
            return self._dropped_rx

    # -- transport side (vCPU thread) -----------------------------------------

    def _config_bytes(self) -> bytes:
        return self.mac + struct.pack("<H", VIRTIO_NET_S_LINK_UP)

    def config_read(self, offset: int, size: int) -> int:
        """mac at 0..5, status (LINK_UP) at 6; everything else reads as 0."""
        cfg = self._config_bytes()
        if offset < 0 or offset >= len(cfg):
            return 0
        return int.from_bytes(cfg[offset : offset + size], "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        """The config space is read-only (no VIRTIO_NET_F_CTRL_MAC_ADDR): writes are ignored."""

    def ack_features(self, features: int) -> None:
        """The header is 12 bytes with VIRTIO_F_VERSION_1, 10 for a legacy driver."""
        self._hdr_len = HDR_LEN if features & (1 << VIRTIO_F_VERSION_1) else LEGACY_HDR_LEN

    def reset(self) -> None:
        """Device reset: forget the held receive buffer and the frames queued for the old driver."""
        with self._lock:
            self._spare = None
            self._pending.clear()
            self._hdr_len = HDR_LEN

    def queue_notify(self, index: int, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        """receiveq (0): deliver queued frames into the new buffers; transmitq (1): send frames."""
        if index == RECEIVEQ:
            self.deliver(vq, interrupt)
        elif index == TRANSMITQ:
            self._transmit(vq, interrupt)

    def _header(self) -> bytes:
        # flags 0, gso_type GSO_NONE, hdr_len/gso_size/csum_start/csum_offset 0, num_buffers 1.
        if self._hdr_len == HDR_LEN:
            return bytes(10) + struct.pack("<H", 1)
        return bytes(LEGACY_HDR_LEN)

    def deliver(self, vq: Virtqueue, interrupt: Callable[[], None]) -> bool:
        """Move queued frames into receiveq buffers `vq`; return True if any was delivered.

        Buffers are taken only while frames are queued, so posted buffers
        wait for traffic instead of coming back empty. A buffer with
        device-readable parts or smaller than the header is malformed
        (`VirtqueueError`). Interrupts once at the end if anything was
        delivered.
        """
        completed = False
        hdr_len = self._hdr_len
        while True:
            with self._lock:
                if not self._pending:
                    break
                chain, self._spare = self._spare, None
            if chain is None:
                chain = vq.pop()
                if chain is None:
                    break
                if chain.readable:
                    raise VirtqueueError("virtio-net receiveq buffer has device-readable parts")
                if chain.writable_len < hdr_len:
                    raise VirtqueueError("virtio-net receiveq buffer is smaller than the header")
            room = chain.writable_len - hdr_len
            frame: bytes | None = None
            with self._lock:
                while self._pending:
                    candidate = self._pending.popleft()
                    if len(candidate) <= room:
                        frame = candidate
                        break
                    self._dropped_rx += 1
                if frame is None:
                    self._spare = chain  # nothing fitted: keep the buffer for the next frame
                    break
            written = chain.write_into(self._header() + frame)
            vq.push(chain, written)
            self.rx_frames += 1
            completed = True
        if completed:
            interrupt()
        return completed

    def _transmit(self, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        completed = False
        hdr_len = self._hdr_len
        while (chain := vq.pop()) is not None:
            if chain.writable:
                raise VirtqueueError("virtio-net transmitq buffer has device-writable parts")
            length = chain.readable_len
            if length < hdr_len:
                raise VirtqueueError("virtio-net transmitq buffer is smaller than the header")
            if length > MAX_PACKET_LEN:
                raise VirtqueueError(
                    f"virtio-net transmitq packet of {length} bytes exceeds {MAX_PACKET_LEN}"
                )
            frame = chain.read_all()[hdr_len:]
            if frame:
                self.backend.send(frame)
                self.tx_frames += 1
            vq.push(chain, 0)
            completed = True
        if completed:
            interrupt()
