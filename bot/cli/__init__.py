"""The ``bot`` command line: one subcommand per job, in the style of Freqtrade and git."""
