"""Trap and emulate on the 440 (the only way a 440 can host a guest); docs/ppc440-te.md.

Split as Linux's old booke/44x KVM was: `emulate` (privileged instructions
against the virtual Book E CPU), `mmu` (guest TLB, shadow TLB, MMIO
decoding), `timer` (the guest's DEC/FIT) and `vcpu` (the run loop and
interrupt delivery).
"""
