"""Build arch/x86/kvm as external modules against a kernel release's Debian headers.

The headers packages are an already prepared kernel tree without .c files: the build runs in a
private overlay of it (symbolic links, plus the patched arch/x86/kvm, virt/kvm and any patched
header), so vermagic, the .config and Module.symvers (MODVERSIONS CRCs) are the target
kernel's own, and no ``modules_prepare`` of a full tree is needed. ``arch/x86/kvm/Makefile``
reaches virt/kvm by relative path and its trace headers through include/trace, which is why
those directories are real in the overlay.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from fleet.errors import ProvisionError

KVM_DIRS = ("arch/x86/kvm", "virt/kvm")
# other files a KVM series may patch that the modules' build reads
HEADER_PREFIXES = ("include/", "arch/x86/include/")
# files a series may patch that do not reach the modules (selftests, documentation)
IGNORED_PREFIXES = ("tools/", "Documentation/", "MAINTAINERS", "scripts/checkpatch")
_ERROR = re.compile(r"^(\S+:\d+:\d+): (?:fatal )?error: (.*)$")


def check_touched(paths: Iterable[str], *, where: str) -> tuple[str, ...]:
    """The touched header files to overlay; a file built into the kernel is refused."""
    headers = []
    for path in paths:
        if path.startswith(tuple(d + "/" for d in KVM_DIRS)) or path.startswith(IGNORED_PREFIXES):
            continue
        if path.startswith(HEADER_PREFIXES):
            headers.append(path)
            continue
        raise ProvisionError(f"the series patches {path}, which is built into the kernel, not "
                             "the KVM modules", where=where,
                             hint="declare a kernel variant for this series")
    return tuple(headers)


def overlay(headers_root: Path, release: str, patched: Path, headers: Iterable[str],
            work: Path) -> tuple[Path, Path]:
    """(objtree, module dir) of a private build tree in ``work``."""
    arch_dir = headers_root / "usr" / "src" / f"linux-headers-{release}"
    makefile = (arch_dir / "Makefile").read_text()
    common = Path(makefile.split()[-1]).parent  # 'include /usr/src/linux-headers-X-common/Makefile'
    common = headers_root / common.relative_to("/")
    src, obj = work / "src", work / "obj"
    src.mkdir(parents=True)
    _link_entries(common, src)
    _materialize(src, Path("include/trace"))
    for name in (*KVM_DIRS, *headers):
        _materialize(src, Path(name).parent)
    for name in KVM_DIRS:
        shutil.copytree(patched / name, src / name, symlinks=True)
    for name in headers:
        (src / name).unlink(missing_ok=True)
        shutil.copy2(patched / name, src / name)
    obj.mkdir()
    for entry in arch_dir.iterdir():
        if entry.name == "Makefile":
            continue
        if entry.is_symlink():
            (obj / entry.name).symlink_to(entry.resolve())
        elif entry.is_dir():
            shutil.copytree(entry, obj / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, obj / entry.name)
    (obj / "Makefile").write_text(f"include {src}/Makefile\n")
    return obj, src / "arch" / "x86" / "kvm"


def _link_entries(target: Path, directory: Path) -> None:
    for entry in target.iterdir():
        link = directory / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry.resolve())


def _materialize(root: Path, relative: Path) -> None:
    """Make every component of ``relative`` a real directory (of links to the headers)."""
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            target = current.resolve()
            current.unlink()
            current.mkdir()
            if target.is_dir():
                _link_entries(target, current)
        elif not current.exists():
            current.mkdir()


def make_modules(obj: Path, module_dir: Path, *, jobs: int, log: Path) -> None:
    """``make M=arch/x86/kvm modules`` with srcversion in every module (MODULE_SRCVERSION_ALL:
    Debian's config leaves it off, and srcversion is how a loaded module is verified)."""
    argv = ["make", "-C", str(obj), f"M={module_dir}", f"-j{jobs}",
            "CONFIG_MODULE_SRCVERSION_ALL=y", "modules"]
    env = make_env()
    with log.open("w") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise ProvisionError("the KVM module build failed: "
                             f"{first_error(log.read_text(), tree=obj.parent / 'src')}",
                             where=str(module_dir), hint=f"the build log: {log}")


def make_env() -> dict[str, str]:
    """The controller's environment without the make/kbuild variables a caller may have set
    (they would change what is built), in the C locale (the error lines are parsed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "KBUILD", "ARCH"))}
    env["LC_ALL"] = "C"
    return env


def first_error(text: str, *, tree: Path | None = None) -> str:
    """The compiler's first error (file:line:col relative to the tree), else make's last line."""
    for line in text.splitlines():
        found = _ERROR.match(line.strip())
        if found:
            where = found.group(1)
            if tree is not None:
                where = where.removeprefix(f"{tree}/")
            return f"{where}: {found.group(2)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "make failed"
