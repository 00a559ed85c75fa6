"""TVM targets from targets/*.toml, and how their model libraries are linked.

host: LLVM for this machine's CPU (`llvm_get_system_cpu()`, e.g. znver3), linked by the system C++
compiler. arm64 targets: `{"kind": "llvm", "mtriple": triple, "mcpu": cpu, "mattr": cpu_flags}`, linked
by `tvm.support.cc.cross_compiler("<triple>-g++")`. TVM 0.27 takes dict targets only.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

from edgeslm.compilers.base import Unsupported

# Debian packages that provide a cross C++ compiler per triple (for the error message)
CROSS_PACKAGES = {"aarch64-linux-gnu": "g++-aarch64-linux-gnu"}


@dataclass(frozen=True)
class TVMTarget:
    spec: dict                    # the dict handed to tvm.target.Target
    compiler: str                 # C++ driver that links the model .so
    cross: bool

    def tvm(self):
        import tvm
        return tvm.target.Target(self.spec)

    def fcompile(self):
        """The `fcompile` for export_library (None: TVM's default host compiler)."""
        if not self.cross:
            return None
        from tvm.support import cc
        return cc.cross_compiler(self.compiler)


def tvm_target(target) -> TVMTarget:
    """targets/<name>.toml -> TVMTarget; raises Unsupported for a triple or toolchain TVM cannot use."""
    import tvm
    from tvm.target import codegen

    if target.kind != "cpu":
        raise Unsupported(f"backend 'tvm' builds CPU model libraries; target '{target.name}' is a {target.kind}",
                          fix="choose host, linux-arm64 or android-arm64")
    if target.triple == "native":
        spec = {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu()}
        compiler = shutil.which("g++") or shutil.which("c++") or ""
        if not compiler:
            raise Unsupported("no C++ compiler to link the TVM model library", fix="apt-get install g++")
        return TVMTarget(spec, compiler, cross=False)

    arch = target.triple.split("-")[0]
    if arch not in ("aarch64", "arm64"):
        raise Unsupported(f"backend 'tvm' has no LLVM setup for triple '{target.triple}' (target '{target.name}')",
                          fix="choose host, linux-arm64 or android-arm64")
    gnu = _gnu_triple(target.triple)
    spec = {"kind": "llvm", "mtriple": gnu}
    if target.cpu:
        if not codegen.llvm_is_valid_cpu(target.cpu, gnu):
            raise Unsupported(f"LLVM in TVM {tvm.__version__} does not know cpu '{target.cpu}' for {target.triple}",
                              path=f"targets/{target.name}.toml", fix="fix 'cpu' in the target profile")
        spec["mcpu"] = target.cpu
    if target.cpu_flags:
        spec["mattr"] = list(target.cpu_flags)
    compiler = f"{gnu}-g++"
    if shutil.which(compiler) is None:
        package = CROSS_PACKAGES.get(gnu, f"g++-{gnu}")
        raise Unsupported(f"cross compiler '{compiler}' not found (needed to link the {target.name} model library)",
                          fix=f"apt-get install {package}")
    return TVMTarget(spec, compiler, cross=True)


def _gnu_triple(triple: str) -> str:
    # android-arm64 says aarch64-linux-android; its runner ships its own glibc loader (see NOTES), so the
    # model library is built for aarch64-linux-gnu as well
    return "aarch64-linux-gnu" if triple.startswith("aarch64") else triple
