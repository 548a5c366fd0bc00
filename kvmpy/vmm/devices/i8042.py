"""The Malta's PS/2 keyboard controller (an 8042) with a keyboard and a mouse attached.

Ports: 0x60 data (read: output buffer; write: data to the keyboard, or the
parameter of a pending controller command) and 0x64 status (read) /
command (write). The keyboard interrupt is ISA IRQ1, the auxiliary (mouse)
interrupt IRQ12.

Linux's i8042 driver (drivers/input/serio/i8042.c, built in on 4kc-malta)
flushes the output buffer, runs the controller self-test (0xaa -> 0x55),
reads and writes the command byte (0x20/0x60), tests the AUX port with the
loopback command (0xd3 + byte, echoed as AUX data), toggles the AUX port
(0xa7/0xa8, checking the command byte), checks that AUX loopback data
raises IRQ12, then registers "serio: i8042 KBD port at 0x60,0x64 irq 1"
and "... AUX port ... irq 12". atkbd then resets the keyboard (0xff ->
0xfa 0xaa), reads its ID (0xf2 -> 0xfa 0xab 0x83), selects set 2 and
enables it: "input: AT Raw Set 2 keyboard". The responses here follow
QEMU 7.2 (hw/input/pckbd.c, hw/input/ps2.c) so the boot log matches QEMU's:

- Reset command byte 0x03 (both interrupts enabled, translation off, so
  Linux drives the keyboard untranslated: "Raw Set 2"), status 0x18.
- Controller responses (self-test, interface tests, command byte, output
  port, loopback) go to the output buffer ahead of device data and are not
  held back by the interface-disable bits. Device bytes move to the output
  buffer only while their interface is enabled; writing to a device
  re-enables its interface (QEMU 7.x, as real controllers do).
- IRQ1/IRQ12 are "output buffer full with keyboard/AUX data" gated by the
  command byte's interrupt enables. Reading the data port drops the line
  before the next byte is loaded, so an edge-triggered PIC sees every byte.
- Pulsing output port bit 0 (0xfe, 0xf0-0xfe with bit 0 clear) or writing
  it 0 (0xd1) resets the system, as QEMU does.
- The mouse answers the IntelliMouse (200, 100, 80) and Explorer
  (200, 200, 80) sample-rate knocks with IDs 3 and 4, so psmouse finds an
  "ImExPS/2 Generic Explorer Mouse" as on QEMU. No keys or motion are
  generated unless the host calls `Ps2Keyboard.send` / `Ps2Mouse.move`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kvmpy.vmm.bus import IrqLine, read_lanes, write_lanes

log = logging.getLogger(__name__)

DATA_PORT = 0x60
COMMAND_PORT = 0x64
PS2_QUEUE_BYTES = 16

# Status register
STAT_OBF = 0x01
STAT_IBF = 0x02
STAT_SYS = 0x04
STAT_CMD = 0x08  # the last write went to the command port
STAT_UNLOCKED = 0x10  # keyboard not inhibited by the key lock
STAT_AUX_OBF = 0x20
RESET_STATUS = STAT_CMD | STAT_UNLOCKED

# Command byte ("mode", controller RAM byte 0)
CTR_KBD_INT = 0x01
CTR_AUX_INT = 0x02
CTR_SYS = 0x04
CTR_KBD_DISABLE = 0x10
CTR_AUX_DISABLE = 0x20
CTR_XLATE = 0x40
RESET_CTR = CTR_KBD_INT | CTR_AUX_INT

# Output port
OUT_RESET = 0x01  # 0 resets the system
OUT_A20 = 0x02
OUT_KBD_OBF = 0x10
OUT_AUX_OBF = 0x20
RESET_OUTPORT = 0xCF  # reset and A20 high, and QEMU's constant ones

# Controller commands
CCMD_READ_RAM = 0x20  # 0x20-0x3f
CCMD_WRITE_RAM = 0x60  # 0x60-0x7f
CCMD_AUX_DISABLE = 0xA7
CCMD_AUX_ENABLE = 0xA8
CCMD_AUX_TEST = 0xA9
CCMD_SELF_TEST = 0xAA
CCMD_KBD_TEST = 0xAB
CCMD_KBD_DISABLE = 0xAD
CCMD_KBD_ENABLE = 0xAE
CCMD_READ_INPORT = 0xC0
CCMD_READ_OUTPORT = 0xD0
CCMD_WRITE_OUTPORT = 0xD1
CCMD_WRITE_KBD_OBUF = 0xD2
CCMD_WRITE_AUX_OBUF = 0xD3
CCMD_WRITE_AUX = 0xD4
CCMD_DISABLE_A20 = 0xDD
CCMD_ENABLE_A20 = 0xDF
CCMD_READ_TEST_INPUTS = 0xE0
CCMD_PULSE = 0xF0  # 0xf0-0xff: pulse output port bits 3-0 that are 0
SELF_TEST_OK = 0x55
INTERFACE_TEST_OK = 0x00
INPORT_VALUE = 0x80  # keyboard not inhibited

# Device replies
ACK = 0xFA
RESEND = 0xFE
BAT_OK = 0xAA
ECHO = 0xEE
KBD_ID = (0xAB, 0x83)
KBD_ID_TRANSLATED = (0xAB, 0x41)
TRANSLATED_SCANCODE_SET = {1: 0x43, 2: 0x41, 3: 0x3F}


class Ps2Keyboard:
    """A PS/2 keyboard's command interface (host -> keyboard bytes and its replies).

    Not locked on its own: the controller's lock covers it.
    """

    def __init__(self) -> None:
        self.queue: deque[int] = deque()
        self.translate = False  # the controller's XLATE bit changes what GET ID reports
        self._defaults()
        self.scan_enabled = True
        self._last_sent = ACK

    def _defaults(self) -> None:
        self.scancode_set = 2
        self.leds = 0
        self.typematic = 0x2B
        self._param_cmd = 0

    def _put(self, *data: int) -> None:
        for byte in data:
            if len(self.queue) < PS2_QUEUE_BYTES:
                self.queue.append(byte)
                self._last_sent = byte

    def send(self, scancodes: bytes) -> None:
        """Bytes from key presses (already in the current scan code set); dropped while disabled."""
        if self.scan_enabled:
            self._put(*scancodes)

    def write(self, byte: int) -> None:
        """A byte from the host."""
        cmd = self._param_cmd
        if cmd:
            self._param_cmd = 0
            if cmd == 0xF0:  # select/read scan code set
                if byte == 0:
                    current = self.scancode_set
                    self._put(ACK, TRANSLATED_SCANCODE_SET[current] if self.translate else current)
                elif 1 <= byte <= 3:
                    self.scancode_set = byte
                    self._put(ACK)
                else:
                    self._put(RESEND)
                return
            if cmd == 0xED:
                self.leds = byte & 7
            elif cmd == 0xF3:
                self.typematic = byte & 0x7F
            self._put(ACK)
            return
        if byte in (0xED, 0xF0, 0xF3, 0xFB, 0xFC, 0xFD):  # commands with a parameter byte
            self._param_cmd = byte
            self._put(ACK)
        elif byte == 0xEE:
            self._put(ECHO)
        elif byte == 0xF2:
            self._put(ACK, *(KBD_ID_TRANSLATED if self.translate else KBD_ID))
        elif byte == 0xF4:
            self.scan_enabled = True
            self._put(ACK)
        elif byte == 0xF5:
            self._defaults()
            self.scan_enabled = False
            self._put(ACK)
        elif byte == 0xF6:
            self._defaults()
            self.scan_enabled = True
            self._put(ACK)
        elif 0xF7 <= byte <= 0xFA:  # key type settings (set 3): acknowledged, no effect
            self._put(ACK)
        elif byte == 0xFE:
            self._put(self._last_sent)
        elif byte == 0xFF:
            self.queue.clear()
            self._defaults()
            self.scan_enabled = True
            self._put(ACK, BAT_OK)
        else:
            self._put(RESEND)


MOUSE_STATUS_REMOTE = 0x40
MOUSE_STATUS_ENABLED = 0x20
MOUSE_STATUS_SCALE21 = 0x10
MOUSE_TYPE_IMPS2 = 3
MOUSE_TYPE_IMEX = 4


class Ps2Mouse:
    """A PS/2 mouse's command interface, with the IntelliMouse/Explorer ID knocks (as QEMU)."""

    def __init__(self) -> None:
        self.queue: deque[int] = deque()
        self.mouse_type = 0
        self.wrap = False
        self._defaults()

    def _defaults(self) -> None:
        self.status = 0
        self.resolution = 2
        self.sample_rate = 100
        self._param_cmd = 0
        self._knock = 0

    def _put(self, *data: int) -> None:
        for byte in data:
            if len(self.queue) < PS2_QUEUE_BYTES:
                self.queue.append(byte)

    def move(self, dx: int, dy: int, buttons: int = 0) -> None:
        """Report a motion in stream mode (if reporting is enabled); 3-byte standard packet."""
        if not self.status & MOUSE_STATUS_ENABLED or self.status & MOUSE_STATUS_REMOTE:
            return
        self._put(*self._packet(dx, dy, buttons))

    @staticmethod
    def _packet(dx: int, dy: int, buttons: int) -> tuple[int, ...]:
        dx = max(-256, min(255, dx))
        dy = max(-256, min(255, dy))
        head = 0x08 | (buttons & 7) | (0x10 if dx < 0 else 0) | (0x20 if dy < 0 else 0)
        return head, dx & 0xFF, dy & 0xFF

    def write(self, byte: int) -> None:
        if self._param_cmd:
            cmd = self._param_cmd
            self._param_cmd = 0
            if cmd == 0xE8:
                self.resolution = byte & 3
            else:
                self.sample_rate = byte
                self._sample_rate_knock(byte)
            self._put(ACK)
            return
        if self.wrap:
            if byte == 0xEC:
                self.wrap = False
                self._put(ACK)
                return
            if byte != 0xFF:
                self._put(byte)  # wrap mode echoes everything but reset
                return
        if byte == 0xE6:
            self.status &= ~MOUSE_STATUS_SCALE21
            self._put(ACK)
        elif byte == 0xE7:
            self.status |= MOUSE_STATUS_SCALE21
            self._put(ACK)
        elif byte in (0xE8, 0xF3):
            self._param_cmd = byte
            self._put(ACK)
        elif byte == 0xE9:
            self._put(ACK, self.status, self.resolution, self.sample_rate)
        elif byte == 0xEA:
            self.status &= ~MOUSE_STATUS_REMOTE
            self._put(ACK)
        elif byte == 0xEB:
            self._put(ACK, *self._packet(0, 0, 0))
        elif byte == 0xEC:
            self._put(ACK)
        elif byte == 0xEE:
            self.wrap = True
            self._put(ACK)
        elif byte == 0xF0:
            self.status |= MOUSE_STATUS_REMOTE
            self._put(ACK)
        elif byte == 0xF2:
            self._put(ACK, self.mouse_type)
        elif byte == 0xF4:
            self.status |= MOUSE_STATUS_ENABLED
            self._put(ACK)
        elif byte == 0xF5:
            self.status &= ~MOUSE_STATUS_ENABLED
            self._put(ACK)
        elif byte == 0xF6:
            self._defaults()
            self._put(ACK)
        elif byte == 0xFF:
            self.queue.clear()
            self._defaults()
            self.wrap = False
            self.mouse_type = 0
            self._put(ACK, BAT_OK, self.mouse_type)
        else:
            self._put(RESEND)

    def _sample_rate_knock(self, rate: int) -> None:
        knock = self._knock
        if knock == 0:
            self._knock = 1 if rate == 200 else 0
        elif knock == 1:
            self._knock = {100: 2, 200: 3}.get(rate, 0)
        else:
            if rate == 80:
                self.mouse_type = MOUSE_TYPE_IMPS2 if knock == 2 else MOUSE_TYPE_IMEX
            self._knock = 0


