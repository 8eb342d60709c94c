"""Exporting the store: the metric catalogue (catalogue.py, pure), read-only bulk reads
(store_reader.py), the store -> series mapping (series.py, pure) and the Prometheus adapter
(prometheus.py, the only prometheus_client import)."""
