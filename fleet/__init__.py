"""fleet: benchmark fleet runner for Linux/KVM memory-management work on NUMA servers."""

__version__ = "0.1.0"