@dataclass(frozen=True)
class KbcState:
    status: int
    command_byte: int
    outport: int
    output_buffer: int
    output_full: bool
    output_aux: bool
    kbd_irq: bool
    aux_irq: bool


class _Port:
    def __init__(self, read: Callable[[], int], write: Callable[[int], None]) -> None:
        self._read = read
        self._write = write

    def read(self, offset: int, size: int) -> int:
        return read_lanes(lambda _port: self._read(), offset, size, 1)  # lanes beyond the port float high

    def write(self, offset: int, size: int, value: int) -> None:
        write_lanes(lambda _port, byte: self._write(byte), offset, size, value, 1)


class I8042:
    """The keyboard controller. `data_port` and `command_port` are the `BusDevice`s for 0x60 and 0x64.

    `kbd_irq`/`aux_irq` are ISA IRQ1/IRQ12; `on_reset` is called when the
    guest pulses the reset line. Thread-safe (host input may arrive from
    any thread through `send_keys`).
    """

    def __init__(
        self,
        kbd_irq: IrqLine | None = None,
        aux_irq: IrqLine | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self.kbd_irq = kbd_irq
        self.aux_irq = aux_irq
        self.on_reset = on_reset
        self._lock = threading.RLock()
        self.keyboard = Ps2Keyboard()
        self.mouse = Ps2Mouse()
        self._kbd_level = False
        self._aux_level = False
        self.data_port = _Port(self._read_data, self._write_data)
        self.command_port = _Port(self._read_status, self._write_command)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._status = RESET_STATUS
            self._ram = bytearray(32)
            self._ram[0] = RESET_CTR
            self._outport = RESET_OUTPORT
            self._pending_cmd = 0
            self._ctrl_out: deque[tuple[int, bool]] = deque()
            self._ob = 0
            self._ob_full = False
            self._ob_aux = False
            self.keyboard = Ps2Keyboard()
            self.mouse = Ps2Mouse()
            self._update_irqs()

    def send_keys(self, scancodes: bytes) -> None:
        """Host key input (scan code set 2 bytes)."""
        with self._lock:
            self.keyboard.send(scancodes)
            self._refill()
            self._update_irqs()

    def move_mouse(self, dx: int, dy: int, buttons: int = 0) -> None:
        with self._lock:
            self.mouse.move(dx, dy, buttons)
            self._refill()
            self._update_irqs()

    def state(self) -> KbcState:
        with self._lock:
            return KbcState(
                status=self._status_value(),
                command_byte=self._ram[0],
                outport=self._outport_value(),
                output_buffer=self._ob,
                output_full=self._ob_full,
                output_aux=self._ob_aux,
                kbd_irq=self._kbd_level,
                aux_irq=self._aux_level,
            )

    # ------------------------------------------------------------------ ports
    def _read_status(self) -> int:
        with self._lock:
            return self._status_value()

    def _status_value(self) -> int:
        status = self._status
        if self._ob_full:
            status |= (STAT_AUX_OBF | STAT_OBF) if self._ob_aux else STAT_OBF
        return status

    def _read_data(self) -> int:
        with self._lock:
            value = self._ob
            if self._ob_full:
                self._ob_full = False
                # Drop the line first: the next byte must make a new edge.
                self._update_irqs()
                self._refill()
                self._update_irqs()
            return value

    def _write_data(self, byte: int) -> None:
        with self._lock:
            self._status &= ~STAT_CMD
            cmd = self._pending_cmd
            self._pending_cmd = 0
            ctr = self._ram[0]
            if CCMD_WRITE_RAM <= cmd <= CCMD_WRITE_RAM + 0x1F:
                self._ram[cmd & 0x1F] = byte
                if cmd == CCMD_WRITE_RAM:
                    self.keyboard.translate = bool(byte & CTR_XLATE)
            elif cmd == CCMD_WRITE_OUTPORT:
                self._write_outport(byte)
            elif cmd == CCMD_WRITE_KBD_OBUF:
                self._ctrl_out.append((byte, False))
            elif cmd == CCMD_WRITE_AUX_OBUF:
                self._ctrl_out.append((byte, True))
            elif cmd == CCMD_WRITE_AUX:
                self._ram[0] = ctr & ~CTR_AUX_DISABLE
                self.mouse.write(byte)
            else:
                self._ram[0] = ctr & ~CTR_KBD_DISABLE
                self.keyboard.write(byte)
            self._refill()
            self._update_irqs()

    def _write_command(self, byte: int) -> None:
        reset = False
        with self._lock:
            self._status |= STAT_CMD
            self._pending_cmd = 0
            ram = self._ram
            if CCMD_READ_RAM <= byte <= CCMD_READ_RAM + 0x1F:
                self._reply(ram[byte & 0x1F])
            elif CCMD_WRITE_RAM <= byte <= CCMD_WRITE_RAM + 0x1F or byte in (
                CCMD_WRITE_OUTPORT,
                CCMD_WRITE_KBD_OBUF,
                CCMD_WRITE_AUX_OBUF,
                CCMD_WRITE_AUX,
            ):
                self._pending_cmd = byte
            elif byte == CCMD_AUX_DISABLE:
                ram[0] |= CTR_AUX_DISABLE
            elif byte == CCMD_AUX_ENABLE:
                ram[0] &= ~CTR_AUX_DISABLE
            elif byte in (CCMD_AUX_TEST, CCMD_KBD_TEST):
                self._reply(INTERFACE_TEST_OK)
            elif byte == CCMD_SELF_TEST:
                self._status |= STAT_SYS
                self._reply(SELF_TEST_OK)
            elif byte == CCMD_KBD_DISABLE:
                ram[0] |= CTR_KBD_DISABLE
            elif byte == CCMD_KBD_ENABLE:
                ram[0] &= ~CTR_KBD_DISABLE
            elif byte == CCMD_READ_INPORT:
                self._reply(INPORT_VALUE)
            elif byte == CCMD_READ_OUTPORT:
                self._reply(self._outport_value())
            elif byte == CCMD_DISABLE_A20:
                self._outport &= ~OUT_A20
            elif byte == CCMD_ENABLE_A20:
                self._outport |= OUT_A20
            elif byte == CCMD_READ_TEST_INPUTS:
                self._reply(0x00)
            elif byte >= CCMD_PULSE:
                reset = not byte & OUT_RESET  # pulsing bit 0 low is a CPU reset
            elif log.isEnabledFor(logging.DEBUG):
                log.debug("i8042: unsupported controller command %#04x", byte)
            self._refill()
            self._update_irqs()
        if reset:
            self._request_reset()

    def _write_outport(self, byte: int) -> None:
        self._outport = byte
        if not byte & OUT_RESET:
            self._request_reset()

    def _request_reset(self) -> None:
        log.info("i8042: guest pulsed the reset line")
        if self.on_reset is not None:
            self.on_reset()

    def _outport_value(self) -> int:
        value = self._outport & ~(OUT_KBD_OBF | OUT_AUX_OBF)
        if self._ob_full:
            value |= OUT_AUX_OBF if self._ob_aux else OUT_KBD_OBF
        return value

    # ------------------------------------------------------------------ output buffer and IRQs
    def _reply(self, byte: int) -> None:
        self._ctrl_out.append((byte, False))

    def _refill(self) -> None:
        if self._ob_full:
            return
        ctr = self._ram[0]
        if self._ctrl_out:
            byte, aux = self._ctrl_out.popleft()
        elif self.keyboard.queue and not ctr & CTR_KBD_DISABLE:
            byte, aux = self.keyboard.queue.popleft(), False
        elif self.mouse.queue and not ctr & CTR_AUX_DISABLE:
            byte, aux = self.mouse.queue.popleft(), True
        else:
            return
        self._ob = byte
        self._ob_aux = aux
        self._ob_full = True

    def _update_irqs(self) -> None:
        ctr = self._ram[0]
        full = self._ob_full
        kbd = full and not self._ob_aux and bool(ctr & CTR_KBD_INT)
        aux = full and self._ob_aux and bool(ctr & CTR_AUX_INT)
        if kbd != self._kbd_level:
            self._kbd_level = kbd
            if self.kbd_irq is not None:
                self.kbd_irq.set(kbd)
        if aux != self._aux_level:
            self._aux_level = aux
            if self.aux_irq is not None:
                self.aux_irq.set(aux)
