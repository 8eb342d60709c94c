"""Collectors: pure parsers of the /proc, /sys and KVM files sampled while a case runs.

Each parser takes text (or bytes, or a root Path for tree readers) and returns frozen
dataclasses; a value that was not in the input is None, never 0. Stdlib only.

- :mod:`fleet.collectors.vmstat`      /proc/vmstat and nodeN/vmstat counters
- :mod:`fleet.collectors.interrupts`  /proc/interrupts (TLB/CAL/RES per CPU and per node)
- :mod:`fleet.collectors.nodes`       /proc/meminfo and nodeN/{meminfo,numastat,vmstat,cpulist}
- :mod:`fleet.collectors.numa_maps`   /proc/PID/numa_maps and ``numastat -p`` totals
- :mod:`fleet.collectors.proc_status` /proc/PID/status
- :mod:`fleet.collectors.kvm_debugfs` /sys/kernel/debug/kvm (global and per-VM stats)
- :mod:`fleet.collectors.kvm_stats`   KVM_GET_STATS_FD binary statistics
- :mod:`fleet.collectors.kmsg`        /dev/kmsg records, WARN/BUG/Oops/KVM classification

Derived metrics (rates, locality, overhead, placement) live in :mod:`fleet.sampling.formulas`.
"""
