"""The bamboo board's flattened device tree, built with the `fdt` library (PyPI) and emitted as a DTB.

The tree has the shape of QEMU's bamboo.dtb (itself Linux's bamboo.dts cut
down to what QEMU models) for the hardware this board has, and nothing for
what it lacks (no PCI host bridge, second UART, IIC or EMAC):

    /                       compatible = model = "amcc,bamboo", dcr-parent = <&cpu>
      aliases               serial0
      cpus/cpu@0            PowerPC,440EP, 400 MHz core and timebase, native DCR access
      memory                RAM at 0
      interrupt-controller0 UIC0: "ibm,uic-440ep", dcr-reg <0xc0 9>, 2 interrupt cells
      plb                   "ibm,plb4" bus, 2 address cells, identity ranges
        opb                 "ibm,opb" bus, 1 address cell, ranges into the PLB's 2-cell space
          ebc               "ibm,ebc" (external bus controller; no devices on it)
          serial@ef600300   ns16550, UIC0 input 0, level high
        virtio@d0000000...  "virtio,mmio", one per device, UIC0 inputs 16.., level high
      chosen                bootargs, linux,initrd-start/end, stdout-path

Why the virtio-mmio nodes sit under /plb: Linux's 44x platform code
(ppc44x_simple) creates platform devices only by walking the children of
bus nodes compatible with "ibm,plb4", "ibm,opb", "ibm,ebc" or "simple-bus"
(of_platform_bus_probe with its own match table); a virtio-mmio node at the
top level would never get a device. /plb is the bus the 440's own
memory-mapped peripherals hang off (OPB is a bridge below it for the slow
ones), and its identity `ranges` keep a node's `reg` equal to the physical
address.

Interrupt specifiers are <input sense> with Linux's sense codes (4 = level,
active high): Linux programs UIC0's PR and TR from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import fdt

from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.machines.bamboo import layout

DTB_VERSION = 17
PHANDLE_CPU = 1
PHANDLE_UIC0 = 2
"""The phandles QEMU's bamboo.dtb uses, so both trees read the same."""

IRQ_TYPE_EDGE_RISING = 1
IRQ_TYPE_LEVEL_HIGH = 4

UART0_PATH = "/plb/opb/serial@ef600300"


class FdtConfigError(VmmError):
    """The board description cannot be turned into a device tree (overlaps, out-of-range values)."""


@dataclass(frozen=True)
class VirtioMmioNode:
    """One virtio-mmio device as the tree declares it: its register window and its UIC0 input."""

    base_gpa: int
    size_bytes: int
    uic_input: int


@dataclass(frozen=True)
class BambooTreeConfig:
    """What varies between runs: RAM size, command line, initrd, virtio devices, clocks."""

    mem_size_bytes: int
    bootargs: str = ""
    initrd_gpa: int | None = None
    initrd_size_bytes: int = 0
    virtio: Sequence[VirtioMmioNode] = ()
    cpu_clock_hz: int = layout.CPU_CLOCK_HZ
    timebase_hz: int = layout.TIMEBASE_HZ


def _check(cfg: BambooTreeConfig) -> None:
    if not 0 < cfg.mem_size_bytes <= layout.MAX_RAM_BYTES:
        raise FdtConfigError(f"RAM size {cfg.mem_size_bytes:#x} outside 1..{layout.MAX_RAM_BYTES:#x} bytes")
    if cfg.initrd_gpa is not None:
        end = cfg.initrd_gpa + cfg.initrd_size_bytes
        if cfg.initrd_gpa < 0 or cfg.initrd_size_bytes < 0 or end > cfg.mem_size_bytes:
            raise FdtConfigError(
                f"initrd [{cfg.initrd_gpa:#x}, {end:#x}) is not inside RAM [0, {cfg.mem_size_bytes:#x})"
            )
    for clock in (cfg.cpu_clock_hz, cfg.timebase_hz):
        if not 0 < clock <= 0xFFFFFFFF:
            raise FdtConfigError(f"clock {clock} Hz does not fit a 32-bit cell")
    used_inputs = {layout.UART0_UIC_INPUT: "serial0"}
    windows = [(layout.UART0_GPA, layout.UART0_BYTES, "serial0")]
    for node in cfg.virtio:
        name = f"virtio@{node.base_gpa:x}"
        if not 0 <= node.uic_input < 32:
            raise FdtConfigError(f"{name}: UIC0 input {node.uic_input} outside 0..31")
        if node.uic_input in used_inputs:
            raise FdtConfigError(
                f"{name}: UIC0 input {node.uic_input} already used by {used_inputs[node.uic_input]}"
            )
        used_inputs[node.uic_input] = name
        if (
            node.size_bytes <= 0
            or node.base_gpa < cfg.mem_size_bytes
            or node.base_gpa + node.size_bytes > 1 << 32
        ):
            raise FdtConfigError(
                f"{name}: window [{node.base_gpa:#x}, +{node.size_bytes:#x}) overlaps RAM or is past 4 GiB"
            )
        for base, size, other in windows:
            if node.base_gpa < base + size and base < node.base_gpa + node.size_bytes:
                raise FdtConfigError(f"{name}: window overlaps {other}")
        windows.append((node.base_gpa, node.size_bytes, name))


def _flag(tree: fdt.FDT, path: str, name: str) -> None:
    """An empty (boolean) property."""
    tree.add_item(fdt.Property(name), path)


