"""The command line: ``main`` (puts the commands' parsers together, dispatches, one-line
errors and exit codes), ``args`` (the shared options and helpers, all public), one module per
command family that registers its own subcommands (``facts``, ``lab``, ``store``, ``runs``,
``export``, ``dashboards``, ``report``, ``compare``) and ``progress`` (what a run prints while
it goes). Only this entry point imports ``main``; heavy libraries are imported inside the
commands that use them, so ``fleet --version`` and ``--help`` start fast."""

from fleet.cli.main import main

__all__ = ["main"]
