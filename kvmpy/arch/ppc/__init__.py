"""PowerPC: what every PowerPC core and hypervisor of kvmpy shares."""
