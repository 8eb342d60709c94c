"""--limit: Ansible's host patterns, but a pattern that cannot mean what was typed is refused.

Ansible's splitter drops what it cannot parse (``'['``, ``','`` and ``' '`` split into nothing,
``'lab['`` into ``lab``) and an empty subset keeps every host, so a typo would select the whole
fleet. ``check_limit`` is pure: it refuses those patterns before Ansible sees them, and returns
the terms Ansible will use. ``apply_limit`` then requires every term to match some host.
"""

from __future__ import annotations

import re
from typing import Any

from fleet.errors import InventoryError

_HINT = "use host or group names, globs, 'a:b', '!x', '&y', 'group[0:2]' or '~regex'"
# Ansible's ':'-separated form: runs of non-separators or whole [...] groups.
_TERM = r"(?:[^\s:\[\]]|\[[^\]]*\])+"
_COLON_LIST = re.compile(rf"\s*{_TERM}(?:\s*[:\s]\s*{_TERM})*\s*")
# What Ansible reads as a subscript (ansible.inventory.manager.PATTERN_WITH_SUBSCRIPT).
_SUBSCRIPT = re.compile(r"-?[0-9]+|[0-9]+[:-][0-9]*")
_MAX_NAMES_SHOWN = 20


def check_limit(limit: str) -> tuple[str, ...]:
    """The terms of ``limit`` as Ansible splits them; InventoryError for anything it would drop."""
    if not limit.strip():
        raise _bad(limit, "is empty", "omit --limit to select every host, or name hosts/groups")
    if "," in limit:
        terms = [part.strip() for part in limit.split(",")]
        if not all(terms):
            raise _bad(limit, "has an empty part between commas",
                       "remove the extra comma, e.g. --limit 'web1,web2'")
    elif _is_address(limit):
        terms = [limit.strip()]
    else:
        _check_colon_list(limit)
        terms = re.findall(_TERM, limit)
        if len(terms) > 1 and _compiles(limit.strip()) and not all(map(_compiles, terms)):
            raise _bad(limit, "is a regex that Ansible would split at ':'",
                       "write it without ':', e.g. --limit '~web(1|2)'")
    for term in terms:
        _check_term(limit, term)
    return tuple(terms)


def _is_address(pattern: str) -> bool:
    """Ansible keeps an IPv6 address or a host range such as ``web[1:3]`` as one pattern."""
    from ansible.parsing.utils.addresses import parse_address

    try:
        parse_address(pattern, allow_ranges=True)
    except Exception:  # Ansible raises several types; any means "not one"
        return False
    return True


def _compiles(term: str) -> bool:
    """False only for a '~regex' term that is not a valid regular expression."""
    bare = term[1:] if term[:1] in ("!", "&") else term
    if not bare.startswith("~"):
        return True
    try:
        re.compile(bare[1:])
    except re.error:
        return False
    return True


def _check_colon_list(limit: str) -> None:
    if _COLON_LIST.fullmatch(limit):
        return
    whole = limit.strip()
    if whole.lstrip("!&").startswith("~"):
        _check_term(limit, whole)  # an invalid regex says so
        raise _bad(limit, "is a regex Ansible would split at ':', '[', ']' or spaces",
                   "write it without ':' or spaces, e.g. --limit '~web(1|2)'")
    if not _balanced(limit):
        raise _bad(limit, "has unbalanced brackets",
                   "close each '[', e.g. --limit 'lab[0:2]', or use '~regex'")
    raise _bad(limit, "has an empty part between colons",
               "remove the extra ':', e.g. --limit 'web:db'")


def _check_term(limit: str, term: str) -> None:
    bare = term[1:] if term[0] in "!&" else term
    if not bare or bare in ("~", "@"):
        raise _bad(limit, f"has '{term}' with nothing after it",
                   "write a name after it, e.g. '!broken' or '&numa'")
    if bare.startswith("~"):
        try:
            re.compile(bare[1:])
        except re.error as e:
            raise _bad(limit, f"has an invalid regular expression '{bare}' ({e})",
                       "fix the regex after '~', e.g. '~web[0-9]+'") from None
        return
    if bare.startswith("@"):
        return  # a file of host names, read by Ansible
    if not _balanced(bare):
        raise _bad(limit, f"has unbalanced brackets in '{term}'",
                   "close each '[', e.g. --limit 'lab[0:2]', or use '~regex'")
    if "[" in bare:
        _check_subscript(limit, term, bare)


def _balanced(text: str) -> bool:
    """Each '[' closed by a ']' before the next '[' (globs and subscripts do not nest)."""
    depth = 0
    for char in text:
        if char in "[]":
            if depth == (char == "["):  # '[' inside [...] or ']' outside
                return False
            depth = 1 - depth
    return depth == 0


def _check_subscript(limit: str, term: str, bare: str) -> None:
    if "[]" in bare:
        raise _bad(limit, f"has empty brackets in '{term}'",
                   "write an index or a range, e.g. 'lab[0]' or 'lab[0:2]'")
    if not bare.endswith("]"):
        return  # a glob character class, e.g. 'web[12]-db'
    inside = bare[bare.rindex("[") + 1:-1]
    if ":" in inside and not _SUBSCRIPT.fullmatch(inside):
        head = bare[:bare.rindex("[")]
        raise _bad(limit, f"has a malformed range '{term}'",
                   f"write '{head}[START:END]' with numbers, e.g. '{head}[0:2]' (0-based, "
                   "END included)")


def _bad(limit: str, what: str, hint: str) -> InventoryError:
    return InventoryError(f"--limit {limit!r} {what}", hint=hint)


def apply_limit(manager: Any, limit: str, everyone: list[str]) -> None:
    """Ansible's --limit, but a pattern (or a part of one) that matches nothing is an error."""
    for term in check_limit(limit):
        bare = term[1:] if term[0] in "!&" else term
        if not bare.startswith("@") and not _hosts(manager, limit, bare):
            raise _no_match(limit, everyone, part=bare)
    manager.subset(limit)
    if not manager.get_hosts("all"):
        raise _no_match(limit, everyone)


def _hosts(manager: Any, limit: str, term: str) -> list[Any]:
    from ansible.errors import AnsibleError

    try:
        return list(manager.get_hosts(term))
    except AnsibleError:  # a subscript past the end of what the name matches
        head, _, index = term.rpartition("[")
        count = len(manager.get_hosts(head))
        raise _bad(limit, f"has no host at index {index.rstrip(']')} of '{head}' ({count} "
                   f"host{'s' if count != 1 else ''})",
                   f"indexes start at 0: use '{head}[0]' to '{head}[{max(count - 1, 0)}]'") \
            from None


def _no_match(limit: str, everyone: list[str], *, part: str | None = None) -> InventoryError:
    shown = ", ".join(everyone[:_MAX_NAMES_SHOWN])
    if len(everyone) > _MAX_NAMES_SHOWN:
        shown += f", ... ({len(everyone)} in all)"
    what = (f"no host matches '{part}' in --limit '{limit}'" if part and part != limit
            else f"no host matches --limit '{limit}'")
    return InventoryError(f"{what} (hosts: {shown})", hint=_HINT)
