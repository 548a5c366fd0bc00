# The C-level view of the simulated host's physical memory, for cores that cimport it.
from libc.stdint cimport uint32_t, uint64_t


cdef class PhysicalMemory:
    cdef uint64_t* page_ptr      # host address of each 4 KiB physical page, 0 = no RAM
    cdef uint32_t npages
    cdef object _keep            # buffers kept alive while attached
    cdef object _table           # backing storage of page_ptr
    cdef public uint64_t generation   # bumped when RAM is detached: host addresses went stale
