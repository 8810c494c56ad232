"""Subcommands of the `mmrphys` CLI, one module each."""
