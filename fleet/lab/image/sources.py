"""The host's own apt sources, narrowed to one Debian release, as the mirror of an image build.

The guest image is built from the same archive the host installs from: fleet never names a
mirror itself. Parsing and filtering are pure (text in, text out); ``host_sources`` is the one
reader of /etc/apt and /etc/os-release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleet.errors import LabError

OS_RELEASE = Path("/etc/os-release")
APT_DIR = Path("/etc/apt")
# one-line option names -> deb822 field names (sources.list(5))
ONE_LINE_OPTIONS = {"arch": "Architectures", "signed-by": "Signed-By", "trusted": "Trusted",
                    "lang": "Languages", "target": "Targets", "check-valid-until":
                    "Check-Valid-Until"}


@dataclass(frozen=True)
class Stanza:
    """One deb822 source: field name -> value (multi-line values keep their continuation)."""

    fields: tuple[tuple[str, str], ...]
    origin: str

    def get(self, name: str) -> str | None:
        for key, value in self.fields:
            if key.lower() == name.lower():
                return value
        return None

    def replaced(self, name: str, value: str) -> Stanza:
        fields = tuple((k, value if k.lower() == name.lower() else v) for k, v in self.fields)
        return Stanza(fields, self.origin)


def codename_of(os_release_text: str, where: str = str(OS_RELEASE)) -> str:
    """VERSION_CODENAME from an os-release file (quotes removed)."""
    for line in os_release_text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "VERSION_CODENAME" and value.strip("\"'"):
            return value.strip("\"'")
    raise LabError("no VERSION_CODENAME", where=where,
                   hint="the guest image is built for the host's Debian release; run on Debian")


def parse_deb822(text: str, origin: str) -> list[Stanza]:
    """Stanzas of a .sources file; comments dropped, continuation lines kept."""
    stanzas: list[Stanza] = []
    fields: list[tuple[str, str]] = []
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append(Stanza(tuple(fields), origin))
            fields = []
        elif raw[0] in " \t" and fields:
            key, value = fields[-1]
            fields[-1] = (key, f"{value}\n{raw}")
        elif ":" in raw:
            key, _, value = raw.partition(":")
            fields.append((key.strip(), value.strip()))
        else:
            raise LabError(f"not a deb822 field: {raw.strip()!r}", where=origin,
                           hint="fix the apt sources file (see sources.list(5))")
    return stanzas


def parse_one_line(text: str, origin: str) -> list[Stanza]:
    """Entries of a sources.list-style file, as deb822 stanzas."""
    stanzas = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: list[tuple[str, str]] = []
        if "[" in line:
            head, _, rest = line.partition("[")
            inside, _, tail = rest.partition("]")
            line = f"{head} {tail}"
            for option in inside.split():
                key, _, value = option.partition("=")
                name = ONE_LINE_OPTIONS.get(key.lower())
                if name is not None:
                    options.append((name, value.replace(",", " ")))
        words = line.split()
        if len(words) < 3:
            raise LabError(f"not a sources.list entry: {raw.strip()!r}",
                           where=f"{origin}:{number}", hint="see sources.list(5)")
        fields = [("Types", words[0]), ("URIs", words[1]), ("Suites", words[2]),
                  ("Components", " ".join(words[3:])), *options]
        stanzas.append(Stanza(tuple(fields), f"{origin}:{number}"))
    return stanzas


def for_release(stanzas: list[Stanza], codename: str) -> list[Stanza]:
    """Binary sources of ``codename`` (and its -updates/-security/... suites), enabled ones."""
    kept = []
    for stanza in stanzas:
        types = (stanza.get("Types") or "").split()
        uris = (stanza.get("URIs") or "").split()
        if "deb" not in types or (stanza.get("Enabled") or "yes").lower() == "no":
            continue
        if not uris or any(uri.startswith("cdrom:") for uri in uris):
            continue
        suites = [s for s in (stanza.get("Suites") or "").split()
                  if s == codename or s.startswith(f"{codename}-")]
        if suites:
            kept.append(stanza.replaced("Types", "deb").replaced("Suites", " ".join(suites)))
    return kept


def render_deb822(stanzas: list[Stanza]) -> str:
    blocks = []
    for stanza in stanzas:
        lines = [f"# from {stanza.origin}"]
        lines += [f"{key}: {value}" for key, value in stanza.fields if value]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def source_files(apt_dir: Path = APT_DIR) -> list[Path]:
    """The files apt itself reads: sources.list and sources.list.d/*.list|*.sources."""
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in {".list", ".sources"})
    return [p for p in files if p.is_file()]


def host_sources(codename: str, apt_dir: Path = APT_DIR) -> str:
    """The host's apt sources for ``codename`` as one deb822 text (the build's mirror)."""
    stanzas: list[Stanza] = []
    for path in source_files(apt_dir):
        text = path.read_text(encoding="utf-8", errors="replace")
        parse = parse_deb822 if path.suffix == ".sources" else parse_one_line
        stanzas += parse(text, str(path))
    kept = for_release(stanzas, codename)
    if not kept:
        raise LabError(f"no apt source for {codename}", where=str(apt_dir),
                       hint=f"add the Debian {codename} archive to the host's apt sources")
    return render_deb822(kept)
