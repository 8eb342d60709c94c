"""The command line: ``main`` (the parser, dispatch, one-line errors and exit codes), ``args``
(shared arguments), one module per command family (``runs``, ``compare``, ``report``,
``export``, ``dashboards``) and ``progress`` (what a run prints while it goes)."""

from fleet.cli.main import main

__all__ = ["main"]
