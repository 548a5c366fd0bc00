"""The bamboo device tree: valid for dtc, shaped like QEMU's bamboo.dtb, and what Linux's 44x code needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import fdt
import pytest

from kvmpy.vmm.machines.bamboo import layout
from kvmpy.vmm.machines.bamboo.fdt import (
    PHANDLE_UIC0,
    UART0_PATH,
    BambooTreeConfig,
    FdtConfigError,
    VirtioMmioNode,
    build_dtb,
)

QEMU_BAMBOO_DTB = Path("/usr/share/qemu/bamboo.dtb")
LINUX_44X_BUS_COMPATIBLES = {"ibm,plb4", "ibm,opb", "ibm,ebc", "simple-bus"}
"""ppc44x_simple's of_device_id table: Linux creates devices only for children of these buses."""

# Properties QEMU rewrites in its bamboo.dtb at run time (RAM size, clocks).
RUNTIME_PATCHED = {
    ("/memory", "reg"),
    ("/cpus/cpu@0", "clock-frequency"),
    ("/cpus/cpu@0", "timebase-frequency"),
}

NOT_MODELLED = {("/aliases", "serial1")}
"""QEMU's alias for its second UART, which this board does not have."""

needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc (device-tree-compiler) not installed")


def virtio_nodes(count: int) -> list[VirtioMmioNode]:
    return [
        VirtioMmioNode(
            layout.virtio_mmio_gpa(i), layout.VIRTIO_MMIO_STRIDE_BYTES, layout.virtio_mmio_uic_input(i)
        )
        for i in range(count)
    ]


def config(**kw: object) -> BambooTreeConfig:
    base: dict[str, object] = {
        "mem_size_bytes": 256 << 20,
        "bootargs": "console=ttyS0 rdinit=/init",
        "initrd_gpa": layout.INITRD_GPA,
        "initrd_size_bytes": 0x12345,
        "virtio": virtio_nodes(3),
    }
    base.update(kw)
    return BambooTreeConfig(**base)  # type: ignore[arg-type]


def dtc_decompile(dtb: bytes, tmp_path: Path, name: str) -> tuple[str, set[tuple[str, str]]]:
    """dtc's DTS for a blob, and its warnings as (check, node) pairs; dtc failing fails the test."""
    path = tmp_path / f"{name}.dtb"
    path.write_bytes(dtb)
    proc = subprocess.run(
        ["dtc", "-I", "dtb", "-O", "dts", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    warnings = set(re.findall(r"Warning \((\w+)\): (\S+?):", proc.stderr))
    return proc.stdout, warnings


def nodes(tree: fdt.FDT) -> dict[str, dict[str, object]]:
    """path -> {property: value} for every node."""
    out: dict[str, dict[str, object]] = {}
    for path, node_list, props in tree.walk():
        node_path = path if path else "/"
        out[node_path] = {p.name: (list(p.data) if hasattr(p, "data") else True) for p in props}
        del node_list
    return out


def parse(dtb: bytes) -> dict[str, dict[str, object]]:
    return nodes(fdt.parse_dtb(dtb))


# ---------------------------------------------------------------------- content


def test_root_cpu_memory_and_chosen() -> None:
    n = parse(build_dtb(config()))
    assert n["/"]["compatible"] == ["amcc,bamboo"] and n["/"]["model"] == ["amcc,bamboo"]
    cpu = n["/cpus/cpu@0"]
    assert cpu["model"] == ["PowerPC,440EP"] and cpu["device_type"] == ["cpu"]
    assert cpu["clock-frequency"] == [400_000_000] and cpu["timebase-frequency"] == [400_000_000]
    assert cpu["dcr-controller"] is True and cpu["dcr-access-method"] == ["native"]
    assert n["/memory"]["reg"] == [0, 0, 256 << 20]
    chosen = n["/chosen"]
    assert chosen["bootargs"] == ["console=ttyS0 rdinit=/init"]
    assert chosen["linux,initrd-start"] == [layout.INITRD_GPA]
    assert chosen["linux,initrd-end"] == [layout.INITRD_GPA + 0x12345]
    assert chosen["stdout-path"] == [UART0_PATH]


def test_no_initrd_means_no_initrd_properties() -> None:
    n = parse(build_dtb(config(initrd_gpa=None, initrd_size_bytes=0)))
    assert "linux,initrd-start" not in n["/chosen"] and "linux,initrd-end" not in n["/chosen"]


def test_uic0_and_serial_as_linux_needs_them() -> None:
    n = parse(build_dtb(config()))
    uic = n["/interrupt-controller0"]
    assert uic["compatible"] == ["ibm,uic-440ep", "ibm,uic"]
    assert uic["interrupt-controller"] is True
    assert uic["dcr-reg"] == [0xC0, 9] and uic["#interrupt-cells"] == [2]
    assert uic["phandle"] == [PHANDLE_UIC0]
    assert n["/"]["dcr-parent"] == n["/cpus/cpu@0"]["phandle"]
    uart = n[UART0_PATH]
    assert uart["compatible"] == ["ns16550"]
    assert uart["reg"] == [0xEF600300, 8]
    assert uart["interrupt-parent"] == [PHANDLE_UIC0] and uart["interrupts"] == [0, 4]
    assert uart["clock-frequency"] == [11_059_200] and uart["current-speed"] == [115_200]
    assert n["/aliases"]["serial0"] == [UART0_PATH]


def test_virtio_nodes_are_children_of_a_bus_linux_probes() -> None:
    n = parse(build_dtb(config()))
    virtio = sorted(p for p, props in n.items() if props.get("compatible") == ["virtio,mmio"])
    assert virtio == ["/plb/virtio@d0000000", "/plb/virtio@d0000200", "/plb/virtio@d0000400"]
    for i, path in enumerate(virtio):
        parent = path.rsplit("/", 1)[0]
        assert LINUX_44X_BUS_COMPATIBLES & set(n[parent]["compatible"])  # type: ignore[arg-type]
        assert n[parent]["#address-cells"] == [2] and n[parent]["#size-cells"] == [1]
        assert n[parent]["ranges"] is True  # identity: reg is the physical address
        assert n[path]["reg"] == [0, layout.virtio_mmio_gpa(i), 0x200]
        assert n[path]["interrupt-parent"] == [PHANDLE_UIC0]
        assert n[path]["interrupts"] == [16 + i, 4]


def test_every_interrupt_input_is_used_once() -> None:
    n = parse(build_dtb(config(virtio=virtio_nodes(layout.VIRTIO_MMIO_MAX_DEVICES))))
    inputs = [props["interrupts"][0] for props in n.values() if "interrupts" in props]  # type: ignore[index]
    assert len(inputs) == len(set(inputs))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mem_size_bytes": 0}, "RAM size"),
        ({"mem_size_bytes": 3 << 30}, "RAM size"),
        ({"initrd_gpa": (256 << 20) - 16, "initrd_size_bytes": 32}, "initrd"),
        ({"virtio": [VirtioMmioNode(0xD0000000, 0x200, 0)]}, "already used by serial0"),
        ({"virtio": [VirtioMmioNode(0xD0000000, 0x200, 40)]}, "outside 0..31"),
        ({"virtio": [VirtioMmioNode(0x1000, 0x200, 16)]}, "overlaps RAM"),
        ({"virtio": [VirtioMmioNode(0xEF600200, 0x200, 16)]}, "overlaps serial0"),
        (
            {"virtio": [VirtioMmioNode(0xD0000000, 0x200, 16), VirtioMmioNode(0xD0000100, 0x200, 17)]},
            "overlaps",
        ),
        ({"cpu_clock_hz": 1 << 33}, "32-bit"),
    ],
)
def test_impossible_configurations_are_refused(kw: dict[str, object], match: str) -> None:
    with pytest.raises(FdtConfigError, match=match):
        build_dtb(config(**kw))


