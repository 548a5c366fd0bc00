"""Build the compiled guest-instruction path (Cython); everything else is plain Python."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension("kvmpy.sim.physmem", ["kvmpy/sim/physmem.pyx"], extra_compile_args=["-O2"]),
    Extension("kvmpy.arch.mips.hw.defs", ["kvmpy/arch/mips/hw/defs.pyx"], extra_compile_args=["-O2"]),
    Extension(
        "kvmpy.arch.mips.hw.cpu",
        ["kvmpy/arch/mips/hw/cpu.pyx"],
        extra_compile_args=["-O2", "-fno-strict-aliasing", "-fno-tree-vectorize", "-Wno-unused-function"],
    ),
    Extension(
        "kvmpy.arch.ppc.hw.core440",
        ["kvmpy/arch/ppc/hw/core440.pyx"],
        # -frounding-math: the FPU sets the host rounding mode and reads its flags around each operation
        extra_compile_args=["-O2", "-fno-strict-aliasing", "-frounding-math", "-Wno-unused-function"],
    ),
    Extension(
        "kvmpy.arch.mips.te.fastpath",
        ["kvmpy/arch/mips/te/fastpath.pyx"],
        extra_compile_args=["-O2", "-Wno-unused-function"],
    ),
]

setup(ext_modules=cythonize(extensions, language_level=3, quiet=True))