def build_tree(cfg: BambooTreeConfig) -> fdt.FDT:
    """The board's device tree as an `fdt.FDT` (raises `FdtConfigError` for an impossible config)."""
    _check(cfg)
    t = fdt.FDT()
    t.header.version = DTB_VERSION

    t.set_property("#address-cells", 2)
    t.set_property("#size-cells", 1)
    t.set_property("model", "amcc,bamboo")
    t.set_property("compatible", ["amcc,bamboo"])
    t.set_property("dcr-parent", PHANDLE_CPU)

    t.set_property("serial0", UART0_PATH, "/aliases")

    t.set_property("#address-cells", 1, "/cpus")
    t.set_property("#size-cells", 0, "/cpus")
    cpu = "/cpus/cpu@0"
    t.set_property("device_type", "cpu", cpu)
    t.set_property("model", "PowerPC,440EP", cpu)
    t.set_property("reg", 0, cpu)
    t.set_property("clock-frequency", cfg.cpu_clock_hz, cpu)
    t.set_property("timebase-frequency", cfg.timebase_hz, cpu)
    for prop in ("i-cache-line-size", "d-cache-line-size"):
        t.set_property(prop, 32, cpu)
    for prop in ("i-cache-size", "d-cache-size"):
        t.set_property(prop, 32 * 1024, cpu)
    _flag(t, cpu, "dcr-controller")
    t.set_property("dcr-access-method", "native", cpu)
    t.set_property("phandle", PHANDLE_CPU, cpu)

    t.set_property("device_type", "memory", "/memory")
    t.set_property("reg", [0, layout.RAM_GPA, cfg.mem_size_bytes], "/memory")

    uic = "/interrupt-controller0"
    t.set_property("compatible", ["ibm,uic-440ep", "ibm,uic"], uic)
    _flag(t, uic, "interrupt-controller")
    t.set_property("cell-index", 0, uic)
    t.set_property("dcr-reg", [layout.UIC0_DCR_BASE, layout.UIC0_DCR_COUNT], uic)
    t.set_property("#address-cells", 0, uic)
    t.set_property("#size-cells", 0, uic)
    t.set_property("#interrupt-cells", 2, uic)
    t.set_property("phandle", PHANDLE_UIC0, uic)

    plb = "/plb"
    t.set_property("compatible", ["ibm,plb-440ep", "ibm,plb-440gp", "ibm,plb4"], plb)
    t.set_property("#address-cells", 2, plb)
    t.set_property("#size-cells", 1, plb)
    _flag(t, plb, "ranges")
    t.set_property("clock-frequency", layout.PLB_CLOCK_HZ, plb)

    opb = "/plb/opb"
    t.set_property("compatible", ["ibm,opb-440ep", "ibm,opb-440gp", "ibm,opb"], opb)
    t.set_property("#address-cells", 1, opb)
    t.set_property("#size-cells", 1, opb)
    # OPB addresses are the low 32 bits of the PLB's (two identity halves of 2 GiB each)
    t.set_property("ranges", [0x0, 0x0, 0x0, 0x8000_0000, 0x8000_0000, 0x0, 0x8000_0000, 0x8000_0000], opb)
    t.set_property("interrupts", [7, IRQ_TYPE_LEVEL_HIGH], opb)
    t.set_property("clock-frequency", layout.OPB_CLOCK_HZ, opb)

    ebc = "/plb/opb/ebc"
    t.set_property("compatible", ["ibm,ebc-440ep", "ibm,ebc-440gp", "ibm,ebc"], ebc)
    t.set_property("dcr-reg", [0x12, 2], ebc)
    t.set_property("#address-cells", 2, ebc)
    t.set_property("#size-cells", 1, ebc)
    t.set_property("clock-frequency", layout.OPB_CLOCK_HZ, ebc)
    t.set_property("interrupts", [5, IRQ_TYPE_EDGE_RISING], ebc)

    uart = UART0_PATH
    t.set_property("device_type", "serial", uart)
    t.set_property("compatible", ["ns16550"], uart)
    t.set_property("reg", [layout.UART0_GPA, layout.UART0_BYTES], uart)
    t.set_property("virtual-reg", layout.UART0_GPA, uart)
    t.set_property("clock-frequency", layout.UART0_CLOCK_HZ, uart)
    t.set_property("current-speed", layout.UART0_BAUD, uart)
    t.set_property("interrupt-parent", PHANDLE_UIC0, uart)
    t.set_property("interrupts", [layout.UART0_UIC_INPUT, IRQ_TYPE_LEVEL_HIGH], uart)

    for node in cfg.virtio:
        path = f"/plb/virtio@{node.base_gpa:x}"
        t.set_property("compatible", ["virtio,mmio"], path)
        t.set_property("reg", [node.base_gpa >> 32, node.base_gpa & 0xFFFFFFFF, node.size_bytes], path)
        t.set_property("interrupt-parent", PHANDLE_UIC0, path)
        t.set_property("interrupts", [node.uic_input, IRQ_TYPE_LEVEL_HIGH], path)

    chosen = "/chosen"
    t.set_property("bootargs", cfg.bootargs, chosen)
    t.set_property("linux,stdout-path", UART0_PATH, chosen)
    t.set_property("stdout-path", UART0_PATH, chosen)
    if cfg.initrd_gpa is not None:
        t.set_property("linux,initrd-start", cfg.initrd_gpa, chosen)
        t.set_property("linux,initrd-end", cfg.initrd_gpa + cfg.initrd_size_bytes, chosen)
    return t


def build_dtb(cfg: BambooTreeConfig) -> bytes:
    """The board's device tree blob (version 17, boot CPU 0), ready to load into guest RAM."""
    return build_tree(cfg).to_dtb(version=DTB_VERSION, last_comp_version=16, boot_cpuid_phys=0)


__all__ = [
    "BambooTreeConfig",
    "FdtConfigError",
    "PHANDLE_UIC0",
    "UART0_PATH",
    "VirtioMmioNode",
    "build_dtb",
    "build_tree",
]
