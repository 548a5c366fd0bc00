# cython: language_level=3
"""Architectural constants of the simulated MIPS32 release-5 (P5600-class) core.

These numbers come from the MIPS32 Privileged Resource Architecture and the
VZ module specification. They are defined once, as `cpdef enum`s in
defs.pxd: Cython modules `cimport` them as C constants, Python code imports
the IntEnums this module makes of them (`Status.EXL`, `Cp0.STATUS`...).
"""


def plain(enum_type):
    """The members of one of these enums as a plain class of int attributes.

    For Python hot paths (the trap-and-emulate handlers): looking a member
    up on an IntEnum class (`Cp0.STATUS`) costs about ten times a plain
    class attribute. Same names and values, without the enum around them.
    """
    return type(enum_type.__name__, (), {"__slots__": (), **{m.name: int(m) for m in enum_type}})
