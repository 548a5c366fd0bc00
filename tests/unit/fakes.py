"""Test doubles shared by the device tests."""

from __future__ import annotations


class RecordingIrq:
    """An IrqLine that remembers every level it was driven with."""

    def __init__(self) -> None:
        self.level = False
        self.changes: list[bool] = []

    def set(self, level: bool) -> None:
        self.level = level
        self.changes.append(level)

    @property
    def levels(self) -> list[bool]:
        return self.changes

    @property
    def rising_edges(self) -> int:
        return sum(1 for i, c in enumerate(self.changes) if c and (i == 0 or not self.changes[i - 1]))
