"""The 16550A model: register semantics, interrupts, FIFOs, loopback, thread safety, fuzzing."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmpy.vmm.bus import Bus
from kvmpy.vmm.devices.uart16550 import FIFO_SIZE, LINE_BUFFER_BYTES, Uart16550
from kvmpy.vmm.serial import BufferSerial
from tests.unit.fakes import RecordingIrq

RBR = THR = DLL = 0
IER = DLM = 1
IIR = FCR = 2
LCR, MCR, LSR, MSR, SCR = 3, 4, 5, 6, 7

IIR_NONE, IIR_MSI, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_CTI = 0x01, 0x00, 0x02, 0x04, 0x06, 0x0C
VALID_IIR_IDS = {IIR_NONE, IIR_MSI, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_CTI}


class Port:
    """A UART plus the helpers a driver would use."""

    def __init__(self, reg_shift: int = 0, **kwargs: bool) -> None:
        self.backend = BufferSerial()
        self.irq = RecordingIrq()
        self.uart = Uart16550(self.backend, self.irq, reg_shift, **kwargs)
        self.shift = reg_shift

    def r(self, reg: int) -> int:
        return self.uart.read(reg << self.shift, 1)

    def w(self, reg: int, value: int) -> None:
        self.uart.write(reg << self.shift, 1, value)


@pytest.fixture
def port() -> Port:
    return Port()


def test_reset_state_matches_qemu(port: Port) -> None:
    assert port.r(IER) == 0
    assert port.r(IIR) == IIR_NONE
    assert port.r(LCR) == 0
    assert port.r(MCR) == 0x08  # OUT2, as QEMU resets it
    assert port.r(LSR) == 0x60  # THRE | TEMT
    assert port.r(MSR) == 0xB0  # DCD | DSR | CTS
    assert port.r(SCR) == 0
    port.w(LCR, 0x80)
    assert (port.r(DLM) << 8) | port.r(DLL) == 12
    assert not port.irq.level


def test_thr_write_goes_to_backend_and_transmitter_stays_empty(port: Port) -> None:
    for ch in b"hello":
        port.w(THR, ch)
        assert port.r(LSR) & 0x60 == 0x60
    assert bytes(port.backend.output) == b"hello"


def test_divisor_latch_shadows_rbr_and_ier(port: Port) -> None:
    port.w(LCR, 0x83)
    port.w(DLL, 0x01)
    port.w(DLM, 0x02)
    assert port.r(DLL) == 0x01 and port.r(DLM) == 0x02
    assert port.backend.output == b""  # DLL write is not a transmission
    port.w(LCR, 0x03)
    assert port.r(IER) == 0  # DLM write did not touch IER
    assert port.uart.state().divisor == 0x0201


def test_ier_keeps_low_four_bits(port: Port) -> None:
    port.w(IER, 0xFF)
    assert port.r(IER) == 0x0F


def test_thre_interrupt_arms_on_enable_clears_on_iir_read_rearms_on_thr_write(port: Port) -> None:
    port.w(IER, 0x02)
    assert port.irq.level
    assert port.r(IIR) == IIR_THRI
    assert not port.irq.level  # reading IIR acknowledged THRE
    assert port.r(IIR) == IIR_NONE
    port.w(IER, 0x02)  # no 0->1 change of ETBEI: does not re-arm
    assert not port.irq.level
    port.w(THR, ord("x"))  # instant transmission: THR empty again
    assert port.irq.level
    port.w(IER, 0x00)
    assert not port.irq.level and port.r(IIR) == IIR_NONE


def test_rx_without_fifo_holds_one_byte_and_the_line_holds_the_rest(port: Port) -> None:
    port.w(IER, 0x01)
    port.uart.receive(b"a")
    assert port.r(LSR) & 0x01
    assert port.irq.level and port.r(IIR) == IIR_RDI
    port.uart.receive(b"b")  # RBR not read yet: "b" waits on the line, no overrun
    assert port.uart.state().rx_count == 1
    assert port.r(LSR) & 0x02 == 0
    assert port.r(RBR) == ord("a")
    assert port.r(LSR) & 0x01  # "b" moved into RBR as "a" was read
    assert port.r(RBR) == ord("b")
    assert port.r(LSR) & 0x01 == 0
    assert not port.irq.level
    assert port.r(RBR) == ord("b")  # RBR keeps its last byte in 16450 mode


def test_flooding_beyond_the_line_buffer_overruns(port: Port) -> None:
    port.w(IER, 0x0F)
    port.uart.receive(bytes(LINE_BUFFER_BYTES + 2))  # more than the line can hold
    assert port.r(IIR) == IIR_RLSI  # the line status interrupt wins over rx data
    assert port.r(LSR) & 0x03 == 0x03  # DR and OE; reading LSR clears OE
    assert port.r(IIR) == IIR_RDI
    assert port.r(LSR) & 0x02 == 0


def test_fifo_enable_reports_in_iir_and_trigger_levels(port: Port) -> None:
    port.w(IER, 0x01)
    for fcr, trigger in ((0x01, 1), (0x41, 4), (0x81, 8), (0xC1, 14)):
        port.w(FCR, fcr | 0x02)  # with an RX reset each time
        assert port.uart.state().rx_trigger_bytes == trigger
        assert port.r(IIR) & 0xC0 == 0xC0
        port.uart.receive(bytes(trigger - 1))
        expected = IIR_CTI if trigger > 1 else IIR_RDI
        assert port.r(IIR) & 0x0F == (expected if trigger > 1 else IIR_NONE)
        port.uart.receive(b"\x00")
        assert port.r(IIR) & 0x0F == IIR_RDI
        assert port.irq.level
    port.w(FCR, 0x00)
    assert port.r(IIR) & 0xC0 == 0


def test_fifo_keeps_order_and_pasted_input_is_not_lost(port: Port) -> None:
    port.w(FCR, 0x07)
    data = bytes(range(1, 41))  # more than two FIFOs' worth, as when pasting
    port.uart.receive(data)
    assert port.uart.state().rx_count == FIFO_SIZE
    assert port.r(LSR) & 0x03 == 0x01  # DR, no overrun
    got = bytes(port.r(RBR) for _ in range(len(data)))
    assert got == data
    assert port.r(LSR) & 0x01 == 0
    assert port.r(RBR) == 0  # an empty FIFO reads 0


def test_fcr_rx_reset_and_enable_toggle_flush_the_fifo(port: Port) -> None:
    port.w(FCR, 0x01)
    port.uart.receive(b"abc")
    port.w(FCR, 0x03)
    assert port.uart.state().rx_count == 0 and port.r(LSR) & 0x01 == 0
    port.uart.receive(b"abc")
    port.w(FCR, 0x00)  # disabling the FIFO empties it
    assert port.r(LSR) & 0x01 == 0


def test_loopback_routes_tx_to_rx_and_modem_outputs_to_inputs(port: Port) -> None:
    port.w(FCR, 0x01)
    port.w(MCR, 0x1A)  # LOOP | OUT2 | RTS: Linux's 8250 autoconfig loopback probe
    assert port.r(MSR) & 0xF0 == 0x90  # DCD | CTS
    port.w(THR, ord("z"))
    assert port.backend.output == b""
    assert port.r(LSR) & 0x01 and port.r(RBR) == ord("z")
    port.uart.receive(b"q")  # the serial input pin is disconnected in loopback
    assert port.r(LSR) & 0x01 == 0
    port.w(MCR, 0x08)
    port.w(THR, ord("y"))
    assert port.backend.output == b"y"


def test_modem_status_interrupt_from_loopback_changes(port: Port) -> None:
    port.w(MCR, 0x10)  # loopback, all outputs off: DCD/DSR/CTS drop
    port.r(MSR)  # clear deltas of entering loopback
    port.w(IER, 0x08)
    assert not port.irq.level
    port.w(MCR, 0x12)  # RTS -> CTS rises
    assert port.irq.level and port.r(IIR) == IIR_MSI
    msr = port.r(MSR)
    assert msr & 0x10 and msr & 0x01  # CTS and delta CTS
    assert not port.irq.level and port.r(MSR) & 0x0F == 0
    port.w(MCR, 0x14)  # RI up (OUT1), CTS down
    port.r(MSR)
    port.w(MCR, 0x10)  # RI falls: trailing edge
    assert port.r(MSR) & 0x04


def test_scratch_register(port: Port) -> None:
    port.w(SCR, 0xA5)
    assert port.r(SCR) == 0xA5


def test_lsr_and_msr_writes_are_ignored(port: Port) -> None:
    port.w(LSR, 0xFF)
    port.w(MSR, 0x00)
    assert port.r(LSR) == 0x60 and port.r(MSR) == 0xB0


def test_linux_8250_probe_sees_a_working_16550a(port: Port) -> None:
    # autoconfig(): IER scratch test
    port.w(IER, 0)
    assert port.r(IER) & 0x0F == 0
    port.w(IER, 0x0F)
    assert port.r(IER) & 0x0F == 0x0F
    port.w(IER, 0)
    # FIFO type: IIR bits 7:6 == 3 means a 16550A
    port.w(FCR, 0x01)
    assert port.r(IIR) >> 6 == 3
    # autoconfig_16550a(): with LCR=0xBF a 16650 shows its EFR (0) at offset 2; a 16550A shows IIR
    port.w(LCR, 0xBF)
    assert port.r(IIR) != 0
    port.w(LCR, 0x03)
    # serial8250_do_startup(): the UART_BUG_THRE test expects THRE to fire after IER=THRI
    port.w(IER, 0x02)
    assert port.r(IIR) & 0x01 == 0
    port.w(IER, 0)
    port.w(IER, 0x02)
    iir = port.r(IIR)
    port.w(IER, 0)
    assert iir & 0x01 == 0, "Linux would flag UART_BUG_THRE"


def test_reg_shift_3_word_access_like_the_malta_cbus_uart() -> None:
    p = Port(reg_shift=3)
    assert p.uart.window_size_bytes == 64
    p.uart.write(SCR << 3, 4, 0x5A)
    assert p.uart.read(SCR << 3, 4) == 0x5A
    assert p.uart.read(LSR << 3, 4) == 0x60
    p.uart.write((SCR << 3) + 1, 1, 0x11)  # an upper byte of the word: ignored
    assert p.uart.read((SCR << 3) + 1, 1) == 0
    assert p.uart.read(SCR << 3, 1) == 0x5A
    p.uart.write(THR << 3, 4, 0x41)
    assert p.backend.output == b"A"


def test_wide_access_uses_the_low_byte_with_reg_shift_0(port: Port) -> None:
    port.uart.write(SCR, 2, 0x1234)
    assert port.uart.read(SCR, 4) == 0x34


def test_on_the_bus_at_an_isa_port_address(port: Port) -> None:
    bus = Bus()
    bus.add(0x180003F8, 8, port.uart, "uart0")
    bus.write(0x180003F8, 1, ord("k"))
    assert port.backend.output == b"k"
    assert bus.read(0x180003FD, 1) == 0x60
    assert bus.fault is None


def test_out2_gating_is_optional() -> None:
    ungated = Port()
    ungated.w(MCR, 0x00)
    ungated.w(IER, 0x02)
    assert ungated.irq.level  # QEMU's behaviour: OUT2 does not gate the output
    gated = Port(out2_gates_irq=True)
    gated.w(MCR, 0x00)
    gated.w(IER, 0x02)
    assert not gated.irq.level
    gated.w(MCR, 0x08)
    assert gated.irq.level


def test_irq_is_only_driven_on_changes(port: Port) -> None:
    port.w(IER, 0x01)
    port.uart.receive(b"a")
    port.uart.receive(b"b")  # overrun, still pending: no new edge
    assert port.irq.changes == [True]


def test_reset_restores_power_on_state_and_lowers_irq(port: Port) -> None:
    port.w(IER, 0x02)
    port.w(LCR, 0x1B)
    port.w(FCR, 0x01)
    port.uart.receive(b"xyz")
    assert port.irq.level
    port.uart.reset()
    assert not port.irq.level
    assert port.r(LSR) == 0x60 and port.r(LCR) == 0 and port.r(IIR) == IIR_NONE


def test_receive_from_another_thread_preserves_order() -> None:
    p = Port()
    p.w(FCR, 0x01)
    sent = bytes(i & 0xFF for i in range(20000))
    done = threading.Event()

    def producer() -> None:
        for i in range(0, len(sent), 3):
            p.uart.receive(sent[i : i + 3])
        done.set()

    got = bytearray()
    overrun = False
    t = threading.Thread(target=producer)
    t.start()
    while not done.is_set() or p.uart.state().rx_count:
        lsr = p.r(LSR)
        overrun |= bool(lsr & 0x02)
        if lsr & 0x01:
            got.append(p.r(RBR))
    t.join()
    # Everything read arrived in order; bytes are only ever lost with OE reported.
    it = iter(sent)
    assert all(any(b == s for s in it) for b in got)
    assert len(got) == len(sent) or overrun


# ---------------------------------------------------------------------- fuzzing
def _oracle_level(s) -> bool:
    return (
        (s.ier & 0x04 and s.lsr & 0x1E)
        or (s.ier & 0x01 and s.lsr & 0x01)
        or (s.ier & 0x02 and s.thr_ipending)
        or (s.ier & 0x08 and s.msr & 0x0F)
    ) != 0


# Values that matter to drivers (single IER bits, FCR enable/reset/trigger, LCR without and with DLAB,
# MCR loopback patterns) are drawn as often as arbitrary bytes.
_DRIVER_VALUES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x0F, 0x10, 0x12, 0x1A, 0x81, 0x83, 0xC7]
_values = st.one_of(st.sampled_from(_DRIVER_VALUES), st.integers(0, 255))
_ops = st.one_of(
    st.tuples(st.just("r"), st.integers(0, 7), st.just(0)),
    st.tuples(st.just("w"), st.integers(0, 7), _values),
    st.tuples(st.just("rx"), st.binary(min_size=1, max_size=20), st.just(0)),
)


@settings(max_examples=500, deadline=None)
@given(ops=st.lists(_ops, max_size=80), gated=st.booleans())
def test_fuzz_register_interface(ops, gated: bool) -> None:
    p = Port(out2_gates_irq=gated)
    for kind, arg, value in ops:
        if kind == "r":
            p.r(arg)
        elif kind == "w":
            p.w(arg, value)
        else:
            p.uart.receive(arg)
        s = p.uart.state()
        iir_id = s.iir & 0x0F
        assert iir_id in VALID_IIR_IDS
        assert s.iir & 0x30 == 0 and s.iir & 0xC0 in (0, 0xC0)
        assert (s.iir & 0xC0 == 0xC0) == bool(s.fcr & 0x01)
        pending = iir_id != IIR_NONE
        assert pending == _oracle_level(s)
        expected_level = pending and (not gated or bool(s.mcr & 0x08))
        assert p.irq.level == expected_level == s.irq_level
        if s.ier == 0:
            assert not p.irq.level
        assert 0 <= s.rx_count <= (FIFO_SIZE if s.fcr & 0x01 else 1)
        assert bool(s.lsr & 0x01) == (s.rx_count > 0)
        assert s.lsr & 0x60 == 0x60
        # the reported source is the highest-priority enabled one
        if iir_id == IIR_RLSI:
            assert s.ier & 0x04 and s.lsr & 0x1E
        elif iir_id in (IIR_RDI, IIR_CTI):
            assert s.ier & 0x01 and s.rx_count
            assert (iir_id == IIR_CTI) == bool(s.fcr & 0x01 and s.rx_count < s.rx_trigger_bytes)
        elif iir_id == IIR_THRI:
            assert s.ier & 0x02 and s.thr_ipending
        elif iir_id == IIR_MSI:
            assert s.ier & 0x08 and s.msr & 0x0F


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 0x3F), st.sampled_from([1, 2, 4]), st.integers(0, 2**32 - 1))))
def test_fuzz_any_offset_and_size_never_raises_with_reg_shift_3(ops) -> None:
    p = Port(reg_shift=3)
    for offset, size, value in ops:
        p.uart.write(offset, size, value & ((1 << (8 * size)) - 1))
        assert 0 <= p.uart.read(offset, size) <= 0xFF
