"""The .modinfo section of a kernel module (.ko, ELF64 little endian): pure."""

from __future__ import annotations

import struct

from fleet.errors import ProvisionError


def modinfo(data: bytes, *, where: str) -> dict[str, str]:
    """key=value pairs of the module's .modinfo section (the first value of a repeated key)."""
    section = _section(data, ".modinfo", where=where)
    fields: dict[str, str] = {}
    for entry in section.split(b"\0"):
        key, sep, value = entry.decode("utf-8", "replace").partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def _section(data: bytes, wanted: str, *, where: str) -> bytes:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ProvisionError("not an ELF64 little-endian kernel module", where=where)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    for name_index, _type, _flags, _addr, offset, size in headers:
        end = data.index(b"\0", names_offset + name_index)
        if data[names_offset + name_index:end].decode() == wanted:
            return data[offset:offset + size]
    raise ProvisionError(f"no {wanted} section", where=where)
