"""virtio-blk: image checks, config space, and every request type against a real image file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.virtio.blk import (
    CFG_BLK_SIZE,
    CFG_CAPACITY,
    CFG_MAX_DISCARD_SEG,
    CFG_NUM_QUEUES,
    CFG_SEG_MAX,
    CFG_SIZE_MAX,
    SEG_MAX,
    SIZE_MAX,
    VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_WRITE_ZEROES,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
    VirtioBlk,
    VirtioBlkError,
)
from kvmpy.vmm.virtio.queue import VirtqueueError
from tests.unit.virtio_fakes import CountingInterrupt, FakeGuest, FakeQueue

SECTORS = 64
PATTERN = bytes((i * 7 + 3) & 0xFF for i in range(SECTORS * 512))


def header(req_type: int, sector: int = 0) -> bytes:
    return struct.pack("<IIQ", req_type, 0, sector)


def segment(sector: int, num: int, flags: int = 0) -> bytes:
    return struct.pack("<QII", sector, num, flags)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(PATTERN)
    return path


@pytest.fixture
def guest() -> FakeGuest:
    return FakeGuest()


def run(dev: VirtioBlk, guest: FakeGuest, readable: list[bytes], writable: list[int]) -> tuple[bytes, int]:
    """Submit one chain; return (writable bytes after completion, used length)."""
    chain = guest.chain(readable, writable)
    vq = FakeQueue([chain])
    irq = CountingInterrupt()
    dev.queue_notify(0, vq, irq)  # type: ignore[arg-type]
    assert irq.count == 1
    assert len(vq.used) == 1 and vq.used[0][0] is chain
    return guest.writable_bytes(chain), vq.used[0][1]


# -- opening ------------------------------------------------------------------


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(VirtioBlkError, match="does not exist"):
        VirtioBlk(tmp_path / "nope.img")


def test_directory_image(tmp_path: Path) -> None:
    with pytest.raises(VirtioBlkError, match="directory"):
        VirtioBlk(tmp_path)


def test_unaligned_size(tmp_path: Path) -> None:
    path = tmp_path / "odd.img"
    path.write_bytes(b"x" * 1000)
    with pytest.raises(VirtioBlkError, match="multiple of 512"):
        VirtioBlk(path)


def test_error_is_vmm_error() -> None:
    assert issubclass(VirtioBlkError, VmmError)


def test_long_serial(image: Path) -> None:
    with pytest.raises(VirtioBlkError, match="serial"):
        VirtioBlk(image, serial="x" * 21)


# -- configuration --------------------------------------------------------------


def test_config_and_features(image: Path) -> None:
    dev = VirtioBlk(image)
    assert dev.device_id == 2 and dev.num_queues == 1
    assert dev.config_read(CFG_CAPACITY, 4) == SECTORS
    assert dev.config_read(CFG_CAPACITY + 4, 4) == 0
    assert dev.config_read(CFG_SIZE_MAX, 4) == SIZE_MAX
    assert dev.config_read(CFG_SEG_MAX, 4) == SEG_MAX
    assert dev.config_read(CFG_BLK_SIZE, 4) == 512
    assert dev.config_read(CFG_NUM_QUEUES, 2) == 1
    assert dev.config_read(CFG_MAX_DISCARD_SEG, 4) >= 1
    assert dev.config_read(0x100, 4) == 0  # beyond the structure
    assert dev.features & (1 << VIRTIO_BLK_F_FLUSH)
    assert dev.features & (1 << VIRTIO_BLK_F_DISCARD)
    assert dev.features & (1 << VIRTIO_BLK_F_WRITE_ZEROES)
    assert not dev.features & (1 << VIRTIO_BLK_F_RO)
    assert dev.features < (1 << 24)
    dev.config_write(CFG_CAPACITY, 4, 0)  # ignored
    assert dev.config_read(CFG_CAPACITY, 4) == SECTORS
    dev.close()


def test_read_only_features(image: Path) -> None:
    dev = VirtioBlk(image, read_only=True)
    assert dev.features & (1 << VIRTIO_BLK_F_RO)
    assert not dev.features & (1 << VIRTIO_BLK_F_DISCARD)
    dev.close()


# -- requests -------------------------------------------------------------------


def test_read(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    out, used = run(dev, guest, [header(VIRTIO_BLK_T_IN, 3)], [512, 1024, 1])
    assert out[:1536] == PATTERN[3 * 512 : 6 * 512]
    assert out[-1] == VIRTIO_BLK_S_OK
    assert used == 1537


def test_read_split_header_and_status_in_data_buffer(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    hdr = header(VIRTIO_BLK_T_IN, 1)
    out, _ = run(dev, guest, [hdr[:5], hdr[5:]], [513])
    assert out[:512] == PATTERN[512:1024] and out[512] == VIRTIO_BLK_S_OK


def test_write_round_trip(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    data = bytes(range(256)) * 4
    out, used = run(dev, guest, [header(VIRTIO_BLK_T_OUT, 10), data[:300], data[300:]], [1])
    assert out == bytes([VIRTIO_BLK_S_OK]) and used == 1
    content = image.read_bytes()
    assert content[10 * 512 : 12 * 512] == data
    assert content[: 10 * 512] == PATTERN[: 10 * 512] and content[12 * 512 :] == PATTERN[12 * 512 :]
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, 10)], [1024, 1])
    assert out[:1024] == data


def test_flush(image: Path, guest: FakeGuest, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = VirtioBlk(image)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_FLUSH)], [1])
    assert out == bytes([VIRTIO_BLK_S_OK]) and len(synced) == 1
    assert dev.flushes == 1


def test_writethrough_without_flush_feature(
    image: Path, guest: FakeGuest, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = VirtioBlk(image)
    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(fd))
    dev.ack_features(dev.features & ~(1 << VIRTIO_BLK_F_FLUSH))
    run(dev, guest, [header(VIRTIO_BLK_T_OUT, 0), bytes(512)], [1])
    assert len(synced) == 1
    dev.ack_features(dev.features)
    run(dev, guest, [header(VIRTIO_BLK_T_OUT, 0), bytes(512)], [1])
    assert len(synced) == 1


def test_get_id(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image, serial="kvmpy-disk0")
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_GET_ID)], [20, 1])
    assert out[:20] == b"kvmpy-disk0".ljust(20, b"\0") and out[20] == VIRTIO_BLK_S_OK
    full = VirtioBlk(image, serial="A" * 20)
    out, _ = run(full, guest, [header(VIRTIO_BLK_T_GET_ID)], [21])
    assert out == b"A" * 20 + bytes([VIRTIO_BLK_S_OK])


@pytest.mark.parametrize(
    ("sector", "nbytes"),
    [(SECTORS, 512), (SECTORS - 1, 1024), (2**63, 512), (2**64 - 1, 512), (0, 513), (0, 100)],
)
def test_out_of_range_or_misaligned_is_ioerr(image: Path, guest: FakeGuest, sector: int, nbytes: int) -> None:
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, sector)], [nbytes, 1])
    assert out[-1] == VIRTIO_BLK_S_IOERR
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_OUT, sector), b"\xff" * nbytes], [1])
    assert out == bytes([VIRTIO_BLK_S_IOERR])
    assert image.read_bytes() == PATTERN


def test_last_sector_is_in_range(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, SECTORS - 1)], [512, 1])
    assert out[:512] == PATTERN[-512:] and out[-1] == VIRTIO_BLK_S_OK


def test_read_only_rejects_writes(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image, read_only=True)
    for readable in (
        [header(VIRTIO_BLK_T_OUT, 0), b"\0" * 512],
        [header(VIRTIO_BLK_T_DISCARD), segment(0, 8)],
        [header(VIRTIO_BLK_T_WRITE_ZEROES), segment(0, 8)],
    ):
        out, _ = run(dev, guest, readable, [1])
        assert out == bytes([VIRTIO_BLK_S_IOERR])
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, 0)], [512, 1])
    assert out[:512] == PATTERN[:512] and out[-1] == VIRTIO_BLK_S_OK
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_FLUSH)], [1])
    assert out == bytes([VIRTIO_BLK_S_OK])
    assert image.read_bytes() == PATTERN


def test_read_only_opens_unwritable_file(image: Path, guest: FakeGuest) -> None:
    image.chmod(0o444)
    if os.access(image, os.W_OK):
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(VirtioBlkError, match="cannot open"):
        VirtioBlk(image)
    dev = VirtioBlk(image, read_only=True)
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, 0)], [512, 1])
    assert out[-1] == VIRTIO_BLK_S_OK


@pytest.mark.parametrize("req_type", [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES])
@pytest.mark.parametrize("unmap", [0, 1])
def test_discard_and_write_zeroes(image: Path, guest: FakeGuest, req_type: int, unmap: int) -> None:
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(req_type), segment(4, 9, unmap)], [1])
    if req_type == VIRTIO_BLK_T_DISCARD and unmap:
        assert out == bytes([VIRTIO_BLK_S_UNSUPP])  # unmap flag is not allowed on discard
        assert image.read_bytes() == PATTERN
        return
    assert out == bytes([VIRTIO_BLK_S_OK])
    content = image.read_bytes()
    assert len(content) == len(PATTERN)
    assert content[4 * 512 : 13 * 512] == bytes(9 * 512)
    assert content[: 4 * 512] == PATTERN[: 4 * 512] and content[13 * 512 :] == PATTERN[13 * 512 :]


def test_write_zeroes_fallback_without_fallocate(
    image: Path, guest: FakeGuest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kvmpy.vmm.virtio.blk as blk

    monkeypatch.setattr(blk, "_fallocate", None)
    dev = VirtioBlk(image)
    assert not dev.can_punch
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_WRITE_ZEROES), segment(SECTORS - 2, 2, 1)], [1])
    assert out == bytes([VIRTIO_BLK_S_OK])
    content = image.read_bytes()
    assert content[-1024:] == bytes(1024) and content[:-1024] == PATTERN[:-1024]


def test_discard_bad_segments(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_DISCARD), segment(SECTORS - 1, 2)], [1])
    assert out == bytes([VIRTIO_BLK_S_IOERR])
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_WRITE_ZEROES), segment(0, 1, 0x4)], [1])
    assert out == bytes([VIRTIO_BLK_S_UNSUPP])
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_DISCARD), segment(0, 1) + segment(2, 1)], [1])
    assert out == bytes([VIRTIO_BLK_S_UNSUPP])  # more segments than max_discard_seg
    assert image.read_bytes() == PATTERN
    with pytest.raises(VirtqueueError):
        run(dev, guest, [header(VIRTIO_BLK_T_DISCARD), b"\0" * 10], [1])


def test_unknown_type_is_unsupp(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(10)], [8, 1])
    assert out[-1] == VIRTIO_BLK_S_UNSUPP
    out, _ = run(dev, guest, [header(0x12345678, 5), b"junk"], [1])
    assert out == bytes([VIRTIO_BLK_S_UNSUPP])


@pytest.mark.parametrize(
    ("readable", "writable"),
    [
        ([b"\0" * 15], [1]),  # header too short
        ([header(VIRTIO_BLK_T_IN)], []),  # no status byte
        ([header(VIRTIO_BLK_T_IN), b"\0" * 512], [513]),  # read with readable data
        ([header(VIRTIO_BLK_T_OUT), b"\0" * 512], [512, 1]),  # write with writable data
        ([header(VIRTIO_BLK_T_FLUSH)], [4]),  # flush with writable data
        ([header(VIRTIO_BLK_T_FLUSH), b"x"], [1]),  # flush with payload
        ([header(VIRTIO_BLK_T_GET_ID), b"x"], [21]),
        ([header(VIRTIO_BLK_T_WRITE_ZEROES)], [1]),  # no segment
        ([], [1]),
    ],
)
def test_malformed_requests(
    image: Path, guest: FakeGuest, readable: list[bytes], writable: list[int]
) -> None:
    dev = VirtioBlk(image)
    with pytest.raises(VirtqueueError):
        run(dev, guest, readable, writable)
    assert image.read_bytes() == PATTERN


def test_multiple_requests_one_interrupt(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    chains = [guest.chain([header(VIRTIO_BLK_T_IN, i)], [512, 1]) for i in range(5)]
    vq = FakeQueue(chains)
    irq = CountingInterrupt()
    dev.queue_notify(0, vq, irq)  # type: ignore[arg-type]
    assert irq.count == 1 and [c for c, _ in vq.used] == chains
    for i, chain in enumerate(chains):
        assert guest.writable_bytes(chain)[:512] == PATTERN[i * 512 : (i + 1) * 512]
    dev.queue_notify(0, FakeQueue(), irq)  # type: ignore[arg-type]
    assert irq.count == 1  # nothing completed, no interrupt


def test_closed_device_ioerr(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    dev.close()
    dev.close()
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, 0)], [512, 1])
    assert out[-1] == VIRTIO_BLK_S_IOERR


# -- fuzzing --------------------------------------------------------------------

_TYPES = st.one_of(
    st.sampled_from(
        [
            VIRTIO_BLK_T_IN,
            VIRTIO_BLK_T_OUT,
            VIRTIO_BLK_T_FLUSH,
            VIRTIO_BLK_T_GET_ID,
            VIRTIO_BLK_T_DISCARD,
            VIRTIO_BLK_T_WRITE_ZEROES,
            10,
            14,
        ]
    ),
    st.integers(0, 2**32 - 1),
)
_SECTORS = st.one_of(st.integers(0, SECTORS + 2), st.integers(0, 2**64 - 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    req_type=_TYPES,
    sector=_SECTORS,
    header_len=st.integers(0, 24),
    payload=st.binary(max_size=2048),
    seg=st.tuples(_SECTORS, st.integers(0, 2**32 - 1), st.integers(0, 3)),
    use_seg=st.booleans(),
    writable=st.lists(st.integers(1, 1100), max_size=4),
)
def test_fuzz_headers(
    tmp_path: Path,
    req_type: int,
    sector: int,
    header_len: int,
    payload: bytes,
    seg: tuple[int, int, int],
    use_seg: bool,
    writable: list[int],
) -> None:
    path = tmp_path / "fuzz.img"
    if not path.exists():
        path.write_bytes(PATTERN[: 8 * 512])
    size_before = path.stat().st_size
    guest = FakeGuest(1 << 16)
    dev = VirtioBlk(path)
    body = segment(*seg) if use_seg else payload
    readable = [(header(req_type, sector) + body)[: header_len if header_len < 16 else 16 + len(body)]]
    readable = [b for b in readable if b]
    try:
        run(dev, guest, readable, writable)
    except VirtqueueError:
        pass
    finally:
        dev.close()
    assert path.stat().st_size == size_before


# -- scatter-gather: data moves straight between the image and guest buffers ----------------


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (empty pieces dropped: descriptors are never empty)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sector=st.integers(0, SECTORS - 4),
    nsectors=st.integers(1, 4),
    cuts=st.lists(st.integers(0, 4 * 512 + 17), max_size=8),
)
def test_any_buffer_layout_moves_the_same_bytes(
    tmp_path: Path, sector: int, nsectors: int, cuts: list[int]
) -> None:
    """Header, data and status cut anywhere (header and data sharing a buffer, status inside one)."""
    image = tmp_path / "layout.img"  # fresh for every example (fixtures are not)
    image.write_bytes(PATTERN)
    guest = FakeGuest(1 << 16)
    dev = VirtioBlk(image)
    try:
        data = bytes((sector + i * 13) & 0xFF for i in range(nsectors * 512))
        out, _ = run(dev, guest, _split(header(VIRTIO_BLK_T_OUT, sector) + data, cuts), [1])
        assert out == bytes([VIRTIO_BLK_S_OK])
        # read it back through a writable part cut at the same places
        lengths = [len(p) for p in _split(bytes(len(data) + 1), cuts)]
        out, used = run(dev, guest, [header(VIRTIO_BLK_T_IN, sector)], lengths)
        assert out == data + bytes([VIRTIO_BLK_S_OK]) and used == len(data) + 1
    finally:
        dev.close()
    expected = PATTERN[: sector * 512] + data + PATTERN[(sector + nsectors) * 512 :]
    assert image.read_bytes() == expected


def test_more_buffers_than_one_system_call_takes(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kvmpy.vmm.virtio.blk as blk

    monkeypatch.setattr(blk, "_IOV_MAX", 3)  # as if IOV_MAX were tiny: 64 buffers need 22 calls
    guest = FakeGuest()
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, 0)], [512] * SECTORS + [1])
    assert out == PATTERN + bytes([VIRTIO_BLK_S_OK])
    data = bytes(reversed(PATTERN))
    pieces = [data[i : i + 512] for i in range(0, len(data), 512)]
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_OUT, 0), *pieces], [1])
    assert out == bytes([VIRTIO_BLK_S_OK]) and image.read_bytes() == data


def test_short_reads_and_writes_are_resumed(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may move fewer bytes than asked (signals, quotas): the rest follows in order."""
    real_preadv, real_pwritev = os.preadv, os.pwritev

    def short_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        return real_preadv(fd, [buffers[0][:100]], offset)

    def short_pwritev(fd: int, buffers: list[memoryview], offset: int) -> int:
        return real_pwritev(fd, [buffers[0][:77]], offset)

    monkeypatch.setattr(os, "preadv", short_preadv)
    monkeypatch.setattr(os, "pwritev", short_pwritev)
    guest = FakeGuest()
    dev = VirtioBlk(image)
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_IN, 2)], [1000, 24, 1])
    assert out == PATTERN[1024:2048] + bytes([VIRTIO_BLK_S_OK])
    data = bytes(range(256)) * 6
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_OUT, 4), data[:700], data[700:]], [1])
    assert out == bytes([VIRTIO_BLK_S_OK])
    assert image.read_bytes()[2048 : 2048 + 1536] == data


def test_failed_read_writes_only_the_status(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    out, used = run(dev, guest, [header(VIRTIO_BLK_T_IN, SECTORS)], [512, 1])  # one past the end
    assert out == b"\xaa" * 512 + bytes([VIRTIO_BLK_S_IOERR]) and used == 513  # 0xaa: FakeGuest's poison


def test_discard_with_far_too_many_segments_is_unsupp_unread(image: Path, guest: FakeGuest) -> None:
    dev = VirtioBlk(image)
    many = segment(0, 1) * 1000
    out, _ = run(dev, guest, [header(VIRTIO_BLK_T_DISCARD), many], [1])
    assert out == bytes([VIRTIO_BLK_S_UNSUPP]) and image.read_bytes() == PATTERN
