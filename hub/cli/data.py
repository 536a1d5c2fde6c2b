"""CLI commands (placeholder until its issue lands)."""


def register(sub) -> None:
    """Add this group's subcommands to the yolohub parser."""
