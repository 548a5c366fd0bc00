"""The GDB remote stub: gdb's packets turned into DebugTarget calls.

Two threads share the work, as QEMU's gdbstub and its vCPU thread do:

- the vCPU thread calls `GdbStub.serve()`, which runs the target
  (`DebugTarget.run()`) whenever gdb (or nobody, when no debugger is
  attached) lets it run, and parks while gdb inspects a stopped guest;
- the connection thread (owned by the listening socket) parses packets and
  answers them. Packets that need a stopped guest wait in a queue while the
  guest runs; Ctrl-C (0x03) is acted on at once, by kicking the vCPU.

Without a client the guest runs freely. A client connecting stops it (as
QEMU does) and gdb's first `?` sees where. A client disconnecting (or `D`)
removes its breakpoints and lets the guest run on; `k` ends the VM.

Anything a client sends - garbage, bad checksums, addresses outside the
guest, a second connection - gets a protocol answer (a NAK, an `E` reply,
an empty "unsupported" reply, or a refused connection); nothing a client
sends stops the VM except `k`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from kvmpy.vmm.gdbstub.arch import ArchDescription, RegisterDesc
from kvmpy.vmm.gdbstub.packets import (
    MAX_PACKET_BYTES,
    EventKind,
    PacketReader,
    escape_binary,
    frame,
    rle_encode,
    unescape_binary,
)
from kvmpy.vmm.gdbstub.target import (
    DebugExit,
    DebugTarget,
    GuestDebug,
    GuestDebugError,
    GuestMemoryError,
    StopKind,
    WatchKind,
    Watchpoint,
)
from kvmpy.vmm.sockets import ListenSpec, SocketListener

log = logging.getLogger(__name__)

SIGINT = 2
SIGTRAP = 5
SIGKILL = 9

# Errno-style error replies, as QEMU's stub spells them.
E_FAULT = b"E14"      # memory outside the guest / unmapped
E_INVAL = b"E22"      # malformed arguments
E_NOSPC = b"E28"      # the hypervisor has no room for another breakpoint/watchpoint
OK = b"OK"
UNSUPPORTED = b""

THREAD_ID = 1
# gdb's packet buffer; a memory read reply carries two hex digits per byte.
PACKET_SIZE = MAX_PACKET_BYTES
MAX_MEMORY_READ_BYTES = (PACKET_SIZE - 32) // 2

_WATCH_KIND_BY_Z = {2: WatchKind.WRITE, 3: WatchKind.READ, 4: WatchKind.ACCESS}
_STOP_REASON_BY_WATCH = {WatchKind.WRITE: "watch", WatchKind.READ: "rwatch", WatchKind.ACCESS: "awatch"}


class _Resume(Enum):
    CONTINUE = "continue"    # gdb's c: run under the debug state until a stop
    STEP = "step"            # gdb's s: one instruction
    FREE = "free"            # no debugger in control: run with debugging off


class _BadPacket(Exception):
    """A packet whose arguments do not parse: answered with E22."""


@dataclass
class _DebugState:
    sw_breakpoints: set[int] = field(default_factory=set)
    hw_breakpoints: set[int] = field(default_factory=set)
    watchpoints: dict[tuple[int, int, WatchKind], Watchpoint] = field(default_factory=dict)

    def guest_debug(self, *, single_step: bool) -> GuestDebug:
        return GuestDebug(
            enable=True,
            single_step=single_step,
            sw_breakpoints=frozenset(self.sw_breakpoints),
            hw_breakpoints=frozenset(self.hw_breakpoints),
            watchpoints=tuple(self.watchpoints.values()),
        )

    def clear(self) -> None:
        self.sw_breakpoints.clear()
        self.hw_breakpoints.clear()
        self.watchpoints.clear()


def _hex_int(text: bytes) -> int:
    if not text or any(c not in b"0123456789abcdefABCDEF" for c in text):
        raise _BadPacket(f"not a hex number: {text[:32]!r}")
    return int(text, 16)


def _hex_bytes(text: bytes) -> bytes:
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _BadPacket("bad hex data") from exc


class GdbStub:
    """A gdb remote stub serving one DebugTarget on a listening socket.

    `serve()` must be called on the thread that may run the vCPU; it
    returns the DebugExit that ended the VM (the target's EXITED stop, or
    one made up for `k` / `close()`). With `start_stopped` (QEMU's -S) the
    guest does not run until a debugger connects and resumes it.
    """

    def __init__(self, target: DebugTarget, arch: ArchDescription, listen: ListenSpec,
                 *, start_stopped: bool = False) -> None:
        self.target = target
        self.arch = arch
        self._xml = arch.target_xml().encode()
        self._cond = threading.Condition()
        self._process_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._reader = PacketReader()
        self._pending: deque[bytes] = deque()
        self._debug = _DebugState()
        self._resume: _Resume | None = None if start_stopped else _Resume.FREE
        self._parked = start_stopped     # the vCPU waits for a resume; the target may be inspected
        self._attached = False
        self._attach_stop_pending = False
        self._interrupt_requested = False
        self._gdb_resumed = False        # the current run was started by gdb's c/s: report its stop
        self._no_ack = False
        self._last_sent = b""
        self._quit: DebugExit | None = None
        self._last_stop_reply = f"T{SIGTRAP:02x}thread:{THREAD_ID:x};".encode()
        self._listener = SocketListener(
            listen, name="gdb", on_data=self._on_data, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )

    # ------------------------------------------------------------------ public
    @property
    def address(self) -> tuple[str, int] | str:
        """Where the stub listens: (host, port) or the unix socket path."""
        return self._listener.address

    @property
    def attached(self) -> bool:
        return self._attached

    def serve(self) -> DebugExit:
        """Run the vCPU as the debugger (or its absence) allows, until the VM ends."""
        while True:
            with self._cond:
                while self._resume is None and self._quit is None:
                    self._cond.wait()
                if self._quit is not None:
                    break
                action, self._resume = self._resume, None
                self._gdb_resumed = action is not _Resume.FREE
                self._parked = False
                debug = (GuestDebug() if action is _Resume.FREE
                         else self._debug.guest_debug(single_step=action is _Resume.STEP))
            try:
                self.target.set_guest_debug(debug)
            except GuestDebugError as exc:
                # Z checked each addition, so this is a step the hypervisor cannot do: the
                # guest stays stopped and gdb hears why, rather than a step silently continuing.
                log.info("gdb stub: cannot resume that way: %s", exc)
                with self._cond:
                    self._parked = True
                self._send_packet(E_NOSPC)
                self._process_pending()
                continue
            stop = self.target.run()
            reply: bytes | None = None
            with self._cond:
                if stop.kind is StopKind.EXITED:
                    self._quit = stop
                    if self._attached:
                        reply = f"W{stop.exit_code & 0xFF:02x}".encode()
                elif self._quit is not None:
                    pass
                elif self._attach_stop_pending:
                    # gdb's first '?' sees where the guest stopped for it, as a SIGTRAP.
                    self._last_stop_reply = f"T{SIGTRAP:02x}thread:{THREAD_ID:x};".encode()
                    self._attach_stop_pending = False
                    self._interrupt_requested = False
                elif self._gdb_resumed and self._attached:
                    if stop.kind is StopKind.INTERRUPTED and not self._interrupt_requested:
                        # A kick left over from an attach or detach, not gdb's Ctrl-C: run on.
                        self._resume = action
                    else:
                        reply = self._last_stop_reply = self._stop_reply(stop)
                        self._interrupt_requested = False
                else:
                    self._resume = _Resume.FREE  # nobody is debugging: keep running
            if reply is not None:
                self._send_packet(reply)
            if self._quit is not None:
                break
            with self._cond:
                if self._resume is None:
                    self._parked = True
            self._process_pending()
        self._listener.disconnect()
        return self._quit

    def close(self) -> None:
        """End serve() (the VM is going away) and stop listening."""
        with self._cond:
            if self._quit is None:
                self._quit = DebugExit(StopKind.EXITED, message="gdb stub closed")
            running = not self._parked
            self._cond.notify_all()
        if running:
            self.target.kick()
        self._listener.close()

    # ------------------------------------------------------------------ connection
    def _on_connect(self) -> None:
        with self._cond:
            self._attached = True
            self._no_ack = False
            self._reader = PacketReader()
            self._pending.clear()
            self._last_sent = b""
            if self._parked and self._resume is not None:
                self._resume = None  # the previous client's departure had not let the guest go yet
            running = not self._parked
            if running:
                self._attach_stop_pending = True
        if running:
            self.target.kick()

    def _on_disconnect(self) -> None:
        with self._cond:
            self._attached = False
            self._debug.clear()
            self._pending.clear()
            running = not self._parked
            if self._parked and self._quit is None:
                self._resume = _Resume.FREE
                self._cond.notify_all()
        if running:
            self.target.kick()  # drop the departed debugger's breakpoints from the running guest

    def _on_data(self, data: bytes) -> None:
        try:
            for event in self._reader.feed(data):
                if event.kind is EventKind.PACKET:
                    if not self._no_ack:
                        self._send_raw(b"+")
                    with self._cond:
                        self._pending.append(event.payload)
                elif event.kind is EventKind.BAD_CHECKSUM:
                    if not self._no_ack:
                        self._send_raw(b"-")
                elif event.kind is EventKind.NAK:
                    if self._last_sent and not self._no_ack:
                        self._send_raw(self._last_sent)
                elif event.kind is EventKind.INTERRUPT:
                    self._interrupt()
            self._process_pending()
        except Exception:  # noqa: BLE001 - a client's bytes must never end the connection thread
            log.exception("gdb stub: error handling client data")

    def _interrupt(self) -> None:
        with self._cond:
            running = not self._parked and self._gdb_resumed
            if running:
                self._interrupt_requested = True
        if running:
            self.target.kick()

    def _process_pending(self) -> None:
        with self._process_lock:
            while True:
                with self._cond:
                    if not self._parked or not self._pending or self._quit is not None:
                        return
                    payload = self._pending.popleft()
                try:
                    reply = self._handle(payload)
                except _BadPacket:
                    reply = E_INVAL
                except Exception:  # noqa: BLE001 - a target failure answers the packet, not the VM
                    log.exception("gdb stub: error handling %r", payload[:64])
                    reply = b"E01"
                if reply is not None:
                    self._send_packet(reply)

    # ------------------------------------------------------------------ sending
    def _send_raw(self, data: bytes) -> None:
        with self._send_lock:
            self._listener.send_all(data)

    def _send_packet(self, payload: bytes) -> None:
        packet = frame(payload)
        with self._send_lock:
            self._last_sent = packet
            self._listener.send_all(packet)

    def _stop_reply(self, stop: DebugExit) -> bytes:
        if stop.kind is StopKind.EXITED:
            return f"W{stop.exit_code & 0xFF:02x}".encode()
        signal = SIGINT if stop.kind is StopKind.INTERRUPTED and self._interrupt_requested else SIGTRAP
        reason = ""
        if stop.kind is StopKind.SW_BREAKPOINT:
            reason = "swbreak:;"
        elif stop.kind is StopKind.HW_BREAKPOINT:
            reason = "hwbreak:;"
        elif stop.kind is StopKind.WATCHPOINT and stop.watch_gva is not None:
            name = _STOP_REASON_BY_WATCH[stop.watch_kind or WatchKind.WRITE]
            reason = f"{name}:{stop.watch_gva:x};"
        return f"T{signal:02x}{reason}thread:{THREAD_ID:x};".encode()

    # ------------------------------------------------------------------ commands
    def _handle(self, payload: bytes) -> bytes | None:
        """The reply to one packet (None: the command has no reply or answers later)."""
        if not payload:
            return UNSUPPORTED
        command = payload[:1]
        args = payload[1:]
        match command:
            case b"?":
                return self._last_stop_reply
            case b"g":
                return self._read_all_registers()
            case b"G":
                return self._write_all_registers(args)
            case b"p":
                return self._read_register(args)
            case b"P":
                return self._write_register(args)
            case b"m":
                return self._read_memory(args)
            case b"M":
                addr_len, sep, data = args.partition(b":")
                if not sep:
                    raise _BadPacket("M needs ':'")
                return self._write_memory(addr_len, _hex_bytes(data))
            case b"X":
                addr_len, sep, data = args.partition(b":")
                if not sep:
                    raise _BadPacket("X needs ':'")
                try:
                    raw = unescape_binary(data)
                except ValueError as exc:
                    raise _BadPacket(str(exc)) from exc
                return self._write_memory(addr_len, raw)
            case b"Z" | b"z":
                return self._breakpoint(insert=command == b"Z", args=args)
            case b"c" | b"s":
                return self._resume_from(args, step=command == b"s")
            case b"C" | b"S":
                _signal, _sep, addr = args.partition(b";")  # the signal means nothing to a bare vCPU
                return self._resume_from(addr, step=command == b"S")
            case b"v":
                return self._v_packet(payload)
            case b"q":
                return self._query(payload)
            case b"Q":
                return self._set_query(payload)
            case b"H":
                return self._set_thread(args[1:] if args else b"")
            case b"T":
                return OK if self._thread_ok(args) else E_INVAL
            case b"k":
                self._kill()
                return None
            case b"D":
                return self._detach()
        return UNSUPPORTED

    # registers
    def _read_reg(self, reg: RegisterDesc) -> bytes:
        if reg.one_reg_id is not None:
            try:
                return self.arch.encode(reg, self.target.get_one_reg(reg.one_reg_id)).hex().encode()
            except Exception as exc:  # noqa: BLE001 - an id the hypervisor lacks is an unavailable register
                log.debug("gdb stub: %s unreadable: %s", reg.name, exc)
        return b"xx" * reg.size_bytes

    def _read_all_registers(self) -> bytes:
        return rle_encode(b"".join(self._read_reg(reg) for reg in self.arch.registers))

    def _write_all_registers(self, args: bytes) -> bytes:
        values: list[tuple[RegisterDesc, int]] = []
        offset = 0
        for reg in self.arch.registers:
            chunk = args[offset:offset + 2 * reg.size_bytes]
            offset += 2 * reg.size_bytes
            if not chunk:
                break  # gdb may send fewer registers than it knows
            if len(chunk) != 2 * reg.size_bytes:
                raise _BadPacket("G data ends inside a register")
            if b"x" in chunk or reg.one_reg_id is None:
                continue
            values.append((reg, self.arch.decode(reg, _hex_bytes(chunk))))
        if offset < len(args):
            raise _BadPacket("G data longer than the register file")
        failed = False
        for reg, value in values:
            failed |= not self._set_reg(reg, value)
        return E_INVAL if failed else OK

    def _set_reg(self, reg: RegisterDesc, value: int) -> bool:
        if reg.one_reg_id is None:
            return False
        try:
            self.target.set_one_reg(reg.one_reg_id, value)
        except Exception as exc:  # noqa: BLE001 - refused by the hypervisor: an error reply
            log.debug("gdb stub: cannot write %s: %s", reg.name, exc)
            return False
        return True

    def _register_at(self, text: bytes) -> RegisterDesc:
        regnum = _hex_int(text)
        if regnum >= len(self.arch.registers):
            raise _BadPacket(f"no register {regnum}")
        return self.arch.registers[regnum]

    def _read_register(self, args: bytes) -> bytes:
        return rle_encode(self._read_reg(self._register_at(args)))

    def _write_register(self, args: bytes) -> bytes:
        num, sep, data = args.partition(b"=")
        if not sep:
            raise _BadPacket("P needs '='")
        reg = self._register_at(num)
        if len(data) != 2 * reg.size_bytes:
            raise _BadPacket(f"{reg.name} takes {reg.size_bytes} bytes")
        return OK if self._set_reg(reg, self.arch.decode(reg, _hex_bytes(data))) else E_INVAL

    # memory
    @property
    def _address_limit(self) -> int:
        return 1 << self.arch.pc.bitsize

    def _address_length(self, text: bytes) -> tuple[int, int]:
        addr_text, sep, len_text = text.partition(b",")
        if not sep:
            raise _BadPacket("expected ADDR,LENGTH")
        gva, length = _hex_int(addr_text), _hex_int(len_text)
        if gva >= self._address_limit:
            raise _BadPacket("address beyond the guest's address space")
        return gva, length

    def _pieces(self, gva: int, length: int) -> list[tuple[int, int, int | None]]:
        """(gva, length, gpa or None) for each page-contained piece of [gva, gva + length)."""
        pieces = []
        end = min(gva + length, self._address_limit)
        while gva < end:
            page_end = (gva // self.arch.page_bytes + 1) * self.arch.page_bytes
            n = min(end, page_end) - gva
            pieces.append((gva, n, self.target.translate(gva)))
            gva += n
        return pieces

    def _read_memory(self, args: bytes) -> bytes:
        gva, length = self._address_length(args)
        out = bytearray()
        for _piece_gva, n, gpa in self._pieces(gva, min(length, MAX_MEMORY_READ_BYTES)):
            if gpa is None:
                break
            try:
                out += self.target.read_gpa(gpa, n)
            except GuestMemoryError:
                break
        if not out and length:
            return E_FAULT
        return rle_encode(out.hex().encode())  # a short read is allowed: gdb asks again for the rest

    def _write_memory(self, addr_len: bytes, data: bytes) -> bytes:
        gva, length = self._address_length(addr_len)
        if length != len(data):
            raise _BadPacket("length does not match the data")
        pieces = self._pieces(gva, length)
        if sum(n for _g, n, _p in pieces) != length or any(gpa is None for _g, _n, gpa in pieces):
            return E_FAULT  # all or nothing: a write never lands half in the guest
        done = 0
        for _piece_gva, n, gpa in pieces:
            assert gpa is not None
            try:
                self.target.write_gpa(gpa, data[done:done + n])
            except GuestMemoryError:
                return E_FAULT
            done += n
        return OK

    # breakpoints and watchpoints
    def _breakpoint(self, *, insert: bool, args: bytes) -> bytes:
        fields = args.split(b";", 1)[0].split(b",")
        if len(fields) != 3:
            raise _BadPacket("expected TYPE,ADDR,KIND")
        kind = _hex_int(fields[0])
        gva = _hex_int(fields[1])
        size = _hex_int(fields[2])
        if gva >= self._address_limit or kind > 4:
            return E_INVAL if gva >= self._address_limit else UNSUPPORTED
        with self._cond:
            before = (set(self._debug.sw_breakpoints), set(self._debug.hw_breakpoints),
                      dict(self._debug.watchpoints))
            if kind in (0, 1):
                table = self._debug.sw_breakpoints if kind == 0 else self._debug.hw_breakpoints
                if insert:
                    table.add(gva)
                else:
                    table.discard(gva)
            else:
                if not 1 <= size <= self.arch.page_bytes:
                    return E_INVAL
                watch_kind = _WATCH_KIND_BY_Z[kind]
                key = (gva, size, watch_kind)
                if insert:
                    self._debug.watchpoints[key] = Watchpoint(gva, size, watch_kind)
                else:
                    self._debug.watchpoints.pop(key, None)
            debug = self._debug.guest_debug(single_step=False)
        try:
            self.target.set_guest_debug(debug)
        except GuestDebugError as exc:
            log.info("gdb stub: %s", exc)
            with self._cond:
                self._debug.sw_breakpoints, self._debug.hw_breakpoints, self._debug.watchpoints = before
            return E_NOSPC
        return OK

    # execution
    def _resume_from(self, addr: bytes, *, step: bool) -> bytes | None:
        if addr:
            pc = _hex_int(addr)
            if pc >= self._address_limit or not self._set_reg(self.arch.pc, pc):
                return E_INVAL
        with self._cond:
            self._resume = _Resume.STEP if step else _Resume.CONTINUE
            self._parked = False
            self._cond.notify_all()
        return None  # the stop reply comes when the vCPU stops

    def _v_packet(self, payload: bytes) -> bytes | None:
        if payload == b"vCont?":
            return b"vCont;c;C;s;S"
        if payload.startswith(b"vCont;"):
            for action in payload[6:].split(b";"):
                verb, _colon, thread = action.partition(b":")
                if thread and not self._thread_ok(thread):
                    continue
                if verb in (b"c", b"s") or (verb[:1] in (b"C", b"S") and len(verb) == 3):
                    return self._resume_from(b"", step=verb[:1] in (b"s", b"S"))
                raise _BadPacket(f"unsupported vCont action {verb[:16]!r}")
            raise _BadPacket("vCont without an action for our thread")
        if payload.startswith(b"vKill"):
            self._kill()
            return OK
        return UNSUPPORTED

    def _kill(self) -> None:
        with self._cond:
            if self._quit is None:
                self._quit = DebugExit(StopKind.EXITED, exit_code=SIGKILL, message="killed by gdb")
            self._cond.notify_all()

    def _detach(self) -> bytes:
        with self._cond:
            self._debug.clear()
            self._resume = _Resume.FREE
            self._parked = False
            self._cond.notify_all()
        return OK

    # threads (one vCPU is one thread)
    def _thread_ok(self, text: bytes) -> bool:
        if text in (b"-1", b"0"):
            return True
        try:
            return _hex_int(text.removeprefix(b"p1.")) == THREAD_ID
        except _BadPacket:
            return False

    def _set_thread(self, thread: bytes) -> bytes:
        return OK if self._thread_ok(thread) else E_INVAL

    # queries
    def _query(self, payload: bytes) -> bytes:
        name, _sep, rest = payload.partition(b":")
        if name == b"qSupported":
            return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;vContSupported+;"
                    "swbreak+;hwbreak+;QStartNoAckMode+").encode()
        if name == b"qXfer" and rest.startswith(b"features:read:"):
            return self._xfer_features(rest[len(b"features:read:"):])
        if payload == b"qAttached" or payload.startswith(b"qAttached:"):
            return b"1"  # the VM existed before gdb: detaching leaves it running
        if payload == b"qC":
            return f"QC{THREAD_ID:x}".encode()
        if payload == b"qfThreadInfo":
            return f"m{THREAD_ID:x}".encode()
        if payload == b"qsThreadInfo":
            return b"l"
        if payload.startswith(b"qThreadExtraInfo,"):
            return b"vCPU 0".hex().encode()
        if payload.startswith(b"qSymbol"):
            return OK
        if payload.startswith(b"qRcmd,"):
            return self._monitor(payload[len(b"qRcmd,"):])
        return UNSUPPORTED

    def _set_query(self, payload: bytes) -> bytes | None:
        if payload == b"QStartNoAckMode":
            self._send_packet(OK)  # acknowledged under the old mode, then the mode changes
            self._no_ack = True
            return None
        return UNSUPPORTED

    def _xfer_features(self, rest: bytes) -> bytes:
        annex, sep, window = rest.partition(b":")
        if not sep:
            raise _BadPacket("qXfer needs ANNEX:OFFSET,LENGTH")
        offset_text, comma, length_text = window.partition(b",")
        if not comma:
            raise _BadPacket("qXfer needs OFFSET,LENGTH")
        offset, length = _hex_int(offset_text), _hex_int(length_text)
        if annex != b"target.xml":
            return b"E00"
        chunk = self._xml[offset:offset + min(length, MAX_MEMORY_READ_BYTES)]
        last = offset + len(chunk) >= len(self._xml)
        return (b"l" if last else b"m") + escape_binary(chunk)

    def _monitor(self, hex_command: bytes) -> bytes:
        command = _hex_bytes(hex_command).decode("utf-8", "replace").strip()
        commands = self.target.monitor_commands()
        name, _sep, rest = command.partition(" ")
        name = name or "help"
        if name == "help":
            width = max((len(n) for n in commands), default=4)
            lines = [f"{'help':<{width}}  this list"]
            lines += [f"{n:<{width}}  {c.help}" for n, c in sorted(commands.items())]
            text = "\n".join(lines) + "\n"
        elif name in commands:
            try:
                text = commands[name].run(rest.strip())
            except Exception as exc:  # noqa: BLE001 - a failing hook is reported, the VM goes on
                text = f"monitor {name} failed: {exc}\n"
        else:
            text = f"unknown monitor command {name!r}; 'monitor help' lists them\n"
        if text and not text.endswith("\n"):
            text += "\n"
        data = text.encode()
        step = MAX_MEMORY_READ_BYTES - 1
        for start in range(0, len(data), step):
            self._send_packet(b"O" + data[start:start + step].hex().encode())
        return OK
