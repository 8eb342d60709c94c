"""Exporting the store, with the metric names of fleet/catalogue.py: read-only bulk reads
(store_reader.py), the store -> series mapping (series.py, pure), the Prometheus adapter
(prometheus.py, the only prometheus_client import), pushes and remote write, and the Grafana
dashboards (grafana/)."""
