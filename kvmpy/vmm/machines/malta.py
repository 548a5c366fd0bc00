"""The MIPS Malta board, as the VMM builds it on top of the KVM API.

Guest physical map (the Malta's, with the GT-64120 mapping that YAMON
leaves behind):

    0x00000000 - 0x0fffffff   low RAM (up to 256 MiB)
    0x18000000 - 0x1bdfffff   PCI I/O space: the PIIX4's ISA ports at 0x18000000 + port
    0x1f000000 - 0x1f0fffff   FPGA registers (LEDs, ASCII display, SOFTRES)
    0x1f000900                FPGA (CBUS) UART
    0x1fc00010                board REVISION register (in the boot flash window)

The board boots like its firmware: the kernel ELF is copied into RAM, the
YAMON-style arguments (argc/argv/envp, memsize) are written at 0x80002000,
and the vCPU starts at the kernel entry with a0-a3 set, as QEMU's `-kernel`
does.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from kvmpy.arch.mips.regs import CP0_ID_BY_NAME
from kvmpy.kvm import Kvm, KvmError, VmType
from kvmpy.vmm.bus import Bus
from kvmpy.vmm.devices.malta_fpga import FPGA_GPA, MALTA_REVISION_GPA, MaltaFpga, MaltaRevision
from kvmpy.vmm.devices.uart16550 import Uart16550
from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.loader.elf import load_elf_kernel, load_initrd
from kvmpy.vmm.loader.yamon import ENTRY_CP0_STATUS, write_yamon_boot_args
from kvmpy.vmm.runner import RunOutcome, StopControl, StopReason, run_vcpu
from kvmpy.vmm.serial import SerialBackend

ISA_IO_GPA = 0x18000000
COM1_PORT = 0x3F8
# Low memory is all the Malta maps below the I/O window at 0x10000000.
MAX_MEM_SIZE_MIB = 256


class MachineConfigError(VmmError):
    """The machine cannot be built as asked (memory size, mode...)."""


@dataclass(frozen=True)
class MaltaConfig:
    kernel: Path
    initrd: Path | None = None
    append: str = ""
    mem_size_mib: int = 256
    mode: str = "vz"
    no_reboot: bool = False


class Malta:
    """One Malta board with one vCPU; `run()` boots it and runs it to the end."""

    def __init__(self, config: MaltaConfig, serial: SerialBackend) -> None:
        if not 1 <= config.mem_size_mib <= MAX_MEM_SIZE_MIB:
            raise MachineConfigError(
                f"memory size {config.mem_size_mib} MiB: the Malta maps 1 to {MAX_MEM_SIZE_MIB} MiB"
            )
        if config.mode != "vz":
            raise MachineConfigError(f"mode {config.mode!r} is not available yet (only 'vz')")
        self.config = config
        self.serial = serial
        self.stop = StopControl()
        self.kvm = Kvm()
        self.resets = 0
        self._build()

    def _build(self) -> None:
        cfg = self.config
        mem_bytes = cfg.mem_size_mib << 20
        self.vm = self.kvm.create_vm(VmType.VZ)
        self.ram = mmap.mmap(-1, mem_bytes)
        self.vm.set_user_memory_region(0, 0, mem_bytes, self.ram)
        self.bus = Bus()
        self.uart0 = Uart16550(self.serial)
        self.bus.add(ISA_IO_GPA + COM1_PORT, 8, self.uart0, "uart0")
        self.fpga = MaltaFpga(on_reset=self._on_reset)
        for i, window in enumerate(self.fpga.windows()):
            self.bus.add(FPGA_GPA + window.offset, window.size_bytes, window.device, f"fpga{i}")
        self.bus.add(MALTA_REVISION_GPA, 4, MaltaRevision(), "revision")
        self.vcpu = self.vm.create_vcpu(0)
        self._load(mem_bytes)

    def _write_gpa(self, gpa: int, data: bytes) -> None:
        self.ram[gpa : gpa + len(data)] = data

    def _load(self, mem_bytes: int) -> None:
        cfg = self.config
        kernel = load_elf_kernel(cfg.kernel, self._write_gpa, mem_bytes)
        initrd = None
        if cfg.initrd is not None:
            initrd = load_initrd(cfg.initrd, self._write_gpa, mem_bytes, kernel.high_gpa)
        boot = write_yamon_boot_args(
            self._write_gpa,
            kernel=kernel,
            cmdline=cfg.append,
            ram_size_bytes=mem_bytes,
            initrd=initrd,
            kernel_name=str(cfg.kernel),
        )
        regs = self.vcpu.get_regs()
        for reg, value in boot.gprs().items():
            regs.gpr[reg] = value
        regs.pc = boot.entry_gva
        self.vcpu.set_regs(regs)
        self.vcpu.set_one_reg(CP0_ID_BY_NAME["STATUS"], ENTRY_CP0_STATUS)

    def request_quit(self) -> None:
        """Stop the run from any thread (the console's quit key): the run returns QUIT."""
        self.stop.request(StopReason.QUIT, "quit from the console")
        self.vcpu.kick()

    def _on_reset(self) -> None:
        self.stop.request(StopReason.RESET, "guest wrote SOFTRES")

    def run(self, max_seconds: float | None = None) -> RunOutcome:
        """Boot and run until the guest powers off or resets (and --no-reboot), or the user quits."""
        # Input goes to whichever UART the current (possibly rebooted) board has.
        self.serial.start(lambda data: self.uart0.receive(data))
        try:
            while True:
                outcome = run_vcpu(self.vcpu, self.bus, self.stop, max_seconds)
                if outcome.reason != StopReason.RESET or self.config.no_reboot:
                    return outcome
                # A reset reboots the board: a new VM from the same files.
                self.resets += 1
                self.stop = StopControl()
                self._build()
        except KvmError as exc:
            raise VmmError(f"hypervisor error: {exc}") from exc

    def stats_report(self) -> str:
        """Exit statistics of the run: exits by reason, hypervisor traps, MMIO by device."""
        s = self.vcpu.stats
        lines = [f"instructions: {s.instructions}", f"halted: {s.halted_ns / 1e9:.3f} s"]
        lines += [f"exit {k}: {v}" for k, v in sorted(s.exits.items())]
        lines += [f"trap {k}: {v}" for k, v in sorted(s.traps.items())]
        lines += [f"mmio {k}: {v}" for k, v in self.bus.counts.most_common()]
        return "\n".join(lines)
