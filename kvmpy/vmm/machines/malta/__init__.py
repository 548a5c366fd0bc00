"""The MIPS Malta board (CoreLV: GT-64120 north bridge, PIIX4 south bridge, FPGA) and its own parts."""

from kvmpy.vmm.machines.base import DriveSpec, MachineConfig, NetSpec
from kvmpy.vmm.machines.malta.board import Malta

MACHINE = Malta
MaltaConfig = MachineConfig

__all__ = ["MACHINE", "DriveSpec", "Malta", "MaltaConfig", "NetSpec"]
