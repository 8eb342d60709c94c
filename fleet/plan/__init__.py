"""Pure planning: suite -> cases (matrix) -> Plan (schedule)."""
