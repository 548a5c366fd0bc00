"""The registry of architecture backends: a name, and the module that implements it.

Backends are imported only when a `Kvm` of their architecture is created,
so `import kvmpy.kvm` needs nothing compiled and no architecture's code.
Adding an architecture is one line here plus its `kvmpy.arch.<name>`
package (docs/architecture.md, "Adding an architecture").
"""

from __future__ import annotations

import importlib

from kvmpy.kvm.backend import Backend
from kvmpy.kvm.errors import UnknownArchitectureError

# architecture name -> module exporting BACKEND (a kvmpy.kvm.backend.Backend)
BACKEND_MODULES: dict[str, str] = {
    "mips": "kvmpy.arch.mips.backend",
    "ppc440": "kvmpy.arch.ppc.backend",
}


def known_architectures() -> list[str]:
    """The architecture names `Kvm(arch=...)` accepts, sorted."""
    return sorted(BACKEND_MODULES)


def load_backend(arch: str) -> Backend:
    """The backend registered for `arch`, importing its module on first use.

    Raises UnknownArchitectureError naming the known architectures if there
    is none.
    """
    module_name = BACKEND_MODULES.get(arch)
    if module_name is None:
        raise UnknownArchitectureError(
            f"no hypervisor backend for architecture {arch!r}; known: {', '.join(known_architectures())}"
        )
    backend: Backend = importlib.import_module(module_name).BACKEND
    return backend
