"""What every simulated host core shares: host physical memory (and, later, the block-translation service).

`physmem` is the host's physical address space, `hostphys` the allocation of
host physical ranges a hypervisor pins guest memory at. This is hardware,
like `kvmpy/arch/*/hw`: it knows nothing of VMs, slots or devices (an
import-linter contract in pyproject.toml keeps it so).
"""
