"""The command groups of `carepath`, one Typer application per module (see cli.main)."""
