"""virtio-console: a single-port console over a serial backend (virtio 1.x, section 5.3).

Without VIRTIO_CONSOLE_F_MULTIPORT there is one port, the guest's hvc0:
queue 0 is its receiveq (host to guest: the driver posts device-writable
buffers that the device fills with input) and queue 1 its transmitq (guest
to host: device-readable buffers the device writes to the backend).

Input arrives on the backend's thread (`receive`), but filling a buffer and
raising the interrupt must happen where the transport runs (the vCPU
thread). So input is held in a bounded buffer; the board checks
`pending_input()` and calls `deliver(vq, interrupt)` with the receiveq, and
`queue_notify(0, ...)` (the driver posting new buffers) delivers as well.
`on_input`, when set, is called from the backend thread after input is
buffered, for a board that wants to be woken instead of polling.

VIRTIO_CONSOLE_F_SIZE is not offered, so cols/rows read as 0.
VIRTIO_CONSOLE_F_EMERG_WRITE is offered: a write to ``emerg_wr`` sends one
byte to the backend.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable

from kvmpy.vmm.serial import SerialBackend
from kvmpy.vmm.virtio.queue import Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

VIRTIO_ID_CONSOLE = 3

VIRTIO_CONSOLE_F_SIZE = 0
VIRTIO_CONSOLE_F_MULTIPORT = 1
VIRTIO_CONSOLE_F_EMERG_WRITE = 2

RECEIVEQ = 0
TRANSMITQ = 1

# struct virtio_console_config: le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr.
CFG_COLS = 0
CFG_ROWS = 2
CFG_MAX_NR_PORTS = 4
CFG_EMERG_WR = 8
CONFIG_SIZE = 12

MAX_PENDING_INPUT = 64 * 1024
MAX_TX_BYTES_PER_CHAIN = 1 << 20


class VirtioConsole:
    """virtio console with one port, attached to `backend`.

    The board calls `start()` once to begin receiving input from the backend
    (it calls `backend.start(self.receive)`), or wires `receive` itself.
    """

    device_id = VIRTIO_ID_CONSOLE
    features = 1 << VIRTIO_CONSOLE_F_EMERG_WRITE
    num_queues = 2
    queue_max_size = 64

    def __init__(self, backend: SerialBackend) -> None:
        self.backend = backend
        self.on_input: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._dropped = 0

    def start(self) -> None:
        """Start the backend delivering input to this console."""
        self.backend.start(self.receive)

    # -- host side (any thread) -----------------------------------------------

    def receive(self, data: bytes) -> None:
        """Buffer input for the guest (thread-safe). Input beyond the buffer limit is dropped."""
        with self._lock:
            room = MAX_PENDING_INPUT - len(self._pending)
            if len(data) > room:
                self._dropped += len(data) - max(room, 0)
                data = data[: max(room, 0)]
            self._pending += data
        waker = self.on_input
        if data and waker is not None:
            waker()

    def pending_input(self) -> bool:
        """True if input is waiting to be delivered to the guest."""
        with self._lock:
            return bool(self._pending)

    @property
    def dropped_bytes(self) -> int:
        """Input bytes dropped so far because the guest did not take them in time."""
        with self._lock:
            return self._dropped

    # -- transport side (vCPU thread) -----------------------------------------

    def config_read(self, offset: int, size: int) -> int:
        """cols, rows and max_nr_ports read as 0 (no SIZE, no MULTIPORT); emerg_wr reads as 0."""
        return 0

    def config_write(self, offset: int, size: int, value: int) -> None:
        """A write to emerg_wr sends its low byte to the backend; other writes are ignored."""
        if offset == CFG_EMERG_WR:
            self.backend.write(struct.pack("<B", value & 0xFF))

    def ack_features(self, features: int) -> None:
        """Negotiated features: nothing depends on them."""

    def reset(self) -> None:
        """Device reset. Buffered input is host-side and survives, for the next driver."""

    def queue_notify(self, index: int, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        """receiveq (0): deliver buffered input into the new buffers; transmitq (1): send output."""
        if index == RECEIVEQ:
            self.deliver(vq, interrupt)
        elif index == TRANSMITQ:
            self._transmit(vq, interrupt)

    def deliver(self, vq: Virtqueue, interrupt: Callable[[], None]) -> bool:
        """Move buffered input into receiveq buffers `vq`; return True if any was delivered.

        Chains are popped only while input is pending, so posted buffers wait for
        input instead of being returned empty. Interrupts once at the end if asked to.
        """
        completed = False
        while True:
            with self._lock:
                if not self._pending:
                    break
            chain = vq.pop()
            if chain is None:
                break
            if chain.readable:
                raise VirtqueueError("virtio-console receiveq buffer has device-readable parts")
            room = sum(length for _, length in chain.writable)
            with self._lock:
                data = bytes(self._pending[:room])
                del self._pending[:room]
            written = chain.write_into(data) if data else 0
            vq.push(chain, written)
            completed = True
        if completed:
            interrupt()
        return completed

    def _transmit(self, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        completed = False
        while (chain := vq.pop()) is not None:
            if chain.writable:
                raise VirtqueueError("virtio-console transmitq buffer has device-writable parts")
            if sum(length for _, length in chain.readable) > MAX_TX_BYTES_PER_CHAIN:
                raise VirtqueueError("virtio-console transmitq buffer is implausibly large")
            data = chain.read_all()
            if data:
                self.backend.write(data)
            vq.push(chain, 0)
            completed = True
        if completed:
            interrupt()
