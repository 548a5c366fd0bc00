"""What every simulated host core shares: host physical memory (and, later, the block-translation service).

This is hardware, like `kvmpy/arch/*/hw`: it knows nothing of VMs, slots or devices.
"""
