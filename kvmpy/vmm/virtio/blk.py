"""virtio-blk: a block device backed by a raw image file (virtio 1.x, section 5.2).

Each request on the single request queue is one descriptor chain:

- device-readable: a 16-byte header ``le32 type, le32 reserved, le64 sector``,
  followed, for OUT / DISCARD / WRITE_ZEROES, by the payload (sector data, or
  16-byte ``le64 sector, le32 num_sectors, le32 flags`` segments);
- device-writable: for IN / GET_ID the data to fill, then one status byte.

``sector`` is always in 512-byte units, whatever ``blk_size`` says. The device
answers well-formed requests it cannot honour with a status byte (IOERR for
out-of-range, misaligned or read-only writes, UNSUPP for unknown types);
chains whose layout makes no sense (header too short, no status byte, data on
the wrong side) raise `VirtqueueError`, which the transport treats as a broken
driver. The image is accessed with pread/pwrite on one descriptor; no request
touches bytes outside ``[0, capacity * 512)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.virtio.queue import DescriptorChain, Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

VIRTIO_ID_BLOCK = 2

SECTOR_SIZE = 512

# Feature bits (virtio 1.x 5.2.3).
VIRTIO_BLK_F_SIZE_MAX = 1
VIRTIO_BLK_F_SEG_MAX = 2
VIRTIO_BLK_F_GEOMETRY = 4
VIRTIO_BLK_F_RO = 5
VIRTIO_BLK_F_BLK_SIZE = 6
VIRTIO_BLK_F_FLUSH = 9
VIRTIO_BLK_F_TOPOLOGY = 10
VIRTIO_BLK_F_CONFIG_WCE = 11
VIRTIO_BLK_F_MQ = 12
VIRTIO_BLK_F_DISCARD = 13
VIRTIO_BLK_F_WRITE_ZEROES = 14

# Request types (5.2.6).
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_T_GET_LIFETIME = 10
VIRTIO_BLK_T_DISCARD = 11
VIRTIO_BLK_T_WRITE_ZEROES = 13
VIRTIO_BLK_T_SECURE_ERASE = 14

# Status byte values.
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

VIRTIO_BLK_ID_BYTES = 20
VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1

_WRITE_SIDE_TYPES = (VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES)

REQ_HEADER = struct.Struct("<IIQ")
DISCARD_SEGMENT = struct.Struct("<QII")

# Limits the device advertises (and enforces).
QUEUE_MAX_SIZE = 128
SEG_MAX = QUEUE_MAX_SIZE - 2  # header and status take one descriptor each
SIZE_MAX = 256 * 1024  # largest single data segment, bytes
MAX_REQUEST_BYTES = SEG_MAX * SIZE_MAX  # a request larger than this breaks the advertised limits
MAX_DISCARD_SECTORS = 1 << 22  # 2 GiB per segment
MAX_DISCARD_SEG = 1
MAX_WRITE_ZEROES_SECTORS = 1 << 22
MAX_WRITE_ZEROES_SEG = 1
# A DISCARD / WRITE_ZEROES payload larger than this is malformed: the device takes one segment, and
# answers UNSUPP for a few more, but never buffers a guest-sized amount of them.
MAX_DISCARD_PAYLOAD = 64 * DISCARD_SEGMENT.size
_ZERO_CHUNK = 1 << 20
# Buffers one preadv/pwritev takes (Linux's UIO_MAXIOV).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024

# Configuration space layout (struct virtio_blk_config, 5.2.4), little-endian.
CFG_CAPACITY = 0  # le64
CFG_SIZE_MAX = 8  # le32
CFG_SEG_MAX = 12  # le32
CFG_GEOMETRY = 16  # le16 cylinders, u8 heads, u8 sectors
CFG_BLK_SIZE = 20  # le32
CFG_TOPOLOGY = 24  # u8 physical_block_exp, u8 alignment_offset, le16 min_io_size, le32 opt_io_size
CFG_WRITEBACK = 32  # u8
CFG_NUM_QUEUES = 34  # le16
CFG_MAX_DISCARD_SECTORS = 36  # le32
CFG_MAX_DISCARD_SEG = 40  # le32
CFG_DISCARD_SECTOR_ALIGNMENT = 44  # le32
CFG_MAX_WRITE_ZEROES_SECTORS = 48  # le32
CFG_MAX_WRITE_ZEROES_SEG = 52  # le32
CFG_WRITE_ZEROES_MAY_UNMAP = 56  # u8
CONFIG_SIZE = 60

# fallocate(2) modes (linux/falloc.h).
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10


class VirtioBlkError(VmmError):
    """The disk image cannot be used (missing, a directory, not a whole number of sectors...)."""


def _load_fallocate() -> Callable[[int, int, int, int], int] | None:
    """libc's fallocate(fd, mode, offset, len), or None where it is unavailable."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        func = libc.fallocate
    except (OSError, AttributeError, TypeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


_fallocate = _load_fallocate()


class VirtioBlk:
    """A virtio block device over a raw image file.

    `path` must name an existing regular file (or block device) whose size is
    a multiple of 512 bytes. With `read_only` the file is opened O_RDONLY, the
    device offers VIRTIO_BLK_F_RO, and every write-like request fails with
    IOERR. `serial` (at most 20 bytes of UTF-8) is what GET_ID returns; the
    guest sees it as /sys/block/vdX/serial.

    Offered features: SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH (FLUSH is a real
    fsync), DISCARD and WRITE_ZEROES (unless read-only; holes are punched with
    fallocate where the host supports it, otherwise zeros are written), RO.
    """

    device_id = VIRTIO_ID_BLOCK
    num_queues = 1
    queue_max_size = QUEUE_MAX_SIZE

    def __init__(self, path: Path, read_only: bool = False, serial: str = "") -> None:
        self.path = Path(path)
        self.read_only = read_only
        serial_bytes = serial.encode("utf-8")
        if len(serial_bytes) > VIRTIO_BLK_ID_BYTES:
            raise VirtioBlkError(f"virtio-blk serial {serial!r} is longer than {VIRTIO_BLK_ID_BYTES} bytes")
        self.serial = serial_bytes
        self._lock = threading.Lock()
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            raise VirtioBlkError(f"disk image {self.path} does not exist") from None
        except IsADirectoryError:
            raise VirtioBlkError(f"disk image {self.path} is a directory") from None
        except OSError as exc:
            mode = "reading" if read_only else "reading and writing"
            raise VirtioBlkError(f"cannot open disk image {self.path} for {mode}: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise VirtioBlkError(f"disk image {self.path} is a directory")
            if stat.S_ISREG(st.st_mode):
                size = st.st_size
            elif stat.S_ISBLK(st.st_mode):
                size = os.lseek(fd, 0, os.SEEK_END)
            else:
                raise VirtioBlkError(f"disk image {self.path} is not a regular file or block device")
            if size % SECTOR_SIZE:
                raise VirtioBlkError(
                    f"disk image {self.path} is {size} bytes, not a multiple of {SECTOR_SIZE}"
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self.size_bytes = size
        self.capacity = size // SECTOR_SIZE
        self.can_punch = _fallocate is not None and stat.S_ISREG(st.st_mode)
        features = (
            1 << VIRTIO_BLK_F_SIZE_MAX
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH
        )
        if read_only:
            features |= 1 << VIRTIO_BLK_F_RO
        else:
            features |= 1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES
        self.features = features
        self._config = self._build_config()
        self._writethrough = False
        # FLUSH requests that reached fsync(2) successfully: how a test sees a guest's
        # sync(1) arrive on the host's stable storage.
        self.flushes = 0

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Flush and close the image. Idempotent; requests after close fail with IOERR."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            if not self.read_only:
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            os.close(fd)

    def reset(self) -> None:
        """Device reset: nothing is in flight between notifications, so nothing to drop."""
        self._writethrough = False

    def ack_features(self, features: int) -> None:
        """Negotiated features. Without FLUSH the driver expects a write-through cache (5.2.5.2)."""
        self._writethrough = not features & (1 << VIRTIO_BLK_F_FLUSH)

    # -- configuration space -----------------------------------------------

    def _build_config(self) -> bytes:
        cfg = bytearray(CONFIG_SIZE)
        struct.pack_into("<Q", cfg, CFG_CAPACITY, self.capacity)
        struct.pack_into("<I", cfg, CFG_SIZE_MAX, SIZE_MAX)
        struct.pack_into("<I", cfg, CFG_SEG_MAX, SEG_MAX)
        struct.pack_into("<I", cfg, CFG_BLK_SIZE, SECTOR_SIZE)
        struct.pack_into("<H", cfg, CFG_NUM_QUEUES, 1)
        if not self.read_only:
            struct.pack_into("<I", cfg, CFG_MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS)
            struct.pack_into("<I", cfg, CFG_MAX_DISCARD_SEG, MAX_DISCARD_SEG)
            struct.pack_into("<I", cfg, CFG_DISCARD_SECTOR_ALIGNMENT, 1)
            struct.pack_into("<I", cfg, CFG_MAX_WRITE_ZEROES_SECTORS, MAX_WRITE_ZEROES_SECTORS)
            struct.pack_into("<I", cfg, CFG_MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SEG)
            cfg[CFG_WRITE_ZEROES_MAY_UNMAP] = 1 if self.can_punch else 0
        return bytes(cfg)

    def config_read(self, offset: int, size: int) -> int:
        """Little-endian read of `size` bytes at `offset`; bytes past the structure read as 0."""
        data = self._config[offset : offset + size] if offset >= 0 else b""
        return int.from_bytes(data.ljust(size, b"\0"), "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        """The configuration is read-only without CONFIG_WCE: writes are ignored."""
        log.debug("virtio-blk: ignored config write %#x/%d = %#x", offset, size, value)

    # -- requests ----------------------------------------------------------

    def queue_notify(self, index: int, vq: Virtqueue, interrupt: Callable[[], None]) -> None:
        """Process every available request on queue `index` (only queue 0 exists).

        Requests complete synchronously; `interrupt()` is called once if any
        was completed (the transport applies notification suppression).
        """
        if index != 0:
            return
        completed = False
        while (chain := vq.pop()) is not None:
            written = self.handle_request(chain)
            vq.push(chain, written)
            completed = True
        if completed:
            interrupt()

    def handle_request(self, chain: DescriptorChain) -> int:
        """Execute one request chain; return the number of bytes written to its writable part.

        Raises `VirtqueueError` if the chain's layout is malformed. Sector
        data moves between the image and guest RAM with preadv/pwritev on
        views of the chain's buffers: no copy in Python, one system call per
        request (a 1 MiB request is 256 page-sized buffers).
        """
        readable_len = chain.readable_len
        writable_len = chain.writable_len
        if readable_len < REQ_HEADER.size:
            raise VirtqueueError(f"virtio-blk request header is {readable_len} bytes, need {REQ_HEADER.size}")
        if writable_len < 1:
            raise VirtqueueError("virtio-blk request has no writable status byte")
        req_type, _reserved, sector = REQ_HEADER.unpack(
            b"".join(chain.readable_views(0, REQ_HEADER.size))
        )
        payload_len = readable_len - REQ_HEADER.size
        data_in_len = writable_len - 1  # writable bytes before the status byte

        if req_type in (VIRTIO_BLK_T_IN, VIRTIO_BLK_T_GET_ID):
            if payload_len:
                raise VirtqueueError(f"virtio-blk request type {req_type} carries readable data")
            if req_type == VIRTIO_BLK_T_IN:
                # On IOERR the data part holds whatever it held: the driver discards it.
                status = self._read_into(sector, chain.writable_views(0, data_in_len), data_in_len)
            else:
                # The ID is at most 20 bytes, NUL-padded; the rest of a larger buffer is untouched.
                chain.write_into(self.serial.ljust(VIRTIO_BLK_ID_BYTES, b"\0")[:data_in_len])
                status = VIRTIO_BLK_S_OK
            return _complete(chain, data_in_len, status)

        if req_type in _WRITE_SIDE_TYPES:
            if data_in_len:
                raise VirtqueueError(f"virtio-blk request type {req_type} has writable data before status")
            if req_type == VIRTIO_BLK_T_OUT:
                data = chain.readable_views(REQ_HEADER.size, payload_len)
                status = self._write_from(sector, data, payload_len)
            elif req_type == VIRTIO_BLK_T_FLUSH:
                if payload_len:
                    raise VirtqueueError("virtio-blk FLUSH carries readable data")
                status = self._flush()
            else:
                # DISCARD / WRITE_ZEROES segments: a few bytes, copied so the guest cannot change
                # them between validation and use. Far more segments than advertised are
                # unsupported without being read.
                if payload_len > MAX_DISCARD_PAYLOAD and payload_len % DISCARD_SEGMENT.size == 0:
                    status = VIRTIO_BLK_S_UNSUPP
                else:
                    size = min(payload_len, MAX_DISCARD_PAYLOAD + 1)  # + 1: a bad length stays bad
                    payload = b"".join(chain.readable_views(REQ_HEADER.size, size))
                    status = self._discard_or_zero(req_type, memoryview(payload))
            return chain.write_into(bytes([status]))

        # Unknown or unimplemented request type: fill in just the status, at the end.
        log.debug("virtio-blk: unsupported request type %d", req_type)
        return _complete(chain, data_in_len, VIRTIO_BLK_S_UNSUPP)

    def _range_ok(self, sector: int, nbytes: int) -> bool:
        if nbytes % SECTOR_SIZE:
            return False
        return sector <= self.capacity and sector * SECTOR_SIZE + nbytes <= self.size_bytes

    def _read_into(self, sector: int, views: list[memoryview], nbytes: int) -> int:
        """Read `nbytes` from `sector` on into guest buffers `views` (which cover exactly `nbytes`)."""
        if nbytes > MAX_REQUEST_BYTES or not self._range_ok(sector, nbytes):
            return VIRTIO_BLK_S_IOERR
        with self._lock:
            if self._fd is None:
                return VIRTIO_BLK_S_IOERR
            try:
                _preadv_exact(self._fd, views, sector * SECTOR_SIZE)
            except OSError as exc:
                log.warning("virtio-blk: read of %s at sector %d failed: %s", self.path, sector, exc)
                return VIRTIO_BLK_S_IOERR
        return VIRTIO_BLK_S_OK

    def _write_from(self, sector: int, views: list[memoryview], nbytes: int) -> int:
        """Write guest buffers `views` (`nbytes` in all) at `sector`."""
        if self.read_only or nbytes > MAX_REQUEST_BYTES or not self._range_ok(sector, nbytes):
            return VIRTIO_BLK_S_IOERR
        with self._lock:
            if self._fd is None:
                return VIRTIO_BLK_S_IOERR
            try:
                _pwritev_all(self._fd, views, sector * SECTOR_SIZE)
                if self._writethrough:
                    os.fdatasync(self._fd)
            except OSError as exc:
                log.warning("virtio-blk: write of %s at sector %d failed: %s", self.path, sector, exc)
                return VIRTIO_BLK_S_IOERR
        return VIRTIO_BLK_S_OK

    def _flush(self) -> int:
        with self._lock:
            if self._fd is None:
                return VIRTIO_BLK_S_IOERR
            if self.read_only:
                return VIRTIO_BLK_S_OK
            try:
                os.fsync(self._fd)
            except OSError as exc:
                log.warning("virtio-blk: fsync of %s failed: %s", self.path, exc)
                return VIRTIO_BLK_S_IOERR
            self.flushes += 1
        return VIRTIO_BLK_S_OK

    def _discard_or_zero(self, req_type: int, payload: memoryview) -> int:
        if self.read_only:
            return VIRTIO_BLK_S_IOERR
        if not payload or len(payload) % DISCARD_SEGMENT.size:
            raise VirtqueueError(
                f"virtio-blk request type {req_type} payload is {len(payload)} bytes, "
                f"not a non-zero multiple of {DISCARD_SEGMENT.size}"
            )
        discard = req_type == VIRTIO_BLK_T_DISCARD
        max_seg = MAX_DISCARD_SEG if discard else MAX_WRITE_ZEROES_SEG
        max_sectors = MAX_DISCARD_SECTORS if discard else MAX_WRITE_ZEROES_SECTORS
        segments = [DISCARD_SEGMENT.unpack_from(payload, off) for off in range(0, len(payload), 16)]
        if len(segments) > max_seg:
            return VIRTIO_BLK_S_UNSUPP
        for sector, num_sectors, flags in segments:
            # Unknown flags, or unmap on a discard, are unsupported (5.2.6.2).
            allowed = 0 if discard else VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
            if flags & ~allowed:
                return VIRTIO_BLK_S_UNSUPP
            if num_sectors > max_sectors or not self._range_ok(sector, num_sectors * SECTOR_SIZE):
                return VIRTIO_BLK_S_IOERR
        with self._lock:
            if self._fd is None:
                return VIRTIO_BLK_S_IOERR
            try:
                for sector, num_sectors, flags in segments:
                    offset, length = sector * SECTOR_SIZE, num_sectors * SECTOR_SIZE
                    if length == 0:
                        continue
                    unmap = discard or bool(flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
                    self._zero_range(offset, length, unmap)
            except OSError as exc:
                log.warning("virtio-blk: discard/write-zeroes on %s failed: %s", self.path, exc)
                return VIRTIO_BLK_S_IOERR
        return VIRTIO_BLK_S_OK

    def _zero_range(self, offset: int, length: int, unmap: bool) -> None:
        """Make [offset, offset+length) read as zeros; deallocate it if `unmap`. Caller holds the lock."""
        assert self._fd is not None
        if self.can_punch and _fallocate is not None:
            mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE if unmap else _FALLOC_FL_ZERO_RANGE
            if _fallocate(self._fd, mode, offset, length) == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise OSError(err, os.strerror(err))
        zeros = bytes(min(length, _ZERO_CHUNK))
        end = offset + length
        while offset < end:
            chunk = min(end - offset, len(zeros))
            _pwrite_all(self._fd, memoryview(zeros)[:chunk], offset)
            offset += chunk


def _complete(chain: DescriptorChain, data_in_len: int, status: int) -> int:
    """Store `status` in the last writable byte (after `data_in_len` bytes); return the used length.

    Writes one byte whatever the size of the data part, so a guest-sized
    buffer never costs a guest-sized allocation here.
    """
    # The status byte is the last byte of the last writable buffer (data_in_len is writable_len - 1).
    gpa, length = chain.writable[-1]
    chain.mem.view(gpa + length - 1, 1)[0] = status
    return data_in_len + 1


def _iov_batches(views: list[memoryview]) -> list[list[memoryview]]:
    """`views` in groups a single preadv/pwritev accepts (at most IOV_MAX buffers each)."""
    return [views[i : i + _IOV_MAX] for i in range(0, len(views), _IOV_MAX)]


def _advance(views: list[memoryview], done: int, total: int) -> list[memoryview]:
    """What is left of `views` (`total` bytes) after the first `done` bytes (a short transfer's remainder)."""
    if done >= total:
        return []  # the usual case: everything moved in one call
    rest: list[memoryview] = []
    for v in views:
        if done >= len(v):
            done -= len(v)
            continue
        rest.append(v[done:])
        done = 0
    return rest


def _fill_zeros(views: list[memoryview]) -> None:
    for v in views:
        v[:] = bytes(len(v))


def _preadv_exact(fd: int, views: list[memoryview], offset: int) -> None:
    """preadv into all of `views` from `offset` (short reads retried; past end of file reads as zeros)."""
    for batch in _iov_batches(views):
        left = sum(len(v) for v in batch)
        while batch:
            n = os.preadv(fd, batch, offset)
            if n <= 0:
                _fill_zeros(batch)  # the file shrank under us
                offset += left
                break
            offset += n
            batch = _advance(batch, n, left)
            left -= n


def _pwritev_all(fd: int, views: list[memoryview], offset: int) -> None:
    """pwritev all of `views` at `offset`, retrying short writes."""
    for batch in _iov_batches(views):
        left = sum(len(v) for v in batch)
        while batch:
            n = os.pwritev(fd, batch, offset)
            if n <= 0:
                raise OSError(errno.EIO, "short write")
            offset += n
            batch = _advance(batch, n, left)
            left -= n


def _pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    """pwrite all of `data` at `offset`, retrying short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        offset += n
