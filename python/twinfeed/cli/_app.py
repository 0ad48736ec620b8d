"""The root click group."""

from __future__ import annotations

import click

from twinfeed.records import build_info


def _version() -> str:
    info = build_info()
    return (
        f"twinfeed {info['version']} ({info['profile']} build, git {info['git_revision']}, "
        f"record schema {info['schema_version']})"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(message="%(version)s", version=_version())
def main() -> None:
    """twinfeed: research-to-live trading on one Rust feature crate.

    \b
    Research:  twinfeed features CAPTURE --out features.parquet
               twinfeed data synth --seed 1 --out data/synth.txt
    """
