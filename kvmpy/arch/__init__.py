"""Architecture backends of the hypervisor, one package per architecture (`kvmpy.arch.<name>`).

Each has a `backend` module (found by name through `kvmpy.kvm.backends`),
a `uapi` module (what a VMM may import) and its simulated core under `hw/`.
"""
