"""A 16550A UART (National Semiconductor PC16550D), as QEMU's hw/char/serial.c models it.

Registers (index = offset >> reg_shift; DLAB is LCR bit 7):

    0  RBR (read) / THR (write)          DLL when DLAB=1
    1  IER                               DLM when DLAB=1
    2  IIR (read) / FCR (write)
    3  LCR      4  MCR      5  LSR      6  MSR      7  SCR

Model choices (each one QEMU's unless noted):

- Transmission is instant: a THR write goes to the backend at once, so
  LSR.THRE and LSR.TEMT always read 1, the transmit FIFO never holds a byte,
  and the THRE interrupt re-arms after every THR write.
- The THRE interrupt is also armed when IER.ETBEI goes from 0 to 1 while THR
  is empty (Linux's and Windows' drivers rely on it), and is cleared by
  reading IIR while it is the reported source, by writing THR, or by
  clearing IER.ETBEI.
- The character-timeout interrupt (IIR 0x0C) is approximated: it is pending
  whenever the receive FIFO is enabled and holds fewer bytes than the
  trigger level (the timeout is taken to have elapsed at once). Like QEMU
  and real parts, it is masked by IER.ERBFI.
- The interrupt output is the plain "any enabled interrupt pending" level.
  MCR.OUT2 does not gate it: QEMU does not gate, and Linux's 8250 driver
  sets OUT2 anyway whenever the port has an IRQ. `out2_gates_irq=True`
  models the PC wiring, where OUT2 enables the IRQ driver.
- An FCR receiver reset empties the receiver and so clears LSR.DR (QEMU
  leaves DR set over an empty FIFO).
- Reset state is QEMU's: MCR=OUT2, MSR=DCD|DSR|CTS (a terminal is attached),
  divisor 12 (9600 baud from 1.8432 MHz).
- Loopback (MCR bit 4): transmitted bytes go to the own receiver, not the
  backend; external input is ignored (the serial input pin is disconnected);
  the modem inputs follow the modem outputs (DTR->DSR, RTS->CTS, OUT1->RI,
  OUT2->DCD) and their changes set the MSR delta bits, as the datasheet
  describes (QEMU does not set the deltas in loopback).

Registers are one byte wide and little-endian placed: with reg_shift > 0
(the Malta CBUS UART uses 3, accessed as 32-bit words) the register's byte
is the lowest-addressed byte of its slot and the other bytes read as 0.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from kvmpy.vmm.bus import IrqLine
from kvmpy.vmm.serial import SerialBackend

log = logging.getLogger(__name__)

FIFO_SIZE = 16
# Host input waiting for room in the receiver (see Uart16550._line).
LINE_BUFFER_BYTES = 1 << 20
NUM_REGS = 8


class Reg(IntEnum):
    """Register indexes: the byte offset is `index << reg_shift`."""

    RBR_THR_DLL = 0
    IER_DLM = 1
    IIR_FCR = 2
    LCR = 3
    MCR = 4
    LSR = 5
    MSR = 6
    SCR = 7


# Register bits are IntEnums rather than IntFlags on purpose: operations on them
# yield plain ints, and IntFlag's per-operation cost shows on the console path.
class Ier(IntEnum):
    ERBFI = 0x01  # received data available (and character timeout)
    ETBEI = 0x02  # transmitter holding register empty
    ELSI = 0x04  # receiver line status
    EDSSI = 0x08  # modem status


class IirId(IntEnum):
    """IIR bits 3:0, in priority order from highest (line status) to lowest (modem status)."""

    LINE_STATUS = 0x06
    RX_DATA = 0x04
    CHAR_TIMEOUT = 0x0C
    THR_EMPTY = 0x02
    MODEM_STATUS = 0x00
    NONE = 0x01


IIR_FIFO_ENABLED = 0xC0


class Fcr(IntEnum):
    ENABLE = 0x01
    RX_RESET = 0x02
    TX_RESET = 0x04
    DMA_MODE = 0x08
    TRIGGER_MASK = 0xC0


RX_TRIGGER_BYTES = {0x00: 1, 0x40: 4, 0x80: 8, 0xC0: 14}


class Lcr(IntEnum):
    BREAK = 0x40
    DLAB = 0x80


class Mcr(IntEnum):
    DTR = 0x01
    RTS = 0x02
    OUT1 = 0x04
    OUT2 = 0x08
    LOOP = 0x10


class Lsr(IntEnum):
    DR = 0x01
    OE = 0x02
    PE = 0x04
    FE = 0x08
    BI = 0x10
    THRE = 0x20
    TEMT = 0x40
    RX_FIFO_ERROR = 0x80


LSR_ERRORS = Lsr.OE | Lsr.PE | Lsr.FE | Lsr.BI


class Msr(IntEnum):
    DCTS = 0x01
    DDSR = 0x02
    TERI = 0x04
    DDCD = 0x08
    CTS = 0x10
    DSR = 0x20
    RI = 0x40
    DCD = 0x80


MSR_DELTAS = Msr.DCTS | Msr.DDSR | Msr.TERI | Msr.DDCD
# With nothing but a terminal on the line: carrier, data set ready, clear to send.
EXTERNAL_MODEM_INPUTS = Msr.DCD | Msr.DSR | Msr.CTS


@dataclass(frozen=True)
class UartState:
    """A side-effect-free view of the registers (reading IIR, LSR, RBR or MSR has effects)."""

    ier: int
    iir: int
    fcr: int
    lcr: int
    mcr: int
    lsr: int
    msr: int
    scr: int
    divisor: int
    rx_count: int
    rx_trigger_bytes: int
    thr_ipending: bool
    irq_level: bool


class Uart16550:
    """A 16550A UART on the bus (a `BusDevice`), with its input fed by `receive()`.

    `reg_shift` spaces the registers `1 << reg_shift` bytes apart. `irq` is
    driven with the interrupt output level whenever it changes. All methods
    are thread-safe: `receive()` is called from the serial backend's input
    thread, register accesses from the vCPU thread.
    """

    def __init__(
        self,
        backend: SerialBackend,
        irq: IrqLine | None = None,
        reg_shift: int = 0,
        *,
        out2_gates_irq: bool = False,
    ) -> None:
        if not 0 <= reg_shift <= 4:
            raise ValueError(f"reg_shift must be 0..4, got {reg_shift}")
        self.backend = backend
        self.irq = irq
        self.reg_shift = reg_shift
        self.out2_gates_irq = out2_gates_irq
        self._lock = threading.RLock()
        self._rx: deque[int] = deque()
        # Bytes the host sent that the receiver has no room for yet. Like
        # QEMU's character backends (qemu_chr_be_can_write), the line holds
        # them until the guest drains the FIFO, so pasted text is not lost.
        self._line: deque[int] = deque()
        self._irq_level = False
        self._readers = (
            self._read_rbr_dll,
            self._read_ier_dlm,
            self._read_iir,
            self._read_lcr,
            self._read_mcr,
            self._read_lsr,
            self._read_msr,
            self._read_scr,
        )
        self._writers = (
            self._write_thr_dll,
            self._write_ier_dlm,
            self._write_fcr,
            self._write_lcr,
            self._write_mcr,
            self._write_read_only,
            self._write_read_only,
            self._write_scr,
        )
        self.reset()

    @property
    def window_size_bytes(self) -> int:
        """Size of the register window on the bus."""
        return NUM_REGS << self.reg_shift

    # ------------------------------------------------------------------ reset
    def reset(self) -> None:
        """Power-on / board reset state (QEMU's serial_reset)."""
        with self._lock:
            self._ier = 0
            self._lcr = 0
            self._mcr = int(Mcr.OUT2)
            self._fcr = 0
            self._scr = 0
            self._divisor = 12
            self._lsr_errors = 0
            self._modem_inputs = int(EXTERNAL_MODEM_INPUTS)
            self._msr_deltas = 0
            self._rbr_last = 0
            self._rx.clear()
            self._rx_trigger_bytes = 1
            self._thr_ipending = False
            self._update_irq()

    # ------------------------------------------------------------------ bus
    def read(self, offset: int, size: int) -> int:
        index, sub = offset >> self.reg_shift, offset & ((1 << self.reg_shift) - 1)
        if sub or index >= NUM_REGS:
            return 0  # an upper byte of a wide register slot, or beyond the window
        with self._lock:
            return self._readers[index]()

    def write(self, offset: int, size: int, value: int) -> None:
        index, sub = offset >> self.reg_shift, offset & ((1 << self.reg_shift) - 1)
        if sub or index >= NUM_REGS:
            return
        with self._lock:
            self._writers[index](value & 0xFF)

    # ------------------------------------------------------------------ input
    def receive(self, data: bytes) -> None:
        """Bytes arriving on the serial input pin (thread-safe).

        Bytes that find the receiver full wait on the line (up to
        LINE_BUFFER_BYTES) and move into the receiver as the guest reads
        it; only bytes beyond that are lost, setting LSR.OE. Ignored in
        loopback mode.
        """
        with self._lock:
            if self._mcr & Mcr.LOOP:
                return
            room = LINE_BUFFER_BYTES - len(self._line)
            if len(data) > room:
                self._lsr_errors |= Lsr.OE  # the host flooded the line: the excess is lost
                data = data[:room]
            self._line.extend(data)
            self._fill_rx()
            self._update_irq()

    def _fill_rx(self) -> None:
        capacity = FIFO_SIZE if self._fifo_enabled() else 1
        while self._line and len(self._rx) < capacity:
            self._rx.append(self._line.popleft())

    def state(self) -> UartState:
        """The register state without read side effects (for tests, debugging, snapshots)."""
        with self._lock:
            return UartState(
                ier=self._ier,
                iir=self._iir(),
                fcr=self._fcr,
                lcr=self._lcr,
                mcr=self._mcr,
                lsr=self._lsr(),
                msr=self._modem_inputs | self._msr_deltas,
                scr=self._scr,
                divisor=self._divisor,
                rx_count=len(self._rx),
                rx_trigger_bytes=self._rx_trigger_bytes,
                thr_ipending=self._thr_ipending,
                irq_level=self._irq_level,
            )

    # ------------------------------------------------------------------ registers
    # One method per register index, dispatched through tables built in __init__.
    def _read_rbr_dll(self) -> int:
        if self._lcr & Lcr.DLAB:
            return self._divisor & 0xFF
        if self._rx:
            self._rbr_last = self._rx.popleft()
            if self._line:
                self._fill_rx()
            self._update_irq()
            return self._rbr_last
        # Empty: RBR still holds the last byte in 16450 mode; an empty FIFO reads 0 (as QEMU).
        return 0 if self._fcr & Fcr.ENABLE else self._rbr_last

    def _read_ier_dlm(self) -> int:
        return (self._divisor >> 8) if self._lcr & Lcr.DLAB else self._ier

    def _read_iir(self) -> int:
        iir = self._iir()
        if iir & 0x0F == IirId.THR_EMPTY:
            self._thr_ipending = False  # reading IIR acknowledges THRE
            self._update_irq()
        return iir

    def _read_lcr(self) -> int:
        return self._lcr

    def _read_mcr(self) -> int:
        return self._mcr

    def _read_lsr(self) -> int:
        lsr = self._lsr()
        if self._lsr_errors:
            self._lsr_errors = 0
            self._update_irq()
        return lsr

    def _read_msr(self) -> int:
        msr = self._modem_inputs | self._msr_deltas
        if self._msr_deltas:
            self._msr_deltas = 0
            self._update_irq()
        return msr

    def _read_scr(self) -> int:
        return self._scr

    def _write_thr_dll(self, value: int) -> None:
        if self._lcr & Lcr.DLAB:
            self._divisor = (self._divisor & 0xFF00) | value
        else:
            self._transmit(value)

    def _write_ier_dlm(self, value: int) -> None:
        if self._lcr & Lcr.DLAB:
            self._divisor = (self._divisor & 0x00FF) | (value << 8)
        else:
            self._write_ier(value & 0x0F)

    def _write_lcr(self, value: int) -> None:
        if (value ^ self._lcr) & Lcr.BREAK:
            log.debug("uart: break %s", "on" if value & Lcr.BREAK else "off")
        self._lcr = value

    def _write_mcr(self, value: int) -> None:
        self._mcr = value & 0x1F
        self._update_modem_inputs()
        self._update_irq()

    def _write_read_only(self, value: int) -> None:
        pass  # LSR and MSR: factory test registers on real parts

    def _write_scr(self, value: int) -> None:
        self._scr = value

    def _write_ier(self, ier: int) -> None:
        changed = ier ^ self._ier
        self._ier = ier
        if changed & Ier.ETBEI:
            # THR is always empty here, so enabling ETBEI raises THRE at once.
            self._thr_ipending = bool(ier & Ier.ETBEI)
        self._update_irq()

    def _write_fcr(self, value: int) -> None:
        if (value ^ self._fcr) & Fcr.ENABLE:
            # Changing the FIFO enable empties both FIFOs (datasheet: FCR0).
            value |= Fcr.RX_RESET | Fcr.TX_RESET
        if value & Fcr.RX_RESET:
            self._rx.clear()
        # TX_RESET: the transmitter is instant, there is nothing to clear.
        if value & Fcr.ENABLE:
            self._rx_trigger_bytes = RX_TRIGGER_BYTES[value & Fcr.TRIGGER_MASK]
            self._fcr = value & (Fcr.ENABLE | Fcr.DMA_MODE | Fcr.TRIGGER_MASK)
        else:
            self._fcr = 0
            self._rx_trigger_bytes = 1
        self._fill_rx()
        self._update_irq()

    def _transmit(self, byte: int) -> None:
        if self._mcr & Mcr.LOOP:
            self._rx_put(byte)
        else:
            self.backend.write(bytes((byte,)))
        # The character left at once: THR is empty again and the THRE interrupt re-arms.
        self._thr_ipending = True
        self._update_irq()

    # ------------------------------------------------------------------ state helpers
    def _fifo_enabled(self) -> bool:
        return bool(self._fcr & Fcr.ENABLE)

    def _rx_put(self, byte: int) -> None:
        capacity = FIFO_SIZE if self._fifo_enabled() else 1
        if len(self._rx) < capacity:
            self._rx.append(byte)
            return
        self._lsr_errors |= Lsr.OE
        if not self._fifo_enabled():
            self._rx[0] = byte  # 16450 mode: the unread byte is overwritten

    def _lsr(self) -> int:
        # The transmitter is always idle (instant TX), so THRE and TEMT read 1.
        lsr = self._lsr_errors | Lsr.THRE | Lsr.TEMT
        if self._rx:
            lsr |= Lsr.DR
        return lsr

    def _update_modem_inputs(self) -> None:
        if self._mcr & Mcr.LOOP:
            new = (
                (Msr.DSR if self._mcr & Mcr.DTR else 0)
                | (Msr.CTS if self._mcr & Mcr.RTS else 0)
                | (Msr.RI if self._mcr & Mcr.OUT1 else 0)
                | (Msr.DCD if self._mcr & Mcr.OUT2 else 0)
            )
        else:
            new = int(EXTERNAL_MODEM_INPUTS)
        old = self._modem_inputs
        changed = old ^ new
        if changed & Msr.CTS:
            self._msr_deltas |= Msr.DCTS
        if changed & Msr.DSR:
            self._msr_deltas |= Msr.DDSR
        if changed & Msr.DCD:
            self._msr_deltas |= Msr.DDCD
        if old & Msr.RI and not new & Msr.RI:
            self._msr_deltas |= Msr.TERI  # trailing edge of ring only
        self._modem_inputs = int(new)

    def _pending_id(self) -> IirId:
        ier = self._ier
        if ier & Ier.ELSI and self._lsr_errors:
            return IirId.LINE_STATUS
        if ier & Ier.ERBFI and self._rx:
            if self._fifo_enabled() and len(self._rx) < self._rx_trigger_bytes:
                return IirId.CHAR_TIMEOUT
            return IirId.RX_DATA
        if ier & Ier.ETBEI and self._thr_ipending:
            return IirId.THR_EMPTY
        if ier & Ier.EDSSI and self._msr_deltas:
            return IirId.MODEM_STATUS
        return IirId.NONE

    def _iir(self) -> int:
        return int(self._pending_id()) | (IIR_FIFO_ENABLED if self._fifo_enabled() else 0)

    def _update_irq(self) -> None:
        level = self._pending_id() != IirId.NONE
        if self.out2_gates_irq and not self._mcr & Mcr.OUT2:
            level = False
        if level != self._irq_level:
            self._irq_level = level
            if self.irq is not None:
                self.irq.set(level)
