"""The Grafana dashboards fleet ships.

``spec`` (dashboards as data: sections, panels, PromQL, units; pure), ``panels`` and
``series`` (the dashboards' sections; pure), ``build`` (specs -> Grafana JSON with
grafana-foundation-sdk, and the committed files) and ``push`` (to a Grafana over its HTTP API;
the only grafana_client import).
"""
