"""One function per command, what the CLI calls."""