def test_layout_helpers_reject_out_of_range_devices() -> None:
    with pytest.raises(ValueError):
        layout.virtio_mmio_gpa(layout.VIRTIO_MMIO_MAX_DEVICES)
    with pytest.raises(ValueError):
        layout.virtio_mmio_uic_input(-1)


# ---------------------------------------------------------------------- dtc and QEMU's tree


@needs_dtc
def test_dtc_accepts_the_blob_and_round_trips_it(tmp_path: Path) -> None:
    dtb = build_dtb(config())
    assert dtb[:4] == b"\xd0\x0d\xfe\xed"
    dts, _ = dtc_decompile(dtb, tmp_path, "ours")
    assert 'compatible = "amcc,bamboo";' in dts
    assert 'compatible = "virtio,mmio";' in dts
    # dtc compiles its own decompilation back to the same tree.
    src = tmp_path / "ours.dts"
    src.write_text(dts)
    again = subprocess.run(
        ["dtc", "-I", "dts", "-O", "dtb", str(src)], capture_output=True, check=True
    ).stdout
    assert parse(again) == parse(dtb)


@needs_dtc
@pytest.mark.skipif(not QEMU_BAMBOO_DTB.exists(), reason="QEMU's bamboo.dtb (qemu-system-data) not installed")
def test_shape_matches_qemu_bamboo_dtb(tmp_path: Path) -> None:
    ours_dtb = build_dtb(config())
    qemu_dtb = QEMU_BAMBOO_DTB.read_bytes()
    _, our_warnings = dtc_decompile(ours_dtb, tmp_path, "ours")
    _, qemu_warnings = dtc_decompile(qemu_dtb, tmp_path, "qemu")
    assert our_warnings <= qemu_warnings, f"dtc warns about ours only: {our_warnings - qemu_warnings}"

    ours, qemu = parse(ours_dtb), parse(qemu_dtb)
    common = set(ours) & set(qemu)
    expected_common = {
        "/",
        "/aliases",
        "/cpus",
        "/cpus/cpu@0",
        "/memory",
        "/interrupt-controller0",
        "/plb",
        "/plb/opb",
        "/plb/opb/ebc",
        "/plb/opb/serial@ef600300",
        "/chosen",
    }
    assert expected_common <= common
    compared = 0
    for path in sorted(common - {"/chosen"}):  # /chosen is per run in both
        for prop in sorted(set(ours[path]) & set(qemu[path])):
            if (path, prop) in RUNTIME_PATCHED:
                continue
            assert ours[path][prop] == qemu[path][prop], f"{path}:{prop}"
            compared += 1
        # Every property QEMU's node has, ours has too (nothing Linux reads is missing).
        missing = {prop for prop in qemu[path] if prop not in ours[path] and (path, prop) not in NOT_MODELLED}
        assert not missing, f"{path} lacks {missing}"
    assert compared > 40
