"""The ONE_REG id encoding every architecture shares (Linux's include/uapi/linux/kvm.h).

An id is `KVM_REG_<ARCH> | size | arch-specific fields`; the size field says
how many bytes KVM_GET_ONE_REG/KVM_SET_ONE_REG move. Each architecture's
uapi module builds its ids on these.
"""

KVM_REG_SIZE_U32 = 0x0020000000000000
KVM_REG_SIZE_U64 = 0x0030000000000000
KVM_REG_SIZE_MASK = 0x00F0000000000000


def reg_size_bytes(reg_id: int) -> int:
    """Bytes a register id moves: 4 or 8, or 0 for a size no kvmpy register has."""
    size = reg_id & KVM_REG_SIZE_MASK
    if size == KVM_REG_SIZE_U32:
        return 4
    if size == KVM_REG_SIZE_U64:
        return 8
    return 0
