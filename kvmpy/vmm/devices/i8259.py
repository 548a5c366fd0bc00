"""The PIIX4's two cascaded Intel 8259A interrupt controllers and their ELCR.

Ports (ISA I/O, the board maps them at its ISA window + port):

    0x20, 0x21    master: command (ICW1, OCW2, OCW3) / data (ICW2-4, OCW1 = IMR)
    0xa0, 0xa1    slave, the same registers; its INT output drives master IR2
    0x4d0, 0x4d1  ELCR1/ELCR2: per-IRQ edge (0) or level (1) triggering (PIIX4)

How Linux 6.1 on Malta uses it (arch/mips/kernel/i8259.c, mti-malta/malta-int.c):
``init_8259A(0)`` masks both IMRs, writes ICW1=0x11, ICW2=0x00/0x08 (vector
base 0, so vector == ISA IRQ), ICW3=0x04/0x02, ICW4=0x01 (8086 mode, normal
EOI). Interrupts are taken through the GT-64120's PCI interrupt-acknowledge
register (``i8259_set_poll(mips_pcibios_iack)``), i.e. a real INTA cycle:
`DualPic.acknowledge()`. The handler then masks the line and sends a specific
EOI (0x60 | irq) to the slave and/or master; a vector whose ISR bit is not
set is reported once as "spurious 8259A interrupt: IRQ7." (QEMU's boot log
shows it too).

Model choices:

- An edge-triggered device request stays latched in IRR until it is
  acknowledged, even if the line falls first. The datasheet requires the
  line to stay high until INTA (real parts then answer with the spurious IR7
  vector); QEMU latches, and so do we, so that delivery does not depend on
  how the host schedules the vCPU against device and timer threads.
- The cascade (slave INT -> master IR2) is edge-detected but follows the
  line like the part: when the slave stops requesting before INTA, the
  master's IR2 request is withdrawn instead of turning into a spurious IRQ15.
- A level-triggered request (ELCR bit set) follows the line: IRR is the line.
- ICW1 resets the edge sense: a line that is already high must fall and rise
  again. IRR edge bits, ISR, IMR, rotation, special mask and the status-read
  selection are cleared (IMR cleared as the datasheet says; Linux rewrites it).
- ICW1.LTIM is ignored (the PIIX4 replaces it by the ELCR); single mode and
  ICW4-less init are accepted; special fully nested mode and buffered mode
  are stored but have no effect (the brief and Linux do not need them).
- INTA with no request pending returns IR7's vector (base + 7) without
  setting ISR, on the master or, for a vanished cascade request, on the slave
  (the master still marks IR2 in service), as the hardware does.
- Poll mode (OCW3.P): the next read of either port of that chip returns
  0x80 | level and acts as an INTA on that chip; 0x00 when nothing requests.
- Power-on state is QEMU's reset state: everything zero, IMR unmasked.
- ELCR bits the PIIX4 reserves read 0: IRQ0-2 (ELCR1 mask 0xf8) and IRQ8,
  IRQ13 (ELCR2 mask 0xde).

All state changes run under one re-entrant lock: `input(n).set()` may be
called from any thread (console input, timers), and the output `intr` is
driven while the lock is held so its level changes stay ordered.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from kvmpy.vmm.bus import IrqLine, read_lanes, write_lanes

log = logging.getLogger(__name__)

NUM_ISA_IRQS = 16
CASCADE_IRQ = 2
SPURIOUS_IR = 7

MASTER_PORT = 0x20
SLAVE_PORT = 0xA0
ELCR_PORT = 0x4D0
PIC_WINDOW_BYTES = 2
ELCR_WINDOW_BYTES = 2

# The PIIX4 hardwires these ELCR bits to 0 (timer, keyboard, cascade, RTC, FPU error).
ELCR_MASK_MASTER = 0xF8
ELCR_MASK_SLAVE = 0xDE

ICW1_IC4 = 0x01
ICW1_SNGL = 0x02
ICW1_INIT = 0x10
OCW3_SELECT = 0x08
OCW3_RIS = 0x01
OCW3_RR = 0x02
OCW3_POLL = 0x04
OCW3_SMM = 0x20
OCW3_ESMM = 0x40
ICW4_AEOI = 0x02
ICW4_SFNM = 0x10
POLL_INTERRUPT = 0x80


@dataclass(frozen=True)
class PicChipState:
    """A side-effect-free view of one 8259A."""

    irr: int
    isr: int
    imr: int
    elcr: int
    line_levels: int
    vector_base: int
    priority_add: int
    init_step: int
    auto_eoi: bool
    special_mask: bool
    output: bool


@dataclass(frozen=True)
class DualPicState:
    master: PicChipState
    slave: PicChipState
    intr: bool


class _Chip:
    """One 8259A. Not locked on its own: `DualPic` holds the lock around every call."""

    def __init__(self, pic: DualPic, is_master: bool) -> None:
        self._pic = pic
        self.is_master = is_master
        self.elcr_mask = ELCR_MASK_MASTER if is_master else ELCR_MASK_SLAVE
        self.elcr = 0
        self.levels = 0  # the input pins as driven by the devices
        self.reset()

    def reset(self) -> None:
        self.irr = 0
        self.isr = 0
        self.imr = 0
        self.priority_add = 0  # the IR with the highest priority (rotation)
        self.vector_base = 0
        self.init_step = 0  # 0: operational; 1, 2, 3: expecting ICW2, ICW3, ICW4
        self.expect_icw4 = False
        self.single = False
        self.auto_eoi = False
        self.rotate_on_aeoi = False
        self.special_mask = False
        self.special_fully_nested = False
        self.read_isr = False
        self.poll = False
        self.icw3 = 0
        self.irr = self.elcr & self.levels

    # ------------------------------------------------------------------ priority
    def _highest(self, mask: int) -> int:
        """Priority rank (0 = highest) of the best bit in `mask`, or 8 for none."""
        if not mask:
            return 8
        add = self.priority_add
        for rank in range(8):
            if mask & (1 << ((rank + add) & 7)):
                return rank
        return 8

    def pending(self) -> int:
        """The IR this chip would present at INTA now, or -1."""
        req = self.irr & ~self.imr
        rank = self._highest(req)
        if rank == 8:
            return -1
        in_service = self.isr
        if self.special_mask:
            in_service &= ~self.imr  # masked levels do not block lower priorities
        if self.special_fully_nested and self.is_master:
            in_service &= ~(1 << CASCADE_IRQ)
        if rank < self._highest(in_service):
            return (rank + self.priority_add) & 7
        return -1

    def intack(self, ir: int) -> None:
        bit = 1 << ir
        if self.auto_eoi:
            if self.rotate_on_aeoi:
                self.priority_add = (ir + 1) & 7
        else:
            self.isr |= bit
        if not self.elcr & bit:
            self.irr &= ~bit  # an edge is consumed by its acknowledge; a level stays

    # ------------------------------------------------------------------ input pins
    def set_input(self, ir: int, level: bool) -> None:
        bit = 1 << ir
        was_high = self.levels & bit
        if level:
            self.levels |= bit
            if self.elcr & bit or not was_high:
                self.irr |= bit
        else:
            self.levels &= ~bit
            if self.elcr & bit:
                self.irr &= ~bit

    def set_elcr(self, value: int) -> None:
        self.elcr = value & self.elcr_mask
        # Level-triggered inputs present their line in IRR from now on.
        self.irr = (self.irr & ~self.elcr) | (self.levels & self.elcr)

    # ------------------------------------------------------------------ ports
    def read(self, port: int) -> int:
        if self.poll:
            self.poll = False
            ir = self.pending()
            if ir < 0:
                return 0
            self.intack(ir)
            self._pic._update()
            return POLL_INTERRUPT | ir
        if port == 0:
            return self.isr if self.read_isr else self.irr
        return self.imr

    def write(self, port: int, value: int) -> None:
        if port == 0:
            if value & ICW1_INIT:
                self._icw1(value)
            elif value & OCW3_SELECT:
                self._ocw3(value)
            else:
                self._ocw2(value)
        elif self.init_step == 0:
            self.imr = value
        elif self.init_step == 1:
            self.vector_base = value & 0xF8
            self.init_step = 3 if self.single else 2
            if self.init_step == 3 and not self.expect_icw4:
                self.init_step = 0
        elif self.init_step == 2:
            self.icw3 = value
            self.init_step = 3 if self.expect_icw4 else 0
        else:
            self.auto_eoi = bool(value & ICW4_AEOI)
            self.special_fully_nested = bool(value & ICW4_SFNM)
            self.init_step = 0
        self._pic._update()

    def _icw1(self, value: int) -> None:
        # Edge sense reset: IRR keeps only level-triggered lines that are high.
        self.reset()
        self.init_step = 1
        self.expect_icw4 = bool(value & ICW1_IC4)
        self.single = bool(value & ICW1_SNGL)

    def _ocw2(self, value: int) -> None:
        cmd = value >> 5
        level = value & 7
        if cmd in (0b001, 0b101):  # non-specific EOI (and rotate)
            rank = self._highest(self.isr)
            if rank == 8:
                return
            ir = (rank + self.priority_add) & 7
            self.isr &= ~(1 << ir)
            if cmd == 0b101:
                self.priority_add = (ir + 1) & 7
        elif cmd == 0b011:  # specific EOI
            self.isr &= ~(1 << level)
        elif cmd == 0b111:  # rotate on specific EOI
            self.isr &= ~(1 << level)
            self.priority_add = (level + 1) & 7
        elif cmd == 0b110:  # set priority: `level` becomes the lowest
            self.priority_add = (level + 1) & 7
        elif cmd in (0b000, 0b100):  # clear / set rotate in automatic EOI mode
            self.rotate_on_aeoi = cmd == 0b100
        # 0b010: no operation

    def _ocw3(self, value: int) -> None:
        if value & OCW3_ESMM:
            self.special_mask = bool(value & OCW3_SMM)
        if value & OCW3_POLL:
            self.poll = True
        if value & OCW3_RR:
            self.read_isr = bool(value & OCW3_RIS)

    def state(self) -> PicChipState:
        return PicChipState(
            irr=self.irr,
            isr=self.isr,
            imr=self.imr,
            elcr=self.elcr,
            line_levels=self.levels,
            vector_base=self.vector_base,
            priority_add=self.priority_add,
            init_step=self.init_step,
            auto_eoi=self.auto_eoi,
            special_mask=self.special_mask,
            output=self.pending() >= 0,
        )


class _PortPair:
    """The two ports of one chip as a `BusDevice` (offset 0 = command, 1 = data)."""

    def __init__(self, pic: DualPic, chip: _Chip) -> None:
        self._pic = pic
        self._chip = chip

    def read(self, offset: int, size: int) -> int:
        with self._pic._lock:
            if size == 1 and offset < PIC_WINDOW_BYTES:
                return self._chip.read(offset)
            # a wide access is split into byte cycles, as the PIIX4 does
            return read_lanes(self._chip.read, offset, size, PIC_WINDOW_BYTES)

    def write(self, offset: int, size: int, value: int) -> None:
        with self._pic._lock:
            write_lanes(self._chip.write, offset, size, value, PIC_WINDOW_BYTES)


class _Elcr:
    """ELCR1 (offset 0) and ELCR2 (offset 1) as a `BusDevice`."""

    def __init__(self, pic: DualPic) -> None:
        self._pic = pic

    def read(self, offset: int, size: int) -> int:
        with self._pic._lock:
            return read_lanes(lambda port: self._pic._chips[port].elcr, offset, size, ELCR_WINDOW_BYTES)

    def write(self, offset: int, size: int, value: int) -> None:
        with self._pic._lock:
            write_lanes(lambda port, byte: self._pic._chips[port].set_elcr(byte), offset, size, value,
                        ELCR_WINDOW_BYTES)
            self._pic._update()


class _Input:
    """The IrqLine of one ISA IRQ."""

    __slots__ = ("_pic", "_chip", "_ir", "irq")

    def __init__(self, pic: DualPic, irq: int) -> None:
        self._pic = pic
        self._chip = pic._chips[irq >> 3]
        self._ir = irq & 7
        self.irq = irq

    def set(self, level: bool) -> None:
        with self._pic._lock:
            self._chip.set_input(self._ir, level)
            self._pic._update()


class DualPic:
    """The cascaded master/slave 8259A pair of the PIIX4.

    `intr` is the INTR output to the CPU, driven with the new level whenever
    it changes: high while an unmasked request can be acknowledged. Devices
    drive `input(irq)` (ISA IRQ 0..15; IRQ2 is the cascade and not an input).
    `acknowledge()` is the INTA cycle. `master`, `slave` and `elcr` are the
    `BusDevice`s for ports 0x20, 0xa0 and 0x4d0. Thread-safe.
    """

    def __init__(self, intr: IrqLine) -> None:
        self.intr = intr
        self._lock = threading.RLock()
        self._master = _Chip(self, is_master=True)
        self._slave = _Chip(self, is_master=False)
        self._chips = (self._master, self._slave)
        self._cascade_level = False
        self._intr_level = False
        self._inputs = tuple(_Input(self, irq) for irq in range(NUM_ISA_IRQS))
        self.master = _PortPair(self, self._master)
        self.slave = _PortPair(self, self._slave)
        self.elcr = _Elcr(self)

    def input(self, irq: int) -> IrqLine:
        """The line of ISA IRQ `irq` (0..15 except 2, which the slave's output drives)."""
        if not 0 <= irq < NUM_ISA_IRQS or irq == CASCADE_IRQ:
            raise ValueError(f"ISA IRQ must be 0..15 and not the cascade (2), got {irq}")
        return self._inputs[irq]

    def reset(self) -> None:
        """Board reset: both chips to their power-on state, ELCR edge-triggered."""
        with self._lock:
            for chip in self._chips:
                chip.elcr = 0
                chip.reset()
            self._update()

    def acknowledge(self) -> int:
        """The INTA cycle: returns the 8-bit vector of the highest-priority request.

        Sets ISR (unless in automatic-EOI mode) and consumes an edge request.
        With nothing to deliver it returns the spurious vector of IR7 (master
        base + 7), or of IR15 (slave base + 7) when the cascade request
        vanished, without setting that ISR bit.
        """
        with self._lock:
            master, slave = self._master, self._slave
            ir = master.pending()
            if ir < 0:
                vector = master.vector_base | SPURIOUS_IR
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("pic: spurious INTA on master")
            elif ir == CASCADE_IRQ and not master.single:
                ir2 = slave.pending()
                if ir2 >= 0:
                    slave.intack(ir2)
                else:
                    ir2 = SPURIOUS_IR
                vector = slave.vector_base | ir2
                master.intack(ir)
            else:
                vector = master.vector_base | ir
                master.intack(ir)
            self._update()
            return vector

    @property
    def output(self) -> bool:
        """The INTR level last driven."""
        return self._intr_level

    def state(self) -> DualPicState:
        with self._lock:
            return DualPicState(self._master.state(), self._slave.state(), self._intr_level)

    def _update(self) -> None:
        """Recompute the cascade and INTR levels (lock held)."""
        cascade = self._slave.pending() >= 0
        if cascade != self._cascade_level:
            self._cascade_level = cascade
            self._master.set_input(CASCADE_IRQ, cascade)
            if not cascade:
                # The slave's INT is a level: when it drops, the master's IR2 request goes with it
                # (edge latch AND line, as in the part), so a vanished slave request is no IRQ15.
                self._master.irr &= ~(1 << CASCADE_IRQ)
        level = self._master.pending() >= 0
        if level != self._intr_level:
            self._intr_level = level
            self.intr.set(level)
