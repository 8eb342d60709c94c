"""The Grafana dashboards: specs, panels, build, push."""
