"""The AMCC 440EP "bamboo" board, as QEMU's `-M bamboo` models it (see docs/bamboo-board.md).

Board parts live in submodules (`uic`, `fdt`); importing the package
imports none of them.
"""
