"""Errors of the KVM API, one class per operation that can fail.

Each corresponds to an ioctl failing with an errno in Linux's /dev/kvm; the
errno Linux would return is kept in `errno_name` so a reader can map them.
"""

from __future__ import annotations


class KvmError(Exception):
    """Base of every error the KVM API raises."""

    errno_name = "EINVAL"


class UnsupportedError(KvmError):
    """The requested capability, VM type or register does not exist here."""

    errno_name = "EINVAL"


class CreateVmError(KvmError):
    """KVM_CREATE_VM failed."""


class MemoryRegionError(KvmError):
    """KVM_SET_USER_MEMORY_REGION rejected the slot (bad alignment, overlap, size...)."""


class MemoryRegionOverlapError(MemoryRegionError):
    """The new slot overlaps an existing one (Linux: EEXIST)."""

    errno_name = "EEXIST"


class DirtyLogError(KvmError):
    """KVM_GET_DIRTY_LOG on a slot that does not exist or does not log."""

    errno_name = "ENOENT"


class CreateVcpuError(KvmError):
    """KVM_CREATE_VCPU failed (bad id, duplicate id, too many vCPUs)."""


class RegisterAccessError(KvmError):
    """KVM_GET/SET_ONE_REG with an unknown id or a value the register cannot hold."""


class RunError(KvmError):
    """KVM_RUN was called in a state where it cannot run (e.g. a pending exit left uncompleted)."""

    errno_name = "EBUSY"


class EnableCapError(KvmError):
    """KVM_ENABLE_CAP with a capability or argument the VM does not support."""


class UnknownArchitectureError(KvmError):
    """`Kvm(arch=...)` named an architecture no backend is registered for (see kvmpy.kvm.backends)."""

    errno_name = "ENODEV"


class InterruptError(KvmError, ValueError):
    """KVM_INTERRUPT / KVM_IRQ_LINE with an interrupt number the architecture does not have."""


class GuestDebugError(KvmError):
    """KVM_SET_GUEST_DEBUG asked for more than the hypervisor offers (the previous state stays)."""
