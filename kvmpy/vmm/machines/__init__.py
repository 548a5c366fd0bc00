"""The boards `kvmpy run --machine NAME` can build, found by name.

Each entry names the module that defines the board's `Machine` subclass as
`MACHINE`; the module is imported only when the board is asked for, so a
board whose hypervisor backend is missing does not stop the others.
"""

from __future__ import annotations

import importlib

from kvmpy.vmm.machines.base import Machine, MachineConfigError

BOARDS: dict[str, str] = {
    "malta": "kvmpy.vmm.machines.malta",
}
DEFAULT_MACHINE = "malta"


def machine_names() -> tuple[str, ...]:
    return tuple(BOARDS)


def find_machine(name: str) -> type[Machine]:
    """The board class registered as `name`; MachineConfigError if there is none or it cannot load."""
    module_name = BOARDS.get(name)
    if module_name is None:
        raise MachineConfigError(f"machine {name!r}: choose one of {', '.join(BOARDS)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MachineConfigError(f"machine {name} is not available: {exc}") from exc
    machine: type[Machine] = module.MACHINE
    return machine
