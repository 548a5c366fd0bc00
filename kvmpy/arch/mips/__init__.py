"""MIPS: the P5600-class core (`hw/`), the VZ and trap-and-emulate hypervisors, the KVM backend and uapi."""
