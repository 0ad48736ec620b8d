"""``twinfeed data``: bundled synthetic captures and imports."""

from __future__ import annotations

from twinfeed.cli._app import main


@main.group("data")
def data() -> None:
    """Make and import capture files."""
