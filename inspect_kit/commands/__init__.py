"""One module per ``inspect-kit`` subcommand (discovered by :mod:`inspect_kit.cli`)."""
