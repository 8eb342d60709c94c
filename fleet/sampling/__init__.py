"""Samples taken while a case runs -> series and derived metrics. Pure."""
