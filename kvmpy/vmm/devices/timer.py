"""`DeadlineTimer`: one host thread that wakes time-driven devices (PIT, RTC) at their deadlines.

The PIT and RTC compute their state from the host clock on access; their
interrupts need a wake-up at the right time. The thread sleeps (Event.wait
with a timeout) until the earliest deadline the devices report, polls them,
and goes back to sleep -- it never spins and sleeps indefinitely while
nothing is armed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

NS_PER_S = 1_000_000_000


class TimedDevice(Protocol):
    """A device whose state changes with time (PIT, RTC): see `I8254`."""

    on_deadline_change: Callable[[], None] | None

    def next_deadline_ns(self) -> int | None: ...

    def poll(self, now_ns: int | None = None) -> None: ...


class DeadlineTimer:
    """One host thread that polls timed devices at their deadlines (never busy-waits).

    It sleeps on an Event until the earliest `next_deadline_ns()` of its
    devices (indefinitely if none), then polls every device, and repeats.
    Devices call `notify()` (wired to their `on_deadline_change`) when the
    guest reprograms them, which wakes the thread to recompute its sleep.
    """

    def __init__(
        self, devices: Sequence[TimedDevice], clock_ns: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.devices = tuple(devices)
        self.clock_ns = clock_ns
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        for device in self.devices:
            device.on_deadline_change = self.notify

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="isa-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout=5)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before reading deadlines: a later notify() must wake the wait below
            now = self.clock_ns()
            deadline = None
            for device in self.devices:
                device.poll(now)
                d = device.next_deadline_ns()
                if d is not None and (deadline is None or d < deadline):
                    deadline = d
            if deadline is None:
                self._wake.wait()
            else:
                delay_ns = deadline - self.clock_ns()
                if delay_ns > 0:
                    self._wake.wait(delay_ns / NS_PER_S)
