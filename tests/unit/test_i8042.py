"""The 8042 keyboard controller: Linux's probe, atkbd and psmouse exchanges, IRQ edges, reset, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.devices.i8042 import I8042
from tests.unit.fakes import RecordingIrq

OBF, AUXDATA = 0x01, 0x20



class Kbc:
    def __init__(self) -> None:
        self.kbd_irq = RecordingIrq()
        self.aux_irq = RecordingIrq()
        self.resets = 0
        self.kbc = I8042(self.kbd_irq, self.aux_irq, self._on_reset)

    def _on_reset(self) -> None:
        self.resets += 1

    def status(self) -> int:
        return self.kbc.command_port.read(0, 1)

    def data(self) -> int:
        return self.kbc.data_port.read(0, 1)

    def cmd(self, byte: int) -> None:
        self.kbc.command_port.write(0, 1, byte)

    def put(self, byte: int) -> None:
        self.kbc.data_port.write(0, 1, byte)

    def drain(self) -> list[tuple[int, bool]]:
        out = []
        while (st_ := self.status()) & OBF:
            out.append((self.data(), bool(st_ & AUXDATA)))
        return out

    def command(self, byte: int, param: int | None = None, replies: int = 0) -> list[int]:
        """i8042_command(): command, optional parameter, then poll for reply bytes."""
        self.cmd(byte)
        if param is not None:
            self.put(param)
        out = []
        for _ in range(replies):
            assert self.status() & OBF
            out.append(self.data())
        return out


@pytest.fixture
def k() -> Kbc:
    return Kbc()


def test_reset_state_matches_qemu(k: Kbc) -> None:
    assert k.status() == 0x18
    assert k.command(0x20, replies=1) == [0x03]
    assert k.command(0xD0, replies=1) == [0xCF]


def test_linux_i8042_probe_sequence(k: Kbc) -> None:
    assert k.drain() == []  # i8042_controller_check: flush finds an empty buffer
    assert k.command(0xAA, replies=1) == [0x55]  # controller self-test
    assert k.status() & 0x04  # system flag
    ctr = k.command(0x20, replies=1)[0]
    assert k.command(0x20, replies=1)[0] == ctr  # a stable CTR read
    assert k.status() & 0x10  # not key-locked
    ctr = (ctr | 0x10) & ~0x01  # disable the keyboard and its interrupt
    k.command(0x60, ctr)
    assert k.command(0x20, replies=1) == [ctr]
    assert k.drain() == []
    # i8042_check_aux: internal loopback
    k.cmd(0xD3)
    k.put(0x5A)
    assert k.status() & (OBF | AUXDATA) == OBF | AUXDATA
    assert k.data() == 0x5A
    # bit assignment test: disable then enable AUX, checking the CTR each time
    k.cmd(0xA7)
    assert k.command(0x20, replies=1)[0] & 0x20
    k.cmd(0xA8)
    assert not k.command(0x20, replies=1)[0] & 0x20
    # AUX IRQ delivery test: loopback with the AUX interrupt enabled must raise IRQ12
    k.command(0x60, (ctr | 0x02) & ~0x20)
    edges = k.aux_irq.rising_edges
    k.cmd(0xD3)
    k.put(0xA5)
    assert k.aux_irq.level and k.aux_irq.rising_edges == edges + 1
    assert k.status() & AUXDATA and k.data() == 0xA5
    assert not k.aux_irq.level
    # i8042_enable_kbd_port
    k.command(0x60, (ctr & ~0x10) | 0x01 | 0x02)


def test_interface_tests_and_mux_probe_is_plain_loopback(k: Kbc) -> None:
    assert k.command(0xAB, replies=1) == [0x00]
    assert k.command(0xA9, replies=1) == [0x00]
    # i8042_set_mux_mode: a loopback echoing 0xa4 means "no active multiplexer"
    for byte in (0xF0, 0x56, 0xA4):
        k.cmd(0xD3)
        k.put(byte)
        assert k.status() & AUXDATA and k.data() == byte


def test_atkbd_probe(k: Kbc) -> None:
    k.put(0xFF)  # ATKBD_CMD_RESET_BAT
    assert k.drain() == [(0xFA, False), (0xAA, False)]
    k.put(0xF2)  # ATKBD_CMD_GETID
    assert k.drain() == [(0xFA, False), (0xAB, False), (0x83, False)]
    k.put(0xF0)  # get scan code set
    k.put(0x00)
    assert k.drain() == [(0xFA, False), (0xFA, False), (0x02, False)]
    for cmd, param in ((0xF0, 2), (0xF3, 0x00), (0xED, 0x07)):
        k.put(cmd)
        k.put(param)
        assert k.drain() == [(0xFA, False), (0xFA, False)]
    assert k.kbc.keyboard.leds == 7
    k.put(0xF4)
    assert k.drain() == [(0xFA, False)]
    k.put(0xEE)
    assert k.drain() == [(0xEE, False)]
    k.put(0x42)
    assert k.drain() == [(0xFE, False)]


def test_translated_keyboard_reports_translated_id(k: Kbc) -> None:
    k.command(0x60, 0x43)
    k.put(0xF2)
    assert [b for b, _ in k.drain()] == [0xFA, 0xAB, 0x41]


def test_every_reply_byte_is_a_new_irq1_edge(k: Kbc) -> None:
    k.put(0xF2)
    assert k.kbd_irq.level
    edges = k.kbd_irq.rising_edges
    k.data()
    k.data()
    k.data()
    assert k.kbd_irq.rising_edges == edges + 2
    assert not k.kbd_irq.level


def test_disabled_keyboard_interface_holds_device_data(k: Kbc) -> None:
    k.put(0xF4)
    k.drain()
    k.cmd(0xAD)
    k.kbc.send_keys(b"\x1c\xf0\x1c")
    assert not k.status() & OBF
    k.cmd(0xAE)
    assert [b for b, _ in k.drain()] == [0x1C, 0xF0, 0x1C]


def test_controller_replies_go_before_device_data(k: Kbc) -> None:
    k.kbc.send_keys(b"\x1c\x32\x21")
    k.cmd(0x20)
    assert k.data() == 0x1C  # already in the output buffer
    assert k.data() == 0x03  # the reply overtakes the keyboard's queue
    assert k.data() == 0x32
    assert k.data() == 0x21


def test_psmouse_detection_knocks(k: Kbc) -> None:
    def aux(byte: int) -> list[int]:
        k.cmd(0xD4)
        k.put(byte)
        got = k.drain()
        assert all(is_aux for _, is_aux in got)
        return [b for b, _ in got]

    assert aux(0xFF) == [0xFA, 0xAA, 0x00]
    assert aux(0xF2) == [0xFA, 0x00]
    for rate in (200, 100, 80):
        assert aux(0xF3) == [0xFA] and aux(rate) == [0xFA]
    assert aux(0xF2) == [0xFA, 0x03]  # IntelliMouse
    for rate in (200, 200, 80):
        aux(0xF3)
        aux(rate)
    assert aux(0xF2) == [0xFA, 0x04]  # IntelliMouse Explorer
    assert aux(0xE9) == [0xFA, 0x00, 0x02, 80]
    assert aux(0xF4) == [0xFA]
    k.kbc.move_mouse(3, -2, 1)
    assert [b for b, _ in k.drain()] == [0x29, 0x03, 0xFE]
    assert aux(0xEE) == [0xFA]  # wrap mode echoes
    assert aux(0x12) == [0x12]
    assert aux(0xEC) == [0xFA]


def test_reset_line(k: Kbc) -> None:
    k.cmd(0xFE)
    assert k.resets == 1
    k.cmd(0xFF)  # pulse nothing
    assert k.resets == 1
    k.command(0xD1, 0xCE)  # output port bit 0 low
    assert k.resets == 2


def test_wide_and_offset_accesses(k: Kbc) -> None:
    assert k.kbc.command_port.read(0, 2) == 0xFF18
    assert k.kbc.data_port.read(1, 1) == 0xFF


_ops = st.one_of(
    st.tuples(st.just("cmd"), st.integers(0, 255)),
    st.tuples(st.just("put"), st.integers(0, 255)),
    st.tuples(st.just("data"), st.just(0)),
    st.tuples(st.just("status"), st.just(0)),
    st.tuples(st.just("keys"), st.integers(0, 255)),
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(_ops, max_size=80))
def test_fuzz_register_interface(ops: list[tuple[str, int]]) -> None:
    k = Kbc()
    for op, arg in ops:
        if op == "cmd":
            k.cmd(arg)
        elif op == "put":
            k.put(arg)
        elif op == "data":
            assert 0 <= k.data() <= 0xFF
        elif op == "status":
            assert 0 <= k.status() <= 0xFF
        else:
            k.kbc.send_keys(bytes((arg,)))
        s = k.kbc.state()
        assert (
            s.kbd_irq == k.kbd_irq.level == (s.output_full and not s.output_aux and bool(s.command_byte & 1))
        )
        assert s.aux_irq == k.aux_irq.level == (s.output_full and s.output_aux and bool(s.command_byte & 2))
        assert bool(s.status & OBF) == s.output_full
        assert len(k.kbc.keyboard.queue) <= 16 and len(k.kbc.mouse.queue) <= 16
