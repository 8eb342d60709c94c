"""Patched KVM modules: build ``arch/x86/kvm`` from a kernel source + an ordered patch series
against a target's running kernel (cached on the controller), install and reload them on hosts
through the ``kvm_modules`` role, verified by srcversion; roll back to the stock modules.

    result = build_kvm_modules(BuildRequest(source="linux-source-6.1",
                                            kernel_release="6.1.0-57-amd64",
                                            patches=(Path("0001-x.patch"),)))
    installed = install(InstallRequest(inventory=(inv,), build=result,
                                       kernel_release=result.kernel_release, limit="vm1-2n"))
    rollback(InstallRequest(inventory=(inv,), build=None, kernel_release=..., remove=True))
"""

from fleet.provision.build.builder import build_kvm_modules
from fleet.provision.build.install import install, rollback
from fleet.provision.build.model import (
    MODULE_NAMES,
    BuildRequest,
    BuildResult,
    BuiltModule,
    InstalledModules,
    InstallRequest,
)

__all__ = ["MODULE_NAMES", "BuildRequest", "BuildResult", "BuiltModule", "InstallRequest",
           "InstalledModules", "build_kvm_modules", "install", "rollback"]
