"""A patched full kernel: a tree + an ordered patch series + a config (a host's running one or
a given file, each brought up to date by ``make olddefconfig``) -> a linux-image .deb whose
release names the build, cached on the controller per (source, series, config) hash.

    built = build_kernel(KernelBuildRequest(source="linux-source-6.1",
                                            config_text=Path("small.config").read_text(),
                                            config_origin="small.config",
                                            patches=(Path("0001-x.patch"),)))
    built.deb, built.kernel_release  # booted like a deb variant (fleet.provision.variants)
"""

from fleet.provision.build.kernel import plan
from fleet.provision.build.kernel.build import build_kernel
from fleet.provision.build.kernel.model import KernelBuild, KernelBuildRequest

__all__ = ["KernelBuild", "KernelBuildRequest", "build_kernel", "plan"]
