"""One module per command family, what the CLI calls (and nothing prints here).

``run`` (``fleet run``, ``run --resume``, ``runs``, ``show``), ``plan`` (``fleet plan``: suite
and facts -> Plan) and ``compare`` (``fleet compare`` and ``fleet gate``).
"""
