"""A suite's ``variant_order`` (fleet.model.VariantOrder): validated, with file:line errors.

```yaml
variant_order:
  across_hosts: rotate   # same (default) | rotate
  blocks: 2              # default 1
```
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.model import DEFAULT_VARIANT_ORDER, VariantOrder
from fleet.yamlnode import Node

__all__ = ["DEFAULT_VARIANT_ORDER", "KEYS", "parse_variant_order"]
KEYS = ("across_hosts", "blocks")


def parse_variant_order(node: Node | None, variant_repetitions: Iterable[int]
                        ) -> VariantOrder:
    """``variant_repetitions``: the repetitions of each workload entry that has a variant;
    ``blocks`` more than all of them could split nothing: an error."""
    if node is None:
        return DEFAULT_VARIANT_ORDER
    items = node.fields("variant_order", optional=KEYS)
    across = DEFAULT_VARIANT_ORDER.across_hosts
    if "across_hosts" in items:
        value = items["across_hosts"].string("across_hosts")
        if value not in ("same", "rotate"):
            raise items["across_hosts"].error(
                f"variant_order across_hosts must be same or rotate, not {value!r}",
                hint="same: every host runs the variants in case order; rotate: the i-th "
                     "host starts with its (i mod n)-th variant")
        across = "same" if value == "same" else "rotate"
    blocks = items["blocks"].integer("variant_order blocks", minimum=1) \
        if "blocks" in items else DEFAULT_VARIANT_ORDER.blocks
    most = max(variant_repetitions, default=None)
    if most is not None and blocks > most:
        raise items["blocks"].error(
            f"variant_order blocks {blocks} is more than the repetitions of any workload "
            f"with a variant (at most {most})",
            hint=f"give blocks from 1 to {most}, or more repetitions")
    return VariantOrder(across_hosts=across, blocks=blocks)
